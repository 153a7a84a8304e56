/**
 * Per-cluster bearer tokens of the API proxy (DESIGN §6). A cluster's token is an HMAC of its name under one
 * random key, so nothing per cluster is stored or has to be kept in step: the controller derives the token
 * it writes into the GitOps registration, the proxy derives the one it expects, and a token for cluster A
 * never opens cluster B. The key lives in the Secret `lattice-system/lattice-proxy-key`; deleting it (and
 * restarting the leader) revokes every token, and the controller rewrites each registration on its next
 * reconcile.
 */
import { createHmac, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { ApiException, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { transient, waiting } from '../../core/errors.js';

export const PROXY_KEY_SECRET = { namespace: 'lattice-system', name: 'lattice-proxy-key' } as const;
const KEY_FIELD = 'key';
const KEY_BYTES = 32;
/** A version prefix, so a future token format can be told apart (and tokens are recognisable in a leak scan). */
const PREFIX = 'lpx1.';

export interface ProxyTokens {
  /** The bearer token of a cluster's registration. */
  token(cluster: string): string;
  /** Constant-time: whether `presented` is that cluster's token. */
  verify(cluster: string, presented: string): boolean;
}

/** Tokens under a key (32 random bytes). */
export function proxyTokens(key: Buffer): ProxyTokens {
  const token = (cluster: string) => PREFIX + createHmac('sha256', key).update(`lattice-proxy-token\n${cluster}`).digest('base64url');
  // Hashing both sides gives equal lengths for timingSafeEqual, whatever was presented.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return {
    token,
    verify: (cluster, presented) => timingSafeEqual(digest(token(cluster)), digest(presented)),
  };
}

export interface ProxyKeyDeps {
  readonly core: CoreV1Api;
  readonly namespace?: string;
  readonly name?: string;
  readonly log?: Logger;
}

const statusOf = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);

/** Reads the key, or creates it; two replicas racing both end with the one that was stored. */
export async function ensureProxyKey(deps: ProxyKeyDeps): Promise<Buffer> {
  const namespace = deps.namespace ?? PROXY_KEY_SECRET.namespace;
  const name = deps.name ?? PROXY_KEY_SECRET.name;
  const where = `Secret ${namespace}/${name}`;
  const read = async (): Promise<Buffer | undefined> => {
    let secret: V1Secret;
    try {
      secret = await deps.core.readNamespacedSecret({ name, namespace });
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw transient('ProxyKeyUnreadable', `cannot read ${where} (HTTP ${statusOf(e) ?? 'error'})`, e);
    }
    const key = Buffer.from(secret.data?.[KEY_FIELD] ?? '', 'base64');
    if (key.length < KEY_BYTES) throw waiting('ProxyKeyInvalid', `${where} has no ${KEY_FIELD} of at least ${KEY_BYTES} bytes; delete it to have a new one made`);
    return key;
  };
  const existing = await read();
  if (existing) return existing;
  const key = randomBytes(KEY_BYTES);
  const body: V1Secret = {
    metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'lattice', 'app.kubernetes.io/component': 'cell' } },
    type: 'Opaque',
    data: { [KEY_FIELD]: key.toString('base64') },
  };
  try {
    await deps.core.createNamespacedSecret({ namespace, body });
    deps.log?.info({ namespace, name }, 'proxy key created');
    return key;
  } catch (e) {
    const code = statusOf(e);
    if (code === 409) {
      const winner = await read();
      if (winner) return winner;
    }
    if (code === 404) throw waiting('CellNamespaceMissing', `namespace ${namespace} does not exist yet`, e);
    throw transient('ProxyKeyUnwritable', `cannot create ${where} (HTTP ${code ?? 'error'})`, e);
  }
}
