import { describe, expect, it } from 'vitest';
import { allowedHeaders, checkApiPath, isWatch, PROXY_LIMITS, requestHeaders, requestTimeoutMs, responseHeaders } from './proxy-rules.js';
import { proxyTokens } from './proxy-token.js';

describe('proxy paths', () => {
  it.each([
    '/api', '/api/v1/namespaces/default/configmaps', '/apis/apps/v1/deployments', '/apis', '/version', '/openapi/v3', '/openapi/v2',
    '/apis/cilium.io/v2/ciliumnetworkpolicies', '/api/v1/namespaces/x/pods/y/status',
  ])('proxies %s', (path) => expect(checkApiPath(path)).toEqual({ ok: true }));

  it.each([
    ['/logs/', 'only'], ['/metrics', 'only'], ['/debug/pprof', 'only'], ['/openapi', 'only'], ['/', 'only'],
    ['/api/v1/../../logs', 'dot segment'], ['/api/v1/./x', 'dot segment'], ['/api//v1', 'empty'],
    ['/api/v1/namespaces%2fkube-system', 'encoded'], ['/api/v1/%2e%2e/x', 'encoded'],
    ['/api/v1/namespaces/default/services/web/proxy/admin', 'proxy subresources'], ['/api/v1/nodes/n1/proxy', 'proxy subresources'],
    ['/api/v1 /x', 'characters'], ['/api/v1/\r\nx', 'characters'], ['api/v1', 'characters'],
  ])('refuses %s', (path, why) => {
    const r = checkApiPath(path);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(why);
  });
});

describe('proxy headers', () => {
  it('keeps only what the API server needs, never credentials or impersonation', () => {
    const headers = requestHeaders({
      Accept: 'application/json', 'content-type': 'application/apply-patch+yaml', authorization: 'Bearer caller', 'impersonate-user': 'admin',
      'impersonate-group': 'system:masters', connection: 'keep-alive', 'user-agent': 'argocd', 'x-remote-user': 'root', cookie: 'a=b',
    });
    expect(headers).toEqual([{ name: 'accept', value: 'application/json' }, { name: 'content-type', value: 'application/apply-patch+yaml' }, { name: 'user-agent', value: 'argocd' }]);
    expect(allowedHeaders([{ name: 'Impersonate-User', value: 'admin' }, { name: 'Accept', value: 'a' }, { name: 'content-type', value: 'x\r\ninjected: 1' }], 'request')).toEqual([{ name: 'accept', value: 'a' }]);
    expect(responseHeaders({ 'content-type': 'application/json', 'set-cookie': ['a'], 'audit-id': 'x', 'transfer-encoding': 'chunked' })).toEqual([{ name: 'audit-id', value: 'x' }, { name: 'content-type', value: 'application/json' }]);
  });
});

describe('proxy watches and timeouts', () => {
  it('knows a watch by its query or its legacy path, and gives it its own time', () => {
    expect(isWatch('/api/v1/configmaps', 'watch=true&resourceVersion=5')).toBe(true);
    expect(isWatch('/api/v1/configmaps', 'watch=1')).toBe(true);
    expect(isWatch('/api/v1/watch/namespaces/x/configmaps', '')).toBe(true);
    expect(isWatch('/apis/apps/v1/watch/deployments', '')).toBe(true);
    expect(isWatch('/api/v1/configmaps', 'watch=false')).toBe(false);
    expect(isWatch('/api/v1/namespaces/watch/configmaps', '')).toBe(false);
    expect(requestTimeoutMs('/api/v1/configmaps', '')).toBe(PROXY_LIMITS.requestTimeoutMs);
    expect(requestTimeoutMs('/api/v1/configmaps', 'watch=1&timeoutSeconds=300')).toBe(305_000);
    expect(requestTimeoutMs('/api/v1/configmaps', 'watch=1&timeoutSeconds=999999')).toBe(PROXY_LIMITS.maxWatchMs);
    expect(requestTimeoutMs('/api/v1/configmaps', 'watch=1')).toBe(PROXY_LIMITS.maxWatchMs);
  });
});

describe('proxy tokens', () => {
  it('are per cluster, stable under one key, and change with the key', () => {
    const a = proxyTokens(Buffer.alloc(32, 1));
    const b = proxyTokens(Buffer.alloc(32, 2));
    expect(a.token('dev')).toBe(a.token('dev'));
    expect(a.token('dev')).toMatch(/^lpx1\.[A-Za-z0-9_-]{43}$/);
    expect(a.verify('dev', a.token('dev'))).toBe(true);
    expect(a.verify('prod', a.token('dev'))).toBe(false);
    expect(a.verify('dev', b.token('dev'))).toBe(false);
    expect(a.verify('dev', '')).toBe(false);
    expect(a.verify('dev', `${a.token('dev')}x`)).toBe(false);
  });
});
