/**
 * Kubernetes Events about LatticeClusters, on transitions only (source-controller's `notify`: a new state,
 * a failure, a recovery; never one per reconcile). `statusEvents` decides from the status before and
 * after a write; actions (credentials copied, cluster registered, deletion started) are recorded where
 * they happen. Messages come from conditions and step outcomes, which never carry secret material.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isRecord } from '../core/data.js';
import { STAGES, StageCondition } from '../core/plan/stages.js';
import { KSTATUS, rfc3339 } from './conditions.js';
import type { KObject, Kube } from './kube.js';
import { EVENT, LATTICE_CLUSTER, apiVersionOf } from './resources.js';
import { errorSummary } from './watch.js';

export type EventType = 'Normal' | 'Warning';

export interface ClusterEvent {
  readonly type: EventType;
  readonly reason: string;
  readonly message: string;
}

/** Where events go; the reconcile only ever calls this. */
export interface EventSink {
  record(cluster: KObject, event: ClusterEvent): Promise<void>;
}

const STAGE_CONDITIONS = new Set<string>([...STAGES.flatMap((s) => s.conditions), StageCondition.Pivoted]);
/** Reasons of a False stage condition that deserve a Warning (the others are progress). */
const FAILURE_REASONS = new Set(['Degraded', 'Missing', 'ProvisioningTimeout', 'ProvisioningFailed', 'InitializationFailed', 'MachineCreationFailed', 'NodeStartupFailed', 'ClusterFailed', 'CreateError']);

type Rec = Record<string, unknown>;
const rec = (v: unknown): Rec => (isRecord(v) ? v : {});
const conditions = (status: unknown): Map<string, Rec> => new Map((Array.isArray(rec(status).conditions) ? (rec(status).conditions as unknown[]) : []).map(rec).map((c) => [String(c.type), c]));

/** The events a status change deserves: phase changes, stage conditions turning True or failing, Stalled appearing. */
export function statusEvents(before: unknown, after: unknown): ClusterEvent[] {
  const out: ClusterEvent[] = [];
  const b = rec(before);
  const a = rec(after);
  const prev = conditions(b);
  const next = conditions(a);
  if (a.phase !== undefined && a.phase !== b.phase) {
    const failed = a.phase === 'Failed';
    out.push({
      type: failed ? 'Warning' : 'Normal',
      reason: String(a.phase),
      message: `phase ${b.phase === undefined ? 'set to' : `changed from ${String(b.phase)} to`} ${String(a.phase)}${typeof a.message === 'string' && a.message !== '' ? `: ${a.message}` : ''}`,
    });
  }
  const stalled = next.get(KSTATUS.Stalled);
  if (stalled && !prev.has(KSTATUS.Stalled)) out.push({ type: 'Warning', reason: String(stalled.reason), message: String(stalled.message) });
  for (const [type, c] of next) {
    if (!STAGE_CONDITIONS.has(type) || prev.get(type)?.status === c.status) continue;
    if (c.status === 'True' && c.reason !== 'Disabled') out.push({ type: 'Normal', reason: String(c.reason), message: `${type}: ${String(c.message)}` });
    else if (c.status === 'False' && FAILURE_REASONS.has(String(c.reason))) out.push({ type: 'Warning', reason: String(c.reason), message: `${type}: ${String(c.message)}` });
  }
  return out;
}

/** Writes core/v1 Events (what `kubectl describe lc` and `kubectl events` show). */
export function createEventSink(deps: { kube: Kube; namespace: string; component: string; instance: string; now: () => Date; log: Logger }): EventSink {
  return {
    async record(cluster, event) {
      const now = rfc3339(deps.now());
      const name = cluster.metadata.name;
      try {
        await deps.kube.create(EVENT, {
          // client-go names events <object>.<unique hex>.
          metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace: deps.namespace },
          involvedObject: {
            apiVersion: apiVersionOf(LATTICE_CLUSTER), kind: LATTICE_CLUSTER.kind, name,
            ...(cluster.metadata.uid ? { uid: cluster.metadata.uid } : {}),
            ...(cluster.metadata.resourceVersion ? { resourceVersion: cluster.metadata.resourceVersion } : {}),
          },
          type: event.type,
          reason: event.reason,
          message: event.message.slice(0, 1024),
          source: { component: deps.component },
          reportingComponent: deps.component,
          reportingInstance: deps.instance,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        });
        deps.log.debug({ cluster: name, reason: event.reason, type: event.type }, 'event recorded');
      } catch (e) {
        // Events are best effort: a failed event must never fail the reconcile.
        deps.log.warn({ cluster: name, reason: event.reason, err: errorSummary(e) }, 'event not recorded');
      }
    },
  };
}
