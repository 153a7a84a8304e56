/**
 * The one translator from a reconcile's outcome to status and requeue (CONVENTIONS "Controllers", after
 * source-controller's ComputeReconcileResult): the steps only observe and act, and say what stopped them
 * with a LatticeError; this module decides the phase, the kstatus conditions, the status fields and when
 * to look again. Pure: no I/O, the clock is an argument.
 */
import type { LatticeError } from '../core/errors.js';
import { isRecord } from '../core/data.js';
import type { WorkerPoolStatus } from '../core/spec/model.js';
import { KSTATUS, mergeConditions, type DesiredCondition } from './conditions.js';
import type { ControllerConfig } from './config.js';

/** The phases of the seed enum (DESIGN §5). M6 reaches Pending, Provisioning, Failed and Deleting. */
export const Phase = {
  Pending: 'Pending',
  Provisioning: 'Provisioning',
  Pivoting: 'Pivoting',
  Pivoted: 'Pivoted',
  Ready: 'Ready',
  Deleting: 'Deleting',
  Unpivoting: 'Unpivoting',
  Failed: 'Failed',
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

/** kstatus and outcome reasons that are not stage reasons. */
export const Reason = {
  Ready: 'Ready',
  Progressing: 'Progressing',
  /** A transient failure: the controller retries with backoff (Flux's reason for the same). */
  ProgressingWithRetry: 'ProgressingWithRetry',
  Deleting: 'Deleting',
  DeletionProtected: 'DeletionProtected',
  InvalidSpec: 'InvalidSpec',
} as const;

/** Errors whose stalling means the cluster itself failed (phase Failed), not just the controller's work. */
const FAILING_CODES = new Set<string>([Reason.InvalidSpec]);

/** What the steps found out. Anything left undefined was not observed this time and is carried over. */
export interface Observed {
  readonly generation: number;
  /** The spec was validated and its prerequisites (credentials) are in place: status.observedGeneration moves. */
  readonly accepted: boolean;
  readonly error?: LatticeError;
  /** The CAPI Cluster: undefined when not looked at, null when it does not exist. */
  readonly capiExists?: boolean;
  /** A terminal CAPI failure or the provisioning timeout: phase Failed. */
  readonly failure?: { readonly reason: string; readonly message: string };
  readonly stageConditions?: readonly DesiredCondition[];
  readonly readyControlPlane?: number;
  readonly readyWorkers?: number;
  readonly workerPools?: Readonly<Record<string, WorkerPoolStatus>>;
  readonly endpoint?: string;
  readonly markers?: { readonly pivotComplete: boolean; readonly unpivotImportComplete: boolean; readonly bootstrapComplete: boolean };
  readonly childrenHealth?: readonly Record<string, unknown>[];
  /** Deletion in progress (deletionTimestamp set). */
  readonly deletion?: { readonly protected: boolean; readonly unpivoting: boolean };
  /** The bootstrap token's state (null: none issued); undefined when not observed. */
  readonly bootstrapToken?: Record<string, string> | null;
  /** When the cell last heard from the agent. */
  readonly lastHeartbeat?: Date;
  /** A pivot has started and is not complete (phase Pivoting). */
  readonly pivoting?: boolean;
  /** This cluster is never pivoted (--pivot=false, or no cell): Ready once every stage is healthy. */
  readonly pivotDisabled?: boolean;
  /** The generation the child applied to itself (after the pivot), as its agent reports it. */
  readonly appliedGeneration?: number;
}

export interface Outcome {
  readonly status: Record<string, unknown>;
  readonly phase: Phase;
  /** success, waiting, stalled or error: the metric label and what the queue does. */
  readonly result: 'success' | 'waiting' | 'stalled' | 'error';
  /** Look again after this long (jittered by the caller); undefined with `retry`. */
  readonly requeueAfterMs?: number;
  /** A transient failure: requeue with the per-cluster backoff. */
  readonly retry: boolean;
}

function phaseOf(o: Observed, previous: Record<string, unknown>, settled: boolean): Phase {
  if (o.deletion) return o.deletion.unpivoting ? Phase.Unpivoting : Phase.Deleting;
  if (o.error?.kind === 'stalling' && FAILING_CODES.has(o.error.code)) return Phase.Failed;
  if (o.failure) return Phase.Failed;
  // Ready once the cluster manages itself and every stage (Pivoted included: the child confirmed) is healthy.
  if (o.markers?.pivotComplete) return settled ? Phase.Ready : Phase.Pivoted;
  if (o.pivoting) return Phase.Pivoting;
  if (o.pivotDisabled && settled && o.capiExists === true) return Phase.Ready;
  if (o.capiExists === true) return Phase.Provisioning;
  if (o.capiExists === false) return Phase.Pending;
  // Not observed this time (a step stopped earlier): keep what was known, never regress to Pending.
  const before = previous.phase;
  return before === Phase.Provisioning || before === Phase.Pending ? before : Phase.Pending;
}

/** Computes the status to write and the requeue; `previous` is the status as read. */
export function computeOutcome(o: Observed, previousStatus: unknown, config: ControllerConfig, now: Date): Outcome {
  const previous = isRecord(previousStatus) ? previousStatus : {};
  const err = o.error;
  const stageConditions = o.stageConditions ?? carriedStageConditions(previous);
  const blocking = stageConditions.find((c) => c.status !== 'True');
  const phase = phaseOf(o, previous, blocking === undefined && !err);

  // kstatus: Stalled when only a person can fix it; otherwise Reconciling until Ready.
  let stalled: { reason: string; message: string } | undefined;
  if (o.deletion?.protected) stalled = { reason: Reason.DeletionProtected, message: 'deletion is blocked by the annotation lattice.dev/deletion-protection: "true"; remove it to delete the cluster' };
  else if (err?.kind === 'stalling') stalled = { reason: err.code, message: err.message };
  else if (o.failure && !o.deletion) stalled = o.failure;

  const ready = !stalled && !err && !o.deletion && blocking === undefined && phase === Phase.Ready;
  let progress: { reason: string; message: string } | undefined;
  if (!stalled && !ready) {
    if (err) progress = { reason: err.kind === 'transient' ? Reason.ProgressingWithRetry : err.code, message: err.message };
    else if (o.deletion) progress = { reason: Reason.Deleting, message: 'deleting the cluster' };
    else if (blocking) progress = { reason: Reason.Progressing, message: `${blocking.type}: ${blocking.message}` };
    else progress = { reason: Reason.Progressing, message: 'waiting for the cluster to manage itself' };
  }
  const readyCondition: DesiredCondition = ready
    ? { type: KSTATUS.Ready, status: 'True', reason: Reason.Ready, message: 'every stage is healthy and the cluster manages itself' }
    : {
      type: KSTATUS.Ready,
      status: 'False',
      reason: stalled?.reason ?? (err ? err.code : o.deletion ? Reason.Deleting : blocking?.reason ?? Reason.Progressing),
      message: stalled?.message ?? progress?.message ?? '',
    };
  const desired: DesiredCondition[] = [
    readyCondition,
    ...(stalled ? [{ type: KSTATUS.Stalled, status: 'True' as const, ...stalled }] : []),
    ...(progress ? [{ type: KSTATUS.Reconciling, status: 'True' as const, ...progress }] : []),
    ...stageConditions,
  ];

  const status: Record<string, unknown> = {};
  const observedGeneration = o.accepted || (err?.kind === 'stalling' && FAILING_CODES.has(err.code)) ? o.generation : previous.observedGeneration;
  if (typeof observedGeneration === 'number') status.observedGeneration = observedGeneration;
  status.phase = phase;
  const message = phase === Phase.Failed || o.deletion ? (stalled?.message ?? progress?.message) : undefined;
  if (message) status.message = message;
  status.conditions = mergeConditions(previous.conditions as unknown[] | undefined, desired, o.generation, now);
  const carry = (key: string, value: unknown) => {
    const v = value !== undefined ? value : previous[key];
    if (v !== undefined) status[key] = v;
  };
  carry('readyControlPlane', o.readyControlPlane);
  carry('readyWorkers', o.readyWorkers);
  carry('workerPools', o.workerPools);
  carry('endpoint', o.endpoint);
  carry('pivotComplete', o.markers?.pivotComplete);
  carry('bootstrapComplete', o.markers?.bootstrapComplete);
  carry('unpivotImportComplete', o.markers?.unpivotImportComplete);
  if (o.bootstrapToken !== null) carry('bootstrapToken', o.bootstrapToken);
  carry('childrenHealth', o.childrenHealth);
  carry('appliedGeneration', o.appliedGeneration !== undefined && o.appliedGeneration > 0 ? o.appliedGeneration : undefined);
  carry('lastHeartbeat', heartbeat(o.lastHeartbeat, previous.lastHeartbeat, !jsonEqual(withoutHeartbeat(status), withoutHeartbeat(previous))));

  let result: Outcome['result'];
  let requeueAfterMs: number | undefined;
  let retry = false;
  if (err?.kind === 'transient') {
    result = 'error';
    retry = true;
  } else if (err?.kind === 'waiting') {
    result = 'waiting';
    requeueAfterMs = config.waitIntervalMs;
  } else if (stalled) {
    // Only a change fixes it; the change's watch event requeues. The resync is a safety net.
    result = 'stalled';
    requeueAfterMs = config.resyncIntervalMs;
  } else {
    result = 'success';
    requeueAfterMs = ready ? config.resyncIntervalMs : config.progressIntervalMs;
  }
  return { status, phase, result, retry, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

/** See `heartbeat`. */
export const HEARTBEAT_STATUS_GRANULARITY_MS = 60_000;

/**
 * status.lastHeartbeat moves only with a status that is written anyway (something else changed), and then
 * at most once per HEARTBEAT_STATUS_GRANULARITY_MS; a first heartbeat is always recorded. Heartbeats arrive
 * every 10 s: writing them, or refreshing the time on every resync, would make a fleet of healthy clusters
 * write its statuses over and over (Kubernetes moved node heartbeats to Leases for this). Whether the agent
 * is connected now is the AgentConnected condition, which changes (and is written) within three missed
 * heartbeats.
 */
function heartbeat(seen: Date | undefined, recorded: unknown, statusChanged: boolean): string | undefined {
  if (!seen) return undefined;
  const at = seen.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (typeof recorded !== 'string') return at;
  if (!statusChanged || seen.getTime() - Date.parse(recorded) < HEARTBEAT_STATUS_GRANULARITY_MS) return recorded;
  return at;
}

const withoutHeartbeat = (status: Record<string, unknown>): Record<string, unknown> => ({ ...status, lastHeartbeat: undefined });

/** The stage conditions of the previous status, as desired conditions (reused when not observed this time). */
function carriedStageConditions(previous: Record<string, unknown>): DesiredCondition[] {
  const list = Array.isArray(previous.conditions) ? previous.conditions : [];
  const kstatus = new Set<string>(Object.values(KSTATUS));
  return list.filter(isRecord).filter((c) => typeof c.type === 'string' && !kstatus.has(c.type)).map((c) => ({
    type: String(c.type),
    status: c.status === 'True' || c.status === 'False' ? c.status : 'Unknown',
    reason: typeof c.reason === 'string' && c.reason !== '' ? c.reason : 'Unknown',
    message: typeof c.message === 'string' ? c.message : '',
  }));
}

/**
 * A JSON merge patch (RFC 7386) turning `before` into `after`: changed keys only, removed keys as null,
 * arrays whole. Undefined when nothing differs, so an unchanged status is never written.
 */
export function mergePatch(before: unknown, after: unknown): unknown {
  if (jsonEqual(before, after)) return undefined;
  if (!isRecord(before) || !isRecord(after)) return after === undefined ? null : after;
  const out: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (!(key in after) || after[key] === undefined) {
      if (before[key] !== undefined) out[key] = null;
      continue;
    }
    const d = mergePatch(before[key], after[key]);
    if (d !== undefined) out[key] = d;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Deep equality of JSON values, ignoring key order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (!isRecord(a) || !isRecord(b)) return false;
  const ka = Object.keys(a).filter((k) => a[k] !== undefined);
  const kb = Object.keys(b).filter((k) => b[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => jsonEqual(a[k], b[k]));
}
