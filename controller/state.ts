/**
 * The durable per-cluster state Secret `capi-X/lattice-state` (DESIGN §5): markers that must survive a
 * lost or rewritten status, so the controller never re-provisions or re-pivots a cluster. Status mirrors
 * them; this Secret is the truth. M8 (pivot) sets `pivotComplete` and `unpivotImportComplete`, M7 (agent
 * bootstrap) `bootstrapComplete` and the token hash; M6 uses it for the provisioning clock.
 *
 * Encoding is deliberately boring: one data key per marker, booleans as "true", absent means false, so
 * the Secret can be read and repaired with kubectl.
 */
import type { SecretObject } from './kube.js';
import { CONTROLLER_MANAGER, LABEL, NAMES } from './resources.js';

/** The markers, decoded. */
export interface ClusterState {
  /**
   * A pivot started (M8): its id, and when. Set before anything is paused, so whoever finds it knows the
   * source may be paused by us; cleared only by an abort (which unpauses) or kept for good once complete.
   */
  readonly pivot?: {
    readonly moveId: string;
    readonly startedAt: string;
    /**
     * MoveComplete may have been sent: the child may hold live objects now, so the source is never unpaused
     * unless the agent confirms its copies are gone.
     */
    readonly completing?: boolean;
  };
  /** The child acknowledged MoveComplete: it holds the live objects. Never unset while the spec exists. */
  readonly pivotComplete: boolean;
  /** After pivotComplete: the parent's non-git objects are deleted and the git-managed ones are shadows. */
  readonly pivotCleanupComplete?: boolean;
  /** During unpivot, after the import: the child deleted its (paused) copies. */
  readonly unpivotReleased?: boolean;
  /** When a pivot was last given up: the next one waits a while (pivot.ts). */
  readonly pivotAbortedAt?: string;
  readonly unpivotImportComplete: boolean;
  readonly bootstrapComplete: boolean;
  /** The one-time bootstrap token's record (M7): its sha256 only, never the token itself. */
  readonly bootstrapToken?: BootstrapTokenRecord;
  /** When the controller first saw this generation's CAPI Cluster without ready infrastructure. */
  readonly provisioning?: { readonly since: string; readonly generation: number };
}

/** The cell's TokenStore record, as the state Secret keeps it (times RFC 3339). */
export interface BootstrapTokenRecord {
  readonly sha256: string;
  readonly issuedAt: string;
  readonly expiresAt: string;
  readonly consumedAt?: string;
  /** A bootstrap request in flight holds the token (so a failed response does not burn it). */
  readonly lease?: { readonly id: string; readonly until: string };
}

/** Data keys of the state Secret. */
export const STATE_KEY = {
  pivotMoveId: 'pivot-move-id',
  pivotStartedAt: 'pivot-started-at',
  pivotCompleting: 'pivot-completing',
  pivotComplete: 'pivot-complete',
  pivotCleanupComplete: 'pivot-cleanup-complete',
  unpivotReleased: 'unpivot-released',
  pivotAbortedAt: 'pivot-aborted-at',
  unpivotImportComplete: 'unpivot-import-complete',
  bootstrapComplete: 'bootstrap-complete',
  bootstrapTokenSha256: 'bootstrap-token-sha256',
  bootstrapTokenIssuedAt: 'bootstrap-token-issued-at',
  bootstrapTokenExpiresAt: 'bootstrap-token-expires-at',
  bootstrapTokenConsumedAt: 'bootstrap-token-consumed-at',
  bootstrapTokenLease: 'bootstrap-token-lease',
  bootstrapTokenLeaseUntil: 'bootstrap-token-lease-until',
  provisioningSince: 'provisioning-since',
  provisioningGeneration: 'provisioning-generation',
} as const;

export const EMPTY_STATE: ClusterState = { pivotComplete: false, unpivotImportComplete: false, bootstrapComplete: false };

const decode = (v: string | undefined): string | undefined => (v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8'));
const encode = (v: string): string => Buffer.from(v, 'utf8').toString('base64');

/** Reads the markers from the Secret's data (unknown keys are ignored, missing ones are false). */
export function decodeState(data: Readonly<Record<string, string>> | undefined): ClusterState {
  const get = (k: string) => decode(data?.[k]);
  const since = get(STATE_KEY.provisioningSince);
  const generation = Number(get(STATE_KEY.provisioningGeneration));
  const hash = get(STATE_KEY.bootstrapTokenSha256);
  const time = (k: string) => {
    const v = get(k);
    return v !== undefined && !Number.isNaN(Date.parse(v)) ? v : undefined;
  };
  const issuedAt = time(STATE_KEY.bootstrapTokenIssuedAt);
  const expiresAt = time(STATE_KEY.bootstrapTokenExpiresAt);
  const consumedAt = time(STATE_KEY.bootstrapTokenConsumedAt);
  const leaseId = get(STATE_KEY.bootstrapTokenLease);
  const leaseUntil = time(STATE_KEY.bootstrapTokenLeaseUntil);
  const moveId = get(STATE_KEY.pivotMoveId);
  const startedAt = time(STATE_KEY.pivotStartedAt);
  return {
    ...(moveId && startedAt ? { pivot: { moveId, startedAt, ...(get(STATE_KEY.pivotCompleting) === 'true' ? { completing: true } : {}) } } : {}),
    pivotComplete: get(STATE_KEY.pivotComplete) === 'true',
    ...(get(STATE_KEY.pivotCleanupComplete) === 'true' ? { pivotCleanupComplete: true } : {}),
    ...(get(STATE_KEY.unpivotReleased) === 'true' ? { unpivotReleased: true } : {}),
    ...(time(STATE_KEY.pivotAbortedAt) ? { pivotAbortedAt: time(STATE_KEY.pivotAbortedAt) } : {}),
    unpivotImportComplete: get(STATE_KEY.unpivotImportComplete) === 'true',
    bootstrapComplete: get(STATE_KEY.bootstrapComplete) === 'true',
    ...(hash && /^[0-9a-f]{64}$/.test(hash) && issuedAt && expiresAt ? {
      bootstrapToken: {
        sha256: hash, issuedAt, expiresAt,
        ...(consumedAt ? { consumedAt } : {}),
        ...(leaseId && leaseUntil ? { lease: { id: leaseId, until: leaseUntil } } : {}),
      },
    } : {}),
    ...(since && Number.isInteger(generation) && !Number.isNaN(Date.parse(since)) ? { provisioning: { since, generation } } : {}),
  };
}

/** The Secret's data for a state: only markers that are set, so an empty state is an empty Secret. */
export function encodeState(state: ClusterState): Record<string, string> {
  const out: Record<string, string> = {};
  if (state.pivot) {
    out[STATE_KEY.pivotMoveId] = encode(state.pivot.moveId);
    out[STATE_KEY.pivotStartedAt] = encode(state.pivot.startedAt);
    if (state.pivot.completing) out[STATE_KEY.pivotCompleting] = encode('true');
  }
  if (state.pivotComplete) out[STATE_KEY.pivotComplete] = encode('true');
  if (state.pivotCleanupComplete) out[STATE_KEY.pivotCleanupComplete] = encode('true');
  if (state.unpivotReleased) out[STATE_KEY.unpivotReleased] = encode('true');
  if (state.pivotAbortedAt) out[STATE_KEY.pivotAbortedAt] = encode(state.pivotAbortedAt);
  if (state.unpivotImportComplete) out[STATE_KEY.unpivotImportComplete] = encode('true');
  if (state.bootstrapComplete) out[STATE_KEY.bootstrapComplete] = encode('true');
  const t = state.bootstrapToken;
  if (t) {
    out[STATE_KEY.bootstrapTokenSha256] = encode(t.sha256);
    out[STATE_KEY.bootstrapTokenIssuedAt] = encode(t.issuedAt);
    out[STATE_KEY.bootstrapTokenExpiresAt] = encode(t.expiresAt);
    if (t.consumedAt) out[STATE_KEY.bootstrapTokenConsumedAt] = encode(t.consumedAt);
    if (t.lease) {
      out[STATE_KEY.bootstrapTokenLease] = encode(t.lease.id);
      out[STATE_KEY.bootstrapTokenLeaseUntil] = encode(t.lease.until);
    }
  }
  if (state.provisioning) {
    out[STATE_KEY.provisioningSince] = encode(state.provisioning.since);
    out[STATE_KEY.provisioningGeneration] = encode(String(state.provisioning.generation));
  }
  return out;
}

/** The state Secret of a cluster. */
export function stateSecret(cluster: string, state: ClusterState): SecretObject {
  return {
    metadata: {
      name: NAMES.stateSecret,
      namespace: NAMES.namespace(cluster),
      labels: { [LABEL.managedBy]: CONTROLLER_MANAGER, [LABEL.cluster]: cluster },
    },
    type: 'Opaque',
    data: encodeState(state),
  };
}

/** Whether two states encode the same (then nothing is written). */
export const sameState = (a: ClusterState, b: ClusterState): boolean => JSON.stringify(encodeState(a)) === JSON.stringify(encodeState(b));
