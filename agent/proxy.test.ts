/**
 * The agent's end of the API proxy against a plain HTTP server on loopback standing for the child's API
 * server, to see exactly what reaches it: the identity, the headers, when requests stop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { AgentMessage, ProxyRequest, ProxyResponse } from '../controller/cell/protocol.js';
import { eventually } from '../sim/apiserver/testing.js';
import { createProxyExecutor } from './proxy.js';

let server: Server;
let kubeConfig: KubeConfig;
const seen: { method: string; url: string; headers: IncomingMessage['headers'] }[] = [];
const open = new Set<ServerResponse>();
const closed: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (req.url?.startsWith('/api/v1/hang')) {
      // A watch that stays open until the client goes away.
      open.add(res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{}}\n');
      res.on('close', () => {
        open.delete(res);
        closed.push(req.url ?? '');
      });
      return;
    }
    if (req.url?.startsWith('/api/v1/big')) {
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'x=y', 'audit-id': 'a1' });
      res.end(Buffer.alloc(3 * 1024 * 1024, 'a'));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Echo', body: Buffer.concat(chunks).toString('utf8') }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    // client-node allows plain HTTP only with skipTLSVerify
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'agent', token: 'agent-sa-token' }],
    contexts: [{ name: 'c', cluster: 'c', user: 'agent' }],
    currentContext: 'c',
  });
});
afterAll(async () => {
  for (const res of open) res.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const request = (over: Partial<ProxyRequest> = {}): ProxyRequest => ({ verb: 'GET', path: '/api/v1/namespaces', query: '', headers: [], body: Buffer.alloc(0), timeoutMs: 5000, ...over });

function session(limits: Parameters<typeof createProxyExecutor>[0]['limits'] = {}) {
  const sent: ProxyResponse[] = [];
  const executor = createProxyExecutor({ kubeConfig, impersonate: 'system:serviceaccount:lattice-system:lattice-proxy', log: pino({ level: 'silent' }), limits });
  const s = executor.session({ send: (m: AgentMessage) => ('proxyResponse' in m ? sent.push(m.proxyResponse) > 0 : false) });
  const answer = (id: string) => sent.filter((r) => r.requestId === id);
  const done = (id: string) => eventually(() => expect(answer(id).at(-1)?.end).toBe(true));
  return { executor, s, sent, answer, done };
}

describe('the agent\'s proxy executor', () => {
  it('runs a request as the proxy identity with its own credentials, never the caller\'s', async () => {
    const { s, answer, done } = session();
    s.execute('r1', request({
      verb: 'POST', path: '/api/v1/namespaces/x/configmaps', query: 'fieldManager=argocd', body: Buffer.from('{"a":1}'),
      headers: [{ name: 'Content-Type', value: 'application/json' }, { name: 'Authorization', value: 'Bearer caller' }, { name: 'Impersonate-User', value: 'admin' }, { name: 'Impersonate-Group', value: 'system:masters' }],
    }));
    await done('r1');
    const hit = seen.at(-1);
    expect(hit).toMatchObject({ method: 'POST', url: '/api/v1/namespaces/x/configmaps?fieldManager=argocd' });
    expect(hit?.headers.authorization).toBe('Bearer agent-sa-token');
    expect(hit?.headers['impersonate-user']).toBe('system:serviceaccount:lattice-system:lattice-proxy');
    expect(hit?.headers['impersonate-group']).toBeUndefined();
    expect(hit?.headers['content-type']).toBe('application/json');
    // AND a small answer is one message: status, headers and body, marked end
    expect(answer('r1')).toHaveLength(1);
    expect(answer('r1')[0]).toMatchObject({ statusCode: 200, sequence: 0, end: true, error: '' });
    expect(JSON.parse(answer('r1')[0]?.body.toString('utf8') ?? '')).toEqual({ kind: 'Echo', body: '{"a":1}' });
  });

  it('sends a large answer in ordered chunks with only the allowed headers', async () => {
    const { s, answer, done } = session();
    s.execute('big', request({ path: '/api/v1/big' }));
    await done('big');
    const chunks = answer('big');
    expect(chunks.map((c) => c.sequence)).toEqual(chunks.map((_, i) => i));
    expect(chunks.length).toBeGreaterThan(3);
    expect(Buffer.concat(chunks.map((c) => c.body)).length).toBe(3 * 1024 * 1024);
    expect(chunks[0]?.headers.map((h) => h.name).sort()).toEqual(['audit-id', 'content-type']);
    for (const c of chunks.slice(1)) expect(c.headers).toEqual([]);
  });

  it('stops reading from the API server while the stream to the parent is full', async () => {
    const sent: ProxyResponse[] = [];
    let release: () => void = () => undefined;
    let full = true;
    const s = createProxyExecutor({ kubeConfig, log: pino({ level: 'silent' }) }).session({
      send: (m) => ('proxyResponse' in m ? sent.push(m.proxyResponse) > 0 : false),
      backpressure: () => (full ? new Promise<void>((resolve) => { release = resolve; }) : undefined),
    });
    s.execute('slow-parent', request({ path: '/api/v1/big' }));
    // GIVEN the first chunk went out and the stream reported itself full
    await eventually(() => expect(sent.length).toBeGreaterThan(0));
    await new Promise((r) => setTimeout(r, 200));
    // THEN nothing more is read or sent until it drains
    const whileFull = sent.length;
    expect(whileFull).toBeLessThan(4);
    expect(sent.some((r) => r.end)).toBe(false);
    // WHEN it drains
    full = false;
    release();
    // THEN the rest follows, complete
    await eventually(() => expect(sent.at(-1)?.end).toBe(true));
    expect(Buffer.concat(sent.map((r) => r.body)).length).toBe(3 * 1024 * 1024);
  });

  it('refuses again what the cell should have refused, without calling the API server', async () => {
    const { s, answer, done } = session();
    const before = seen.length;
    s.execute('p1', request({ path: '/logs/kubelet.log' }));
    s.execute('p2', request({ verb: 'CONNECT' }));
    s.execute('p3', request({ verb: 'POST', body: Buffer.alloc(4 * 1024 * 1024) }));
    await Promise.all(['p1', 'p2', 'p3'].map(done));
    expect(['p1', 'p2', 'p3'].map((id) => answer(id)[0]?.statusCode)).toEqual([403, 405, 413]);
    expect(JSON.parse(answer('p1')[0]?.body.toString('utf8') ?? '')).toMatchObject({ kind: 'Status', code: 403 });
    expect(seen.length).toBe(before);
  });

  it('stops a watch at the API server when cancelled, and every request when the session ends', async () => {
    const { executor, s, answer } = session();
    s.execute('w1', request({ path: '/api/v1/hang', query: 'watch=true' }));
    s.execute('w2', request({ path: '/api/v1/hang2', query: 'watch=true' }));
    // The watch's headers and first event go at once, before it ends
    await eventually(() => expect(answer('w1').map((r) => r.body.toString('utf8')).join('')).toContain('ADDED'));
    expect(answer('w1')[0]).toMatchObject({ statusCode: 200, end: false });
    expect(executor.inFlight()).toBe(2);
    s.cancel('w1');
    await eventually(() => expect(closed).toContain('/api/v1/hang?watch=true'));
    s.close();
    await eventually(() => expect(closed).toContain('/api/v1/hang2?watch=true'));
    expect(executor.inFlight()).toBe(0);
    // AND a cancelled request sends nothing more
    expect(answer('w1').some((r) => r.end)).toBe(false);
  });

  it('answers 429 past its in-flight limit, a timeout and an unreachable API server as errors', async () => {
    const { s, answer, done } = session({ maxInFlight: 1 });
    s.execute('h', request({ path: '/api/v1/hang3', query: 'watch=1', timeoutMs: 300 }));
    s.execute('over', request());
    await done('over');
    expect(answer('over')[0]?.statusCode).toBe(429);
    // the watch reaches its deadline and ends cleanly, as the API server ends one
    await done('h');
    expect(answer('h').at(-1)).toMatchObject({ end: true, error: '' });
    // a request that never answers times out as an error
    s.execute('slow', request({ path: '/api/v1/hang4', timeoutMs: 200 }));
    await done('slow');
    expect(answer('slow')).toEqual([expect.objectContaining({ statusCode: 502, end: true, error: 'Timeout' })]);
    const unreachable = new KubeConfig();
    unreachable.loadFromOptions({ clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }], users: [{ name: 'u' }], contexts: [{ name: 'c', cluster: 'c', user: 'u' }], currentContext: 'c' });
    const sent: ProxyResponse[] = [];
    createProxyExecutor({ kubeConfig: unreachable, log: pino({ level: 'silent' }) }).session({ send: (m) => ('proxyResponse' in m ? sent.push(m.proxyResponse) > 0 : false) }).execute('x', request());
    await eventually(() => expect(sent[0]).toMatchObject({ statusCode: 502, end: true, error: 'ECONNREFUSED' }));
  });
});
