/**
 * The sidecar's HTTP surface, built by a factory that does not listen (supertest drives it in-process;
 * `runtime.ts` listens). What Flux needs from it is one GET per artifact (research/flux.md §2.1): plain
 * HTTP, 200 with the exact bytes whose sha256 the ExternalArtifact names.
 *
 *   GET|HEAD /artifacts/<name>/<sha256 hex>.tar.gz   the artifact; immutable: a URL never changes content
 *   POST     /hooks/git                               fetch now (token in `Authorization: Bearer` or
 *                                                     `X-Gitlab-Token`); 404 when no token is configured
 *   GET      /healthz  /readyz  /metrics
 *
 * Request paths are matched against strict patterns on the raw (undecoded) path; a file path is only
 * ever taken from the store's own entry, never built from the request. Errors are JSON, without stack traces.
 *
 * `createSidecarHandler` puts one shortcut in front of the express app: a plain GET or HEAD of an artifact
 * this replica holds is answered straight from memory with headers prepared once per artifact. That is
 * every request Flux makes, and express's per-request routing and header handling cost more than the
 * response itself (bench/sidecar.ts). Anything else (conditional requests, queries, misses, errors, every
 * other path) goes to the app, which stays the one definition of the behaviour.
 */
import { createReadStream } from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { LatticeError, asLatticeError, stalling, waiting } from '../core/errors.js';
import type { SidecarMetrics } from './metrics.js';
import type { StoredArtifact } from './store.js';

/** What the app reads from the store. */
export interface ArtifactLookup {
  get(name: string, hex: string): StoredArtifact | undefined;
  file(artifact: StoredArtifact): string;
  /** The bytes, when held in memory (then served without reading the file). */
  body?(artifact: StoredArtifact): Buffer | undefined;
}

export interface SidecarAppDeps {
  readonly store: ArtifactLookup;
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
  /** True after the first good render. */
  readonly isReady: () => boolean;
  /** The hook token; hooks are off without one. */
  readonly hookToken?: string;
  /** Called by an authenticated hook: fetch now. */
  readonly onHook?: () => void;
  /**
   * Called when a well-formed artifact URL is unknown here, before answering 404: another replica may
   * have published a commit this one has not fetched yet. Resolves when this replica is up to date.
   */
  readonly onMiss?: () => Promise<void>;
}

/** `/artifacts/<name>/<64 hex>.tar.gz`, nothing else: no dots in names, no encoded characters. */
const ARTIFACT_PATH = /^\/artifacts\/([a-z0-9](?:[a-z0-9-]{0,251}[a-z0-9])?)\/([0-9a-f]{64})\.tar\.gz$/;
const MAX_URL = 1024;
const MAX_HOOK_BODY = 1024 * 1024;
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** The one translator from errors to HTTP (CONVENTIONS "one translator per surface"). */
const HTTP_STATUS: Record<string, number> = {
  InvalidPath: 400, Unauthorized: 401, NotFound: 404, ArtifactNotFound: 404, MethodNotAllowed: 405,
  PayloadTooLarge: 413, UriTooLong: 414, NotReady: 503,
};

export function httpError(e: unknown): { status: number; body: { error: { code: string; message: string } } } {
  const err = asLatticeError(e);
  const status = HTTP_STATUS[err.code] ?? (err.kind === 'stalling' ? 400 : err.kind === 'waiting' ? 503 : 500);
  return { status, body: { error: { code: err.code, message: err.message } } };
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time comparison (hashing first makes the lengths equal). */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  return given !== undefined && timingSafeEqual(sha256(given), sha256(expected));
}

/** `If-None-Match` holds our ETag (or `*`), weak or strong. */
function notModified(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').map((t) => t.trim().replace(/^W\//, '')).some((t) => t === '*' || t === etag);
}

export function createSidecarApp(deps: SidecarAppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(req.originalUrl.length > MAX_URL ? stalling('UriTooLong', `request URL longer than ${MAX_URL} characters`) : undefined);
  });

  app.use('/artifacts', (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.set('Allow', 'GET, HEAD');
      return next(stalling('MethodNotAllowed', 'artifacts are read with GET or HEAD'));
    }
    const raw = req.originalUrl.split('?', 1)[0] ?? '';
    const m = ARTIFACT_PATH.exec(raw);
    if (!m?.[1] || !m[2]) return next(stalling('InvalidPath', 'expected /artifacts/<name>/<sha256 hex>.tar.gz'));
    const [name, hex] = [m[1], m[2]];
    void (async () => {
      let artifact = deps.store.get(name, hex);
      if (!artifact && deps.onMiss) {
        await deps.onMiss();
        artifact = deps.store.get(name, hex);
      }
      if (!artifact) throw stalling('ArtifactNotFound', `no artifact ${name} with digest sha256:${hex}`);
      const etag = `"sha256:${artifact.hex}"`;
      res.set({ ETag: etag, 'Cache-Control': IMMUTABLE });
      if (notModified(req.get('If-None-Match'), etag)) {
        res.status(304).end();
        return;
      }
      res.set({ 'Content-Type': 'application/gzip', 'Content-Length': String(artifact.size) });
      if (req.method === 'HEAD') {
        res.status(200).end();
        return;
      }
      res.status(200);
      const body = deps.store.body?.(artifact);
      if (body) res.end(body);
      else await pipeline(createReadStream(deps.store.file(artifact)), res);
    })().catch((e: unknown) => {
      if (res.headersSent) {
        deps.log.warn({ artifact: name, err: (e as Error).message }, 'artifact response failed');
        res.destroy();
        return;
      }
      next(e);
    });
  });

  app.get('/healthz', (_req: Request, res: Response) => void res.json({ status: 'ok' }));
  app.get('/readyz', (_req: Request, res: Response, next: NextFunction) => {
    if (deps.isReady()) res.json({ status: 'ready' });
    else next(waiting('NotReady', 'no commit has been rendered successfully yet'));
  });
  app.get('/metrics', (_req: Request, res: Response, next: NextFunction) => {
    deps.metrics.registry.metrics().then((text) => {
      res.set('Content-Type', deps.metrics.registry.contentType).send(text);
    }, next);
  });

  app.post('/hooks/git', (req: Request, res: Response, next: NextFunction) => {
    if (deps.hookToken === undefined) return next(stalling('NotFound', 'no such endpoint'));
    const length = Number(req.get('Content-Length') ?? 0);
    if (!Number.isFinite(length) || length > MAX_HOOK_BODY) return next(stalling('PayloadTooLarge', `hook bodies are limited to ${MAX_HOOK_BODY} bytes`));
    const auth = req.get('Authorization');
    const given = auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length).trim() : req.get('X-Gitlab-Token');
    // The body is never read: the token alone authenticates; the payload says nothing we need.
    if (!tokenMatches(given, deps.hookToken)) return next(stalling('Unauthorized', 'missing or wrong token'));
    deps.onHook?.();
    res.status(202).json({ status: 'accepted' });
  });

  app.use((_req: Request, _res: Response, next: NextFunction) => next(stalling('NotFound', 'no such endpoint')));

  // Express recognises error middleware by its four parameters.
  app.use((e: unknown, req: Request, res: Response, _next: NextFunction) => {
    const { status, body } = httpError(e);
    if (!(e instanceof LatticeError)) deps.log.error({ err: (e as Error).message, method: req.method }, 'request failed');
    if (status >= 500) deps.metrics.errors.inc({ code: body.error.code });
    res.status(status).json(body);
  });
  return app;
}

/**
 * The headers of a 200 for an artifact, what the app's artifact route sets, prepared once as the flat
 * name/value list `writeHead` takes as is.
 */
function artifactHeaders(artifact: StoredArtifact): string[] {
  return ['ETag', `"sha256:${artifact.hex}"`, 'Cache-Control', IMMUTABLE, 'Content-Type', 'application/gzip', 'Content-Length', String(artifact.size)];
}

/** Whether a request has an If-None-Match header, read from the raw list: `req.headers` is built on first use. */
function hasIfNoneMatch(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? '';
    if (name.length === 13 && name.toLowerCase() === 'if-none-match') return true;
  }
  return false;
}

/**
 * The request listener the server runs: the app, behind a shortcut for plain artifact reads (see the
 * module comment). The shortcut answers only what the app would answer the same way: GET or HEAD, a URL
 * that is exactly an artifact path (no query), no If-None-Match, and bytes in memory.
 */
export function createSidecarHandler(deps: SidecarAppDeps): RequestListener {
  const app = createSidecarApp(deps);
  const headers = new WeakMap<StoredArtifact, string[]>();
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    if ((req.method === 'GET' || req.method === 'HEAD') && url.length <= MAX_URL && !hasIfNoneMatch(req.rawHeaders)) {
      const m = ARTIFACT_PATH.exec(url);
      const artifact = m?.[1] && m[2] ? deps.store.get(m[1], m[2]) : undefined;
      const body = artifact ? deps.store.body?.(artifact) : undefined;
      if (artifact && body) {
        let h = headers.get(artifact);
        if (!h) headers.set(artifact, (h = artifactHeaders(artifact)));
        res.writeHead(200, h);
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
    }
    void app(req, res);
  };
}
