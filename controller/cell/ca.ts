/**
 * The cell CA: generated once, kept in the parent in the Secret `lattice-system/lattice-cell-ca`, so
 * every controller replica and every restart signs with the same CA and agents keep trusting the cell.
 *
 * Secret keys (all PEM):
 * - `ca.crt`, `ca.key`: the current CA; it signs agent and serving certificates.
 * - `next.crt`, `next.key`: present during a rotation. The trust bundle given to agents is current +
 *   next, so once every agent holds a bundle with the next CA, promoting it breaks nobody.
 * - `previous.crt`: the CA promoted away from; client certificates it signed are still accepted until
 *   they expire (agent certificates live 30 days), so agents renew at their own pace.
 *
 * Rotation is two calls: `stageNextCa` (agents learn the new CA at their next bootstrap or renewal), then,
 * once every agent has it, `promoteNextCa`. Neither runs on its own: they are for the controller (or an
 * operator) to call.
 *
 * The Secret is never overwritten when it is malformed: replacing a CA would cut every agent off, so that
 * is a stalling error for a person to look at.
 */
import { ApiException, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { stalling, transient, waiting } from '../../core/errors.js';
import { createCa, issueClientCertificate, joinPemBundle, loadSigningCa, type KeyPairPem, type SigningCa } from './pki.js';
import type { CertificateSigner } from './bootstrap.js';

export const CELL_CA = {
  namespace: 'lattice-system',
  name: 'lattice-cell-ca',
  keys: { certificate: 'ca.crt', privateKey: 'ca.key', nextCertificate: 'next.crt', nextPrivateKey: 'next.key', previousCertificate: 'previous.crt' },
} as const;

/** The loaded CA: what signs, and what each side trusts. */
export interface CellCa {
  /** The current CA, able to sign. */
  readonly signer: SigningCa;
  /** What agents trust for the cell's serving certificate: current + next CA certificates (PEM). */
  readonly trustBundle: string;
  /** What the cell accepts agent certificates from: current + next + previous (PEM). */
  readonly clientCaBundle: string;
  /** Whether a next CA is staged (a rotation is under way). */
  readonly rotating: boolean;
}

export interface CellCaDeps {
  /** A client of the parent cluster. */
  readonly core: CoreV1Api;
  /** @default lattice-system */
  readonly namespace?: string;
  /** @default lattice-cell-ca */
  readonly name?: string;
  /** @default () => new Date() */
  readonly now?: () => Date;
  readonly log?: Logger;
}

const decode = (data: Record<string, string> | undefined, key: string): string | undefined => {
  const v = data?.[key];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
};
const encode = (value: string): string => Buffer.from(value, 'utf8').toString('base64');
const statusOf = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);

interface CaMaterial {
  readonly current: KeyPairPem;
  readonly next?: KeyPairPem;
  readonly previous?: string;
}

function readMaterial(secret: V1Secret): CaMaterial {
  const k = CELL_CA.keys;
  const certificate = decode(secret.data, k.certificate);
  const privateKey = decode(secret.data, k.privateKey);
  if (!certificate || !privateKey) throw stalling('CellCaInvalid', `Secret ${secret.metadata?.namespace}/${secret.metadata?.name} lacks ${k.certificate} or ${k.privateKey}; fix or delete it (deleting it makes every agent bootstrap again)`);
  const nextCertificate = decode(secret.data, k.nextCertificate);
  const nextPrivateKey = decode(secret.data, k.nextPrivateKey);
  const previous = decode(secret.data, k.previousCertificate);
  return {
    current: { certificate, privateKey },
    ...(nextCertificate && nextPrivateKey ? { next: { certificate: nextCertificate, privateKey: nextPrivateKey } } : {}),
    ...(previous ? { previous } : {}),
  };
}

function secretData(m: CaMaterial): Record<string, string> {
  const k = CELL_CA.keys;
  return {
    [k.certificate]: encode(m.current.certificate),
    [k.privateKey]: encode(m.current.privateKey),
    ...(m.next ? { [k.nextCertificate]: encode(m.next.certificate), [k.nextPrivateKey]: encode(m.next.privateKey) } : {}),
    ...(m.previous ? { [k.previousCertificate]: encode(m.previous) } : {}),
  };
}

async function toCellCa(m: CaMaterial, where: string): Promise<CellCa> {
  let signer: SigningCa;
  try {
    signer = await loadSigningCa(m.current);
  } catch (e) {
    throw stalling('CellCaInvalid', `${where} does not hold a usable CA certificate and key; fix or delete it (deleting it makes every agent bootstrap again)`, e);
  }
  const trusted = [m.current.certificate, ...(m.next ? [m.next.certificate] : [])];
  return {
    signer,
    trustBundle: joinPemBundle(trusted),
    clientCaBundle: joinPemBundle([...trusted, ...(m.previous ? [m.previous] : [])]),
    rotating: m.next !== undefined,
  };
}

function target(deps: CellCaDeps): { namespace: string; name: string; where: string } {
  const namespace = deps.namespace ?? CELL_CA.namespace;
  const name = deps.name ?? CELL_CA.name;
  return { namespace, name, where: `Secret ${namespace}/${name}` };
}

async function read(deps: CellCaDeps): Promise<V1Secret | undefined> {
  const { namespace, name, where } = target(deps);
  try {
    return await deps.core.readNamespacedSecret({ namespace, name });
  } catch (e) {
    if (statusOf(e) === 404) return undefined;
    throw transient('CellCaUnreadable', `cannot read ${where} (HTTP ${statusOf(e) ?? 'error'})`, e);
  }
}

/**
 * Loads the cell CA, creating it on first use. Two replicas starting at once both end up with the
 * same CA: the loser of the create race (409) reads the winner's.
 */
export async function ensureCellCa(deps: CellCaDeps): Promise<CellCa> {
  const { namespace, name, where } = target(deps);
  const existing = await read(deps);
  if (existing) return toCellCa(readMaterial(existing), where);
  const current = await createCa({ now: (deps.now ?? (() => new Date()))() });
  const body: V1Secret = {
    metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'lattice', 'app.kubernetes.io/component': 'cell' } },
    type: 'Opaque',
    data: secretData({ current }),
  };
  try {
    await deps.core.createNamespacedSecret({ namespace, body });
    deps.log?.info({ namespace, name }, 'cell CA created');
    return toCellCa({ current }, where);
  } catch (e) {
    const code = statusOf(e);
    if (code === 409) {
      const winner = await read(deps);
      if (winner) return toCellCa(readMaterial(winner), where);
    }
    if (code === 404) throw waiting('CellNamespaceMissing', `namespace ${namespace} does not exist yet`, e);
    throw transient('CellCaUnwritable', `cannot create ${where} (HTTP ${code ?? 'error'})`, e);
  }
}

async function update(deps: CellCaDeps, change: (m: CaMaterial) => Promise<CaMaterial | undefined>): Promise<CellCa> {
  const { namespace, name, where } = target(deps);
  const secret = await read(deps);
  if (!secret) throw waiting('CellCaMissing', `${where} does not exist yet`);
  const material = readMaterial(secret);
  const next = await change(material);
  if (!next) return toCellCa(material, where);
  try {
    // resourceVersion makes this conditional: a concurrent rotation fails with 409 instead of being lost.
    await deps.core.replaceNamespacedSecret({ namespace, name, body: { ...secret, data: secretData(next) } });
  } catch (e) {
    throw transient('CellCaUnwritable', `cannot update ${where} (HTTP ${statusOf(e) ?? 'error'})`, e);
  }
  return toCellCa(next, where);
}

/** Rotation step 1: generates the next CA (if none is staged); agents trust it from their next bundle. */
export function stageNextCa(deps: CellCaDeps): Promise<CellCa> {
  return update(deps, async (m) => (m.next ? undefined : { ...m, next: await createCa({ now: (deps.now ?? (() => new Date()))() }) }));
}

/** Rotation step 2: the next CA signs from now on; the old one stays trusted for client certificates it signed. */
export function promoteNextCa(deps: CellCaDeps): Promise<CellCa> {
  return update(deps, async (m) => (m.next ? { current: m.next, previous: m.current.certificate } : undefined));
}

/** Agent certificates: CN = cluster, clientAuth, `validityDays` (default 30), signed by the current CA. */
export function caCertificateSigner(ca: CellCa, options: { validityDays?: number } = {}): CertificateSigner {
  return {
    async sign(request) {
      const issued = await issueClientCertificate({ ca: ca.signer, publicKey: request.publicKey, cluster: request.cluster, now: request.now, validityDays: options.validityDays ?? 30 });
      return { certificate: issued.certificate, caBundle: ca.trustBundle, notAfter: issued.notAfter };
    },
  };
}
