/**
 * Least privilege, checked: the controller talks to the simulated API server through a recording proxy
 * while it takes clusters through everything it does (credentials copies with an AWS identity, CAPI,
 * registration in Argo CD and in Flux, deletion), and every request it makes must be allowed by the
 * RBAC in deploy/, and every verb deploy/ grants must have been used.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CoreV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../cli/load.js';
import { isRecord } from '../core/data.js';
import { StageCondition } from '../core/plan/stages.js';
import { pino } from 'pino';
import { CELL_LEADER_LABEL, leaderPodLabel } from '../controller/leader-label.js';
import { conditionOf, eventually, startHarness, StatusRecorder } from '../controller/testing.js';
import { failure, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';
import { deployRules, recordingProxy, unusedGrants, deniedCalls, resourceCalls, type RecordingProxy } from './support/rbac.js';

const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const renderer = specRenderer();
const LC = { group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters' };

let sim: SimClients;
let capi: CapiSim;
let recorder: StatusRecorder;
let proxy: RecordingProxy;

const lc = async (name: string) => rec(await sim.custom.getClusterCustomObject({ ...LC, name }));

async function applyCluster(example: string, name: string): Promise<void> {
  const base = exampleClusters().find((c) => c.metadata.name === example);
  if (!base) throw new Error(`no example ${example}`);
  const text = renderer.renderCluster({ ...base, metadata: { name } }).map((d) => `---\n${d.text}`).join('');
  for (const doc of parseAllDocuments(text)) await sim.objects.create(doc.toJS() as KubernetesObject);
}

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd', 'flux-system', 'lattice-system', 'capa-system'] });
  capi = createCapiSim({ kubeConfig: sim.kc, intervalMs: 50, apiVersions: renderer.versions.apiVersions, deletionDelayMs: 100 });
  capi.start();
  recorder = new StatusRecorder(sim.kc);
  await recorder.start();
  proxy = await recordingProxy(sim.url);
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'aws-prod', namespace: 'lattice-system' }, spec: { type: 'aws', credentialsSecretRef: { name: 'aws-prod-credentials' } } } as KubernetesObject);
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);
  await sim.core.createNamespacedSecret({ namespace: 'lattice-system', body: { metadata: { name: 'aws-prod-credentials' }, data: { AccessKeyID: 'QQ==', SecretAccessKey: 'Qg==' } } });
}, 60_000);
afterAll(async () => {
  await capi.stop();
  await recorder.stop();
  await proxy.close();
  await sim.server.close();
}, 60_000);
afterEach(() => {
  recorder.assertKstatus();
});

describe('lattice controller RBAC (deploy/)', () => {
  it('makes only requests deploy/ allows, and uses every verb deploy/ grants', async () => {
    // GIVEN the controller in Argo CD mode, reaching the API server only through the recording proxy, in its Pod
    const pod = 'lattice-controller-7d9f-x2x4q';
    await sim.objects.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: 'lattice-system', labels: { 'app.kubernetes.io/name': 'lattice-controller' } }, spec: { containers: [{ name: 'controller', image: 'lattice' }] } } as KubernetesObject);
    const podLabel = leaderPodLabel({ core: proxy.kubeConfig.makeApiClient(CoreV1Api), namespace: 'lattice-system', pod, log: pino({ level: 'silent' }) });
    const leaderLabel = async () => (await sim.core.readNamespacedPod({ name: pod, namespace: 'lattice-system' })).metadata?.labels?.[CELL_LEADER_LABEL];
    const argo = startHarness({ sim, kubeConfig: proxy.kubeConfig, config: { leaseName: 'rbac-argocd' }, whileLeading: podLabel });
    // THEN, leading, it labels its Pod for the cell's Services
    await eventually(async () => expect(await leaderLabel()).toBe('true'));
    // WHEN it takes an AWS cluster through credentials, identity, CAPI, registration, a rotation, a repair and deletion
    await applyCluster('secure', 'audit');
    await eventually(async () => expect((await sim.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-audit' })).data?.name).toBeDefined());
    const identity = rec(await sim.custom.getClusterCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'awsclusterstaticidentities', name: 'aws-prod' }));
    await sim.custom.replaceClusterCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'awsclusterstaticidentities', name: 'aws-prod', body: { ...identity, spec: { secretRef: 'tampered' } } });
    const source = await sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'aws-prod-credentials' });
    await sim.core.replaceNamespacedSecret({ namespace: 'lattice-system', name: 'aws-prod-credentials', body: { ...source, data: { AccessKeyID: 'QQ==', SecretAccessKey: 'Qw==' } } });
    await eventually(async () => {
      expect((await sim.core.readNamespacedSecret({ namespace: 'capi-audit', name: 'aws-prod-credentials' })).data?.SecretAccessKey).toBe('Qw==');
      expect(rec(rec(await sim.custom.getClusterCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'awsclusterstaticidentities', name: 'aws-prod' })).spec).secretRef).toBe('aws-prod-credentials');
    });
    await sim.custom.deleteClusterCustomObject({ ...LC, name: 'audit' });
    await eventually(async () => expect((await failure(sim.custom.getClusterCustomObject({ ...LC, name: 'audit' }))).code).toBe(404));
    await argo.stop();
    // AND, stopped, it no longer carries the label
    expect(await leaderLabel()).toBeUndefined();
    // AND, in Flux mode, a docker cluster up to its registration
    const flux = startHarness({ sim, kubeConfig: proxy.kubeConfig, config: { leaseName: 'rbac-flux', gitops: 'flux', fluxNamespace: 'flux-system' } });
    await applyCluster('dev', 'audit-flux');
    await eventually(async () => expect((await sim.core.readNamespacedSecret({ namespace: 'flux-system', name: 'audit-flux-kubeconfig' })).data?.value).toBeDefined());
    await eventually(async () => expect(conditionOf(await lc('audit-flux'), StageCondition.CNI)?.status).toBe('Unknown'));
    await flux.stop();

    // THEN every request is allowed by deploy/'s rules (Flux's Role replacing Argo CD's in Flux mode, both checked)
    const calls = resourceCalls(proxy.calls);
    expect(calls.nonResource).toEqual([]);
    const rules = deployRules('base/rbac.yaml', 'rbac-argocd.yaml', 'flux/rbac-flux.yaml');
    expect(deniedCalls(rules, calls.calls)).toEqual([]);
    // AND every granted verb was needed (exactly what it uses)
    expect(unusedGrants(rules, calls.calls)).toEqual([]);
    expect(calls.calls.length).toBeGreaterThan(100);
  }, 90_000);
});
