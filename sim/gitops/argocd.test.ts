/**
 * The simulated Argo CD against a sim API server through client-node: waves gate on our shipped Lua
 * health checks, Degraded fails the sync, child Applications follow cluster registration.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../../cli/load.js';
import { argocdObjects } from '../../core/flavor/flavors.js';
import { REPO, SHARED, exampleClusters } from '../../test/support/repo.js';
import { createHealthChecks, type HealthChecks } from '../health/lua.js';
import { eventually, startSim, type SimClients } from '../apiserver/testing.js';
import { ArgoCdSim, capiKubeconfigRegistry, waveOf } from './argocd.js';
import { withBuiltIns } from './health.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = KubernetesObject & Record<string, any>;

const renderer = specRenderer();
const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
const source = { repoURL: 'https://git.example.com/clusters.git', path: 'clusters', targetRevision: 'main' };
const devObjects = (): Obj[] => {
  if (!dev) throw new Error('no dev example');
  const text = renderer.renderObjects(argocdObjects(renderer, dev, { namespace: 'argocd', project: 'default', plugin: 'lattice', source })).map((d) => `---\n${d.text}`).join('');
  const docs = parseAllDocuments(text);
  return (Array.isArray(docs) ? docs : [docs]).map((d) => d.toJS() as Obj);
};

let sim: SimClients;
let checks: HealthChecks;

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd'] });
  checks = await createHealthChecks();
});
afterAll(async () => {
  checks.close();
  await sim.server.close();
});

const statusPatch = async (apiVersion: string, kind: string, name: string, namespace: string | undefined, status: Record<string, unknown>) => {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const plural = `${kind.toLowerCase()}s`;
  const current = (namespace
    ? await sim.custom.getNamespacedCustomObject({ group: group ?? '', version: version ?? '', namespace, plural, name })
    : await sim.custom.getClusterCustomObject({ group: group ?? '', version: version ?? '', plural, name })) as Obj;
  const body = { ...current, status };
  await (namespace
    ? sim.custom.replaceNamespacedCustomObjectStatus({ group: group ?? '', version: version ?? '', namespace, plural, name, body })
    : sim.custom.replaceClusterCustomObjectStatus({ group: group ?? '', version: version ?? '', plural, name, body }));
};

const exists = async (o: Obj): Promise<boolean> => {
  try {
    await sim.objects.read({ apiVersion: o.apiVersion ?? '', kind: o.kind ?? '', metadata: { name: o.metadata?.name ?? '', ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}) } });
    return true;
  } catch {
    return false;
  }
};

describe('ArgoCdSim.sync', () => {
  it('applies wave by wave and waits on health: wave 1 only after the LatticeCluster is accepted, wave 2 only once the control plane is initialized', async () => {
    // GIVEN the dev cluster's Argo CD objects, and a simulated Argo CD with our health checks
    const objects = devObjects();
    const argo = new ArgoCdSim({ kubeConfig: sim.kc, health: withBuiltIns(checks), pollMs: 10, isRegistered: async () => false });
    const controller = new AbortController();
    // WHEN it syncs
    const result = argo.sync(objects, { signal: controller.signal });
    try {
      // THEN wave 0 is applied and wave 1 waits for the controller to accept the spec
      const lattice = objects.find((o) => o.kind === 'LatticeCluster') as Obj;
      const cluster = objects.find((o) => o.kind === 'Cluster') as Obj;
      await eventually(async () => expect(await exists(lattice)).toBe(true));
      const held = argo.healthRounds;
      await eventually(() => expect(argo.healthRounds).toBeGreaterThanOrEqual(held + 3));
      expect(await exists(cluster)).toBe(false);
      // WHEN a stand-in for the Lattice controller accepts it
      await statusPatch('lattice.dev/v1alpha1', 'LatticeCluster', 'dev', undefined, { observedGeneration: 1, phase: 'Provisioning' });
      // THEN wave 1 lands, and wave 2 waits for the control plane to be initialized
      await eventually(async () => expect(await exists(cluster)).toBe(true));
      const md = objects.find((o) => o.kind === 'MachineDeployment') as Obj;
      const heldAgain = argo.healthRounds;
      await eventually(() => expect(argo.healthRounds).toBeGreaterThanOrEqual(heldAgain + 3));
      expect(await exists(md)).toBe(false);
      // WHEN the Cluster's and the control plane's status say initialized
      await statusPatch('cluster.x-k8s.io/v1beta2', 'Cluster', 'dev', 'capi-dev', {
        initialization: { infrastructureProvisioned: true, controlPlaneInitialized: true },
        conditions: [{ type: 'ControlPlaneInitialized', status: 'True', reason: 'Initialized', message: '', lastTransitionTime: '2026-11-21T00:00:00Z' }],
        phase: 'Provisioned',
      });
      await statusPatch('controlplane.cluster.x-k8s.io/v1beta2', 'KubeadmControlPlane', 'dev-control-plane', 'capi-dev', {
        initialization: { controlPlaneInitialized: true }, replicas: 1, readyReplicas: 1, availableReplicas: 1, upToDateReplicas: 1, observedGeneration: 1,
        conditions: [{ type: 'Available', status: 'True', reason: 'Available', message: '', lastTransitionTime: '2026-11-21T00:00:00Z' }],
      });
      // THEN the CNI wave is applied (MachineDeployment and Cilium's Application)
      await eventually(async () => expect(await exists(md)).toBe(true));
      const cilium = objects.find((o) => o.metadata?.name === 'dev-cilium') as Obj;
      await eventually(async () => expect(await exists(cilium)).toBe(true));
      // and the sync keeps waiting: nothing registers the cluster, so no Application turns Healthy
      const certManager = objects.find((o) => o.metadata?.name === 'dev-cert-manager') as Obj;
      expect(await exists(certManager)).toBe(false);
    } finally {
      controller.abort();
      await result.catch(() => undefined);
    }
  });

  it('fails the sync when an object of a gating wave turns Degraded', async () => {
    // GIVEN a two-wave app whose first wave holds a Cluster that fails
    const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'capi-broken', annotations: { 'argocd.argoproj.io/sync-wave': '0' } } };
    const cluster = { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Cluster', metadata: { name: 'broken', namespace: 'capi-broken', annotations: { 'argocd.argoproj.io/sync-wave': '1' } }, spec: { paused: false } };
    const later = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'later', namespace: 'capi-broken', annotations: { 'argocd.argoproj.io/sync-wave': '2' } }, data: {} };
    const argo = new ArgoCdSim({ kubeConfig: sim.kc, health: withBuiltIns(checks), pollMs: 10 });
    const result = argo.sync([ns, cluster, later]);
    // WHEN the Cluster fails
    await eventually(async () => expect(await exists(cluster as Obj)).toBe(true));
    await statusPatch('cluster.x-k8s.io/v1beta2', 'Cluster', 'broken', 'capi-broken', { phase: 'Failed' });
    // THEN the sync fails and the later wave is never applied
    await expect(result).resolves.toMatchObject({ phase: 'Failed', message: expect.stringContaining('Cluster/broken is Degraded'), waves: [0, 1] });
    expect(await exists(later as Obj)).toBe(false);
  });

  it('does not wait on the last wave, nor on kinds without a health check', async () => {
    const cm = (name: string, wave: number) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', annotations: { 'argocd.argoproj.io/sync-wave': String(wave) } }, data: {} });
    const argo = new ArgoCdSim({ kubeConfig: sim.kc, health: withBuiltIns(checks), pollMs: 10 });
    await expect(argo.sync([cm('a', 0), cm('b', 5), cm('c', 9)])).resolves.toEqual({ phase: 'Succeeded', message: 'successfully synced (all tasks run)', waves: [0, 5, 9] });
    expect(waveOf(cm('x', 3))).toBe(3);
  });
});

describe('ArgoCdSim application controller', () => {
  it('marks child Applications Healthy once their destination is registered, Unknown before', async () => {
    // GIVEN an addon Application for a cluster that has no kubeconfig yet
    const app = devObjects().find((o) => o.metadata?.name === 'dev-keda') as Obj;
    const ref = { apiVersion: 'argoproj.io/v1alpha1', kind: 'Application', metadata: { name: 'dev-keda', namespace: 'argocd' } };
    await sim.objects.create(app);
    const argo = new ArgoCdSim({ kubeConfig: sim.kc, health: withBuiltIns(checks), pollMs: 10, isRegistered: capiKubeconfigRegistry(sim.kc) });
    const health = async () => checks.health(JSON.parse(JSON.stringify(await sim.objects.read(ref))) as Obj);
    // WHEN the application controller runs
    await argo.reconcileApplications();
    // THEN the Application reports the missing cluster and our health check keeps a parent wave waiting
    expect(await health()).toEqual({ status: 'Unknown', message: 'there are no clusters with this name: dev' });
    // WHEN Cluster API writes the kubeconfig Secret
    await sim.core.createNamespace({ body: { metadata: { name: 'capi-dev' } } }).catch(() => undefined);
    await sim.core.createNamespacedSecret({ namespace: 'capi-dev', body: { metadata: { name: 'dev-kubeconfig' }, type: 'cluster.x-k8s.io/secret', data: { value: '' } } });
    argo.start();
    try {
      // THEN it turns Healthy
      await eventually(async () => expect((await health())?.status).toBe('Healthy'));
      const before = (await sim.objects.read(ref)).metadata?.resourceVersion;
      await argo.reconcileApplications();
      // and status is not rewritten when nothing changed
      expect((await sim.objects.read(ref)).metadata?.resourceVersion).toBe(before);
    } finally {
      argo.stop();
    }
  });
});
