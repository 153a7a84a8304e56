/**
 * Conformance of the simulated API server, part 4: list and watch. Selectors, pagination, resourceVersion
 * semantics, bookmarks, 410 Gone, and client-node's informer recovering from dropped watches and expired
 * resourceVersions, checked through @kubernetes/client-node over loopback HTTP.
 */
import { eventually, failure, startSim, type SimClients } from './testing.js';
import { fileURLToPath } from 'node:url';
import { makeInformer, PatchStrategy, setHeaderOptions, Watch, type KubeConfig, type KubernetesObject, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TEST_CRDS = fileURLToPath(new URL('./testdata/test-crds.yaml', import.meta.url));
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface WatchEvent {
  type: string;
  object: KubernetesObject & { code?: number; reason?: string; status?: string };
}

/** Opens a watch through client-node's Watch and records what arrives. */
async function watch(kc: KubeConfig, path: string, query: Record<string, string | number | boolean> = {}) {
  const events: WatchEvent[] = [];
  let finish: (err: unknown) => void = () => undefined;
  const done = new Promise<unknown>((resolve) => {
    finish = resolve;
  });
  const controller = await new Watch(kc).watch(path, query, (type: string, object: WatchEvent['object']) => events.push({ type, object }), (err: unknown) => finish(err ?? null));
  return { events, done, stop: () => controller.abort() };
}
const summary = (events: WatchEvent[]) => events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`);

let sim: SimClients;
let seq = 0;
async function freshNamespace(): Promise<string> {
  const name = `watch-${++seq}`;
  await sim.core.createNamespace({ body: { metadata: { name } } });
  return name;
}
const cm = (ns: string, name: string, labels: Record<string, string> = {}) => sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name, labels } } });

beforeAll(async () => {
  sim = await startSim({ crds: [TEST_CRDS], bookmarkIntervalMs: 20 });
});
afterAll(async () => {
  await sim.server.close();
});

describe('list', () => {
  it('carries the current global resourceVersion; items of built-in lists carry no apiVersion/kind', async () => {
    const ns = await freshNamespace();
    // GIVEN a ConfigMap
    const made = await cm(ns, 'a');
    // WHEN its namespace's ConfigMaps are listed
    const res = await fetch(`${sim.url}/api/v1/namespaces/${ns}/configmaps`);
    const body = (await res.json()) as { kind: string; apiVersion: string; metadata: { resourceVersion: string }; items: Record<string, unknown>[] };
    // THEN the list names the latest resourceVersion and its items carry no type information
    expect(body.kind).toBe('ConfigMapList');
    expect(body.metadata.resourceVersion).toBe(made.metadata?.resourceVersion);
    expect(body.items[0]).not.toHaveProperty('kind');
    expect(body.items[0]).not.toHaveProperty('apiVersion');
  });

  it('label selectors: =, ==, !=, in, notin, exists, !key and their conjunctions', async () => {
    // GIVEN four ConfigMaps with different env and tier labels
    const ns = await freshNamespace();
    await cm(ns, 'a', { env: 'prod', tier: 'web' });
    await cm(ns, 'b', { env: 'dev', tier: 'web' });
    await cm(ns, 'c', { env: 'prod' });
    await cm(ns, 'd');
    // WHEN they are listed with each kind of requirement THEN exactly the matching ones are returned
    const names = async (labelSelector: string) => (await sim.core.listNamespacedConfigMap({ namespace: ns, labelSelector })).items.map((i) => i.metadata?.name).join(',');
    expect(await names('env=prod')).toBe('a,c');
    expect(await names('env==prod')).toBe('a,c');
    expect(await names('env!=prod')).toBe('b,d');
    expect(await names('env in (dev, qa)')).toBe('b');
    expect(await names('env notin (prod)')).toBe('b,d');
    expect(await names('tier')).toBe('a,b');
    expect(await names('!tier')).toBe('c,d');
    expect(await names('env=prod,tier')).toBe('a');
    expect(await names('env=prod,!tier')).toBe('c');
    expect(await names('')).toBe('a,b,c,d');
  });

  it('field selectors on metadata.name and metadata.namespace with =, ==, !=; other fields are 400', async () => {
    // GIVEN two ConfigMaps
    const ns = await freshNamespace();
    for (const n of ['a', 'b']) await cm(ns, n);
    // WHEN they are listed by name, by name exclusion and by namespace across namespaces THEN the selection is exact
    expect((await sim.core.listNamespacedConfigMap({ namespace: ns, fieldSelector: 'metadata.name=a' })).items.map((i) => i.metadata?.name)).toEqual(['a']);
    expect((await sim.core.listNamespacedConfigMap({ namespace: ns, fieldSelector: 'metadata.name!=a' })).items.map((i) => i.metadata?.name)).toEqual(['b']);
    const all = await sim.core.listConfigMapForAllNamespaces({ fieldSelector: `metadata.namespace==${ns}` });
    expect(all.items.map((i) => `${i.metadata?.namespace}/${i.metadata?.name}`)).toEqual([`${ns}/a`, `${ns}/b`]);
    // WHEN a field that cannot be selected on, or a malformed label selector, is used THEN it is a bad request
    const unsupported = await failure(sim.core.listNamespacedConfigMap({ namespace: ns, fieldSelector: 'data.x=1' }));
    expect(unsupported.code).toBe(400);
    const malformed = await failure(sim.core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'env in prod' }));
    expect(malformed.code).toBe(400);
  });

  it('limit and continue page through every object once', async () => {
    // GIVEN five ConfigMaps
    const ns = await freshNamespace();
    for (const n of ['a', 'b', 'c', 'd', 'e']) await cm(ns, n);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    // WHEN they are listed two at a time, following the continue token
    do {
      const page = await sim.core.listNamespacedConfigMap({ namespace: ns, limit: 2, ...(token ? { _continue: token } : {}) });
      seen.push(...page.items.map((i) => i.metadata?.name ?? ''));
      if (pages === 0) expect(page.metadata?.remainingItemCount).toBe(3);
      token = page.metadata?._continue;
      pages++;
    } while (token);
    // THEN every object comes once, in order, in three pages
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(pages).toBe(3);
  });
});

describe('watch', () => {
  it('from a list resourceVersion streams ADDED, MODIFIED and DELETED; DELETED carries the deletion resourceVersion', async () => {
    // GIVEN a watch started from a list's resourceVersion
    const ns = await freshNamespace();
    const list = await sim.core.listNamespacedConfigMap({ namespace: ns });
    const w = await watch(sim.kc, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: list.metadata?.resourceVersion ?? '' });
    // WHEN a ConfigMap is created, patched and deleted
    await cm(ns, 'a');
    await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'a', body: { data: { k: 'v' } } }, merge);
    await sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'a' });
    // THEN the watch sees the three events in order, each with its own resourceVersion
    await eventually(() => expect(summary(w.events)).toEqual(['ADDED a', 'MODIFIED a', 'DELETED a']));
    const rvs = w.events.map((e) => Number(e.object.metadata?.resourceVersion));
    expect(rvs).toEqual([...rvs].sort((x, y) => x - y));
    expect(new Set(rvs).size).toBe(3);
    expect(w.events[0]?.object.kind).toBe('ConfigMap');
    w.stop();
  });

  it('without a resourceVersion, or with "0", starts with synthetic ADDED events for the existing objects', async () => {
    // GIVEN two existing ConfigMaps
    const ns = await freshNamespace();
    await cm(ns, 'old1');
    await cm(ns, 'old2');
    // WHEN a watch starts without a resourceVersion, and with "0" THEN it first sees them as ADDED
    for (const query of [{}, { resourceVersion: '0' }] as Record<string, string>[]) {
      const w = await watch(sim.kc, `/api/v1/namespaces/${ns}/configmaps`, query);
      await eventually(() => expect(summary(w.events)).toEqual(['ADDED old1', 'ADDED old2']));
      w.stop();
    }
  });

  it('resumes from a resourceVersion by replaying the retained history', async () => {
    // GIVEN a create, another create and a delete
    const ns = await freshNamespace();
    const first = await cm(ns, 'a');
    await cm(ns, 'b');
    await sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'a' });
    // WHEN a watch resumes from the first create's resourceVersion
    const w = await watch(sim.kc, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: first.metadata?.resourceVersion ?? '' });
    // THEN it sees what happened after it, in order
    await eventually(() => expect(summary(w.events)).toEqual(['ADDED b', 'DELETED a']));
    w.stop();
  });

  it('a resourceVersion older than the retained history gets an ERROR event with a 410 Expired Status', async () => {
    // GIVEN a server keeping three events, and five writes since an early resourceVersion
    const small = await startSim({ historySize: 3 });
    try {
      const early = await small.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'early' } } });
      for (const n of ['x1', 'x2', 'x3', 'x4']) await small.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: n } } });
      // WHEN a watch starts from that early resourceVersion
      const w = await watch(small.kc, '/api/v1/namespaces/default/configmaps', { resourceVersion: early.metadata?.resourceVersion ?? '' });
      // THEN it gets one ERROR event with a 410 Expired Status, and the stream ends
      expect(await w.done).toBeNull();
      expect(w.events).toHaveLength(1);
      expect(w.events[0]?.type).toBe('ERROR');
      expect(w.events[0]?.object).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
      // WHEN the history is compacted THEN even the newest-but-one resourceVersion is too old
      const list = await small.core.listNamespacedConfigMap({ namespace: 'default' });
      await small.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'y' } } });
      small.server.compact();
      const after = await watch(small.kc, '/api/v1/namespaces/default/configmaps', { resourceVersion: list.metadata?.resourceVersion ?? '' });
      await after.done;
      expect(after.events[0]?.object.code).toBe(410);
    } finally {
      await small.server.close();
    }
  });

  it('sends BOOKMARK events (apiVersion, kind and metadata.resourceVersion only) only when allowWatchBookmarks=true', async () => {
    const ns = await freshNamespace();
    // GIVEN two watches, one asking for bookmarks
    const plain = await watch(sim.kc, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: '0' });
    const marked = await watch(sim.kc, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: '0', allowWatchBookmarks: true });
    // WHEN time passes after a change
    const made = await cm(ns, 'a');
    // THEN only the one that asked gets BOOKMARKs, carrying the latest resourceVersion and nothing else
    await eventually(() => expect(marked.events.filter((e) => e.type === 'BOOKMARK').length).toBeGreaterThanOrEqual(2));
    const bookmark = marked.events.filter((e) => e.type === 'BOOKMARK').at(-1)?.object;
    expect(bookmark).toEqual({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: expect.any(String) } });
    expect(Number(bookmark?.metadata?.resourceVersion)).toBeGreaterThanOrEqual(Number(made.metadata?.resourceVersion));
    expect(summary(plain.events)).toEqual(['ADDED a']);
    plain.stop();
    marked.stop();
  });

  it('timeoutSeconds ends the stream cleanly', async () => {
    // GIVEN a watch with timeoutSeconds=1 WHEN the second passes THEN the stream ends without error
    const ns = await freshNamespace();
    const w = await watch(sim.kc, `/api/v1/namespaces/${ns}/configmaps`, { timeoutSeconds: 1 });
    expect(await w.done).toBeNull();
  });

  it('a label-selected watch sees an object leave the selection as DELETED and enter it as ADDED', async () => {
    // GIVEN a watch selecting app=x
    const ns = await freshNamespace();
    const w = await watch(sim.kc, `/api/v1/namespaces/${ns}/configmaps`, { labelSelector: 'app=x' });
    // WHEN an object is created inside the selection, moved out, moved back and changed
    await cm(ns, 'a', { app: 'x' });
    await cm(ns, 'other', { app: 'y' });
    await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'a', body: { metadata: { labels: { app: 'y' } } } }, merge);
    await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'a', body: { metadata: { labels: { app: 'x' } } } }, merge);
    await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'a', body: { data: { k: 'v' } } }, merge);
    // THEN the watch sees it arrive, leave, arrive and change; the other object never shows
    await eventually(() => expect(summary(w.events)).toEqual(['ADDED a', 'DELETED a', 'ADDED a', 'MODIFIED a']));
    w.stop();
  });

  it('events of a custom resource carry the apiVersion the watch asked for', async () => {
    // GIVEN a watch on Widgets as v1beta1 WHEN a Widget is created as v1
    const w = await watch(sim.kc, '/apis/test.lattice.dev/v1beta1/namespaces/default/widgets');
    await sim.custom.createNamespacedCustomObject({ group: 'test.lattice.dev', version: 'v1', namespace: 'default', plural: 'widgets', body: { apiVersion: 'test.lattice.dev/v1', kind: 'Widget', metadata: { name: 'watched' }, spec: { size: 'small' } } });
    // THEN the event shows it as v1beta1
    await eventually(() => expect(w.events.find((e) => e.object.metadata?.name === 'watched')?.object.apiVersion).toBe('test.lattice.dev/v1beta1'));
    w.stop();
  });

  it('watch=1 and the legacy /watch/ path prefix are watches too', async () => {
    // GIVEN a ConfigMap
    const ns = await freshNamespace();
    await cm(ns, 'a');
    // WHEN it is watched with watch=1, and through /api/v1/watch/... THEN both stream its ADDED event
    for (const path of [`/api/v1/namespaces/${ns}/configmaps?watch=1`, `/api/v1/watch/namespaces/${ns}/configmaps`]) {
      const abort = new AbortController();
      const res = await fetch(`${sim.url}${path}`, { signal: abort.signal });
      const reader = res.body?.getReader();
      if (!reader) throw new Error('no body');
      let text = '';
      while (!text.includes('\n')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      abort.abort();
      expect(JSON.parse(text.split('\n')[0] ?? '')).toMatchObject({ type: 'ADDED', object: { kind: 'ConfigMap', metadata: { name: 'a' } } });
    }
  });

  it('dropWatches("reset") cuts the connection, which the client sees as an error', async () => {
    // GIVEN an open watch
    const ns = await freshNamespace();
    const w = await watch(sim.kc, `/api/v1/namespaces/${ns}/configmaps`);
    // WHEN the server resets the watch connections THEN the client's watch ends with an error
    await eventually(() => expect(sim.server.dropWatches('reset')).toBeGreaterThanOrEqual(1));
    expect(await w.done).toBeInstanceOf(Error);
  });
});

describe('an informer (makeInformer / ListWatch)', () => {
  it('lists then watches, survives dropWatches() and a 410 Gone, and converges on the server\'s state', async () => {
    // GIVEN a server keeping little history, and an informer on ConfigMaps of one namespace
    const s = await startSim({ historySize: 5 });
    let lists = 0;
    const informer = makeInformer(s.kc, '/api/v1/namespaces/default/configmaps', () => {
      lists++;
      return s.core.listNamespacedConfigMap({ namespace: 'default' });
    });
    const errors: unknown[] = [];
    informer.on('error', (e) => errors.push(e));
    const cache = () => informer.list('default').map((o: V1ConfigMap) => `${o.metadata?.name}=${o.data?.v ?? ''}`).sort();
    try {
      await s.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'a' }, data: { v: '1' } } });
      await informer.start();
      expect(cache()).toEqual(['a=1']);
      await s.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'b' }, data: { v: '1' } } });
      await eventually(() => expect(cache()).toEqual(['a=1', 'b=1']));
      // WHEN the watch is dropped THEN the informer re-watches from its resourceVersion (no relist)
      await eventually(() => expect(s.server.dropWatches()).toBe(1));
      await s.core.patchNamespacedConfigMap({ namespace: 'default', name: 'a', body: { data: { v: '2' } } }, merge);
      await eventually(() => expect(cache()).toEqual(['a=2', 'b=1']));
      expect(lists).toBe(1);
      // WHEN writes elsewhere push its resourceVersion out of the history and the watch drops again
      for (let i = 0; i < 6; i++) await s.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: `noise-${i}` } } });
      await eventually(() => expect(s.server.dropWatches()).toBe(1));
      await s.core.deleteNamespacedConfigMap({ namespace: 'default', name: 'b' });
      await s.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'c' }, data: { v: '1' } } });
      // THEN it gets 410, lists again and keeps up
      await eventually(() => expect(cache()).toEqual(['a=2', 'c=1']));
      await eventually(() => expect(lists).toBe(2));
      await s.core.patchNamespacedConfigMap({ namespace: 'default', name: 'c', body: { data: { v: '2' } } }, merge);
      await eventually(() => expect(cache()).toEqual(['a=2', 'c=2']));
      expect(errors).toEqual([]);
    } finally {
      await informer.stop();
      await s.server.close();
    }
  });
});
