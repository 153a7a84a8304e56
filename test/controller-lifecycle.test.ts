/**
 * The controller's lifecycle against the simulated API server: two replicas hand leadership over through
 * the Lease; watches survive the server cutting every connection; deleting a cluster tears it down through
 * Cluster API and removes its registration, unless deletion protection holds it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../cli/load.js';
import { isRecord } from '../core/data.js';
import { StageCondition } from '../core/plan/stages.js';
import { conditionOf, startHarness, StatusRecorder, type Harness, eventually } from '../controller/testing.js';
import { failure, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';

type Obj = KubernetesObject & Record<string, unknown>;
const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const renderer = specRenderer();
const LC = { group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters' };

let sim: SimClients;
let capi: CapiSim;
let recorder: StatusRecorder;
const harnesses: Harness[] = [];

const lc = async (name: string): Promise<Obj> => (await sim.custom.getClusterCustomObject({ ...LC, name })) as Obj;
const observed = async (name: string) => rec((await lc(name)).status).observedGeneration;

/** Applies a docker cluster the way GitOps would: namespace, LatticeCluster, Cluster API objects. */
async function applyCluster(name: string, annotations?: Record<string, string>): Promise<void> {
  const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
  if (!dev) throw new Error('no dev example');
  const cluster = { ...dev, metadata: { name, labels: { team: 'platform' }, ...(annotations ? { annotations } : {}) } };
  const text = renderer.renderCluster(cluster).map((d) => `---\n${d.text}`).join('');
  for (const doc of parseAllDocuments(text)) await sim.objects.create(doc.toJS() as KubernetesObject);
}

const start = (config = {}) => {
  const h = startHarness({ sim, config });
  harnesses.push(h);
  return h;
};

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd', 'lattice-system'] });
  // Cluster API takes a moment to tear a cluster down, so the controller's waiting is observable.
  capi = createCapiSim({ kubeConfig: sim.kc, intervalMs: 50, apiVersions: renderer.versions.apiVersions, deletionDelayMs: 300 });
  recorder = new StatusRecorder(sim.kc);
  await recorder.start();
  capi.start();
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);
}, 60_000);
afterAll(async () => {
  for (const h of harnesses) await h.stop();
  await capi.stop();
  await recorder.stop();
  await sim.server.close();
}, 60_000);
afterEach(() => {
  recorder.assertKstatus();
});

describe('lattice controller: leadership, watches, deletion', () => {
  it('hands leadership over between two replicas: only the leader reconciles, and the other takes over when it stops', async () => {
    // GIVEN two replicas campaigning for the same Lease
    const a = start({ leaseName: 'handover' });
    await eventually(() => expect(a.controller.isLeader).toBe(true));
    const b = start({ leaseName: 'handover' });
    // WHEN a cluster is applied
    await applyCluster('handover');
    // THEN the leader reconciles it; the standby does nothing (and reports ready, so it never blocks a rollout)
    await eventually(async () => expect(await observed('handover')).toBe(1));
    expect(b.controller.isLeader).toBe(false);
    expect(b.reconciles('handover')).toBe(0);
    expect(b.controller.health()).toEqual({ leader: false, ready: true, watches: {} });
    await eventually(() => expect(a.controller.health().ready).toBe(true));

    // WHEN the leader stops (a rolling update): it drains, then releases the Lease
    await a.stop();
    expect(a.controller.isLeader).toBe(false);
    const released = await sim.coordination.readNamespacedLease({ namespace: 'lattice-system', name: 'handover' });
    expect(released.spec?.holderIdentity === '' || released.spec?.holderIdentity !== a.controller.identity).toBe(true);
    // THEN the standby takes over (at once: the Lease was released, not left to expire) and reconciles what changes next
    await eventually(() => expect(b.controller.isLeader).toBe(true));
    const lease = await sim.coordination.readNamespacedLease({ namespace: 'lattice-system', name: 'handover' });
    expect(lease.spec?.holderIdentity).toBe(b.controller.identity);
    expect(lease.spec?.leaseTransitions).toBe(1);
    const aCount = a.reconciles('handover');
    await sim.custom.patchClusterCustomObject({ ...LC, name: 'handover', body: [{ op: 'replace', path: '/spec/nodes/workerPools/general/replicas', value: 3 }] });
    await eventually(async () => expect(await observed('handover')).toBe(2));
    // The status is written mid-reconcile and the count moves when the reconcile returns, so wait for it.
    await eventually(() => expect(b.reconciles('handover')).toBeGreaterThan(0));
    expect(a.reconciles('handover')).toBe(aCount);
    await b.stop();
  }, 60_000);

  it('keeps watching after the server resets every watch connection: restarts with backoff and sees what changes next', async () => {
    // GIVEN a running controller (periodic resyncs far away: only watches can trigger a reconcile)
    const h = start({ leaseName: 'resets', resyncIntervalMs: 3_600_000, progressIntervalMs: 3_600_000 });
    await eventually(() => expect(h.controller.health()).toMatchObject({ leader: true, ready: true }));
    await applyCluster('resilient');
    await eventually(async () => expect(conditionOf(await lc('resilient'), StageCondition.ControlPlaneInitialized)?.status).toBe('True'));
    // WHEN the API server cuts every watch connection (as a restart does)
    expect(sim.server.dropWatches('reset')).toBeGreaterThanOrEqual(8);
    // THEN the controller restarts its watches
    await eventually(async () => expect(await h.controller.metrics.registry.getSingleMetricAsString('lattice_controller_watch_restarts_total')).toMatch(/watch="latticeclusters"} [1-9]/));
    await eventually(() => expect(h.controller.health().ready).toBe(true));
    // AND reacts to changes made afterwards: a spec edit, a MachineDeployment scaled by GitOps, a new cluster
    await sim.custom.patchClusterCustomObject({ ...LC, name: 'resilient', body: [{ op: 'replace', path: '/spec/nodes/workerPools/general/replicas', value: 1 }] });
    await eventually(async () => expect(await observed('resilient')).toBe(2));
    await sim.custom.patchNamespacedCustomObject({ group: 'cluster.x-k8s.io', version: 'v1beta2', namespace: 'capi-resilient', plural: 'machinedeployments', name: 'resilient-pool-general', body: [{ op: 'replace', path: '/spec/replicas', value: 1 }] });
    await eventually(async () => expect(rec(rec((await lc('resilient')).status).workerPools).general).toMatchObject({ desired: 1, ready: 1 }));
    await applyCluster('after-reset');
    await eventually(async () => expect(await observed('after-reset')).toBe(1));
    await h.stop();
  }, 60_000);

  it('deletes a cluster that never pivoted: phase Deleting, CAPI Cluster deleted and waited for, registration removed, finalizer dropped', async () => {
    // GIVEN a cluster that is up and registered
    const h = start({ leaseName: 'deletion' });
    await applyCluster('doomed');
    await eventually(async () => expect((await sim.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-doomed' })).metadata?.labels?.team).toBe('platform'));
    expect((await lc('doomed')).metadata?.finalizers).toContain('lattice.dev/unpivot');
    // WHEN it is deleted
    await sim.custom.deleteClusterCustomObject({ ...LC, name: 'doomed' });
    // THEN the object goes, after the CAPI Cluster, the registration and the state Secret are gone
    await eventually(async () => expect((await failure(sim.custom.getClusterCustomObject({ ...LC, name: 'doomed' }))).code).toBe(404));
    expect((await failure(sim.custom.getNamespacedCustomObject({ group: 'cluster.x-k8s.io', version: 'v1beta2', namespace: 'capi-doomed', plural: 'clusters', name: 'doomed' }))).code).toBe(404);
    expect((await failure(sim.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-doomed' }))).code).toBe(404);
    expect((await failure(sim.core.readNamespacedSecret({ namespace: 'capi-doomed', name: 'lattice-state' }))).code).toBe(404);
    // AND it went through phase Deleting, and events tell the story
    expect(recorder.of('doomed').map((o) => rec(o.status).phase)).toContain('Deleting');
    const reasons = (await sim.core.listNamespacedEvent({ namespace: 'default' })).items.filter((e) => e.involvedObject.name === 'doomed').map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Registered', 'DeletionStarted', 'Deleted']));
    await h.stop();
  }, 60_000);

  it('treats the --self cluster as the parent: registered in-cluster, childrenHealth of the others, never torn down', async () => {
    // GIVEN a controller told that the cluster "mgmt" is the one it runs in, and another cluster
    const h = start({ leaseName: 'self', self: 'mgmt' });
    await sim.core.createNamespace({ body: { metadata: { name: 'capi-mgmt' } } });
    await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'LatticeCluster', metadata: { name: 'mgmt', labels: { role: 'parent' } }, spec: { providerRef: 'docker', provider: { kubernetes: { version: 'v1.34.1' }, config: { docker: {} } }, nodes: { controlPlane: { replicas: 1 } } } } as KubernetesObject);
    await applyCluster('child');
    // THEN Argo CD reaches the parent in-cluster, with its own service account
    await eventually(async () => {
      const s = await sim.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-mgmt' });
      expect(Buffer.from(s.data?.server ?? '', 'base64').toString()).toBe('https://kubernetes.default.svc');
      expect(JSON.parse(Buffer.from(s.data?.config ?? '', 'base64').toString())).toEqual({ tlsClientConfig: { insecure: false } });
      expect(s.metadata?.labels?.role).toBe('parent');
    });
    // AND its status summarizes the other clusters, following their progress
    await eventually(async () => expect(rec((await lc('mgmt')).status).childrenHealth).toContainEqual({ name: 'child', agentState: 'Unknown', readyControlPlane: 1, totalControlPlane: 1, readyNodes: 3, totalNodes: 3 }));
    // WHEN the parent's LatticeCluster is deleted
    await sim.custom.deleteClusterCustomObject({ ...LC, name: 'mgmt' });
    // THEN it goes without anything being torn down (it is the cluster the controller runs in), its registration with it
    await eventually(async () => expect((await failure(sim.custom.getClusterCustomObject({ ...LC, name: 'mgmt' }))).code).toBe(404));
    expect((await failure(sim.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-mgmt' }))).code).toBe(404);
    expect(rec((await lc('child')).metadata).deletionTimestamp).toBeUndefined();
    await h.stop();
  }, 60_000);

  it('holds a cluster with deletion protection: nothing is torn down and Stalled says why, until the annotation goes', async () => {
    // GIVEN a protected cluster
    const h = start({ leaseName: 'protection' });
    await applyCluster('guarded', { 'lattice.dev/deletion-protection': 'true' });
    await eventually(async () => expect(await observed('guarded')).toBe(1));
    // WHEN it is deleted
    await sim.custom.deleteClusterCustomObject({ ...LC, name: 'guarded' });
    // THEN it stays, with its finalizer, its CAPI Cluster and a Stalled condition saying why
    await eventually(async () => expect(conditionOf(await lc('guarded'), 'Stalled')?.reason).toBe('DeletionProtected'));
    const held = await lc('guarded');
    expect(held.metadata?.finalizers).toContain('lattice.dev/unpivot');
    expect(rec(held.status).phase).toBe('Deleting');
    expect(conditionOf(held, 'Ready')).toMatchObject({ status: 'False', reason: 'DeletionProtected' });
    const capiCluster = rec(await sim.custom.getNamespacedCustomObject({ group: 'cluster.x-k8s.io', version: 'v1beta2', namespace: 'capi-guarded', plural: 'clusters', name: 'guarded' }));
    expect(rec(capiCluster.metadata).deletionTimestamp).toBeUndefined();

    // WHEN the protection is removed
    await sim.custom.patchClusterCustomObject({ ...LC, name: 'guarded', body: [{ op: 'remove', path: '/metadata/annotations/lattice.dev~1deletion-protection' }] });
    // THEN the deletion proceeds to the end
    await eventually(async () => expect((await failure(sim.custom.getClusterCustomObject({ ...LC, name: 'guarded' }))).code).toBe(404));
    await h.stop();
  }, 60_000);
});
