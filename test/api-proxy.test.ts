/**
 * The Kubernetes API proxy end to end (M9): @kubernetes/client-node talks to a child sim API server only
 * through the cell's proxy, over a real agent stream. The child requires its own bearer token, which only
 * the agent holds: every request that succeeds went through the agent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { connect, constants as h2, type ClientHttp2Session } from 'node:http2';
import { CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, Watch, type V1ConfigMap } from '@kubernetes/client-node';
import { createAgent, type Agent } from '../agent/agent.js';
import { createProxyExecutor, type ProxyExecutor } from '../agent/proxy.js';
import { InMemoryTokenStore, issueBootstrapToken } from '../controller/cell/bootstrap.js';
import { startCell, type Cell } from '../controller/cell/cell.js';
import { emptyHealth } from '../controller/cell/protocol.js';
import { bootstrapSecret, parentEndpoints } from '../controller/cell/secrets.js';
import { recordingLogger } from '../controller/cell/testing.js';
import { eventually, failure, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { parse } from 'yaml';
import { agentObjects } from '../core/flavor/flavors.js';
import { AGENT } from '../core/flavor/agent.js';
import { specRenderer } from '../cli/load.js';
import { argocdClusterSecret, fluxKubeconfigSecret, proxyCredentials, proxyKubeconfig } from '../controller/registration.js';
import { argoCdDestination, ensureRelease, kubeconfigDestination, RELEASE_PREFIX } from '../sim/gitops/destination.js';
import { exampleClusters } from './support/repo.js';
import { deniedCalls, recordingProxy, resourceCalls, type RecordingProxy, type Rule } from './support/rbac.js';

const CHILD_TOKEN = 'child-admin-token-never-leaves-the-child';
const AGENT_NS = 'lattice-system';
const NS = 'apps';
const IMPERSONATED = `system:serviceaccount:${AGENT.namespace}:${AGENT.proxyServiceAccount}`;

let parent: SimClients;
let child: SimClients;
let cell: Cell;
let agent: Agent | undefined;
let executor: ProxyExecutor;
/** Between the agent and the child: what the agent asked the child, as whom. */
let recording: RecordingProxy;
const cellLog = recordingLogger();
const agentLog = recordingLogger();

/** A client whose only way to the child is the proxy URL for `cluster` with `token`. */
function viaProxy(cluster: string, token: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'proxy', server: `https://127.0.0.1:${cell.proxyPort}/clusters/${cluster}`, caData: Buffer.from(cell.ca.trustBundle).toString('base64') }],
    users: [{ name: 'gitops', ...(token ? { token } : {}) }],
    contexts: [{ name: 'proxy', cluster: 'proxy', user: 'gitops' }],
    currentContext: 'proxy',
  });
  return kc;
}

/** An HTTP/2 connection to the proxy, as Go clients (Argo CD, Flux) open one. */
function h2Session(): ClientHttp2Session {
  const session = connect(`https://127.0.0.1:${cell.proxyPort}`, { ca: cell.ca.trustBundle });
  session.on('error', () => undefined);
  return session;
}

/** A raw HTTPS request to the proxy (for what client-node would not send). */
function raw(path: string, options: { method?: string; token?: string; body?: Buffer } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port: cell.proxyPort, path, method: options.method ?? 'GET', ca: cell.ca.trustBundle,
      headers: { ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...(options.body ? { 'content-type': 'application/json', 'content-length': String(options.body.length) } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

async function startAgent(): Promise<Agent> {
  const a = createAgent({
    config: { cluster: 'dev', heartbeatSeconds: 10, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity', addonNamespaces: [] },
    kubeConfig: child.kc, namespace: AGENT_NS, log: agentLog.log, backoff: { initialMs: 20, maxMs: 200, stableMs: 100 },
    health: { collect: async () => emptyHealth() },
    proxy: executor,
  });
  a.start();
  await eventually(() => expect(cell.agents.get('dev')).toBeDefined(), { timeoutMs: 15_000 });
  return a;
}

beforeAll(async () => {
  parent = await startSim({ namespaces: ['default', AGENT_NS] });
  child = await startSim({ namespaces: ['default', AGENT_NS, NS], token: CHILD_TOKEN });
  const tokens = new InMemoryTokenStore();
  cell = await startCell({ core: parent.core, hosts: ['127.0.0.1'], tokens, grpcPort: 0, bootstrapPort: 0, proxyPort: 0, bindHost: '127.0.0.1', heartbeatIntervalMs: 200, log: cellLog.log });
  const { token } = await issueBootstrapToken(tokens, 'dev', { now: new Date() });
  await child.core.createNamespacedSecret({ namespace: AGENT_NS, body: bootstrapSecret({ token, ...parentEndpoints('127.0.0.1', { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort }), caBundle: cell.ca.trustBundle }, 'lattice-agent-bootstrap', AGENT_NS) });
  recording = await recordingProxy(child.url, { token: CHILD_TOKEN });
  executor = createProxyExecutor({ kubeConfig: recording.kubeConfig, impersonate: IMPERSONATED, log: agentLog.log });
  agent = await startAgent();
}, 30_000);

afterAll(async () => {
  await agent?.stop();
  await cell?.close();
  await recording?.close();
  await Promise.all([parent?.server.close(), child?.server.close()]);
});

describe('the API proxy', () => {
  it('carries create, read, list, replace, patch and delete to the child', async () => {
    // GIVEN a client that knows only the proxy URL and dev's proxy token
    const kc = viaProxy('dev', cell.proxyTokens.token('dev'));
    const core = kc.makeApiClient(CoreV1Api);
    const objects = KubernetesObjectApi.makeApiClient(kc);
    // WHEN it creates a ConfigMap
    const created = await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'via-proxy' }, data: { a: '1' } } });
    // THEN the child has it
    expect((await child.core.readNamespacedConfigMap({ name: 'via-proxy', namespace: NS })).metadata?.uid).toBe(created.metadata?.uid);
    // AND reads, lists, replaces, patches (merge and server-side apply) and deletes go through as well
    expect((await core.readNamespacedConfigMap({ name: 'via-proxy', namespace: NS })).data).toEqual({ a: '1' });
    expect((await core.listNamespacedConfigMap({ namespace: NS })).items.map((c) => c.metadata?.name)).toContain('via-proxy');
    const replaced = await core.replaceNamespacedConfigMap({ name: 'via-proxy', namespace: NS, body: { ...created, data: { a: '2' } } });
    expect(replaced.data).toEqual({ a: '2' });
    await objects.patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'via-proxy', namespace: NS }, data: { b: '3' } } as V1ConfigMap, undefined, undefined, 'test', undefined, PatchStrategy.MergePatch);
    await objects.patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'via-proxy', namespace: NS }, data: { c: '4' } } as V1ConfigMap, undefined, undefined, 'gitops', true, PatchStrategy.ServerSideApply);
    expect((await child.core.readNamespacedConfigMap({ name: 'via-proxy', namespace: NS })).data).toEqual({ a: '2', b: '3', c: '4' });
    await core.deleteNamespacedConfigMap({ name: 'via-proxy', namespace: NS });
    expect((await failure(child.core.readNamespacedConfigMap({ name: 'via-proxy', namespace: NS }))).code).toBe(404);
    // AND the API server's refusals come back as they are (a Status with its code)
    const missing = await failure(core.readNamespacedConfigMap({ name: 'never-there', namespace: NS }));
    expect(missing).toMatchObject({ code: 404, status: { kind: 'Status', reason: 'NotFound' } });
    // AND discovery works (what GitOps engines read first)
    expect(JSON.parse((await raw('/clusters/dev/api', { token: cell.proxyTokens.token('dev') })).body)).toMatchObject({ kind: 'APIVersions' });
  });

  it('streams a watch as events happen, and stops it at the agent when the caller goes away', async () => {
    const kc = viaProxy('dev', cell.proxyTokens.token('dev'));
    const events: string[] = [];
    const watch = new Watch(kc);
    let ended = false;
    // GIVEN a watch through the proxy
    const controller = await watch.watch(`/api/v1/namespaces/${NS}/configmaps`, {}, (type: string, obj: V1ConfigMap) => events.push(`${type} ${obj.metadata?.name ?? ''}`), () => {
      ended = true;
    });
    await eventually(() => expect(executor.inFlight()).toBe(1));
    // WHEN objects change in the child
    await child.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'watched' } } });
    await child.objects.patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'watched', namespace: NS }, data: { x: 'y' } } as V1ConfigMap, undefined, undefined, 'test', undefined, PatchStrategy.MergePatch);
    await child.core.deleteNamespacedConfigMap({ name: 'watched', namespace: NS });
    // THEN the events arrive through the proxy, in order
    await eventually(() => expect(events).toEqual(['ADDED watched', 'MODIFIED watched', 'DELETED watched']));
    // WHEN the caller stops watching
    controller.abort();
    // THEN the agent's request to the child ends too
    await eventually(() => expect(executor.inFlight()).toBe(0));
    expect(ended).toBe(true);
  });

  it('streams a large list in chunks and hands back exactly the bytes the child sent', async () => {
    const payload = 'x'.repeat(200 * 1024);
    for (let i = 0; i < 12; i++) await child.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: `big-${i}` }, data: { payload } } });
    const direct = await child.core.listNamespacedConfigMap({ namespace: NS, labelSelector: '' });
    const proxied = await viaProxy('dev', cell.proxyTokens.token('dev')).makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: NS });
    expect(proxied.items.map((c) => [c.metadata?.name, c.data?.payload?.length])).toEqual(direct.items.map((c) => [c.metadata?.name, c.data?.payload?.length]));
    for (let i = 0; i < 12; i++) await child.core.deleteNamespacedConfigMap({ name: `big-${i}`, namespace: NS });
  });

  it('rejects a missing, a wrong and another cluster\'s token, the same way', async () => {
    for (const token of [undefined, 'lpx1.not-a-token', cell.proxyTokens.token('other')]) {
      // client-node reports a 401 without its body; the raw answer shows the Status
      expect((await failure(viaProxy('dev', token).makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: NS }))).code).toBe(401);
      const refused = await raw(`/clusters/dev/api/v1/namespaces/${NS}/configmaps`, token ? { token } : {});
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.body)).toEqual({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    }
    // AND a cluster's own token opens only that cluster's path
    expect((await raw('/clusters/other/api', { token: cell.proxyTokens.token('dev') })).status).toBe(401);
  });

  it('refuses what is never proxied: other paths, other URLs, bodies over the API server\'s limit', async () => {
    const token = cell.proxyTokens.token('dev');
    expect((await raw('/clusters/dev/logs/', { token })).status).toBe(403);
    expect((await raw('/clusters/dev/api/v1/namespaces/default/services/x/proxy/', { token })).status).toBe(403);
    expect((await raw('/clusters/dev/api/v1/../../logs', { token })).status).toBe(403);
    expect((await raw('/api/v1/namespaces', { token })).status).toBe(404);
    const big = Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'huge' }, data: { x: 'y'.repeat(3.5 * 1024 * 1024) } }));
    const tooLarge = await raw(`/clusters/dev/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', token, body: big });
    expect(tooLarge.status).toBe(413);
    expect(JSON.parse(tooLarge.body)).toMatchObject({ kind: 'Status', code: 413 });
    expect((await failure(child.core.readNamespacedConfigMap({ name: 'huge', namespace: NS }))).code).toBe(404);
  });

  it('serves HTTP/2: requests and a watch multiplexed on one connection, a closed stream cancelled at the agent', async () => {
    const session = h2Session();
    const token = cell.proxyTokens.token('dev');
    try {
      // GIVEN a watch and ten requests on one HTTP/2 connection
      const events: string[] = [];
      const watch = session.request({ ':path': `/clusters/dev/api/v1/namespaces/${NS}/configmaps?watch=true`, authorization: `Bearer ${token}` });
      watch.on('data', (c: Buffer) => events.push(c.toString('utf8')));
      await eventually(() => expect(executor.inFlight()).toBe(1));
      const statuses = await Promise.all(Array.from({ length: 10 }, () => new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, authorization: `Bearer ${token}` });
        let status = 0;
        s.on('response', (h) => { status = Number(h[':status']); });
        s.on('error', reject);
        s.on('end', () => resolve(status));
        s.resume();
      })));
      expect(statuses).toEqual(Array.from({ length: 10 }, () => 200));
      // AND a body over the limit is refused on its stream, the connection going on
      const upload = session.request({ ':path': `/clusters/dev/api/v1/namespaces/${NS}/configmaps`, ':method': 'POST', authorization: `Bearer ${token}`, 'content-type': 'application/json' });
      const refused = new Promise<number>((resolve) => upload.on('response', (h) => resolve(Number(h[':status']))));
      upload.on('error', () => undefined);
      upload.end(Buffer.alloc(3.5 * 1024 * 1024, 'x'));
      expect(await refused).toBe(413);
      // WHEN an object changes in the child THEN the watch on the same connection sees it
      await child.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'over-h2' } } });
      await eventually(() => expect(events.join('')).toContain('"over-h2"'));
      // WHEN the caller closes the watch's stream THEN the agent's request ends
      watch.close(h2.NGHTTP2_CANCEL);
      await eventually(() => expect(executor.inFlight()).toBe(0));
      await child.core.deleteNamespacedConfigMap({ name: 'over-h2', namespace: NS });
    } finally {
      session.close();
    }
  });

  it('answers 503 with Retry-After while the agent is disconnected, and serves again once it is back', async () => {
    const token = cell.proxyTokens.token('dev');
    // GIVEN a watch open over HTTP/2
    const session = h2Session();
    const watch = session.request({ ':path': `/clusters/dev/api/v1/namespaces/${NS}/configmaps?watch=true`, authorization: `Bearer ${token}` });
    watch.resume();
    watch.on('error', () => undefined);
    const reset = new Promise<number>((resolve) => watch.on('close', () => resolve(watch.rstCode)));
    await new Promise((resolve) => watch.on('response', resolve));
    // WHEN the agent stops
    await agent?.stop();
    agent = undefined;
    await eventually(() => expect(cell.agents.get('dev')).toBeUndefined());
    // THEN the open watch is reset, never ended as if it were complete
    expect(await reset).toBe(h2.NGHTTP2_INTERNAL_ERROR);
    session.close();
    // THEN requests are refused at once, as unavailable
    const refused = await raw(`/clusters/dev/api/v1/namespaces/${NS}/configmaps`, { token });
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(JSON.parse(refused.body)).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable' });
    // WHEN it reconnects
    agent = await startAgent();
    // THEN the same request goes through
    expect((await raw(`/clusters/dev/api/v1/namespaces/${NS}/configmaps`, { token })).status).toBe(200);
  });

  it('serves the registrations the controller writes: Argo CD\'s cluster Secret and Flux\'s kubeconfig reach the child', async () => {
    const endpoint = { server: `https://127.0.0.1:${cell.proxyPort}/clusters/dev`, caBundle: cell.ca.trustBundle, token: cell.proxyTokens.token('dev') };
    const argocd = argocdClusterSecret({ cluster: 'dev', name: 'cluster-dev', namespace: 'argocd', labels: {}, credentials: proxyCredentials(endpoint), source: 'lattice-cell-proxy' });
    const flux = fluxKubeconfigSecret({ cluster: 'dev', name: 'dev-kubeconfig', namespace: 'flux-system', kubeconfigBase64: Buffer.from(proxyKubeconfig('dev', endpoint)).toString('base64'), source: 'lattice-cell-proxy' });
    // WHEN an engine installs a release with each (the simulated engines' way: namespace, then the release record)
    const viaArgo = argoCdDestination(argocd as { data?: Record<string, string> });
    if (!viaArgo) throw new Error('no destination');
    await ensureRelease(viaArgo, { name: 'cilium', namespace: 'kube-system', chart: 'cilium', version: '1.19.1', values: { a: 1 } }, 'argocd-controller');
    await ensureRelease(kubeconfigDestination(Buffer.from(flux.data?.value ?? '', 'base64').toString('utf8')), { name: 'cert-manager', namespace: 'cert-manager', chart: 'cert-manager', version: 'v1.19.4', values: null }, 'helm-controller');
    // THEN both arrived in the child
    expect((await child.core.readNamespacedConfigMap({ name: `${RELEASE_PREFIX}cilium`, namespace: 'kube-system' })).data?.chart).toBe('cilium');
    expect((await child.core.readNamespacedConfigMap({ name: `${RELEASE_PREFIX}cert-manager`, namespace: 'cert-manager' })).data?.chart).toBe('cert-manager');
  });

  it('runs every request as the lattice-proxy ServiceAccount, within the ClusterRole the agent component ships', () => {
    // GIVEN the ClusterRole as rendered for a cluster
    const renderer = specRenderer();
    const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
    if (!dev) throw new Error('no dev example');
    const role = renderer.renderObjects(agentObjects(renderer, dev, 'plain')).map((d) => parse(d.text) as { kind: string; metadata: { name: string }; rules?: Rule[] })
      .find((o) => o.kind === 'ClusterRole' && o.metadata.name === AGENT.proxyServiceAccount);
    const rules = (role?.rules ?? []).map((r) => ({ ...r, scope: '*' }));
    // THEN the child saw every proxied request impersonating that account, and the role allows each
    const proxied = recording.calls.filter((c) => c.url.startsWith('/api/') || c.url.startsWith('/apis/'));
    expect(proxied.length).toBeGreaterThanOrEqual(15);
    expect(new Set(recording.calls.map((c) => c.impersonate))).toEqual(new Set([IMPERSONATED]));
    expect(deniedCalls(rules, resourceCalls(recording.calls).calls)).toEqual([]);
  });

  it('never logs a token', () => {
    const secrets = [cell.proxyTokens.token('dev'), cell.proxyTokens.token('other'), CHILD_TOKEN];
    for (const line of [...cellLog.lines, ...agentLog.lines]) for (const s of secrets) expect(line).not.toContain(s);
    expect(cellLog.lines.some((l) => l.includes('proxy request unauthenticated'))).toBe(true);
  });
});
