/**
 * The cell's proxy handler with a hand-driven agent side, for what a well-behaved agent never does: answers
 * out of order, errors after the headers, disconnects midway, silence. Served over real HTTP on loopback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { transient } from '../../core/errors.js';
import { eventually } from '../../sim/apiserver/testing.js';
import type { ProxyRequest, ProxyResponse } from './protocol.js';
import { createApiProxy, PROXY_CAPABILITY } from './proxy.js';
import { proxyTokens } from './proxy-token.js';
import type { AgentInfo, ProxySink } from './server.js';
import type { ProxyLimits } from './proxy-rules.js';

const tokens = proxyTokens(Buffer.alloc(32, 7));
const TOKEN = tokens.token('dev');

interface Open {
  readonly request: ProxyRequest;
  readonly sink: ProxySink;
  cancelled: boolean;
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

async function start(options: { connected?: boolean; capabilities?: string[]; limits?: Partial<ProxyLimits> } = {}) {
  const opened: Open[] = [];
  /** Responses whose status line reached the caller. */
  const responded: string[] = [];
  const agent = { cluster: 'dev', agentVersion: '1.0.0', capabilities: options.capabilities ?? [PROXY_CAPABILITY] } as unknown as AgentInfo;
  const handler = createApiProxy({
    tokens,
    agents: {
      get: (c) => (options.connected === false || c !== 'dev' ? undefined : agent),
      openProxy: (_c, req, sink) => {
        const o: Open = { request: req, sink, cancelled: false };
        opened.push(o);
        return { id: String(opened.length), cancel: () => { o.cancelled = true; } };
      },
    },
    ...(options.limits ? { limits: options.limits } : {}),
  });
  server = createServer(handler);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  /** A request; resolves with what arrived, and whether the connection broke before a complete response. */
  const call = (path: string, init: { method?: string; body?: string; abortAfterMs?: number } = {}) => new Promise<{ status: number; body: string; broken: boolean; headers: Record<string, unknown> }>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      responded.push(path);
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString('utf8'); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, broken: !res.complete, headers: res.headers }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, broken: true, headers: res.headers }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body, broken: true, headers: res.headers }));
    });
    req.on('error', () => resolve({ status: 0, body: '', broken: true, headers: {} }));
    if (init.abortAfterMs !== undefined) setTimeout(() => req.destroy(), init.abortAfterMs);
    req.end(init.body);
  });
  return { opened, responded, call };
}

const chunk = (over: Partial<ProxyResponse>): ProxyResponse => ({ requestId: '1', statusCode: 0, headers: [], body: Buffer.alloc(0), sequence: 0, end: false, error: '', ...over });

describe('the cell\'s proxy handler', () => {
  it('streams the agent\'s chunks to the caller with the allowed headers only', async () => {
    const { opened, call } = await start();
    const answer = call('/clusters/dev/api/v1/namespaces?limit=5');
    await eventually(() => expect(opened).toHaveLength(1));
    expect(opened[0]?.request).toMatchObject({ verb: 'GET', path: '/api/v1/namespaces', query: 'limit=5' });
    const sink = opened[0]?.sink;
    sink?.onResponse(chunk({ statusCode: 200, headers: [{ name: 'content-type', value: 'application/json' }, { name: 'set-cookie', value: 'x' }], body: Buffer.from('{"items":'), sequence: 0 }));
    sink?.onResponse(chunk({ body: Buffer.from('[]}'), sequence: 1, end: true }));
    sink?.onClose();
    const r = await answer;
    expect(r).toMatchObject({ status: 200, body: '{"items":[]}', broken: false });
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['set-cookie']).toBeUndefined();
  });

  it('breaks the connection, never completing the body, when the agent fails or leaves midway or answers out of order', async () => {
    const { opened, responded, call } = await start();
    const failing = call('/clusters/dev/api/v1/a');
    const leaving = call('/clusters/dev/api/v1/b');
    const disorderly = call('/clusters/dev/api/v1/c');
    await eventually(() => expect(opened).toHaveLength(3));
    // GIVEN each caller has the status line and part of the body
    for (const o of opened) o.sink.onResponse(chunk({ statusCode: 200, body: Buffer.from('{"partial":'), sequence: 0 }));
    await eventually(() => expect(responded).toHaveLength(3));
    // WHEN the agent reports a failure, disconnects, or skips a chunk
    opened[0]?.sink.onResponse(chunk({ sequence: 1, end: true, error: 'ResponseTooLarge' }));
    opened[1]?.sink.onClose(transient('AgentDisconnected', 'gone'));
    opened[2]?.sink.onResponse(chunk({ body: Buffer.from('x'), sequence: 5 }));
    // THEN each caller sees a broken response, never a complete one
    for (const r of await Promise.all([failing, leaving, disorderly])) expect(r).toMatchObject({ status: 200, body: '{"partial":', broken: true });
    expect(opened[2]?.cancelled).toBe(true);
  });

  it('answers 502 when the agent cannot run the request, 503 when it leaves before answering, 504 when it is silent', async () => {
    const { opened, call } = await start({ limits: { requestTimeoutMs: 100 } });
    const failed = call('/clusters/dev/api/v1/a');
    const left = call('/clusters/dev/api/v1/b');
    const silent = call('/clusters/dev/api/v1/c');
    await eventually(() => expect(opened).toHaveLength(3));
    opened[0]?.sink.onResponse(chunk({ statusCode: 502, error: 'ECONNREFUSED', end: true }));
    opened[1]?.sink.onClose(transient('AgentDisconnected', 'gone'));
    const [a, b, c] = await Promise.all([failed, left, silent]);
    expect([a?.status, b?.status, c?.status]).toEqual([502, 503, 504]);
    expect(JSON.parse(a?.body ?? '')).toMatchObject({ kind: 'Status', reason: 'BadGateway', message: expect.stringContaining('ECONNREFUSED') });
    expect(opened[2]?.cancelled).toBe(true);
  });

  it('cancels at the agent when the caller goes away', async () => {
    const { opened, call } = await start();
    const watch = call('/clusters/dev/api/v1/pods?watch=true', { abortAfterMs: 100 });
    await eventually(() => expect(opened).toHaveLength(1));
    opened[0]?.sink.onResponse(chunk({ statusCode: 200, sequence: 0 }));
    await watch;
    await eventually(() => expect(opened[0]?.cancelled).toBe(true));
  });

  it('answers 429 past the in-flight limit per cluster, and 502 for an agent without the proxy', async () => {
    const { opened, call } = await start({ limits: { maxInFlight: 2 } });
    const first = [call('/clusters/dev/api/v1/a'), call('/clusters/dev/api/v1/b')];
    await eventually(() => expect(opened).toHaveLength(2));
    const over = await call('/clusters/dev/api/v1/c');
    expect(over.status).toBe(429);
    expect(over.headers['retry-after']).toBe('1');
    for (const [i, o] of opened.entries()) o.sink.onResponse(chunk({ statusCode: 200, sequence: 0, end: true, requestId: String(i + 1) }));
    await Promise.all(first);
    // the slots are free again
    const again = call('/clusters/dev/api/v1/d');
    await eventually(() => expect(opened).toHaveLength(3));
    opened[2]?.sink.onResponse(chunk({ statusCode: 200, sequence: 0, end: true }));
    expect((await again).status).toBe(200);
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    const old = await start({ capabilities: ['specSync'] });
    const refused = await old.call('/clusters/dev/api/v1/a');
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body).message).toContain('does not serve the API proxy');
  });
});
