/**
 * Least privilege for the pivot (deploy/base/rbac-pivot.yaml): the controller pivots a rendered cluster and
 * unpivots it again reaching the API server only through a recording proxy; every request must be allowed
 * by deploy/'s rules, and every verb rbac-pivot.yaml grants must have been used.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../controller/testing.js';
import { argoCdObjectsOf, startWorld, type World } from '../sim/world.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';
import { deniedCalls, deployRules, recordingProxy, resourceCalls, unusedGrants, type RecordingProxy } from './support/rbac.js';

let world: World;
let proxy: RecordingProxy | undefined;

beforeAll(async () => {
  world = await startWorld({
    repo: REPO, upstreamCrds: `${SHARED}/upstream-crds`,
    controllerKubeConfig: async (parent) => (proxy = await recordingProxy(parent.url)).kubeConfig,
  });
}, 60_000);
afterAll(async () => {
  await world.stop();
  await proxy?.close();
}, 60_000);

describe('lattice controller RBAC for the pivot (deploy/base/rbac-pivot.yaml)', () => {
  it('pivots and unpivots with only what deploy/ allows, and uses every verb rbac-pivot.yaml grants', async () => {
    // GIVEN the dev example, with a ConfigMap that belongs to its Cluster (it moves with it)
    const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
    if (!dev) throw new Error('no dev example');
    const child = await world.addChild('dev');
    const sync = world.argo.sync(argoCdObjectsOf(dev));
    await eventually(() => world.parent.core.readNamespace({ name: 'capi-dev' }), { timeoutMs: 30_000 });
    await world.parent.core.createNamespacedConfigMap({ namespace: 'capi-dev', body: { metadata: { name: 'dev-extra', finalizers: ['example.com/keep'] }, data: { a: 'b' } } });
    await eventually(() => child.sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'lattice-agent-bootstrap' }), { timeoutMs: 30_000 });
    await world.startAgent('dev');
    // WHEN it pivots, and then the LatticeCluster is deleted
    const phase = async () => ((await world.parent.custom.getClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name: 'dev' })) as { status?: { phase?: string } }).status?.phase;
    await eventually(async () => expect(await phase()).toBe('Ready'), { timeoutMs: 60_000 });
    expect(await sync).toMatchObject({ phase: 'Succeeded' });
    await world.parent.custom.deleteClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name: 'dev' });
    await eventually(async () => expect(await phase().then(() => 'exists', () => 'gone')).toBe('gone'), { timeoutMs: 60_000 });
    // THEN every request was allowed
    const { calls, nonResource } = resourceCalls(proxy?.calls ?? []);
    expect(nonResource).toEqual([]);
    const base = deployRules('base/rbac.yaml', 'rbac-argocd.yaml');
    const pivot = deployRules('base/rbac-pivot.yaml');
    expect(deniedCalls([...base, ...pivot], calls)).toEqual([]);
    // AND every verb of the pivot's rules was needed; `get configmaps` only when an import is re-run after a
    // stop (test/pivot-crash.test.ts), so a clean run does not use it
    expect(unusedGrants(pivot, calls)).toEqual(['get configmaps (*, core)']);
  }, 120_000);
});
