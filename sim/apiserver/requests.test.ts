/**
 * The request hook (`onRequest`): every request, parsed as authorization sees it, so benchmarks and tests
 * can count what a client asks for.
 */
import { describe, expect, it } from 'vitest';
import { requestInfo, type RequestInfo } from './http.js';
import { startSim } from './testing.js';

describe('requestInfo', () => {
  it.each([
    ['GET', '/api/v1/namespaces/capi-a/secrets/x', { verb: 'get', group: '', version: 'v1', resource: 'secrets', namespace: 'capi-a', name: 'x' }],
    ['GET', '/api/v1/secrets?labelSelector=a%3Db', { verb: 'list', resource: 'secrets' }],
    ['GET', '/apis/lattice.dev/v1alpha1/latticeclusters?watch=true&resourceVersion=5', { verb: 'watch', group: 'lattice.dev', resource: 'latticeclusters' }],
    ['GET', '/api/v1/watch/namespaces/default/configmaps', { verb: 'watch', resource: 'configmaps', namespace: 'default' }],
    ['PATCH', '/apis/lattice.dev/v1alpha1/latticeclusters/dev/status', { verb: 'patch', resource: 'latticeclusters', name: 'dev', subresource: 'status' }],
    ['PUT', '/api/v1/namespaces/a/secrets/s', { verb: 'update', resource: 'secrets', namespace: 'a', name: 's' }],
    ['POST', '/api/v1/namespaces/default/events', { verb: 'create', resource: 'events', namespace: 'default' }],
    ['DELETE', '/api/v1/namespaces/a/secrets', { verb: 'deletecollection', resource: 'secrets', namespace: 'a' }],
    ['GET', '/api/v1/namespaces/capi-a', { verb: 'get', resource: 'namespaces', name: 'capi-a' }],
    ['PUT', '/api/v1/namespaces/capi-a/finalize', { verb: 'update', resource: 'namespaces', name: 'capi-a', subresource: 'finalize' }],
  ])('%s %s', (method, url, expected) => {
    const info = requestInfo(method, url);
    expect(info).toMatchObject({ ...expected, resourceRequest: true, path: url.split('?')[0] });
    if (!('namespace' in expected)) expect(info.namespace).toBeUndefined();
  });

  it('marks discovery and health checks as non-resource requests', () => {
    expect(requestInfo('GET', '/apis/lattice.dev/v1alpha1')).toEqual({ verb: 'get', path: '/apis/lattice.dev/v1alpha1', resourceRequest: false });
    expect(requestInfo('GET', '/healthz').resourceRequest).toBe(false);
    expect(requestInfo('GET', '/api').resourceRequest).toBe(false);
  });
});

describe('onRequest', () => {
  it('is told of every request through client-node, failed ones included, before they are served', async () => {
    // GIVEN a server that records requests
    const seen: RequestInfo[] = [];
    const sim = await startSim({ onRequest: (info) => seen.push(info) });
    try {
      // WHEN a client creates, reads, lists and fails to read a Secret
      await sim.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 's' } } });
      await sim.core.readNamespacedSecret({ namespace: 'default', name: 's' });
      await sim.core.listNamespacedSecret({ namespace: 'default' });
      await sim.core.readNamespacedSecret({ namespace: 'default', name: 'missing' }).catch(() => undefined);
      // THEN each was counted with its verb
      expect(seen.map((i) => `${i.verb} ${i.resource ?? ''} ${i.name ?? ''}`.trim())).toEqual(['create secrets', 'get secrets s', 'list secrets', 'get secrets missing']);
    } finally {
      await sim.server.close();
    }
  });

  it('does not fail a request when the observer throws', async () => {
    const sim = await startSim({ onRequest: () => {
      throw new Error('observer bug');
    } });
    try {
      await sim.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 's' } } });
      expect((await sim.core.readNamespacedSecret({ namespace: 'default', name: 's' })).metadata?.name).toBe('s');
    } finally {
      await sim.server.close();
    }
  });
});
