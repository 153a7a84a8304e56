/**
 * Stage conditions (DESIGN §5), computed from what was observed: the CAPI Cluster for the infrastructure
 * stage, the addon objects of the GitOps engine for each later stage, the agent for the last. The stage
 * table (core/plan/stages.ts) and the addon catalog (`addon.condition`) decide which condition each object
 * reports to; nothing here lists stages again. Pure: observations in, conditions out.
 *
 * Every stage condition goes Unknown (not started: its objects do not exist yet) → False (started, not
 * healthy, with what is wrong) → True (healthy). A feature switched off in the spec is True/Disabled.
 */
import { isRecord } from '../core/data.js';
import type { AddonSpec, PlannedAddon } from '../core/plan/addons.js';
import { STAGES, Stage, StageCondition } from '../core/plan/stages.js';
import type { CapiClusterFacts, PoolFacts } from './capi.js';
import type { DesiredCondition } from './conditions.js';

/** Health in gitops-engine's vocabulary, which Flux's Ready maps onto. */
export type HealthCode = 'Healthy' | 'Progressing' | 'Degraded' | 'Suspended' | 'Missing' | 'Unknown';

/** An addon (or agent) object of the GitOps engine, as observed. */
export interface GitOpsObject {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** undefined: the object does not exist (not applied yet). */
  readonly health?: HealthCode;
  readonly message?: string;
}

/** Stage condition reasons (UpperCamelCase; the CRD checks the pattern). */
export const StageReason = {
  /** The stage's objects do not exist yet and an earlier stage is not done. */
  WaitingForStage: 'WaitingForStage',
  /** The stage's objects do not exist yet although the earlier stages are done. */
  NotApplied: 'NotApplied',
  Healthy: 'Healthy',
  Progressing: 'Progressing',
  Degraded: 'Degraded',
  Suspended: 'Suspended',
  Missing: 'Missing',
  HealthUnknown: 'HealthUnknown',
  /** The spec switches the feature off. */
  Disabled: 'Disabled',
  ClusterNotFound: 'ClusterNotFound',
  Provisioning: 'Provisioning',
  InfrastructureProvisioned: 'InfrastructureProvisioned',
  ProvisioningTimeout: 'ProvisioningTimeout',
  WaitingForInfrastructure: 'WaitingForInfrastructure',
  Initializing: 'Initializing',
  Initialized: 'Initialized',
  WorkersNotReady: 'WorkersNotReady',
  WaitingForAgent: 'WaitingForAgent',
  AgentConnected: 'AgentConnected',
  NotPivoted: 'NotPivoted',
  Pivoting: 'Pivoting',
  WaitingForChild: 'WaitingForChild',
  PivotComplete: 'PivotComplete',
} as const;

/** What the stage conditions are computed from. */
export interface StageInputs {
  /** `capi-X/X`, for messages. */
  readonly capiClusterId: string;
  /** The cluster's addons (enabled ones only), from `renderer.addons(cluster)`. */
  readonly addons: readonly PlannedAddon[];
  /** The whole catalog, to tell a switched-off feature from an empty stage. */
  readonly catalog: readonly AddonSpec[];
  /** The defaulted spec's flags. */
  readonly flags: Readonly<Record<string, unknown>>;
  /** undefined: no CAPI Cluster yet. */
  readonly capi?: CapiClusterFacts;
  /** Set when the infrastructure missed the provisioning timeout ("30m0s"). */
  readonly provisioningTimeout?: string;
  readonly pools: PoolFacts;
  /** Addon objects by addon id. */
  readonly objects: ReadonlyMap<string, GitOpsObject>;
  /** The object that installs the agent (Argo CD Application or Flux Kustomization). */
  readonly agentObject: GitOpsObject;
  /** M7: the agent's connection; until then never connected. */
  readonly agent: { readonly connected: boolean; readonly message?: string };
  /** M8: where the pivot stands. */
  readonly pivot: { readonly state: 'none'; readonly waiting?: string } | { readonly state: 'disabled' } | { readonly state: 'pivoting'; readonly message: string } | { readonly state: 'complete'; readonly childConfirmed: boolean };
}

const describeObject = (o: GitOpsObject) => `${o.kind} ${o.namespace}/${o.name}`;

/** "cert-manager: Application argocd/dev-cert-manager is Progressing: waiting for pods". */
function objectLine(id: string, o: GitOpsObject): string {
  if (o.health === undefined) return `${id}: ${describeObject(o)} does not exist yet`;
  return `${id}: ${describeObject(o)} is ${o.health}${o.message ? `: ${o.message}` : ''}`;
}

/** Worst first: the reason of a False condition names its worst part. */
const SEVERITY: readonly HealthCode[] = ['Degraded', 'Missing', 'Suspended', 'Unknown', 'Progressing', 'Healthy'];
const reasonOf = (h: HealthCode): string => (h === 'Unknown' ? StageReason.HealthUnknown : StageReason[h]);

interface Part {
  readonly id: string;
  readonly object: GitOpsObject;
}

/** A condition over addon objects: Unknown until one exists, False until all are Healthy, then True. */
function overObjects(type: string, parts: readonly Part[], waitingFor: string | undefined, extra?: { ok: boolean; line: string }): DesiredCondition {
  const absent = parts.filter((p) => p.object.health === undefined);
  if (absent.length === parts.length && parts.length > 0) {
    return waitingFor !== undefined
      ? { type, status: 'Unknown', reason: StageReason.WaitingForStage, message: `waiting for ${waitingFor}` }
      : { type, status: 'Unknown', reason: StageReason.NotApplied, message: parts.map((p) => objectLine(p.id, p.object)).join('; ') };
  }
  const unhealthy = parts.filter((p) => p.object.health !== 'Healthy');
  if (unhealthy.length === 0 && (extra?.ok ?? true)) {
    return { type, status: 'True', reason: StageReason.Healthy, message: [...parts.map((p) => objectLine(p.id, p.object)), ...(extra ? [extra.line] : [])].join('; ') };
  }
  const worst = SEVERITY.find((h) => unhealthy.some((p) => (p.object.health ?? 'Progressing') === h)) ?? 'Progressing';
  const reason = unhealthy.length > 0 ? (absent.length === unhealthy.length ? StageReason.Progressing : reasonOf(worst)) : StageReason.WorkersNotReady;
  const lines = [...unhealthy.map((p) => objectLine(p.id, p.object)), ...(extra && !extra.ok ? [extra.line] : [])];
  return { type, status: 'False', reason, message: lines.join('; ') };
}

function infrastructure(i: StageInputs): DesiredCondition[] {
  const type = StageCondition.InfrastructureReady;
  const cpType = StageCondition.ControlPlaneInitialized;
  const capi = i.capi;
  if (!capi) {
    const message = `waiting for the Cluster API Cluster ${i.capiClusterId} to be created`;
    return [
      { type, status: 'Unknown', reason: StageReason.ClusterNotFound, message },
      { type: cpType, status: 'Unknown', reason: StageReason.ClusterNotFound, message },
    ];
  }
  const failure = capi.failure;
  let infra: DesiredCondition;
  if (capi.infrastructureReady) {
    infra = { type, status: 'True', reason: StageReason.InfrastructureProvisioned, message: `infrastructure of Cluster ${i.capiClusterId} provisioned${capi.endpoint ? `; API server at ${capi.endpoint}` : ''}` };
  } else if (failure) {
    infra = { type, status: 'False', reason: failure.reason, message: `Cluster ${i.capiClusterId} failed: ${failure.message}` };
  } else if (i.provisioningTimeout !== undefined) {
    infra = { type, status: 'False', reason: StageReason.ProvisioningTimeout, message: `infrastructure of Cluster ${i.capiClusterId} not provisioned after ${i.provisioningTimeout}${capi.infrastructureMessage ? `: ${capi.infrastructureMessage}` : ''}` };
  } else {
    infra = { type, status: 'False', reason: StageReason.Provisioning, message: `waiting for the infrastructure of Cluster ${i.capiClusterId}${capi.infrastructureMessage ? `: ${capi.infrastructureMessage}` : ''}` };
  }
  const counts = capi.controlPlaneDesired !== undefined ? `; ${capi.controlPlaneReady ?? 0}/${capi.controlPlaneDesired} control plane machines ready` : '';
  let cp: DesiredCondition;
  if (capi.controlPlaneInitialized) {
    cp = { type: cpType, status: 'True', reason: StageReason.Initialized, message: `control plane of Cluster ${i.capiClusterId} initialized${counts}` };
  } else if (failure && capi.infrastructureReady) {
    cp = { type: cpType, status: 'False', reason: failure.reason, message: `Cluster ${i.capiClusterId} failed: ${failure.message}` };
  } else if (!capi.infrastructureReady) {
    cp = { type: cpType, status: 'Unknown', reason: StageReason.WaitingForInfrastructure, message: 'waiting for InfrastructureReady' };
  } else {
    cp = { type: cpType, status: 'False', reason: StageReason.Initializing, message: `waiting for the control plane of Cluster ${i.capiClusterId} to initialize${capi.controlPlaneMessage ? `: ${capi.controlPlaneMessage}` : ''}${counts}` };
  }
  return [infra, cp];
}

/** A condition whose catalog addons are all switched off (or that has none). */
function disabled(type: string, i: StageInputs): DesiredCondition {
  const flags = [...new Set(i.catalog.filter((a) => a.condition === type && a.when !== undefined).map((a) => a.when))];
  const message = flags.length > 0 ? flags.map((f) => `${String(f)} is ${String(i.flags[String(f)])} in the spec`).join('; ') : 'nothing to install in this stage';
  return { type, status: 'True', reason: StageReason.Disabled, message };
}

function agentCondition(i: StageInputs, waitingFor: string | undefined): DesiredCondition {
  const type = StageCondition.AgentConnected;
  if (i.agent.connected) return { type, status: 'True', reason: StageReason.AgentConnected, message: i.agent.message ?? 'the agent is connected' };
  const o = i.agentObject;
  if (o.health === undefined) {
    return waitingFor !== undefined
      ? { type, status: 'Unknown', reason: StageReason.WaitingForStage, message: `waiting for ${waitingFor}` }
      : { type, status: 'Unknown', reason: StageReason.WaitingForAgent, message: `waiting for the agent: ${describeObject(o)} does not exist yet` };
  }
  return { type, status: 'False', reason: StageReason.WaitingForAgent, message: `waiting for the agent to connect: ${describeObject(o)} is ${o.health}${o.message ? `: ${o.message}` : ''}` };
}

/** Every stage condition plus Pivoted, in stage order. */
export function stageConditions(i: StageInputs): DesiredCondition[] {
  const out: DesiredCondition[] = [];
  // The first stage that is not done, for the messages of stages that have not started.
  let waitingFor: string | undefined;
  for (const stage of STAGES) {
    if (stage.stage === Stage.cluster) continue;
    const conditions: DesiredCondition[] = [];
    if (stage.stage === Stage.infrastructure) {
      conditions.push(...infrastructure(i));
    } else if (stage.stage === Stage.agent) {
      conditions.push(agentCondition(i, waitingFor));
    } else {
      for (const type of stage.conditions) {
        const parts: Part[] = i.addons.filter((a) => a.condition === type).map((a) => ({ id: a.id, object: i.objects.get(a.id) ?? { kind: 'object', namespace: '', name: a.objectName } }));
        const workers = type === StageCondition.CNI ? workersLine(i.pools) : undefined;
        if (parts.length === 0 && !workers) {
          conditions.push(disabled(type, i));
          continue;
        }
        conditions.push(overObjects(type, parts, waitingFor, workers));
      }
    }
    out.push(...conditions);
    const blocking = conditions.find((c) => c.status !== 'True');
    if (waitingFor === undefined && blocking) waitingFor = `the ${stage.stage} stage (${blocking.type} is ${blocking.status})`;
  }
  out.push(pivotedCondition(i.pivot));
  return out;
}

/** The Pivoted condition: Unknown before the pivot, False while moving or until the child confirms, then True. */
export function pivotedCondition(p: StageInputs['pivot']): DesiredCondition {
  const type = StageCondition.Pivoted;
  if (p.state === 'disabled') return { type, status: 'True', reason: StageReason.Disabled, message: 'no pivot: the parent manages this cluster (--pivot=false, or no cell)' };
  if (p.state === 'pivoting') return { type, status: 'False', reason: StageReason.Pivoting, message: p.message };
  if (p.state === 'complete') {
    return p.childConfirmed
      ? { type, status: 'True', reason: StageReason.PivotComplete, message: 'the cluster manages its own Cluster API objects' }
      : { type, status: 'False', reason: StageReason.WaitingForChild, message: 'the move is complete; waiting for the agent to report that the cluster manages itself' };
  }
  if (p.waiting !== undefined) return { type, status: 'Unknown', reason: StageReason.NotPivoted, message: `the pivot waits: ${p.waiting}` };
  return { type, status: 'Unknown', reason: StageReason.NotPivoted, message: 'the pivot starts once every stage is healthy, the agent is connected and the cluster runs its Cluster API providers' };
}

function workersLine(pools: PoolFacts): { ok: boolean; line: string } | undefined {
  const ids = Object.keys(pools.pools);
  if (ids.length === 0) return undefined;
  const total = ids.reduce((n, id) => n + (pools.pools[id]?.desired ?? 0), 0);
  return pools.allReady
    ? { ok: true, line: `workers ${pools.readyWorkers}/${total} ready` }
    : { ok: false, line: `workers ${pools.readyWorkers}/${total} ready (${pools.notReady.join(', ')})` };
}

const MAX_OBJECT_MESSAGE = 512;
const clip = (s: string) => (s.length <= MAX_OBJECT_MESSAGE ? s : `${s.slice(0, MAX_OBJECT_MESSAGE - 3)}...`);
const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const HEALTH_CODES = new Set<string>(['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Missing', 'Unknown']);

/**
 * An Argo CD Application's health (`status.health`, gitops-engine's codes), with the most useful message:
 * the health message, else the first condition (e.g. "there are no clusters with this name"), else the
 * last operation's message.
 */
export function applicationHealth(app: unknown): { health: HealthCode; message?: string } {
  const status = rec(rec(app).status);
  const health = rec(status.health);
  const code = typeof health.status === 'string' && HEALTH_CODES.has(health.status) ? (health.status as HealthCode) : undefined;
  const conditions = Array.isArray(status.conditions) ? status.conditions.map(rec) : [];
  const conditionMessage = conditions.map((c) => c.message).find((m): m is string => typeof m === 'string' && m !== '');
  const operation = rec(status.operationState);
  const operationMessage = typeof operation.message === 'string' && (operation.phase === 'Failed' || operation.phase === 'Error') ? operation.message : undefined;
  const message = (typeof health.message === 'string' && health.message !== '' ? health.message : undefined) ?? conditionMessage ?? operationMessage;
  if (!code) return { health: 'Unknown', message: message ? clip(message) : 'not assessed by Argo CD yet' };
  return code === 'Healthy' || !message ? { health: code } : { health: code, message: clip(message) };
}

/** Flux Ready condition reasons that mean "still working", not "failed". */
const FLUX_PROGRESSING = new Set(['Progressing', 'DependencyNotReady', 'ProgressingWithRetry', 'ArtifactFailed', 'ReconciliationInProgress']);

/** A Flux Kustomization's or HelmRelease's health from its kstatus conditions. */
export function fluxHealth(obj: unknown): { health: HealthCode; message?: string } {
  const o = rec(obj);
  if (rec(o.spec).suspend === true) return { health: 'Suspended', message: 'suspended (spec.suspend is true)' };
  const conditions = Array.isArray(rec(o.status).conditions) ? (rec(o.status).conditions as unknown[]).map(rec) : [];
  const find = (t: string) => conditions.find((c) => c.type === t);
  const ready = find('Ready');
  const message = typeof ready?.message === 'string' && ready.message !== '' ? clip(ready.message) : undefined;
  if (!ready) return { health: 'Unknown', message: 'not reconciled by Flux yet' };
  if (ready.status === 'True') return { health: 'Healthy' };
  const withMessage = (health: HealthCode) => (message ? { health, message } : { health });
  if (find('Stalled')?.status === 'True') return withMessage('Degraded');
  if (find('Reconciling')?.status === 'True' || ready.status === 'Unknown' || FLUX_PROGRESSING.has(String(ready.reason))) return withMessage('Progressing');
  return withMessage('Degraded');
}
