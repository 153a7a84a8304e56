/**
 * The agent's identity: an ECDSA P-256 key made in the child and the certificate the cell signed for it.
 *
 * On start the agent uses the identity Secret when it holds a usable identity (a certificate for this
 * cluster, not expired, matching the key, signed by the CA bundle next to it): a restarted agent never
 * bootstraps again, which matters because the bootstrap token is single-use. Otherwise it bootstraps:
 * reads the bootstrap Secret through the API, makes a key and a CSR, POSTs them with the token to the
 * cell's bootstrap endpoint (verifying the cell's certificate against the CA bundle of the Secret, not
 * the system roots), checks the answer and stores the identity Secret.
 *
 * The token and the key are never logged and never appear in an error message.
 */
import { createPrivateKey } from 'node:crypto';
import { request } from 'node:https';
import { ApiException, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LatticeError, stalling, transient, waiting } from '../core/errors.js';
import { BOOTSTRAP_PATH, type BootstrapResponse } from '../controller/cell/bootstrap.js';
import { certificateFacts, createCsr, generateKeyPair, issuedByBundle, keyMatchesCertificate, privateKeyToPem, splitPemBundle } from '../controller/cell/pki.js';
import { BOOTSTRAP_KEYS, IDENTITY_KEYS, identitySecret, secretValue } from '../controller/cell/secrets.js';

/** Key, certificate and trust bundle: everything the mTLS connection needs. */
export interface Identity {
  readonly privateKey: string;
  readonly certificate: string;
  readonly caBundle: string;
  readonly notAfter: Date;
}

/** Where the parent is, from the bootstrap Secret (re-read on every connection attempt). */
export interface ParentInfo {
  readonly bootstrapUrl: string;
  readonly cellEndpoint: string;
  readonly caBundle: string;
}

export interface IdentityDeps {
  /** The child's API. */
  readonly core: CoreV1Api;
  readonly namespace: string;
  readonly cluster: string;
  readonly bootstrapSecret: string;
  readonly identitySecret: string;
  readonly now: () => Date;
  readonly log: Logger;
  /** The bootstrap HTTPS call. @default postBootstrap (node:https) */
  readonly post?: (url: string, body: string, caBundle: string) => Promise<HttpAnswer>;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
  readonly retryAfterSeconds?: number;
}

const statusOf = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);
/** Bootstrap answers are a few KiB; anything much larger is not ours. */
const MAX_ANSWER_BYTES = 64 * 1024;

async function readSecret(deps: IdentityDeps, name: string): Promise<V1Secret | undefined> {
  try {
    return await deps.core.readNamespacedSecret({ namespace: deps.namespace, name });
  } catch (e) {
    const code = statusOf(e);
    if (code === 404) return undefined;
    throw transient('SecretUnreadable', `cannot read Secret ${deps.namespace}/${name} (HTTP ${code ?? 'error'})`, e);
  }
}

/** Why a stored identity is not usable, or undefined when it is. */
export function identityProblem(identity: Omit<Identity, 'notAfter'>, cluster: string, now: Date): string | undefined {
  let facts;
  try {
    facts = certificateFacts(identity.certificate);
  } catch {
    return 'certificate does not parse';
  }
  if (facts.commonName !== cluster) return 'certificate names another cluster';
  if (facts.notAfter <= now) return 'certificate expired';
  if (facts.notBefore > now) return 'certificate not yet valid';
  let key;
  try {
    key = createPrivateKey(identity.privateKey);
  } catch {
    return 'private key does not parse';
  }
  if (!keyMatchesCertificate(identity.certificate, key)) return 'private key does not match the certificate';
  if (!issuedByBundle(identity.certificate, identity.caBundle)) return 'certificate not signed by the CA bundle';
  return undefined;
}

/** The identity stored in the identity Secret, if it is usable. */
export async function loadIdentity(deps: IdentityDeps): Promise<Identity | undefined> {
  const secret = await readSecret(deps, deps.identitySecret);
  if (!secret) return undefined;
  const privateKey = secretValue(secret, IDENTITY_KEYS.key);
  const certificate = secretValue(secret, IDENTITY_KEYS.certificate);
  const caBundle = secretValue(secret, IDENTITY_KEYS.ca);
  if (!privateKey || !certificate || !caBundle) {
    deps.log.warn({ secret: deps.identitySecret }, 'identity secret incomplete; bootstrapping');
    return undefined;
  }
  const problem = identityProblem({ privateKey, certificate, caBundle }, deps.cluster, deps.now());
  if (problem) {
    deps.log.warn({ secret: deps.identitySecret, problem }, 'stored identity unusable; bootstrapping');
    return undefined;
  }
  return { privateKey, certificate, caBundle, notAfter: certificateFacts(certificate).notAfter };
}

/** The parent's endpoints and CA from the bootstrap Secret; the token is read separately, only when needed. */
export async function readParentInfo(deps: IdentityDeps): Promise<ParentInfo & { token?: string }> {
  const secret = await readSecret(deps, deps.bootstrapSecret);
  if (!secret) throw waiting('BootstrapSecretMissing', `Secret ${deps.namespace}/${deps.bootstrapSecret} does not exist yet (the controller writes it)`);
  const bootstrapUrl = secretValue(secret, BOOTSTRAP_KEYS.bootstrapUrl);
  const cellEndpoint = secretValue(secret, BOOTSTRAP_KEYS.cellEndpoint);
  const caBundle = secretValue(secret, BOOTSTRAP_KEYS.ca);
  const token = secretValue(secret, BOOTSTRAP_KEYS.token);
  const missing = [
    ...(bootstrapUrl ? [] : [BOOTSTRAP_KEYS.bootstrapUrl]),
    ...(cellEndpoint ? [] : [BOOTSTRAP_KEYS.cellEndpoint]),
    ...(caBundle && splitPemBundle(caBundle).length > 0 ? [] : [BOOTSTRAP_KEYS.ca]),
  ];
  if (missing.length > 0 || !bootstrapUrl || !cellEndpoint || !caBundle) {
    throw stalling('BootstrapSecretInvalid', `Secret ${deps.namespace}/${deps.bootstrapSecret} lacks ${missing.join(', ')}`);
  }
  let url: URL;
  try {
    url = new URL(bootstrapUrl);
  } catch {
    throw stalling('BootstrapSecretInvalid', `Secret ${deps.namespace}/${deps.bootstrapSecret}: ${BOOTSTRAP_KEYS.bootstrapUrl} is not a URL`);
  }
  if (url.protocol !== 'https:' || url.username || url.password) throw stalling('BootstrapSecretInvalid', `Secret ${deps.namespace}/${deps.bootstrapSecret}: ${BOOTSTRAP_KEYS.bootstrapUrl} must be an https URL without credentials`);
  return { bootstrapUrl, cellEndpoint, caBundle, ...(token ? { token } : {}) };
}

/** POSTs JSON over HTTPS, trusting only `caBundle`. */
export function postBootstrap(url: string, body: string, caBundle: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      ca: caBundle,
      // Never fall back to the system roots: only the cell CA may vouch for the parent.
      rejectUnauthorized: true,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      timeout: 15_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          req.destroy(new Error('bootstrap answer too large'));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        const retryAfter = Number(res.headers['retry-after']);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterSeconds: retryAfter } : {}) });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('bootstrap request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** A bootstrap failure with an optional server-given delay before the next attempt. */
export class BootstrapError extends LatticeError {
  constructor(kind: LatticeError['kind'], code: string, message: string, readonly retryAfterSeconds?: number, cause?: unknown) {
    super(kind, code, message, cause === undefined ? undefined : { cause });
  }
}

function parseAnswer(text: string): BootstrapResponse | undefined {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    if (typeof o.certificate === 'string' && typeof o.caBundle === 'string' && typeof o.expiresAt === 'string') {
      return { certificate: o.certificate, caBundle: o.caBundle, expiresAt: o.expiresAt };
    }
  } catch {
    // fall through
  }
  return undefined;
}

/** Gets a certificate from the cell with the bootstrap token and stores the identity Secret. */
export async function bootstrapIdentity(deps: IdentityDeps): Promise<Identity> {
  const parent = await readParentInfo(deps);
  if (!parent.token) throw new BootstrapError('stalling', 'BootstrapTokenMissing', `Secret ${deps.namespace}/${deps.bootstrapSecret} holds no token; the controller issues a new one`);
  const keys = await generateKeyPair();
  const csr = await createCsr(keys, deps.cluster);
  const privateKey = await privateKeyToPem(keys.privateKey);
  const url = new URL(BOOTSTRAP_PATH, parent.bootstrapUrl).toString();
  let answer: HttpAnswer;
  try {
    answer = await (deps.post ?? postBootstrap)(url, JSON.stringify({ cluster: deps.cluster, token: parent.token, csr }), parent.caBundle);
  } catch (e) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : 'error';
    throw new BootstrapError('transient', 'BootstrapUnreachable', `cannot reach the bootstrap endpoint (${code})`, undefined, e);
  }
  if (answer.status === 401) {
    // Wrong, expired or used token: only a new token (the controller's job) helps; keep re-reading the Secret.
    throw new BootstrapError('stalling', 'BootstrapTokenRejected', 'the cell refused the bootstrap token (wrong, expired or already used)');
  }
  if (answer.status === 429) throw new BootstrapError('transient', 'BootstrapRateLimited', 'the cell rate-limited the bootstrap request', answer.retryAfterSeconds);
  if (answer.status >= 500 || answer.status === 0) throw new BootstrapError('transient', 'BootstrapFailed', `the bootstrap endpoint answered HTTP ${answer.status}`);
  if (answer.status !== 200) throw new BootstrapError('stalling', 'BootstrapRefused', `the bootstrap endpoint answered HTTP ${answer.status}`);
  const body = parseAnswer(answer.body);
  if (!body) throw new BootstrapError('transient', 'BootstrapAnswerInvalid', 'the bootstrap answer is not the expected JSON');
  const identity = { privateKey, certificate: body.certificate, caBundle: body.caBundle };
  // Trust, but verify: a certificate we cannot use would only fail later, at the handshake.
  const problem = identityProblem(identity, deps.cluster, deps.now());
  if (problem) throw new BootstrapError('transient', 'BootstrapAnswerInvalid', `the issued certificate is unusable: ${problem}`);
  await storeIdentity(deps, identity);
  deps.log.info({ cluster: deps.cluster, notAfter: body.expiresAt }, 'agent bootstrapped');
  return { ...identity, notAfter: certificateFacts(body.certificate).notAfter };
}

/** Writes the identity Secret: create, or replace what is there (an unusable identity from before). */
async function storeIdentity(deps: IdentityDeps, identity: Omit<Identity, 'notAfter'>): Promise<void> {
  const body = identitySecret(identity, deps.identitySecret, deps.namespace);
  // The token is spent now; losing the key would mean a new token. Retry a few times before giving up
  // (the agent still connects with the identity in memory).
  for (let attempt = 0; ; attempt++) {
    try {
      try {
        await deps.core.createNamespacedSecret({ namespace: deps.namespace, body });
      } catch (e) {
        if (statusOf(e) !== 409) throw e;
        const existing = await deps.core.readNamespacedSecret({ namespace: deps.namespace, name: deps.identitySecret });
        await deps.core.replaceNamespacedSecret({
          namespace: deps.namespace,
          name: deps.identitySecret,
          body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } },
        });
      }
      return;
    } catch (e) {
      if (attempt >= 4) {
        deps.log.error({ secret: deps.identitySecret, status: statusOf(e) ?? 'error' }, 'identity secret not stored; a restart will need a new token');
        return;
      }
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
  }
}

/** The stored identity if usable, else a fresh one from bootstrap. */
export async function ensureIdentity(deps: IdentityDeps): Promise<{ identity: Identity; bootstrapped: boolean }> {
  const stored = await loadIdentity(deps);
  if (stored) return { identity: stored, bootstrapped: false };
  return { identity: await bootstrapIdentity(deps), bootstrapped: true };
}
