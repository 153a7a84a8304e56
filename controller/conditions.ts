/**
 * LatticeCluster conditions, kept to kstatus (https://github.com/kubernetes-sigs/cli-utils/blob/master/pkg/kstatus/README.md)
 * by construction:
 *
 * - `Ready` is always present.
 * - `Reconciling` and `Stalled` are "abnormal-true": present only when True, and never both.
 * - every condition carries `observedGeneration`, the generation it was computed for.
 * - `lastTransitionTime` changes only when the status changes (apimachinery meta.SetStatusCondition), so a
 *   new message or reason alone does not make a status write look like a transition.
 *
 * Nobody edits `status.conditions` by hand: the outcome computes the desired conditions and
 * `mergeConditions` stamps them. `kstatusViolations` is the executable form of these rules (after Flux's
 * runtime/conditions/check) that every controller test runs.
 */
import { isRecord } from '../core/data.js';
import { STAGES, StageCondition } from '../core/plan/stages.js';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** metav1.Condition as the CRD declares it. */
export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly observedGeneration: number;
  readonly lastTransitionTime: string;
  readonly reason: string;
  readonly message: string;
}

/** A condition as computed, before timestamps and generation are stamped. */
export interface DesiredCondition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
}

/** The kstatus condition types. */
export const KSTATUS = {
  Ready: 'Ready',
  Reconciling: 'Reconciling',
  Stalled: 'Stalled',
} as const;

/** The order conditions are written in: kstatus first, then stage conditions in bootstrap order, then Pivoted. */
export const CONDITION_ORDER: readonly string[] = [
  KSTATUS.Stalled, KSTATUS.Reconciling, KSTATUS.Ready,
  ...STAGES.flatMap((s) => s.conditions),
  StageCondition.Pivoted,
];

/** The CRD's limit is 32 KiB; conditions are read by people, so a shorter cap keeps them readable. */
const MAX_MESSAGE = 4096;

/** Condition reasons must match the CRD's pattern: UpperCamelCase, no spaces. */
const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

/** RFC 3339 at second precision, as metav1.Time serializes. */
export const rfc3339 = (d: Date): string => `${d.toISOString().slice(0, 19)}Z`;

function trimMessage(message: string): string {
  return message.length <= MAX_MESSAGE ? message : `${message.slice(0, MAX_MESSAGE - 3)}...`;
}

/**
 * Stamps desired conditions with the generation and transition times, carrying `lastTransitionTime` over
 * from `previous` when the status did not change. Reconciling and Stalled are dropped unless True;
 * asking for both True is a programming error.
 */
export function mergeConditions(previous: readonly unknown[] | undefined, desired: readonly DesiredCondition[], generation: number, now: Date): Condition[] {
  const prior = new Map<string, Record<string, unknown>>();
  for (const c of previous ?? []) if (isRecord(c) && typeof c.type === 'string') prior.set(c.type, c);
  const kept = desired.filter((c) => !((c.type === KSTATUS.Reconciling || c.type === KSTATUS.Stalled) && c.status !== 'True'));
  const types = new Set(kept.map((c) => c.type));
  if (types.has(KSTATUS.Reconciling) && types.has(KSTATUS.Stalled)) throw new Error('conditions: Reconciling and Stalled cannot both be True (kstatus)');
  if (!types.has(KSTATUS.Ready)) throw new Error('conditions: Ready must always be present (kstatus)');
  if (types.size !== kept.length) throw new Error('conditions: a condition type appears twice');
  const stamped = kept.map((c): Condition => {
    if (!REASON.test(c.reason)) throw new Error(`conditions: reason ${JSON.stringify(c.reason)} of ${c.type} is not UpperCamelCase`);
    const before = prior.get(c.type);
    const keepTime = before?.status === c.status && typeof before.lastTransitionTime === 'string';
    return {
      type: c.type,
      status: c.status,
      observedGeneration: generation,
      lastTransitionTime: keepTime ? String(before.lastTransitionTime) : rfc3339(now),
      reason: c.reason,
      message: trimMessage(c.message),
    };
  });
  const rank = (t: string) => {
    const i = CONDITION_ORDER.indexOf(t);
    return i < 0 ? CONDITION_ORDER.length : i;
  };
  return stamped.sort((a, b) => rank(a.type) - rank(b.type) || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

/** The condition of a type in a status, if present. */
export function findCondition(status: unknown, type: string): Record<string, unknown> | undefined {
  const list = isRecord(status) && Array.isArray(status.conditions) ? status.conditions : [];
  return list.find((c): c is Record<string, unknown> => isRecord(c) && c.type === type);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Every kstatus and contract rule a LatticeCluster's status breaks (empty when it keeps them all). Checked
 * after every controller test: the rules hold on every status the controller writes, not just the last.
 */
export function kstatusViolations(obj: unknown): string[] {
  const out: string[] = [];
  if (!isRecord(obj)) return ['not an object'];
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const generation = typeof meta.generation === 'number' ? meta.generation : undefined;
  const name = typeof meta.name === 'string' ? meta.name : '?';
  const status = obj.status;
  if (status === undefined) return out;
  if (!isRecord(status)) return [`${name}: status is not an object`];
  const at = (rule: string) => out.push(`${name}: ${rule}`);
  if (typeof status.observedGeneration === 'number' && generation !== undefined && status.observedGeneration > generation) at('status.observedGeneration is ahead of metadata.generation');
  const conditions = Array.isArray(status.conditions) ? status.conditions : [];
  if (conditions.length === 0) {
    if (status.phase !== undefined) at('a status with a phase has no conditions (Ready must always be present)');
    return out;
  }
  const types = new Set<string>();
  for (const c of conditions) {
    if (!isRecord(c) || typeof c.type !== 'string') {
      at('a condition without a type');
      continue;
    }
    if (types.has(c.type)) at(`condition ${c.type} appears twice`);
    types.add(c.type);
    if (!['True', 'False', 'Unknown'].includes(String(c.status))) at(`condition ${c.type} has status ${String(c.status)}`);
    if (typeof c.reason !== 'string' || !REASON.test(c.reason)) at(`condition ${c.type} has no valid reason`);
    if (typeof c.message !== 'string') at(`condition ${c.type} has no message`);
    if (typeof c.lastTransitionTime !== 'string' || !RFC3339.test(c.lastTransitionTime)) at(`condition ${c.type} has no RFC 3339 lastTransitionTime`);
    if (typeof c.observedGeneration !== 'number') at(`condition ${c.type} has no observedGeneration`);
    else if (generation !== undefined && c.observedGeneration > generation) at(`condition ${c.type} observedGeneration is ahead of metadata.generation`);
    if ((c.type === KSTATUS.Reconciling || c.type === KSTATUS.Stalled) && c.status !== 'True') at(`${c.type} is present but not True (kstatus: abnormal-true conditions are removed when False)`);
  }
  if (!types.has(KSTATUS.Ready)) at('Ready is missing (kstatus: it is always present)');
  if (types.has(KSTATUS.Reconciling) && types.has(KSTATUS.Stalled)) at('Reconciling and Stalled are both present');
  const ready = findCondition(status, KSTATUS.Ready);
  if (types.has(KSTATUS.Stalled) && ready?.status === 'True') at('Stalled is True but Ready is True');
  if (types.has(KSTATUS.Reconciling) && ready?.status === 'True') at('Reconciling is True but Ready is True');
  if (status.phase === 'Failed' && !types.has(KSTATUS.Stalled)) at('phase Failed without Stalled');
  return out;
}
