/**
 * The controller on the Flux path, against the simulated API server, Cluster API and Flux: the cluster's
 * HelmReleases (named `<cluster>-<addon>`, as the Flux flavor names them) turn Ready once the controller
 * writes the kubeconfig Secret they reference, and each stage condition follows its HelmReleases up to
 * "agent stage pending". The Flux objects are written here by hand, shaped as the flavor renders them, and
 * deliberately without the lattice.dev/cluster label: the controller also finds them by name.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../cli/load.js';
import { isRecord } from '../core/data.js';
import { StageCondition, stageIndex } from '../core/plan/stages.js';
import { conditionOf, startHarness, StatusRecorder, type Harness, eventually } from '../controller/testing.js';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { FluxSim } from '../sim/gitops/flux.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';

type Obj = KubernetesObject & Record<string, unknown>;
const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const renderer = specRenderer();
const NS = 'flux-system';

let sim: SimClients;
let capi: CapiSim;
let flux: FluxSim;
let harness: Harness;
let recorder: StatusRecorder;

const lc = async (name: string): Promise<Obj> => (await sim.custom.getClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name })) as Obj;

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', NS, 'lattice-system'] });
  capi = createCapiSim({ kubeConfig: sim.kc, intervalMs: 50, apiVersions: renderer.versions.apiVersions });
  flux = new FluxSim({ kubeConfig: sim.kc, pollMs: 20 });
  recorder = new StatusRecorder(sim.kc);
  await recorder.start();
  harness = startHarness({ sim, config: { gitops: 'flux', fluxNamespace: NS } });
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);
}, 60_000);
afterAll(async () => {
  flux.stop();
  await harness.stop();
  await capi.stop();
  await recorder.stop();
  await sim.server.close();
}, 60_000);
afterEach(() => {
  recorder.assertKstatus();
});

describe('lattice controller with Flux', () => {
  it('writes the kubeconfig Secret the HelmReleases reference and follows them to "agent stage pending"', async () => {
    // GIVEN the dev cluster's CAPI objects, its HelmReleases chained by stage, and its three Kustomizations
    const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
    if (!dev) throw new Error('no dev example');
    const text = renderer.renderCluster(dev).map((d) => `---\n${d.text}`).join('');
    for (const doc of parseAllDocuments(text)) await sim.objects.create(doc.toJS() as KubernetesObject);
    const addons = renderer.addons(dev);
    const kubeConfig = { secretRef: { name: 'dev-kubeconfig', key: 'value' } };
    for (const a of addons) {
      const earlier = addons.filter((b) => stageIndex(b.stage) < stageIndex(a.stage));
      const previousStage = earlier.filter((b) => b.stage === earlier[earlier.length - 1]?.stage);
      await sim.objects.create({
        apiVersion: 'helm.toolkit.fluxcd.io/v2', kind: 'HelmRelease', metadata: { name: a.objectName, namespace: NS },
        spec: {
          interval: '10m', kubeConfig, targetNamespace: a.namespace, storageNamespace: a.namespace,
          chart: { spec: { chart: a.chart, version: a.version, sourceRef: { kind: 'HelmRepository', name: 'dev-charts' } } },
          ...(previousStage.length > 0 ? { dependsOn: previousStage.map((b) => ({ name: b.objectName })) } : {}),
        },
      } as KubernetesObject);
    }
    const kustomization = (name: string, extra: Record<string, unknown>) => sim.objects.create({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1', kind: 'Kustomization', metadata: { name, namespace: NS },
      spec: { interval: '10m', prune: true, sourceRef: { kind: 'ExternalArtifact', name: 'lattice-cluster-dev' }, ...extra },
    } as KubernetesObject);
    await kustomization('dev-infrastructure', {});
    await kustomization('dev-addons', { dependsOn: [{ name: 'dev-infrastructure' }] });
    await kustomization('dev-agent', { dependsOn: [{ name: 'dev-addons' }], kubeConfig });
    // AND Cluster API holding the control plane back, so no kubeconfig exists yet
    capi.setFault('dev', { step: 'controlPlane', mode: 'stall' });
    // WHEN Cluster API and Flux run
    capi.start();
    flux.start();

    // THEN before the kubeconfig exists, the CNI HelmRelease reports Flux's error and the stage is False
    await eventually(async () => expect(conditionOf(await lc('dev'), StageCondition.CNI)).toMatchObject({
      status: 'False', reason: 'Degraded', message: expect.stringContaining("cilium: HelmRelease flux-system/dev-cilium is Degraded: could not find Secret 'flux-system/dev-kubeconfig'") as unknown,
    }));
    // WHEN the control plane initializes (CAPI writes its kubeconfig)
    capi.clearFault('dev');
    // THEN the controller copies it where the HelmReleases look, byte for byte
    await eventually(async () => {
      const copy = await sim.core.readNamespacedSecret({ namespace: NS, name: 'dev-kubeconfig' });
      const source = await sim.core.readNamespacedSecret({ namespace: 'capi-dev', name: 'dev-kubeconfig' });
      expect(copy.data).toEqual({ value: source.data?.value });
      expect(copy.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'lattice-controller', 'lattice.dev/cluster': 'dev' });
    });
    // AND every enabled stage turns True as its HelmReleases turn Ready, up to the agent
    for (const type of [StageCondition.InfrastructureReady, StageCondition.ControlPlaneInitialized, StageCondition.CNI, StageCondition.CertManager, StageCondition.Secrets, StageCondition.Metrics, StageCondition.Monitoring, StageCondition.Providers]) {
      await eventually(async () => expect(conditionOf(await lc('dev'), type)?.status, type).toBe('True'));
    }
    expect(conditionOf(await lc('dev'), StageCondition.CertManager)?.message).toBe('cert-manager: HelmRelease flux-system/dev-cert-manager is Healthy');
    await eventually(async () => expect(conditionOf(await lc('dev'), StageCondition.AgentConnected)).toEqual({
      status: 'False', reason: 'WaitingForAgent', message: 'waiting for the agent to connect: Kustomization flux-system/dev-agent is Healthy',
    }));
    await eventually(async () => expect(rec((await lc('dev')).status)).toMatchObject({ phase: 'Provisioning', observedGeneration: 1, readyControlPlane: 1, readyWorkers: 2 }));
    // AND no Argo CD registration was made
    await expect(sim.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-dev' })).rejects.toMatchObject({ code: 404 });
  }, 60_000);
});
