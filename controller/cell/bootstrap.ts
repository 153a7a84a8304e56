/**
 * Bootstrap (DESIGN §6): how an agent gets its client certificate. The controller mints a one-time
 * token per cluster and stores only its SHA-256; the token reaches the child in the bootstrap Secret.
 * The agent POSTs `{cluster, token, csr}` to `https://<parent>:<bootstrapPort>/v1/bootstrap`; the cell
 * answers with a certificate for CN=<cluster>, signed by the cell CA, and the CA trust bundle. The
 * private key never leaves the child.
 *
 * Rules, each because of an attack or a failure it stops:
 * - The token is compared as SHA-256 digests with `timingSafeEqual` (no timing oracle), and an unknown
 *   cluster costs the same compare against a dummy digest (no cluster enumeration by timing).
 * - Every authentication failure (unknown cluster, wrong, expired, used or busy token) is the same 401
 *   with the same body: a caller learns nothing about which part was wrong.
 * - One-time use with a lease: the token is reserved while the answer is produced; it is consumed only
 *   once the response has been handed to the socket in full, and released if anything fails before
 *   that (signing, serializing, the client hanging up), so such a failure does not burn it and the
 *   agent simply retries. A lease left by a crashed process expires after `leaseMs`.
 * - The CSR contributes its public key only: the subject must be exactly CN=<cluster> and its
 *   self-signature must verify, but the certificate is built from scratch (clientAuth, 30 days, no SANs).
 * - 16 KiB body limit (413), JSON only (415/400), per-IP and per-cluster rate limits (429).
 * - Nothing secret is logged or returned: no token, no CSR, no parser message that could echo the body.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { pino, type Logger } from 'pino';
import type * as x509 from '@peculiar/x509';
import { listenHttps, type HttpsListener } from './https.js';
import { checkCsr } from './pki.js';
import { RateLimiter } from './ratelimit.js';

/** The path agents POST to, below the bootstrapUrl of the bootstrap Secret. */
export const BOOTSTRAP_PATH = '/v1/bootstrap';

// --- Tokens -------------------------------------------------------------------------------------

export interface MintedToken {
  /** 256 random bits, base64url: goes into the child's bootstrap Secret and nowhere else. */
  readonly token: string;
  /** SHA-256 of the token, hex: the only form ever stored in the parent. */
  readonly hash: string;
}

export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

/** A fresh one-time bootstrap token and its hash. */
export function mintToken(): MintedToken {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

/** Bootstrap tokens live one hour by default: long enough for the agent stage to roll out (image pulls). */
export const DEFAULT_TOKEN_TTL_MS = 60 * 60 * 1000;

/**
 * Mints a token for `cluster` and records its hash (replacing any earlier token). Returns the token for
 * the child's bootstrap Secret; it is not kept anywhere else. The controller calls this when the agent
 * stage arrives, and again when a token expired before the agent connected.
 */
export async function issueBootstrapToken(store: TokenStore, cluster: string, options: { readonly now: Date; readonly ttlMs?: number }): Promise<{ token: string; expiresAt: Date }> {
  const { token, hash } = mintToken();
  const expiresAt = new Date(options.now.getTime() + (options.ttlMs ?? DEFAULT_TOKEN_TTL_MS));
  await store.recordIssued(cluster, { hash, issuedAt: options.now, expiresAt });
  return { token, expiresAt };
}

/** Constant-time equality of two hex SHA-256 digests (false for anything that is not one). */
export function digestsEqual(aHex: string, bHex: string): boolean {
  const a = Buffer.from(aHex, 'hex');
  const b = Buffer.from(bHex, 'hex');
  if (a.length !== 32 || b.length !== 32) return false;
  return timingSafeEqual(a, b);
}

/** What the parent keeps about a cluster's bootstrap token: never the token itself. */
export interface StoredToken {
  /** SHA-256 of the token, hex. */
  readonly hash: string;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  /** Set once a certificate was delivered with it. */
  readonly consumedAt?: Date;
  /** Set while a request holding the token is being answered. */
  readonly lease?: { readonly id: string; readonly until: Date };
}

/**
 * Where token hashes live. The controller implements it over the per-cluster state Secret in capi-X
 * (DESIGN §5: durable markers survive a lost status), with resourceVersion-conditional writes so that
 * `acquireLease` and `consume` are atomic across replicas; `InMemoryTokenStore` is the reference
 * implementation for tests.
 */
export interface TokenStore {
  /** The cluster's current token record; undefined when none was issued. */
  lookup(cluster: string): Promise<StoredToken | undefined>;
  /** Records a newly minted token (its hash), replacing any earlier record of the cluster, consumed or not. */
  recordIssued(cluster: string, token: { readonly hash: string; readonly issuedAt: Date; readonly expiresAt: Date }): Promise<void>;
  /**
   * Atomically reserves the token for one request: succeeds only if the current record has this hash, is
   * neither consumed nor expired at `now`, and holds no lease that is still running at `now`.
   */
  acquireLease(cluster: string, request: { readonly hash: string; readonly leaseId: string; readonly until: Date; readonly now: Date }): Promise<boolean>;
  /** Drops the lease if it is still this one (the token stays usable). */
  releaseLease(cluster: string, leaseId: string): Promise<void>;
  /** Marks the token consumed if the lease is still this one; false when it is not (e.g. it expired and was taken). */
  consume(cluster: string, leaseId: string, at: Date): Promise<boolean>;
}

/** A TokenStore in memory: for tests, and the semantics every implementation must have. */
export class InMemoryTokenStore implements TokenStore {
  private readonly records = new Map<string, StoredToken>();

  async lookup(cluster: string): Promise<StoredToken | undefined> {
    return this.records.get(cluster);
  }

  async recordIssued(cluster: string, token: { hash: string; issuedAt: Date; expiresAt: Date }): Promise<void> {
    this.records.set(cluster, { hash: token.hash, issuedAt: token.issuedAt, expiresAt: token.expiresAt });
  }

  async acquireLease(cluster: string, request: { hash: string; leaseId: string; until: Date; now: Date }): Promise<boolean> {
    const r = this.records.get(cluster);
    if (!r || !digestsEqual(r.hash, request.hash) || r.consumedAt || r.expiresAt <= request.now) return false;
    if (r.lease && r.lease.until > request.now) return false;
    this.records.set(cluster, { ...r, lease: { id: request.leaseId, until: request.until } });
    return true;
  }

  async releaseLease(cluster: string, leaseId: string): Promise<void> {
    const r = this.records.get(cluster);
    if (r?.lease?.id !== leaseId) return;
    const { lease: _lease, ...rest } = r;
    this.records.set(cluster, rest);
  }

  async consume(cluster: string, leaseId: string, at: Date): Promise<boolean> {
    const r = this.records.get(cluster);
    if (r?.lease?.id !== leaseId || r.consumedAt) return false;
    const { lease: _lease, ...rest } = r;
    this.records.set(cluster, { ...rest, consumedAt: at });
    return true;
  }
}

// --- The endpoint -------------------------------------------------------------------------------

/** Signs an agent certificate for a checked CSR (`caCertificateSigner` in ./ca.ts). */
export interface CertificateSigner {
  sign(request: { readonly cluster: string; readonly publicKey: x509.PublicKey; readonly now: Date }): Promise<{ certificate: string; caBundle: string; notAfter: Date }>;
}

/** The JSON the endpoint answers with on success. */
export interface BootstrapResponse {
  /** The agent's certificate (PEM). */
  readonly certificate: string;
  /** The CA trust bundle (PEM): current and, during a rotation, next cell CA. */
  readonly caBundle: string;
  /** RFC 3339. */
  readonly expiresAt: string;
}

export interface BootstrapLimits {
  /** @default 16384 */
  readonly maxBodyBytes?: number;
  /** @default { capacity: 10, refillPerSecond: 1/6 } (10 at once, then 10 a minute) */
  readonly perIp?: { readonly capacity: number; readonly refillPerSecond: number };
  /** @default { capacity: 5, refillPerSecond: 1/12 } */
  readonly perCluster?: { readonly capacity: number; readonly refillPerSecond: number };
  /** How long a request may hold the token. @default 30000 */
  readonly leaseMs?: number;
}

export interface BootstrapDeps {
  readonly tokens: TokenStore;
  readonly signer: CertificateSigner;
  /** @default silent */
  readonly log?: Logger;
  /** @default () => new Date() */
  readonly now?: () => Date;
  readonly limits?: BootstrapLimits;
}

/** LatticeCluster names are DNS labels (capi-<name> must be a namespace). */
const CLUSTER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MAX_TOKEN_CHARS = 256;
const MAX_CSR_CHARS = 8192;
/** Compared against when the cluster has no token, so that path costs the same. */
const DUMMY_DIGEST = hashToken('lattice-no-such-token');

type Failure = { status: number; error: string; message: string; retryAfterSeconds?: number };

const UNAUTHORIZED: Failure = { status: 401, error: 'Unauthorized', message: 'bootstrap authentication failed' };

function fail(res: Response, f: Failure): void {
  if (f.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(f.retryAfterSeconds));
  res.status(f.status).json({ error: f.error, message: f.message });
}

const CSR_REASONS: Record<string, string> = {
  malformed: 'csr is not a PEM PKCS#10 certificate request',
  signature: 'csr signature does not verify',
  subject: 'csr subject must be exactly CN=<cluster>',
  key: 'csr key must be ECDSA P-256',
};

/**
 * The bootstrap endpoint as an express app (no listening: tests drive it with supertest, and
 * `startBootstrapServer` serves it over HTTPS with the cell's serving certificate).
 */
export function createBootstrapApp(deps: BootstrapDeps): express.Express {
  const log = deps.log ?? pino({ level: 'silent' });
  const now = deps.now ?? (() => new Date());
  const limits = deps.limits ?? {};
  const clock = () => now().getTime();
  const perIp = new RateLimiter({ ...(limits.perIp ?? { capacity: 10, refillPerSecond: 1 / 6 }), now: clock });
  const perCluster = new RateLimiter({ ...(limits.perCluster ?? { capacity: 5, refillPerSecond: 1 / 12 }), now: clock });
  const leaseMs = limits.leaseMs ?? 30_000;

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.post(BOOTSTRAP_PATH, (req, res, next) => {
    // Before parsing: a flood is turned away before it costs a JSON parse.
    const ip = req.socket.remoteAddress ?? 'unknown';
    const decision = perIp.take(ip);
    if (!decision.ok) {
      log.warn({ ip }, 'bootstrap rate limited');
      return fail(res, { status: 429, error: 'TooManyRequests', message: 'too many bootstrap attempts; retry later', retryAfterSeconds: decision.retryAfterSeconds });
    }
    if (!req.is('application/json')) return fail(res, { status: 415, error: 'UnsupportedMediaType', message: 'send application/json' });
    next();
  }, express.json({ limit: limits.maxBodyBytes ?? 16 * 1024, strict: true, type: 'application/json' }), (req, res, next) => {
    handle(req, res).catch(next);
  });

  async function handle(req: Request, res: Response): Promise<void> {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const body: unknown = req.body;
    const fields = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
    const { cluster, token, csr } = fields ?? {};
    if (typeof cluster !== 'string' || typeof token !== 'string' || typeof csr !== 'string') {
      return fail(res, { status: 400, error: 'BadRequest', message: 'the body must be a JSON object with string fields cluster, token and csr' });
    }
    if (!CLUSTER_NAME.test(cluster)) return fail(res, { status: 400, error: 'BadRequest', message: 'cluster must be a DNS label' });
    if (csr.length > MAX_CSR_CHARS) return fail(res, { status: 400, error: 'BadRequest', message: 'csr is too long' });

    const decision = perCluster.take(cluster);
    if (!decision.ok) {
      log.warn({ cluster, ip }, 'bootstrap rate limited');
      return fail(res, { status: 429, error: 'TooManyRequests', message: 'too many bootstrap attempts; retry later', retryAfterSeconds: decision.retryAfterSeconds });
    }

    // The CSR is checked before the token: its verdict depends on the caller's own data only, so a 400
    // here says nothing about the token, and a bad CSR never touches the token's state.
    const checked = await checkCsr(csr, cluster);
    if (!checked.ok) {
      log.info({ cluster, ip, reason: checked.reason }, 'bootstrap csr rejected');
      return fail(res, { status: 400, error: 'BadRequest', message: CSR_REASONS[checked.reason] ?? 'csr rejected' });
    }

    const at = now();
    const presented = token.length <= MAX_TOKEN_CHARS ? hashToken(token) : DUMMY_DIGEST;
    const stored = await deps.tokens.lookup(cluster);
    const matches = digestsEqual(presented, stored?.hash ?? DUMMY_DIGEST) && stored !== undefined && token.length <= MAX_TOKEN_CHARS;
    const reason = !stored ? 'unknown' : !matches ? 'mismatch' : stored.consumedAt ? 'consumed' : stored.expiresAt <= at ? 'expired' : undefined;
    if (reason || !stored) {
      log.info({ cluster, ip, reason }, 'bootstrap rejected');
      return fail(res, UNAUTHORIZED);
    }
    const leaseId = randomUUID();
    if (!(await deps.tokens.acquireLease(cluster, { hash: stored.hash, leaseId, until: new Date(at.getTime() + leaseMs), now: at }))) {
      log.info({ cluster, ip, reason: 'leased' }, 'bootstrap rejected');
      return fail(res, UNAUTHORIZED);
    }

    // From here the token is reserved: every path ends in exactly one of release or consume.
    let settled = false;
    const release = () => {
      if (settled) return;
      settled = true;
      deps.tokens.releaseLease(cluster, leaseId).catch((e: unknown) => log.error({ cluster, err: errorCode(e) }, 'bootstrap lease release failed'));
    };
    // A connection that closes before the response finished (client gone while we sign, write error)
    // releases the lease at once, so the agent's retry finds the token usable.
    res.once('close', () => {
      if (res.writableFinished || settled) return;
      log.warn({ cluster, ip }, 'bootstrap response not delivered; token kept');
      release();
    });
    try {
      const issued = await deps.signer.sign({ cluster, publicKey: checked.publicKey, now: at });
      if (settled || res.destroyed) return;
      // Consume once the whole response has been handed to the socket ('finish'). Node cannot tell
      // whether the peer read it; an agent that loses the answer after this point needs a new token.
      res.once('finish', () => {
        if (settled) return;
        settled = true;
        consumeWithRetry(cluster, leaseId).then(
          (ok) => log.info({ cluster, ip, consumed: ok }, 'bootstrap certificate issued'),
          (e: unknown) => log.error({ cluster, err: errorCode(e) }, 'bootstrap token consume failed'),
        );
      });
      const answer: BootstrapResponse = { certificate: issued.certificate, caBundle: issued.caBundle, expiresAt: issued.notAfter.toISOString() };
      res.status(200).json(answer);
    } catch (e) {
      release();
      throw e;
    }
  }

  async function consumeWithRetry(cluster: string, leaseId: string): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await deps.tokens.consume(cluster, leaseId, now());
      } catch (e) {
        if (attempt >= 2) throw e;
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      }
    }
  }

  app.use((_req: Request, res: Response) => {
    fail(res, { status: 404, error: 'NotFound', message: 'not found' });
  });

  // One translator from errors to responses. body-parser's own messages can quote the body (and so the
  // token), so only its classification is used.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const type = typeof err === 'object' && err !== null && 'type' in err ? String((err as { type: unknown }).type) : '';
    if (res.headersSent) return;
    if (type === 'entity.too.large') return fail(res, { status: 413, error: 'PayloadTooLarge', message: 'the request body is too large' });
    if (type === 'entity.parse.failed') return fail(res, { status: 400, error: 'BadRequest', message: 'the request body is not valid JSON' });
    if (type === 'encoding.unsupported' || type === 'charset.unsupported') return fail(res, { status: 415, error: 'UnsupportedMediaType', message: 'send UTF-8 application/json' });
    if (type === 'request.aborted' || type === 'request.size.invalid' || type === 'stream.encoding.set') return fail(res, { status: 400, error: 'BadRequest', message: 'the request body could not be read' });
    log.error({ err: errorCode(err) }, 'bootstrap request failed');
    fail(res, { status: 500, error: 'InternalError', message: 'an internal error occurred; retry later' });
  });
  return app;
}

/** A loggable identification of an error: its code or name, never its message (which may quote input). */
function errorCode(e: unknown): string {
  if (typeof e === 'object' && e !== null) {
    const o = e as { code?: unknown; name?: unknown };
    if (typeof o.code === 'string' || typeof o.code === 'number') return String(o.code);
    if (typeof o.name === 'string') return o.name;
  }
  return 'error';
}

export type BootstrapServer = HttpsListener;

/** Serves the bootstrap app over HTTPS with the cell's serving certificate. */
export function startBootstrapServer(options: {
  readonly app: express.Express;
  readonly tls: { readonly certificate: string; readonly privateKey: string };
  readonly port: number;
  readonly host?: string;
}): Promise<BootstrapServer> {
  // A bootstrap request is one small POST.
  return listenHttps({ handler: options.app, tls: options.tls, port: options.port, ...(options.host ? { host: options.host } : {}), headersTimeoutMs: 10_000, requestTimeoutMs: 15_000 });
}
