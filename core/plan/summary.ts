/**
 * What `lattice plan` shows: per cluster, the stages in order with their wave, what each waits for,
 * and the objects in it; stages a spec switches off are listed with the reason.
 */
import type { PlannedObject } from '../render/plan.js';
import type { LatticeCluster } from '../spec/model.js';
import type { AddonSpec } from './addons.js';
import { STAGES, type Stage, type StageCondition } from './stages.js';

export interface PlannedObjectSummary {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  /** For an addon: chart, version and target namespace. */
  readonly detail?: string;
}

export interface StageSummary {
  readonly stage: Stage;
  readonly wave: number;
  readonly waitsFor: string;
  readonly conditions: readonly StageCondition[];
  /** Set when the spec switches the whole stage off. */
  readonly skipped?: string;
  readonly objects: readonly PlannedObjectSummary[];
}

interface AddonContext {
  readonly source?: { chart?: string; targetRevision?: string; repoURL?: string };
  readonly destination?: { namespace?: string };
}

function describe(o: PlannedObject): PlannedObjectSummary {
  const ctx = o.context as AddonContext;
  const chart = ctx.source?.chart;
  const detail = chart !== undefined ? `${chart} ${ctx.source?.targetRevision ?? ''} from ${ctx.source?.repoURL ?? ''} into ${ctx.destination?.namespace ?? ''}` : undefined;
  return { apiVersion: o.apiVersion, kind: o.kind, ...(o.namespace !== undefined ? { namespace: o.namespace } : {}), name: o.name, ...(detail ? { detail } : {}) };
}

/** One row per stage of the table, in order, with the cluster's objects grouped under it. */
export function summarizeStages(cluster: LatticeCluster, objects: readonly PlannedObject[], catalog: readonly AddonSpec[]): StageSummary[] {
  return STAGES.map((s) => {
    const mine = objects.filter((o) => o.stage === s.stage).map(describe);
    const gatedBy = [...new Set(catalog.filter((a) => a.stage === s.stage && a.when !== undefined).map((a) => a.when))];
    const off = gatedBy.filter((flag) => flag !== undefined && cluster.spec[flag] !== true);
    const skipped = mine.length === 0 && off.length > 0 ? `${off.map((f) => `${String(f)}: false`).join(', ')}` : undefined;
    return { stage: s.stage, wave: s.wave, waitsFor: s.waitsFor, conditions: s.conditions, ...(skipped ? { skipped } : {}), objects: mine };
  });
}
