/**
 * Conditions in the two shapes CAPI objects carry: v1beta2 `metav1.Condition` (type, status, reason,
 * message, observedGeneration, lastTransitionTime) and the v1beta1 CAPI condition (severity on False,
 * optional reason and message) that v1beta1-contract providers (CAPA, CAPO, CAPMOX v1alpha1) still use.
 * `lastTransitionTime` only moves when the status does (apimachinery's meta.SetStatusCondition), so
 * re-computing a condition that did not change writes nothing.
 */
import { isJson, list, rec, str, type Json } from './kube.js';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message?: string;
}

/** A v1beta1 CAPI condition: severity (Error, Warning, Info) only when not True. */
export interface LegacyCondition extends Condition {
  readonly severity?: 'Error' | 'Warning' | 'Info';
}

/** RFC 3339 at second precision, as Kubernetes serializes metav1.Time. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function previous(existing: unknown, type: string): Json | undefined {
  return list(existing).filter(isJson).find((c) => c.type === type);
}

const byType = (a: { type: string }, b: { type: string }) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0);

/** v1beta2 conditions, sorted by type, keeping lastTransitionTime of those whose status is unchanged. */
export function conditions(existing: unknown, desired: readonly Condition[], generation: number | undefined, now: Date): Json[] {
  return [...desired].sort(byType).map((c) => {
    const old = previous(existing, c.type);
    const since = old && old.status === c.status ? str(old.lastTransitionTime) : undefined;
    return {
      type: c.type,
      status: c.status,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: since ?? rfc3339(now),
      reason: c.reason,
      message: c.message ?? '',
    };
  });
}

/** v1beta1 CAPI conditions: True ones carry no reason or severity; empty strings are omitted (minLength 1). */
export function legacyConditions(existing: unknown, desired: readonly LegacyCondition[], now: Date): Json[] {
  return [...desired].sort(byType).map((c) => {
    const old = previous(existing, c.type);
    const since = old && old.status === c.status ? str(old.lastTransitionTime) : undefined;
    const detail = c.status === 'True' ? {} : {
      ...(c.severity ? { severity: c.severity } : {}),
      ...(c.reason ? { reason: c.reason } : {}),
      ...(c.message ? { message: c.message } : {}),
    };
    return { type: c.type, status: c.status, lastTransitionTime: since ?? rfc3339(now), ...detail };
  });
}

/** The existing v1beta2 conditions with only `Paused` replaced: what a CAPI controller writes while paused. */
export function withPaused(existing: unknown, message: string, generation: number | undefined, now: Date): Json[] {
  const others = list(existing).filter(isJson).filter((c) => c.type !== 'Paused');
  const [paused] = conditions(existing, [{ type: 'Paused', status: 'True', reason: 'Paused', message }], generation, now);
  return [...others, ...(paused ? [paused] : [])].sort((a, b) => byType({ type: String(a.type) }, { type: String(b.type) }));
}

/** The status of a condition type, if present. */
export function conditionStatus(existing: unknown, type: string): string | undefined {
  return str(rec(previous(existing, type)).status);
}

/** Structural equality of JSON values, ignoring key order. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => sameJson(v, b[i]));
  }
  if (!isJson(a) || !isJson(b)) return false;
  const ka = Object.keys(a).filter((k) => a[k] !== undefined);
  const kb = Object.keys(b).filter((k) => b[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson(a[k], b[k]));
}
