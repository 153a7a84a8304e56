/**
 * Reading Cluster API status, in both shapes (research/capi.md B.9): a v1beta2 object, its v1beta1 view,
 * and the mixes conversion produces (v1beta2 conditions under `status.v1beta2` in the v1beta1 view; v1beta1
 * conditions and failure fields under `status.deprecated.v1beta1` in the v1beta2 view). Pure: objects in,
 * facts out.
 */
import { isRecord } from '../core/data.js';
import type { LatticeCluster, WorkerPoolStatus } from '../core/spec/model.js';
import { ANNOTATION, LABEL } from './resources.js';

type Rec = Record<string, unknown>;
const rec = (v: unknown): Rec => (isRecord(v) ? v : {});
const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** A condition of `type` from wherever a shape keeps it: v1beta2 list first, then the other shape's. */
export function capiCondition(obj: unknown, type: string): Rec | undefined {
  const status = rec(rec(obj).status);
  const lists = [status.conditions, rec(status.v1beta2).conditions, rec(rec(status.deprecated).v1beta1).conditions];
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    const found = list.find((c): c is Rec => isRecord(c) && c.type === type);
    if (found) return found;
  }
  return undefined;
}

const isTrue = (obj: unknown, type: string) => capiCondition(obj, type)?.status === 'True';

/** What the controller needs to know about a cluster's CAPI `Cluster` (and its control plane). */
export interface CapiClusterFacts {
  readonly deleting: boolean;
  readonly phase?: string;
  readonly infrastructureReady: boolean;
  readonly controlPlaneInitialized: boolean;
  /** CAPI's explanation while the infrastructure is not ready, if it gives one. */
  readonly infrastructureMessage?: string;
  readonly controlPlaneMessage?: string;
  /** A terminal failure CAPI reports: v1beta1 failureReason/failureMessage (or phase Failed). */
  readonly failure?: { readonly reason: string; readonly message: string };
  /** `host:port` of the API server, once CAPI knows it. */
  readonly endpoint?: string;
  readonly controlPlaneDesired?: number;
  readonly controlPlaneReady?: number;
}

/** UpperCamelCase for a condition reason from whatever CAPI wrote (`CreateError`, `ProvisioningFailed`). */
function reasonFrom(value: string | undefined, fallback: string): string {
  const cleaned = (value ?? '').replace(/[^A-Za-z0-9]/g, '');
  return /^[A-Za-z]/.test(cleaned) ? cleaned : fallback;
}

/** Facts from a CAPI Cluster and, when the Cluster does not carry the counters (v1beta1), its control plane. */
export function clusterFacts(cluster: unknown, controlPlane?: unknown): CapiClusterFacts {
  const c = rec(cluster);
  const status = rec(c.status);
  const init = rec(status.initialization);
  const deprecated = rec(rec(status.deprecated).v1beta1);
  const infrastructureReady = init.infrastructureProvisioned === true || status.infrastructureReady === true || isTrue(c, 'InfrastructureReady');
  const controlPlaneInitialized = init.controlPlaneInitialized === true || isTrue(c, 'ControlPlaneInitialized')
    // v1beta1 kept no initialized flag on the Cluster, but a ready control plane has been initialized.
    || status.controlPlaneReady === true;
  const failureReason = str(status.failureReason) ?? str(deprecated.failureReason);
  const failureMessage = str(status.failureMessage) ?? str(deprecated.failureMessage);
  const infraCondition = capiCondition(c, 'InfrastructureReady');
  const cpCondition = capiCondition(c, 'ControlPlaneInitialized');
  let failure: CapiClusterFacts['failure'];
  if (failureReason !== undefined || failureMessage !== undefined || status.phase === 'Failed') {
    // The failed step's condition names the step (ProvisioningFailed, InitializationFailed...).
    const failedCondition = [infraCondition, cpCondition, capiCondition(c, 'WorkersAvailable'), capiCondition(c, 'Available')]
      .find((x) => x?.status === 'False' && str(x.message) !== undefined);
    failure = {
      reason: reasonFrom(str(failedCondition?.reason) ?? failureReason, 'ClusterFailed'),
      message: failureMessage ?? str(failedCondition?.message) ?? 'Cluster API reports the cluster as failed',
    };
  }
  const endpoint = rec(rec(c.spec).controlPlaneEndpoint);
  const host = str(endpoint.host);
  const port = int(endpoint.port);
  const counters = rec(status.controlPlane);
  const cp = rec(controlPlane);
  const cpStatus = rec(cp.status);
  const message = (x: Rec | undefined) => (x?.status !== 'True' ? str(x?.message) : undefined);
  return {
    deleting: str(rec(c.metadata).deletionTimestamp) !== undefined,
    ...(str(status.phase) ? { phase: str(status.phase) } : {}),
    infrastructureReady,
    controlPlaneInitialized,
    ...(message(infraCondition) ? { infrastructureMessage: message(infraCondition) } : {}),
    ...(message(cpCondition) ? { controlPlaneMessage: message(cpCondition) } : {}),
    ...(failure ? { failure } : {}),
    ...(host && port ? { endpoint: `${host}:${port}` } : {}),
    ...optional('controlPlaneDesired', int(counters.desiredReplicas) ?? int(rec(cp.spec).replicas)),
    ...optional('controlPlaneReady', int(counters.readyReplicas) ?? int(cpStatus.readyReplicas)),
  };
}

function optional<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

/** The control plane a Cluster references: v1beta2 `{apiGroup, kind, name}` or v1beta1 `{apiVersion, kind, name}`. */
export function controlPlaneRef(cluster: unknown): { kind: string; name: string } | undefined {
  const ref = rec(rec(rec(cluster).spec).controlPlaneRef);
  const kind = str(ref.kind);
  const name = str(ref.name);
  return kind && name ? { kind, name } : undefined;
}

export interface PoolFacts {
  /** Per pool id, for `status.workerPools`. */
  readonly pools: Record<string, WorkerPoolStatus>;
  readonly readyWorkers: number;
  /** Every pool of the spec has a MachineDeployment with its desired replicas ready. */
  readonly allReady: boolean;
  /** "general: 1/2 ready" for every pool that is not ready, in pool order. */
  readonly notReady: readonly string[];
}

/**
 * Worker pools from the spec and the cluster's MachineDeployments (matched by the `lattice.dev/pool`
 * label the renderer puts on them). Desired is what CAPI holds (`spec.replicas`, which the autoscaler owns
 * for autoscaled pools), falling back to the spec before the MachineDeployment exists.
 */
export function poolFacts(cluster: LatticeCluster, machineDeployments: readonly unknown[]): PoolFacts {
  const byPool = new Map<string, Rec>();
  for (const md of machineDeployments) {
    const pool = rec(rec(rec(md).metadata).labels)[LABEL.pool];
    if (typeof pool === 'string') byPool.set(pool, rec(md));
  }
  const pools: Record<string, WorkerPoolStatus> = {};
  const notReady: string[] = [];
  let readyWorkers = 0;
  const ids = Object.keys(cluster.spec.nodes.workerPools ?? {}).sort();
  for (const id of ids) {
    const spec = cluster.spec.nodes.workerPools?.[id];
    if (!spec) continue;
    const md = byPool.get(id);
    const annotations = rec(rec(md?.metadata).annotations);
    const autoscaling = md ? typeof annotations[ANNOTATION.autoscalerMin] === 'string' && typeof annotations[ANNOTATION.autoscalerMax] === 'string' : spec.min !== undefined && spec.max !== undefined;
    const status = rec(md?.status);
    const desired = int(rec(md?.spec).replicas) ?? spec.replicas ?? spec.min ?? 0;
    const current = int(status.replicas) ?? 0;
    const ready = int(status.readyReplicas) ?? int(status.availableReplicas) ?? 0;
    readyWorkers += ready;
    let message: string;
    if (!md) message = 'MachineDeployment not created yet';
    else if (status.phase === 'Failed') message = `MachineDeployment failed: ${str(capiCondition(md, 'Available')?.message) ?? str(status.failureMessage) ?? 'see its conditions'}`;
    else if (ready >= desired && current <= desired) message = `${ready}/${desired} ready`;
    else message = `${ready}/${desired} ready, ${current} created`;
    const ok = md !== undefined && status.phase !== 'Failed' && ready >= desired;
    if (!ok) notReady.push(`${id}: ${message}`);
    pools[id] = { desired, current, ready, autoscaling, message };
  }
  return { pools, readyWorkers, allReady: notReady.length === 0, notReady };
}

/**
 * Worker pools after the pivot: the parent's MachineDeployments are inert shadows whose status froze at
 * the pivot, so readiness comes from the child's own Nodes as its agent reports them (by their
 * `lattice.dev/pool` label), and desired from the spec.
 */
export function poolFactsFromHealth(cluster: LatticeCluster, pools: readonly { readonly name: string; readonly ready: number; readonly total: number }[]): PoolFacts {
  const byName = new Map(pools.map((p) => [p.name, p]));
  const out: Record<string, WorkerPoolStatus> = {};
  const notReady: string[] = [];
  let readyWorkers = 0;
  for (const id of Object.keys(cluster.spec.nodes.workerPools ?? {}).sort()) {
    const spec = cluster.spec.nodes.workerPools?.[id];
    if (!spec) continue;
    const seen = byName.get(id);
    const desired = spec.replicas ?? spec.min ?? 0;
    const ready = seen?.ready ?? 0;
    const current = seen?.total ?? 0;
    readyWorkers += ready;
    const message = ready >= desired && current <= desired ? `${ready}/${desired} ready` : `${ready}/${desired} ready, ${current} nodes`;
    if (ready < desired) notReady.push(`${id}: ${message}`);
    out[id] = { desired, current, ready, autoscaling: spec.min !== undefined && spec.max !== undefined, message };
  }
  return { pools: out, readyWorkers, allReady: notReady.length === 0, notReady };
}
