/**
 * The whole lifecycle of a rendered cluster (issue M8): Argo CD (simulated) applies the plugin's output for
 * `dev`, Cluster API (simulated) brings it up, the agent connects, the controller pivots the Cluster API
 * objects into the child (phase Pending → Provisioning → Pivoting → Pivoted → Ready), a spec change
 * committed to git reaches the child through the agent, re-applying the rendered output to the parent
 * changes nothing live, and deleting the LatticeCluster unpivots the objects back and tears the cluster
 * down through Cluster API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { PatchStrategy, Watch, type KubernetesObject, type V1Secret } from '@kubernetes/client-node';
import { createHealthChecks } from '../sim/health/lua.js';
import { specRenderer } from '../cli/load.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { conditionOf, eventually, StatusRecorder } from '../controller/testing.js';
import { argoCdObjectsOf, startWorld, type World } from '../sim/world.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';
import { capiObjects, liveObjects, type Obj } from './support/pivot.js';

const renderer = specRenderer();
let world: World;
let recorder: StatusRecorder;

const rendered = (cluster: LatticeCluster): Obj[] => argoCdObjectsOf(cluster);

beforeAll(async () => {
  world = await startWorld({ repo: REPO, upstreamCrds: SHARED + '/upstream-crds' });
  recorder = new StatusRecorder(world.parent.kc);
  await recorder.start();
}, 60_000);
afterAll(async () => {
  await recorder.stop();
  await world.stop();
}, 60_000);

const decode = (v: string | undefined): string => Buffer.from(v ?? '', 'base64').toString('utf8');
const registeredServer = async (): Promise<string> => decode((await world.parent.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-dev' })).data?.server);

/** The Argo CD registration's server as it changes (null: deleted), from a watch. */
function watchRegisteredServer(): { seen: (string | null)[]; stop(): void } {
  const seen: (string | null)[] = [];
  let request: AbortController | undefined;
  void new Watch(world.parent.kc).watch('/api/v1/namespaces/argocd/secrets', { fieldSelector: 'metadata.name=cluster-dev' }, (type: string, obj: V1Secret) => {
    const server = type === 'DELETED' ? null : decode(obj.data?.server);
    if (seen.at(-1) !== server) seen.push(server);
  }, () => undefined).then((r) => {
    request = r;
  });
  return { seen, stop: () => request?.abort() };
}

const lc = async (): Promise<Obj> => (await world.parent.custom.getClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name: 'dev' })) as Obj;
const status = (o: Obj) => (o.status ?? {}) as Record<string, unknown>;

describe('pivot, spec sync and unpivot of a rendered cluster', () => {
  it('goes Pending → Ready through a pivot, takes a spec change into the child, and unpivots and tears down on deletion', async () => {
    const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
    if (!dev) throw new Error('no dev example');
    const child = await world.addChild('dev');
    // GIVEN the plugin's output for dev, synced by Argo CD, and the agent the agent stage deploys
    const sync = world.argo.sync(rendered(dev));
    await eventually(() => child.sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'lattice-agent-bootstrap' }), { timeoutMs: 30_000 });
    await world.startAgent('dev');
    // THEN the cluster pivots and becomes Ready
    await eventually(async () => expect(status(await lc())).toMatchObject({ phase: 'Ready', pivotComplete: true }), { timeoutMs: 60_000 });
    expect(await sync).toMatchObject({ phase: 'Succeeded' });
    const phases = recorder.of('dev').map((o) => status(o).phase).filter((p, i, all) => p !== all[i - 1]);
    expect(phases).toEqual(['Pending', 'Provisioning', 'Pivoting', 'Pivoted', 'Ready']);
    expect(conditionOf(await lc(), 'Ready')).toMatchObject({ status: 'True' });
    // AND the child holds every Cluster API object, live; the parent keeps only the git-managed ones as shadows
    const inChild = await capiObjects(child.sim.kc, 'capi-dev');
    const inParent = await capiObjects(world.parent.kc, 'capi-dev');
    expect(liveObjects(inChild).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(inChild.filter((o) => o.apiVersion !== 'v1').map((o) => `${o.kind}/${o.metadata.name}`));
    expect(liveObjects(inParent)).toEqual([]);
    const git = new Set(renderer.plan(dev).objects.filter((o) => o.namespace === 'capi-dev').map((o) => `${o.kind}/${o.name}`));
    expect(inParent.map((o) => `${o.kind}/${o.metadata.name}`).filter((k) => !k.startsWith('Secret/lattice-state')).every((k) => git.has(k))).toBe(true);
    for (const shadow of inParent.filter((o) => git.has(`${o.kind}/${o.metadata.name}`))) {
      expect(shadow.metadata.annotations?.['lattice.dev/pivoted-to']).toBe('dev');
      expect(shadow.metadata.finalizers ?? []).toEqual([]);
    }
    expect(inChild.filter((o) => o.kind === 'Machine')).toHaveLength(3);
    // AND the namespace carries the label deploy/base/pivot-guard.yaml keys on
    expect((await world.parent.core.readNamespace({ name: 'capi-dev' })).metadata?.labels?.['lattice.dev/pivoted-to']).toBe('dev');
    // AND the Argo CD registration now points at the cell's API proxy, with the cluster's own token
    const proxyUrl = `https://127.0.0.1:${world.cell?.proxyPort ?? 0}/clusters/dev`;
    await eventually(async () => expect(await registeredServer()).toBe(proxyUrl));
    const config = JSON.parse(decode((await world.parent.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-dev' })).data?.config)) as { bearerToken?: string };
    expect(config.bearerToken).toBe(world.cell?.proxyTokens.token('dev'));
    // AND Argo CD keeps reconciling the child's addons through it: a release removed in the child comes back
    const releases = await child.sim.objects.list<KubernetesObject>('v1', 'ConfigMap', undefined, undefined, undefined, undefined, undefined, 'lattice.dev/sim-release');
    const charts = rendered(dev).filter((o) => o.kind === 'Application').map((o) => (o.spec as { source?: { chart?: string; helm?: { releaseName?: string } } }).source).filter((src) => src?.chart);
    expect(releases.items.map((r) => r.metadata?.name).sort()).toEqual(charts.map((src) => `sim-release-${src?.helm?.releaseName ?? ''}`).sort());
    expect(releases.items.length).toBeGreaterThanOrEqual(4);
    const removed = releases.items.find((r) => r.metadata?.name === 'sim-release-cilium');
    const proxiedBefore = world.proxied.get('dev') ?? 0;
    await child.sim.core.deleteNamespacedConfigMap({ name: 'sim-release-cilium', namespace: removed?.metadata?.namespace ?? '' });
    await eventually(() => child.sim.core.readNamespacedConfigMap({ name: 'sim-release-cilium', namespace: removed?.metadata?.namespace ?? '' }), { timeoutMs: 15_000 });
    expect(world.proxied.get('dev') ?? 0).toBeGreaterThan(proxiedBefore);

    // WHEN git changes the spec (a third worker) and Argo CD applies the new rendering to the parent
    const changed: LatticeCluster = { ...dev, spec: { ...dev.spec, nodes: { ...dev.spec.nodes, workerPools: { general: { ...dev.spec.nodes.workerPools?.general, replicas: 3 } } } } };
    const before = await capiObjects(world.parent.kc, 'capi-dev');
    expect(await world.argo.sync(rendered(changed))).toMatchObject({ phase: 'Succeeded' });
    // THEN the child's own MachineDeployment follows, and the parent's status shows the applied generation
    const generation = Number((await lc()).metadata?.generation);
    await eventually(async () => {
      const mds = (await capiObjects(child.sim.kc, 'capi-dev')).filter((o) => o.kind === 'MachineDeployment');
      expect(mds.map((md) => (md.spec as { replicas?: number }).replicas)).toEqual([3]);
      expect(status(await lc())).toMatchObject({ appliedGeneration: generation, phase: 'Ready' });
    }, { timeoutMs: 30_000 });
    // AND re-applying to the parent created nothing and woke nothing: the same objects, all still shadows
    const after = await capiObjects(world.parent.kc, 'capi-dev');
    expect(after.map((o) => o.metadata.uid)).toEqual(before.map((o) => o.metadata.uid));
    expect(liveObjects(after)).toEqual([]);
    // AND the same holds for Flux's way of applying (kustomize-controller: forced server-side apply)
    for (const doc of renderer.renderCluster(changed)) {
      await world.parent.objects.patch(parseAllDocuments(doc.text)[0]?.toJS() as KubernetesObject, undefined, undefined, 'kustomize-controller', true, PatchStrategy.ServerSideApply);
    }
    const applied = await capiObjects(world.parent.kc, 'capi-dev');
    expect(applied.map((o) => o.metadata.uid)).toEqual(before.map((o) => o.metadata.uid));
    expect(liveObjects(applied)).toEqual([]);
    for (const o of applied.filter((x) => x.apiVersion !== 'v1')) expect([o.kind, o.metadata.annotations?.['lattice.dev/pivoted-to'], o.metadata.finalizers ?? []]).toEqual([o.kind, 'dev', []]);
    // AND Argo CD's health checks (ours, in argocd/) call every shadow Healthy
    const checks = await createHealthChecks();
    try {
      const assessed = applied.map((o) => [`${o.kind}/${o.metadata.name}`, checks.health(o as unknown as Record<string, unknown>)] as const).filter(([, h]) => h !== undefined);
      expect(assessed.length).toBeGreaterThanOrEqual(3);
      for (const [key, h] of assessed) expect([key, h?.status]).toEqual([key, 'Healthy']);
    } finally {
      checks.close();
    }
    await eventually(async () => expect((await capiObjects(child.sim.kc, 'capi-dev')).filter((o) => o.kind === 'Machine')).toHaveLength(4), { timeoutMs: 30_000 });

    // WHEN the LatticeCluster is deleted (removed from git)
    const servers = watchRegisteredServer();
    await world.parent.custom.deleteClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name: 'dev' });
    // THEN it unpivots, Cluster API tears the cluster down, and the LatticeCluster goes
    await eventually(async () => {
      const gone = await lc().then(() => false, () => true);
      expect(gone).toBe(true);
    }, { timeoutMs: 60_000 });
    const seen = recorder.of('dev').map((o) => status(o).phase);
    expect(seen).toContain('Unpivoting');
    // AND once the objects were back, the registration went back to the child's own API server until it was removed
    servers.stop();
    expect(servers.seen.at(-1)).toBe(null);
    expect(servers.seen.filter((x) => x !== null && x !== proxyUrl)).toEqual([child.sim.url]);
    expect(await capiObjects(child.sim.kc, 'capi-dev')).toEqual([]);
    expect((await world.parent.core.readNamespace({ name: 'capi-dev' })).metadata?.labels?.['lattice.dev/pivoted-to']).toBeUndefined();
    expect((await capiObjects(world.parent.kc, 'capi-dev')).filter((o) => o.kind === 'Cluster')).toEqual([]);
    recorder.assertKstatus();
  }, 180_000);
});
