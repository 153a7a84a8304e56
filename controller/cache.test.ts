import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { cachedKube, matchesSelector, parseSelector, readOnlyDeps, type Attempt, type CacheSource } from './cache.js';
import type { ReconcileDeps } from './context.js';
import type { KObject, Kube } from './kube.js';
import { LATTICE_CLUSTER, NAMESPACE, SECRET, resourceOf } from './resources.js';

const MD = resourceOf('cluster.x-k8s.io/v1beta2', 'MachineDeployment', true);

/** A Kube that answers nothing and records what it was asked (the "server" behind the caches). */
function server(objects: KObject[] = []): { kube: Kube; asked: string[] } {
  const asked: string[] = [];
  const kube: Kube = {
    get: async (r, name, namespace) => {
      asked.push(`get ${r.plural} ${namespace ?? ''}/${name}`);
      return objects.find((o) => o.kind === r.kind && o.metadata.name === name && o.metadata.namespace === namespace);
    },
    list: async (r, o) => {
      asked.push(`list ${r.plural} ${o?.namespace ?? ''} ${o?.labelSelector ?? ''}`);
      return [];
    },
    create: async (_r, obj) => obj,
    replace: async (_r, obj) => obj,
    mergePatch: async () => ({ metadata: { name: 'x' } }),
    remove: async () => true,
    lister: () => ({ path: '/', list: async () => ({ items: [] }) }),
  };
  return { kube, asked };
}

function source(resource: CacheSource['resource'], objects: KObject[], options: { namespace?: string; labelSelector?: string; synced?: boolean } = {}): CacheSource {
  return {
    resource,
    ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
    ...(options.labelSelector !== undefined ? { labelSelector: options.labelSelector } : {}),
    synced: options.synced ?? true,
    get: (name, namespace) => objects.find((o) => o.metadata.name === name && (o.metadata.namespace ?? '') === (namespace ?? '')),
    list: (namespace) => objects.filter((o) => !namespace || o.metadata.namespace === namespace),
  };
}

const secret = (namespace: string, name: string, labels: Record<string, string> = {}): KObject => ({ kind: 'Secret', metadata: { name, namespace, labels } });
const owned = { 'app.kubernetes.io/managed-by': 'lattice-controller' };

describe('the read-only pass\'s Kube (controller/cache.ts)', () => {
  it('serves gets from the synced watches covering the namespace, as copies; what they do not hold is absent', async () => {
    // GIVEN a watch of every Secret in lattice-system and a watch of owned Secrets everywhere
    const { kube: live, asked } = server([secret('capi-a', 'lattice-state', owned)]);
    const all = source(SECRET, [secret('lattice-system', 'creds')], { namespace: 'lattice-system' });
    const ownedWatch = source(SECRET, [secret('capi-b', 'lattice-state', owned)], { labelSelector: 'app.kubernetes.io/managed-by=lattice-controller' });
    const kube = cachedKube(live, (r) => (r.plural === 'secrets' ? [all, ownedWatch] : []), {}, { ownedSecrets: () => ownedWatch });
    // WHEN objects are read
    const creds = await kube.get(SECRET, 'creds', 'lattice-system');
    const cached = await kube.get(SECRET, 'lattice-state', 'capi-b');
    const absent = await kube.get(SECRET, 'missing', 'lattice-system');
    const unlabelled = await kube.get(SECRET, 'lattice-state', 'capi-a');
    // THEN cached objects come from the caches (never the cached instance itself), and what no watch holds
    // is absent, even an object outside a watch's label selection (a live pass reads that one)
    expect(creds?.metadata.name).toBe('creds');
    if (creds?.metadata.labels) creds.metadata.labels.x = 'y';
    expect((await kube.get(SECRET, 'creds', 'lattice-system'))?.metadata.labels?.x).toBeUndefined();
    expect(cached?.metadata.namespace).toBe('capi-b');
    expect(absent).toBeUndefined();
    expect(unlabelled).toBeUndefined();
    expect(asked).toEqual([]);
  });

  it('asks the server when no synced watch covers the request', async () => {
    // GIVEN a LatticeCluster watch that has not listed yet, a namespace-limited one, and a resource not watched
    const { kube: live, asked } = server();
    const sources = [source(LATTICE_CLUSTER, [{ metadata: { name: 'a' } }], { synced: false }), source(MD, [], { namespace: 'capi-x' })];
    const kube = cachedKube(live, (r) => sources.filter((s) => s.resource.plural === r.plural), {}, { ownedSecrets: () => undefined });
    // WHEN read
    await kube.get(LATTICE_CLUSTER, 'a');
    await kube.list(MD, { namespace: 'capi-y' });
    await kube.get(MD, 'b', 'capi-y');
    await kube.get(resourceOf('infrastructure.cluster.x-k8s.io/v1beta2', 'AWSClusterStaticIdentity', false), 'aws-prod');
    // THEN all went to the server
    expect(asked).toEqual(['get latticeclusters /a', 'list machinedeployments capi-y ', 'get machinedeployments capi-y/b', 'get awsclusterstaticidentities /aws-prod']);
  });

  it('asks the server about what the synced watches lack while another watch that could hold it is not synced', async () => {
    // GIVEN the owned-Secrets watch synced and the kubeconfig watch failing (both cover capi-a)
    const kubeconfig = secret('capi-a', 'a-kubeconfig', { 'lattice.dev/cluster': 'a' });
    const { kube: live, asked } = server([kubeconfig]);
    const ownedWatch = source(SECRET, [secret('capi-a', 'lattice-state', owned)], { labelSelector: 'app.kubernetes.io/managed-by=lattice-controller' });
    const failing = source(SECRET, [], { labelSelector: 'lattice.dev/cluster', synced: false });
    const kube = cachedKube(live, () => [ownedWatch, failing], {}, { ownedSecrets: () => ownedWatch });
    // WHEN the kubeconfig is read, and the cluster's Secrets listed
    const got = await kube.get(SECRET, 'a-kubeconfig', 'capi-a');
    await kube.list(SECRET, { namespace: 'capi-a', labelSelector: 'lattice.dev/cluster=a' });
    // THEN the server answers both (a miss is not "absent" while a watch is not synced), and a hit in the
    // synced watch still needs no request
    expect(got?.metadata.name).toBe('a-kubeconfig');
    expect((await kube.get(SECRET, 'lattice-state', 'capi-a'))?.metadata.name).toBe('lattice-state');
    expect(asked).toEqual(['get secrets capi-a/a-kubeconfig', 'list secrets capi-a lattice.dev/cluster=a']);
  });

  it('lists from a watch covering the namespace, filtered by the request\'s selector', async () => {
    // GIVEN MachineDeployments of two clusters in one watch
    const { kube: live, asked } = server();
    const md = (ns: string, name: string, cluster: string): KObject => ({ kind: 'MachineDeployment', metadata: { name, namespace: ns, labels: { 'lattice.dev/cluster': cluster, 'cluster.x-k8s.io/cluster-name': cluster } } });
    const watch = source(MD, [md('capi-a', 'a-pool', 'a'), md('capi-b', 'b-pool', 'b'), md('capi-a', 'other', 'z')], { labelSelector: 'lattice.dev/cluster' });
    const kube = cachedKube(live, () => [watch], {}, { ownedSecrets: () => undefined });
    // WHEN one cluster's are listed THEN only those come back, without asking the server
    expect((await kube.list(MD, { namespace: 'capi-a', labelSelector: 'cluster.x-k8s.io/cluster-name=a' })).map((o) => o.metadata.name)).toEqual(['a-pool']);
    expect(asked).toEqual([]);
    // AND a selector it cannot evaluate goes to the server
    await kube.list(MD, { namespace: 'capi-a', labelSelector: 'x in (a,b)' });
    expect(asked).toEqual(['list machinedeployments capi-a x in (a,b)']);
  });

  it('lists what any covering watch holds, each object once', async () => {
    // GIVEN two Secret watches that both hold the state Secret, one of them also CAPI's kubeconfig
    const { kube: live, asked } = server();
    const state = secret('capi-a', 'lattice-state', { ...owned, 'lattice.dev/cluster': 'a' });
    const kubeconfig = secret('capi-a', 'a-kubeconfig', { 'cluster.x-k8s.io/cluster-name': 'a', 'lattice.dev/cluster': 'a' });
    const sources = [source(SECRET, [state], { labelSelector: 'app.kubernetes.io/managed-by=lattice-controller' }), source(SECRET, [kubeconfig, state], { labelSelector: 'lattice.dev/cluster' })];
    const kube = cachedKube(live, () => sources, {}, { ownedSecrets: () => sources[0] });
    // WHEN the cluster's Secrets are listed THEN both come back once, without asking the server
    expect((await kube.list(SECRET, { namespace: 'capi-a', labelSelector: 'lattice.dev/cluster=a' })).map((o) => o.metadata.name).sort()).toEqual(['a-kubeconfig', 'lattice-state']);
    expect(asked).toEqual([]);
  });

  it('knows a namespace exists when it holds a Secret the controller owns; otherwise asks', async () => {
    const { kube: live, asked } = server();
    const ownedWatch = source(SECRET, [secret('capi-a', 'lattice-state', owned)], { labelSelector: 'app.kubernetes.io/managed-by=lattice-controller' });
    const kube = cachedKube(live, () => [ownedWatch], {}, { ownedSecrets: () => ownedWatch });
    expect((await kube.get(NAMESPACE, 'capi-a'))?.metadata).toEqual({ name: 'capi-a' });
    expect(await kube.get(NAMESPACE, 'capi-new')).toBeUndefined();
    expect(asked).toEqual(['get namespaces /capi-new']);
  });

  it('refuses every write and notes the first one', async () => {
    const attempt: Attempt = {};
    const kube = cachedKube(server().kube, () => [], attempt, { ownedSecrets: () => undefined });
    await expect(kube.create(SECRET, secret('capi-a', 'x'))).rejects.toMatchObject({ code: 'ReadOnlyPass', kind: 'transient' });
    await expect(kube.mergePatch(LATTICE_CLUSTER, 'a', undefined, {})).rejects.toMatchObject({ code: 'ReadOnlyPass' });
    expect(attempt.action).toBe('create Secret x');
  });

  it('gives the steps dependencies that refuse every action: events, agent commands, moves, checkpoints', async () => {
    // GIVEN a cell and a mover behind read-only dependencies
    const attempt: Attempt = {};
    const sent: string[] = [];
    const deps = {
      log: pino({ level: 'silent' }),
      events: { record: async () => void sent.push('event') },
      checkpoint: () => void sent.push('checkpoint'),
      agents: {
        agent: () => undefined, delivery: () => ({ bootstrapUrl: 'u', cellEndpoint: 'e', caBundle: 'c' }), proxy: () => undefined, tokenTtlMs: 1,
        subscribe: () => () => undefined, send: async () => void sent.push('send'), unpivot: async () => void sent.push('unpivot'),
        tokens: { lookup: async () => undefined, recordIssued: async () => undefined, acquireLease: async () => true, releaseLease: async () => undefined, consume: async () => true },
      },
      mover: { list: async () => void sent.push('list') },
    } as unknown as ReconcileDeps;
    const ro = readOnlyDeps(deps, server().kube, attempt);
    // WHEN the steps would act THEN each action is refused and nothing reaches the real dependencies
    await expect(ro.events.record({ metadata: { name: 'a' } }, { type: 'Normal', reason: 'R', message: 'm' })).rejects.toThrow();
    await expect(ro.agents?.send('a', { unpivotRequest: { namespace: 'capi-a' } })).rejects.toThrow();
    expect(() => ro.agents?.delivery()).toThrow();
    await expect(ro.agents?.tokens.recordIssued('a', { hash: 'h', issuedAt: new Date(), expiresAt: new Date() })).rejects.toThrow();
    await expect(ro.mover?.list('capi-a')).rejects.toThrow();
    await expect(Promise.resolve().then(() => ro.checkpoint?.('pivot:start', 'a'))).rejects.toThrow();
    expect(sent).toEqual([]);
    expect(attempt.action).toBe('event');
    // AND what the cell knows is still read
    expect(ro.agents?.agent('a')).toBeUndefined();
  });
});

describe('label selectors of the cache', () => {
  it.each([
    ['lattice.dev/cluster', { 'lattice.dev/cluster': 'a' }, true],
    ['lattice.dev/cluster=a', { 'lattice.dev/cluster': 'a' }, true],
    ['lattice.dev/cluster==b', { 'lattice.dev/cluster': 'a' }, false],
    ['!lattice.dev/cluster', {}, true],
    ['a=b,c!=d', { a: 'b', c: 'e' }, true],
    ['a=b,c!=d', { a: 'b', c: 'd' }, false],
    ['', {}, true],
  ])('%s on %j: %s', (selector, labels, expected) => {
    const parsed = parseSelector(selector);
    expect(parsed).toBeDefined();
    expect(matchesSelector(labels, parsed ?? [])).toBe(expected);
  });

  it('leaves set-based selectors to the server', () => {
    expect(parseSelector('a in (x,y)')).toBeUndefined();
    expect(parseSelector('!a=b')).toBeUndefined();
  });
});
