import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { LatticeError, stalling, transient, waiting } from '../core/errors.js';
import { createSidecarApp, createSidecarHandler, httpError, tokenMatches } from './app.js';
import { packArtifact } from './archive.js';
import { createSidecarMetrics } from './metrics.js';
import { ArtifactStore, type StoredArtifact } from './store.js';
import { silentLogger, tempDir } from './testing.js';

const tmp = tempDir('lattice-app-');
const log = silentLogger();
const store = new ArtifactStore({ dir: tmp.dir, graceMs: 60_000, now: () => 0, log });
const metrics = createSidecarMetrics();
const token = 'a-long-enough-hook-token';
let ready = false;
let hooks = 0;
let misses = 0;
let artifact: StoredArtifact;
let bytes: Buffer;
const app = createSidecarApp({ store, metrics, log, isReady: () => ready, hookToken: token, onHook: () => hooks++, onMiss: async () => void misses++ });
const url = () => `/artifacts/${artifact.name}/${artifact.hex}.tar.gz`;

beforeAll(async () => {
  await store.init();
  bytes = packArtifact([{ path: 'infrastructure/manifests.yaml', content: 'kind: Namespace\n' }]);
  artifact = await store.put('lattice-cluster-dev', bytes);
  store.setCurrent([artifact]);
});
afterAll(() => tmp.remove());

describe('GET /artifacts/<name>/<digest>.tar.gz', () => {
  it('serves the exact bytes, immutable and cacheable, with a strong ETag and the length', async () => {
    // WHEN the artifact is fetched
    const res = await request(app).get(url()).buffer(true).parse((r, cb) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => cb(null, Buffer.concat(chunks)));
    });
    // THEN the body hashes to the digest in the URL, and the headers say it never changes
    expect(res.status).toBe(200);
    expect(createHash('sha256').update(res.body as Buffer).digest('hex')).toBe(artifact.hex);
    expect(res.headers).toMatchObject({
      etag: `"sha256:${artifact.hex}"`, 'cache-control': 'public, max-age=31536000, immutable',
      'content-length': String(bytes.length), 'content-type': 'application/gzip',
    });
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('answers HEAD with the same headers and no body', async () => {
    const res = await request(app).head(url());
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(bytes.length));
    expect(res.headers.etag).toBe(`"sha256:${artifact.hex}"`);
    expect(res.text ?? '').toBe('');
  });

  it('answers 304 to a matching If-None-Match (strong, weak, in a list, or *), 200 otherwise', async () => {
    for (const h of [`"sha256:${artifact.hex}"`, `W/"sha256:${artifact.hex}"`, `"x", "sha256:${artifact.hex}"`, '*']) {
      const res = await request(app).get(url()).set('If-None-Match', h);
      expect(res.status, h).toBe(304);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    }
    expect((await request(app).get(url()).set('If-None-Match', '"sha256:other"')).status).toBe(200);
  });

  it('answers 404 (JSON, after giving the source a chance to catch up) for a well-formed unknown artifact', async () => {
    const before = misses;
    const res = await request(app).get(`/artifacts/lattice-cluster-dev/${'0'.repeat(64)}.tar.gz`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'ArtifactNotFound', message: `no artifact lattice-cluster-dev with digest sha256:${'0'.repeat(64)}` } });
    expect(misses).toBe(before + 1);
    expect((await request(app).get(`/artifacts/lattice-cluster-prod/${artifact.hex}.tar.gz`)).status).toBe(404);
  });

  for (const [what, path] of [
    ['a parent-directory segment', '/artifacts/../../etc/passwd'],
    ['an encoded parent-directory segment', '/artifacts/%2e%2e/%2e%2e/etc/passwd'],
    ['an encoded slash', `/artifacts/lattice-cluster-dev%2F..%2Fx/${'a'.repeat(64)}.tar.gz`],
    ['a digest that is too short', '/artifacts/lattice-cluster-dev/abc.tar.gz'],
    ['an uppercase digest', `/artifacts/lattice-cluster-dev/${'A'.repeat(64)}.tar.gz`],
    ['a digest with its algorithm', `/artifacts/lattice-cluster-dev/sha256:${'a'.repeat(64)}.tar.gz`],
    ['another extension', `/artifacts/lattice-cluster-dev/${'a'.repeat(64)}.zip`],
    ['an extra segment', `/artifacts/lattice-cluster-dev/x/${'a'.repeat(64)}.tar.gz`],
    ['an uppercase name', `/artifacts/Lattice/${'a'.repeat(64)}.tar.gz`],
    ['a malformed percent-encoding', '/artifacts/%E0%A4%A/x.tar.gz'],
  ] as const) {
    it(`rejects ${what} with 400 and a JSON body, never touching the disk`, async () => {
      const before = misses;
      const res = await request(app).get(path);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: { code: 'InvalidPath', message: 'expected /artifacts/<name>/<sha256 hex>.tar.gz' } });
      expect(misses).toBe(before);
    });
  }

  it('rejects a raw, unnormalised traversal sent on the wire', async () => {
    // supertest's client may normalise paths; a raw request does not
    const server: Server = createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: `/artifacts/lattice-cluster-dev/../../../../etc/${artifact.hex}.tar.gz` }, (r) => {
          let body = '';
          r.on('data', (c: Buffer) => (body += c.toString()));
          r.on('end', () => resolve({ status: r.statusCode, body }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'InvalidPath' } });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('allows only GET and HEAD on artifacts', async () => {
    const res = await request(app).delete(url());
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
    expect(res.body.error.code).toBe('MethodNotAllowed');
  });

  it('rejects over-long URLs with 414', async () => {
    const res = await request(app).get(`/artifacts/${'a'.repeat(2000)}`);
    expect(res.status).toBe(414);
    expect(res.body.error.code).toBe('UriTooLong');
  });
});

describe('probes and metrics', () => {
  it('is live always, ready only after the first good render', async () => {
    expect((await request(app).get('/healthz')).body).toEqual({ status: 'ok' });
    ready = false;
    const notReady = await request(app).get('/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.body).toEqual({ error: { code: 'NotReady', message: 'no commit has been rendered successfully yet' } });
    ready = true;
    expect((await request(app).get('/readyz')).status).toBe(200);
  });

  it('exposes its own metrics in Prometheus text format', async () => {
    metrics.renderDuration.observe({ result: 'success' }, 0.2);
    metrics.artifacts.set(8);
    metrics.errors.inc({ code: 'InvalidSpec' });
    const res = await request(app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    for (const name of ['lattice_sidecar_render_duration_seconds_bucket', 'lattice_sidecar_artifacts 8', 'lattice_sidecar_last_success_timestamp_seconds', 'lattice_sidecar_errors_total{code="InvalidSpec"} 1']) expect(res.text).toContain(name);
  });

  it('answers unknown paths with a JSON 404 and never a stack trace', async () => {
    const res = await request(app).get('/nope');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'NotFound', message: 'no such endpoint' } });
  });
});

describe('POST /hooks/git', () => {
  it('triggers a fetch with the right token (Bearer or X-Gitlab-Token)', async () => {
    const before = hooks;
    expect((await request(app).post('/hooks/git').set('Authorization', `Bearer ${token}`).send({ ref: 'refs/heads/main' })).status).toBe(202);
    expect((await request(app).post('/hooks/git').set('X-Gitlab-Token', token)).status).toBe(202);
    expect(hooks).toBe(before + 2);
  });

  it('refuses a missing or wrong token with a generic 401, triggering nothing', async () => {
    const before = hooks;
    for (const t of [undefined, 'wrong', `${token}x`, token.slice(0, -1)]) {
      const req = request(app).post('/hooks/git');
      const res = await (t === undefined ? req : req.set('Authorization', `Bearer ${t}`));
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: { code: 'Unauthorized', message: 'missing or wrong token' } });
    }
    expect(hooks).toBe(before);
  });

  it('refuses oversized bodies without reading them', async () => {
    const res = await request(app).post('/hooks/git').set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/json').send(JSON.stringify({ pad: 'x'.repeat(1024 * 1024 + 10) }));
    expect(res.status).toBe(413);
  });

  it('does not exist when no token is configured', async () => {
    const noHooks = createSidecarApp({ store, metrics, log, isReady: () => true });
    expect((await request(noHooks).post('/hooks/git').set('Authorization', `Bearer ${token}`)).status).toBe(404);
  });
});

describe('error translation', () => {
  it('maps the error taxonomy to HTTP and hides unexpected errors', () => {
    expect(httpError(stalling('InvalidPath', 'bad')).status).toBe(400);
    expect(httpError(waiting('NotReady', 'later')).status).toBe(503);
    expect(httpError(transient('Whatever', 'again')).status).toBe(500);
    const hidden = httpError(new Error('secret at /var/run/token'));
    expect(hidden).toEqual({ status: 500, body: { error: { code: 'InternalError', message: 'an unexpected error occurred; see the logs' } } });
    expect(new LatticeError('stalling', 'X', 'y')).toBeInstanceOf(Error);
  });

  it('compares tokens in constant time, whatever their lengths', () => {
    expect(tokenMatches('abc', 'abc')).toBe(true);
    expect(tokenMatches('abcd', 'abc')).toBe(false);
    expect(tokenMatches(undefined, 'abc')).toBe(false);
  });
});

describe('the server\'s handler (the app behind a shortcut for plain artifact reads)', () => {
  const handler = createSidecarHandler({ store, metrics, log, isReady: () => ready, hookToken: token, onHook: () => hooks++, onMiss: async () => void misses++ });
  const binary: Extract<Parameters<request.Test['parse']>[0], (res: never, cb: never) => void> = (r, cb) => {
    const chunks: Buffer[] = [];
    r.on('data', (c: Buffer) => chunks.push(c));
    r.on('end', () => cb(null, Buffer.concat(chunks)));
  };

  it('answers a GET and a HEAD of an artifact exactly as the app does', async () => {
    // WHEN the same artifact is read through the handler and through the app
    const [fast, slow] = await Promise.all([request(handler).get(url()).buffer(true).parse(binary), request(app).get(url()).buffer(true).parse(binary)]);
    // THEN status, body and the headers that matter are the same
    expect(fast.status).toBe(200);
    expect((fast.body as Buffer).equals(bytes)).toBe(true);
    for (const h of ['etag', 'cache-control', 'content-type', 'content-length']) expect(fast.headers[h], h).toBe(slow.headers[h]);
    const head = await request(handler).head(url());
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(bytes.length));
    expect(head.text ?? '').toBe('');
  });

  it('leaves conditional requests, queries, misses, bad paths, other methods and other endpoints to the app', async () => {
    expect((await request(handler).get(url()).set('If-None-Match', `"sha256:${artifact.hex}"`)).status).toBe(304);
    expect((await request(handler).get(`${url()}?x=1`).buffer(true).parse(binary)).status).toBe(200);
    const before = misses;
    expect((await request(handler).get(`/artifacts/lattice-cluster-dev/${'0'.repeat(64)}.tar.gz`)).body.error.code).toBe('ArtifactNotFound');
    expect(misses).toBe(before + 1);
    expect((await request(handler).get('/artifacts/../../etc/passwd')).status).toBe(400);
    expect((await request(handler).delete(url())).status).toBe(405);
    expect((await request(handler).get('/healthz')).body).toEqual({ status: 'ok' });
    expect((await request(handler).get(`/artifacts/lattice-cluster-dev/${artifact.hex}.tar.gz${'x'.repeat(1100)}`)).status).toBe(414);
  });

  it('serves from the file when the store has no bytes in memory', async () => {
    // GIVEN a lookup that only knows files (what ArtifactLookup requires)
    const filesOnly = createSidecarHandler({ store: { get: (n, h) => store.get(n, h), file: (a) => store.file(a) }, metrics, log, isReady: () => true });
    // THEN the app streams the file
    const res = await request(filesOnly).get(url()).buffer(true).parse(binary);
    expect(res.status).toBe(200);
    expect((res.body as Buffer).equals(bytes)).toBe(true);
  });
});
