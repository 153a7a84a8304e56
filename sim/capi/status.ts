/**
 * The status each simulated controller writes, as a pure function of how far its cluster has come.
 * Shapes follow the v1beta2 contract (capi.md B.9) and the reasons are cluster-api's constants
 * (api/core/v1beta2 condition_consts.go and the per-kind *_types.go); provider kinds that still follow the
 * v1beta1 contract get `ready` and severity conditions instead, chosen by what their CRD schema has.
 */
import { conditions, legacyConditions, type Condition, type LegacyCondition } from './conditions.js';
import { schemaHas, type Json, type KObject } from './kube.js';
import { machineAddress } from './objects.js';

/** The four steps a simulated cluster goes through, in order. */
export const CAPI_STEPS = ['infrastructure', 'controlPlane', 'workers', 'nodes'] as const;
export type CapiStep = (typeof CAPI_STEPS)[number];

/** A step that failed: the reason goes on the step's condition, the message everywhere it is shown. */
export interface Failure {
  readonly step: CapiStep;
  readonly message: string;
}

/** The Cluster condition each step turns True, and the reason it gets when the step fails. */
export const STEP_CONDITIONS: Readonly<Record<CapiStep, { readonly type: string; readonly failedReason: string }>> = {
  infrastructure: { type: 'InfrastructureReady', failedReason: 'ProvisioningFailed' },
  controlPlane: { type: 'ControlPlaneInitialized', failedReason: 'InitializationFailed' },
  workers: { type: 'WorkersAvailable', failedReason: 'MachineCreationFailed' },
  nodes: { type: 'Available', failedReason: 'NodeStartupFailed' },
};

/** capierrors.CreateClusterError / CreateMachineError: the v1beta1 failureReason of a failed creation. */
const FAILURE_REASON = 'CreateError';

/** `level` = how many steps are done (0..4). */
export const done = (level: number, step: CapiStep) => level > CAPI_STEPS.indexOf(step);

export interface Counts {
  readonly desired: number;
  readonly replicas: number;
  readonly ready: number;
}

const generation = (o: KObject) => o.metadata.generation;
const cond = (type: string, ok: boolean, yes: string, no: string, message?: string, status?: 'Unknown'): Condition =>
  ({ type, status: ok ? 'True' : status ?? 'False', reason: ok ? yes : no, ...(message ? { message } : {}) });

/** The v1beta2 conditions every CAPI controller maintains on its objects (Paused, Deleting...). */
const housekeeping = (deleting = false): Condition[] => [
  cond('Paused', false, 'Paused', 'NotPaused'),
  { type: 'Deleting', status: deleting ? 'True' : 'False', reason: deleting ? 'Deleting' : 'NotDeleting' },
];

/**
 * Where a kind keeps v1beta1 `failureReason`/`failureMessage`: top-level in v1beta1-contract providers,
 * under `deprecated.v1beta1` in v1beta2 kinds, nowhere if its schema has neither.
 */
export function failureFields(schema: Json | undefined, message: string): Json {
  if (schemaHas(schema, ['status', 'failureReason'])) return { failureReason: FAILURE_REASON, failureMessage: message };
  if (schemaHas(schema, ['status', 'deprecated', 'v1beta1', 'failureReason'])) {
    return { deprecated: { v1beta1: { failureReason: FAILURE_REASON, failureMessage: message } } };
  }
  return {};
}

function replicaCounters(c: Counts): Json {
  return { replicas: c.replicas, readyReplicas: c.ready, availableReplicas: c.ready, upToDateReplicas: c.replicas };
}

function machinesConditions(c: Counts): Condition[] {
  const none = c.replicas === 0;
  return [
    none ? cond('MachinesReady', true, 'NoReplicas', '') : cond('MachinesReady', c.ready === c.replicas, 'Ready', 'NotReady'),
    cond('MachinesUpToDate', true, none ? 'NoReplicas' : 'UpToDate', ''),
    cond('RollingOut', false, 'RollingOut', 'NotRollingOut'),
    cond('Remediating', false, 'Remediating', 'NotRemediating'),
    c.replicas < c.desired
      ? cond('ScalingUp', true, 'ScalingUp', '', `Scaling up from ${c.replicas} to ${c.desired} replicas`)
      : cond('ScalingUp', false, 'ScalingUp', 'NotScalingUp'),
    c.replicas > c.desired
      ? cond('ScalingDown', true, 'ScalingDown', '', `Scaling down from ${c.replicas} to ${c.desired} replicas`)
      : cond('ScalingDown', false, 'ScalingDown', 'NotScalingDown'),
  ];
}

/** `versions[]` (replicas >= 1 each, so absent with no machines). */
function versions(version: string | undefined, replicas: number): Json {
  return version && replicas > 0 ? { versions: [{ version, replicas }] } : {};
}

// ---- infrastructure --------------------------------------------------------------------------------

/**
 * An infra cluster or machine: the v1beta2 contract's `initialization.provisioned` and the v1beta1
 * contract's `ready`, each only if the schema has it, a Ready condition in the schema's condition shape,
 * and failure fields where the schema allows.
 */
export function infraStatus(obj: KObject, schema: Json | undefined, provisioned: boolean, failure: string | undefined, now: Date, extra: Json = {}): Json {
  const existing = (obj.status as Json | undefined)?.conditions;
  const out: Json = { ...extra };
  if (provisioned && schemaHas(schema, ['status', 'initialization', 'provisioned'])) out.initialization = { provisioned: true };
  if (schemaHas(schema, ['status', 'ready'])) out.ready = provisioned;
  if (schemaHas(schema, ['status', 'conditions', 'observedGeneration'])) {
    const ready = failure !== undefined
      ? { type: 'Ready', status: 'False' as const, reason: 'ProvisioningFailed', message: failure }
      : cond('Ready', provisioned, 'Ready', 'NotReady');
    out.conditions = conditions(existing, [ready, cond('Paused', false, 'Paused', 'NotPaused')], generation(obj), now);
  } else if (schemaHas(schema, ['status', 'conditions', 'severity'])) {
    const ready: LegacyCondition = failure !== undefined
      ? { type: 'Ready', status: 'False', severity: 'Error', reason: 'ProvisioningFailed', message: failure }
      : provisioned ? { type: 'Ready', status: 'True', reason: '' } : { type: 'Ready', status: 'False', severity: 'Info', reason: 'WaitingForInfrastructure' };
    out.conditions = legacyConditions(existing, [ready], now);
  }
  if (provisioned && schemaHas(schema, ['status', 'addresses'])) {
    out.addresses = [{ type: 'InternalIP', address: machineAddress(obj.metadata.name) }, { type: 'Hostname', address: obj.metadata.name }];
  }
  return failure !== undefined ? { ...out, ...failureFields(schema, failure) } : out;
}

// ---- bootstrap config ------------------------------------------------------------------------------

/** KubeadmConfig / RKE2Config once its data Secret exists. */
export function bootstrapStatus(obj: KObject, now: Date): Json {
  const existing = (obj.status as Json | undefined)?.conditions;
  return {
    initialization: { dataSecretCreated: true },
    dataSecretName: obj.metadata.name,
    observedGeneration: generation(obj),
    conditions: conditions(existing, [
      cond('Ready', true, 'Ready', ''),
      cond('DataSecretAvailable', true, 'Available', ''),
      cond('CertificatesAvailable', true, 'Available', ''),
      cond('Paused', false, 'Paused', 'NotPaused'),
    ], generation(obj), now),
  };
}

// ---- machine ---------------------------------------------------------------------------------------

/** A Machine: Provisioned (infrastructure up, no Node yet) until its cluster's nodes are Ready, then Running. */
export function machineStatus(obj: KObject, schema: Json | undefined, nodeReady: boolean, failure: string | undefined, now: Date): Json {
  const name = obj.metadata.name;
  const existing = (obj.status as Json | undefined)?.conditions;
  const noNode = failure !== undefined ? { reason: 'NodeStartupFailed', message: failure } : { reason: 'NodeDoesNotExist' };
  const out: Json = {
    phase: failure !== undefined ? 'Failed' : nodeReady ? 'Running' : 'Provisioned',
    observedGeneration: generation(obj),
    initialization: { bootstrapDataSecretCreated: true, infrastructureProvisioned: true },
    addresses: [{ type: 'InternalIP', address: machineAddress(name) }, { type: 'Hostname', address: name }],
    ...(nodeReady ? { nodeRef: { name } } : {}),
    conditions: conditions(existing, [
      ...housekeeping(),
      cond('BootstrapConfigReady', true, 'Ready', ''),
      cond('InfrastructureReady', true, 'Ready', ''),
      nodeReady ? cond('NodeReady', true, 'NodeReady', '') : { type: 'NodeReady', status: 'False', ...noNode },
      nodeReady ? cond('NodeHealthy', true, 'NodeHealthy', '') : { type: 'NodeHealthy', status: 'False', ...noNode },
      cond('Ready', nodeReady, 'Ready', 'NotReady'),
      cond('Available', nodeReady, 'Available', 'NotReady'),
      cond('UpToDate', true, 'UpToDate', ''),
    ], generation(obj), now),
  };
  return failure !== undefined ? { ...out, ...failureFields(schema, failure) } : out;
}

// ---- machine sets and deployments -------------------------------------------------------------------

export function machineSetStatus(obj: KObject, c: Counts, selector: string, version: string | undefined, now: Date): Json {
  const existing = (obj.status as Json | undefined)?.conditions;
  return {
    selector,
    ...replicaCounters(c),
    ...versions(version, c.replicas),
    observedGeneration: generation(obj),
    conditions: conditions(existing, [...housekeeping(), ...machinesConditions(c).filter((x) => x.type !== 'RollingOut')], generation(obj), now),
  };
}

/**
 * MachineDeployment: phase ScalingUp until every desired replica is available, then Running (the
 * MachineDeployment controller's phase rules); Available per spec.rollout maxUnavailable 0.
 */
export function machineDeploymentStatus(obj: KObject, c: Counts, selector: string, version: string | undefined, failure: string | undefined, now: Date): Json {
  const existing = (obj.status as Json | undefined)?.conditions;
  const phase = failure !== undefined ? 'Failed' : c.replicas > c.desired ? 'ScalingDown' : c.ready < c.desired ? 'ScalingUp' : 'Running';
  const available = c.ready >= c.desired;
  const availability = failure !== undefined
    ? { type: 'Available', status: 'False' as const, reason: 'NotAvailable', message: failure }
    : cond('Available', available, 'Available', 'NotAvailable',
      available ? undefined : `${c.ready} available replicas, at least ${c.desired} required (spec.rollout.strategy.rollingUpdate.maxUnavailable is 0, spec.replicas is ${c.desired})`);
  return {
    selector,
    ...replicaCounters(c),
    ...versions(version, c.replicas),
    phase,
    observedGeneration: generation(obj),
    conditions: conditions(existing, [...housekeeping(), availability, ...machinesConditions(c)], generation(obj), now),
  };
}

/**
 * MachineHealthCheck: `expectedMachines`/`currentHealthy` over the selected Machines (Argo CD's built-in
 * check compares the two) and `remediationsAllowed` from `remediation.triggerIf` (no machine is ever
 * unhealthy here, so it is the full allowance).
 */
export function machineHealthCheckStatus(obj: KObject, targets: readonly string[], healthy: number, now: Date): Json {
  const existing = (obj.status as Json | undefined)?.conditions;
  const triggerIf = ((obj.spec as Json | undefined)?.remediation as Json | undefined)?.triggerIf as Json | undefined;
  const allowed = remediationAllowance(triggerIf, targets.length);
  return {
    expectedMachines: targets.length,
    currentHealthy: healthy,
    remediationsAllowed: allowed,
    ...(targets.length > 0 ? { targets: [...targets].sort() } : {}),
    observedGeneration: generation(obj),
    conditions: conditions(existing, [
      cond('Paused', false, 'Paused', 'NotPaused'),
      cond('RemediationAllowed', true, 'RemediationAllowed', ''),
    ], generation(obj), now),
  };
}

/** intstr.GetScaledValueFromIntOrPercent(unhealthyLessThanOrEqualTo, total, roundUp=false); a range's upper bound. */
function remediationAllowance(triggerIf: Json | undefined, total: number): number {
  const limit = triggerIf?.unhealthyLessThanOrEqualTo;
  if (typeof limit === 'number') return Math.max(0, limit);
  if (typeof limit === 'string' && /^\d+%$/.test(limit)) return Math.floor((total * Number(limit.slice(0, -1))) / 100);
  const range = typeof triggerIf?.unhealthyInRange === 'string' ? /^\[\d+-(\d+)\]$/.exec(triggerIf.unhealthyInRange) : null;
  if (range?.[1] !== undefined) return Number(range[1]);
  return total;
}

// ---- control plane ---------------------------------------------------------------------------------

/**
 * KubeadmControlPlane / RKE2ControlPlane. Initialized and Available as soon as the first member serves
 * the API (etcd and static pods need no CNI), while Machines stay not Ready until their nodes are, which
 * is what the infrastructure wave's health check expects (argocd/health).
 */
export function controlPlaneStatus(obj: KObject, schema: Json | undefined, c: Counts, initialized: boolean, selector: string,
  failure: string | undefined, now: Date): Json {
  const existing = (obj.status as Json | undefined)?.conditions;
  const version = typeof (obj.spec as Json | undefined)?.version === 'string' ? String((obj.spec as Json).version) : undefined;
  const health = (type: string): Condition => (initialized ? cond(type, true, 'Healthy', '') : { type, status: 'Unknown', reason: 'HealthUnknown' });
  const initializedCondition: Condition = failure !== undefined
    ? { type: 'Initialized', status: 'False', reason: 'InitializationFailed', message: failure }
    : cond('Initialized', initialized, 'Initialized', 'NotInitialized');
  const out: Json = {
    ...(schemaHas(schema, ['status', 'selector']) ? { selector } : {}),
    ...replicaCounters(c),
    ...(initialized ? { initialization: { controlPlaneInitialized: true } } : {}),
    ...(initialized && version && schemaHas(schema, ['status', 'version']) ? { version } : {}),
    ...(schemaHas(schema, ['status', 'versions']) ? versions(version, c.replicas) : {}),
    observedGeneration: generation(obj),
    conditions: conditions(existing, [
      ...housekeeping(),
      cond('Available', initialized, 'Available', 'NotAvailable', failure),
      cond('CertificatesAvailable', initialized, 'Available', 'NotAvailable'),
      health('ControlPlaneComponentsHealthy'),
      health('EtcdClusterHealthy'),
      initializedCondition,
      ...machinesConditions(c),
    ], generation(obj), now),
  };
  return failure !== undefined ? { ...out, ...failureFields(schema, failure) } : out;
}

// ---- cluster ---------------------------------------------------------------------------------------

export interface ClusterFacts {
  readonly level: number;
  readonly failure: Failure | undefined;
  /** Found and not being deleted. */
  readonly infrastructureFound: boolean;
  readonly controlPlaneFound: boolean;
  readonly controlPlane: Counts & { readonly version?: string };
  readonly workers: Counts;
  /** No MachineDeployments at all: WorkersAvailable True with reason NoWorkers. */
  readonly noWorkers: boolean;
  /** Every MachineDeployment has its desired replicas available. */
  readonly workersAvailable: boolean;
  /** Set while deleting: the Deleting condition's reason. */
  readonly deleting?: string;
}

function clusterCounters(c: Counts & { version?: string }): Json {
  return { desiredReplicas: c.desired, ...replicaCounters(c), ...versions(c.version, c.replicas) };
}

/** The Cluster's v1beta2 status: phase, initialization, counters and the summary conditions. */
export function clusterStatus(obj: KObject, schema: Json | undefined, f: ClusterFacts, now: Date): Json {
  const existing = (obj.status as Json | undefined)?.conditions;
  const infra = done(f.level, 'infrastructure');
  const cpInit = done(f.level, 'controlPlane');
  const nodes = done(f.level, 'nodes');
  const cpAvailable = cpInit && f.controlPlaneFound;
  const workersAvailable = f.noWorkers || f.workersAvailable;
  const available = f.deleting === undefined && infra && cpAvailable && workersAvailable && nodes;
  const desired: Condition[] = [
    cond('Paused', false, 'Paused', 'NotPaused'),
    f.deleting !== undefined ? cond('Deleting', true, f.deleting, '') : cond('Deleting', false, 'Deleting', 'NotDeleting'),
    cond('InfrastructureReady', infra, 'Ready', f.infrastructureFound ? 'NotReady' : 'ObjectDoesNotExist'),
    cond('ControlPlaneInitialized', cpInit, 'Initialized', 'NotInitialized'),
    cond('ControlPlaneAvailable', cpAvailable, 'Available', f.controlPlaneFound ? 'NotAvailable' : 'ObjectDoesNotExist'),
    cond('RemoteConnectionProbe', cpInit, 'ProbeSucceeded', 'ProbeFailed'),
    f.noWorkers ? cond('WorkersAvailable', true, 'NoWorkers', '') : cond('WorkersAvailable', workersAvailable, 'Available', 'NotAvailable'),
    machinesCondition('ControlPlaneMachinesReady', f.controlPlane),
    machinesCondition('WorkerMachinesReady', f.workers),
    cond('ControlPlaneMachinesUpToDate', true, f.controlPlane.replicas === 0 ? 'NoReplicas' : 'UpToDate', ''),
    cond('WorkerMachinesUpToDate', true, f.workers.replicas === 0 ? 'NoReplicas' : 'UpToDate', ''),
    cond('RollingOut', false, 'RollingOut', 'NotRollingOut'),
    cond('Remediating', false, 'Remediating', 'NotRemediating'),
    cond('ScalingUp', scalingUp(f), 'ScalingUp', 'NotScalingUp'),
    cond('ScalingDown', false, 'ScalingDown', 'NotScalingDown'),
    cond('Available', available, 'Available', 'NotAvailable'),
  ];
  const failed = f.failure;
  const withFailure = failed === undefined ? desired : desired.map((c) => (c.type === STEP_CONDITIONS[failed.step].type
    ? { type: c.type, status: 'False' as const, reason: STEP_CONDITIONS[failed.step].failedReason, message: failed.message } : c));
  // cluster_controller_phases.go reconcilePhase: Provisioned once the infrastructure is; Failed and Deleting win.
  const phase = f.deleting !== undefined ? 'Deleting' : failed !== undefined ? 'Failed' : infra ? 'Provisioned' : 'Provisioning';
  const initialization = cpInit ? { infrastructureProvisioned: true, controlPlaneInitialized: true } : infra ? { infrastructureProvisioned: true } : undefined;
  return {
    phase,
    ...(initialization ? { initialization } : {}),
    ...(f.controlPlaneFound ? { controlPlane: clusterCounters(f.controlPlane) } : {}),
    workers: clusterCounters(f.workers),
    observedGeneration: generation(obj),
    conditions: conditions(existing, withFailure, generation(obj), now),
    ...(failed !== undefined ? failureFields(schema, failed.message) : {}),
  };
}

function machinesCondition(type: string, c: Counts): Condition {
  if (c.replicas === 0) return cond(type, true, 'NoReplicas', '');
  return cond(type, c.ready === c.replicas, 'Ready', 'NotReady');
}

const scalingUp = (f: ClusterFacts) => f.controlPlane.replicas < f.controlPlane.desired || f.workers.replicas < f.workers.desired;
