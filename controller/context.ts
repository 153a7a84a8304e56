/**
 * What every reconcile step shares: the injected dependencies, the context a reconcile fills in, and the
 * helpers that turn Kubernetes failures into LatticeErrors and write the Secrets the controller owns.
 */
import type { Logger } from 'pino';
import { asLatticeError, stalling, transient, waiting, LatticeError } from '../core/errors.js';
import { isRecord } from '../core/data.js';
import type { Renderer } from '../core/render/render.js';
import type { LatticeCluster } from '../core/spec/model.js';
import type { SpecValidator } from '../core/spec/validate.js';
import type { CapiClusterFacts, PoolFacts } from './capi.js';
import type { ControllerConfig } from './config.js';
import type { ClusterEvent, EventSink } from './events.js';
import { isKubeError, KubeError, type KObject, type Kube, type SecretObject } from './kube.js';
import type { ControllerMetrics } from './metrics.js';
import type { Outcome } from './outcome.js';
import { isOurs, secretMatches } from './registration.js';
import { CONTROLLER_MANAGER, LABEL, NAMES, NAMESPACE, SECRET, type ClusterResources } from './resources.js';
import { decodeState, EMPTY_STATE, sameState, stateSecret, type ClusterState } from './state.js';
import type { DesiredCondition } from './conditions.js';
import type { AgentIntegration } from './agents.js';
import type { AgentInfo } from './cell/server.js';
import type { Mover } from '../kube/mover.js';
import type { Attempt } from './cache.js';

/** What a reconcile needs; all of it injected. */
export interface ReconcileDeps {
  readonly kube: Kube;
  readonly log: Logger;
  readonly now: () => Date;
  readonly config: ControllerConfig;
  readonly validator: SpecValidator;
  readonly renderer: Renderer;
  readonly resources: ClusterResources;
  readonly events: EventSink;
  readonly metrics?: ControllerMetrics;
  /** The agent's connection state per cluster, when no cell is wired (tests of the stage conditions). */
  readonly agent?: (cluster: string) => { readonly connected: boolean; readonly message?: string };
  /** The cell (M7): token store, bootstrap delivery, the agents' connections. */
  readonly agents?: AgentIntegration;
  /** Every LatticeCluster known (the watch cache): the `--self` cluster's childrenHealth. */
  readonly clusters?: () => readonly KObject[];
  /**
   * Validation results by input: a settled cluster is reconciled again and again with the same spec, and
   * validating (parse with positions, schema, rules) is the costliest pure step of a reconcile.
   */
  readonly validations?: ValidationCache;
  /** Lists, pauses, moves and deletes Cluster API objects in the parent (M8 pivot and unpivot). */
  readonly mover?: Mover;
  /**
   * Called before every action of a pivot or unpivot that changes the world (pivot.ts CHECKPOINTS). A
   * rejection stops the reconcile there; the crash tests use it to stop a controller at each boundary.
   */
  readonly checkpoint?: (point: string, cluster: string) => void | Promise<void>;
  /** The last spec sync each cluster's agent acknowledged (`<connectionId>/<generation>`), in memory. */
  readonly specSyncs?: Map<string, string>;
  /** Whether this replica still leads: a pivot step never acts on a replica that lost its Lease. */
  readonly isLeader?: () => boolean;
  /**
   * A Kube over the watches' caches for the reconcile's read-only pass (cache.ts), noting in `attempt` what
   * it refused. Unset: every reconcile reads the API server.
   */
  readonly cachedKube?: (attempt: Attempt) => Kube;
}

export interface ReconcileResult extends Pick<Outcome, 'requeueAfterMs' | 'retry'> {
  readonly result: Outcome['result'] | 'gone';
  readonly phase?: string;
  readonly statusWritten: boolean;
}

/** Mutable state of one reconcile, filled by the steps. */
export interface Ctx {
  readonly name: string;
  lc: KObject;
  readonly generation: number;
  readonly statusBefore: unknown;
  readonly namespace: string;
  readonly self: boolean;
  provider?: KObject;
  model?: LatticeCluster;
  accepted: boolean;
  state?: ClusterState;
  capiExists?: boolean;
  capi?: CapiClusterFacts;
  pools?: PoolFacts;
  failure?: { reason: string; message: string };
  timeoutText?: string;
  stage?: DesiredCondition[];
  deletion?: { protected: boolean; unpivoting: boolean };
  /** The cell's view of this cluster's agent (observeAgent). */
  agentInfo?: AgentInfo;
  /** The CAPI Cluster as read by observeCapi (a shadow after the pivot). */
  capiCluster?: KObject;
  /** A pivot in progress or done (pivot.ts), for the Pivoted condition and the phase. */
  pivot?: { complete: boolean; message: string };
  /** Why a pivot that could start waits (a Machine without its Node...), for the Pivoted condition. */
  pivotWaiting?: string;
  /** The generation the child reports it applied to itself (after the pivot). */
  appliedGeneration?: number;
  /** Set by the deletion steps once everything is gone: remove the finalizer instead of writing status. */
  finished?: boolean;
}

export type Step = (ctx: Ctx, deps: ReconcileDeps) => Promise<void>;

export const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
export const secretOf = (o: KObject | undefined): SecretObject | undefined => o as SecretObject | undefined;
export const b64decode = (v: string) => Buffer.from(v, 'base64').toString('utf8');

/** Turns any failure of a Kubernetes call into a LatticeError with a message safe for conditions. */
export function kubeFailure(e: unknown, what: string): LatticeError {
  if (e instanceof LatticeError) return e;
  if (e instanceof KubeError) {
    if (e.code === 409) return transient('Conflict', `${what}: the object changed meanwhile; retrying`, e);
    if (e.code === 403) return transient('Forbidden', `${what}: forbidden (check the controller's RBAC)`, e);
    if (e.reason === 'NotServed') return waiting('ResourceNotServed', `${what}: the API server does not serve this resource (is its CRD installed?)`, e);
    return transient('ApiError', `${what}: the API server answered ${e.code} ${e.reason}`, e);
  }
  return asLatticeError(e, 'ApiUnavailable');
}

export async function guarded<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw kubeFailure(e, what);
  }
}

/** Results of `validator.validate`, by input text (see ReconcileDeps.validations). */
export type ValidationCache = Map<string, ReturnType<SpecValidator['validate']>>;

export async function namespaceExists(ctx: Ctx, deps: ReconcileDeps, namespace: string): Promise<void> {
  const ns = await guarded(`reading Namespace ${namespace}`, () => deps.kube.get(NAMESPACE, namespace));
  if (!ns || ns.metadata.deletionTimestamp) {
    throw waiting('NamespaceNotFound', `Namespace ${namespace} does not exist yet (the GitOps engine creates it with the cluster)`);
  }
}

/** Creates or updates a Secret the controller owns; returns what it did. Refuses to touch anyone else's. */
export async function applySecret(deps: ReconcileDeps, desired: SecretObject, what: string): Promise<'created' | 'updated' | 'unchanged'> {
  const { name } = desired.metadata;
  const namespace = desired.metadata.namespace ?? '';
  const live = secretOf(await guarded(`reading ${what}`, () => deps.kube.get(SECRET, name, namespace)));
  if (!live) {
    try {
      await deps.kube.create(SECRET, desired);
    } catch (e) {
      // Creating in a namespace that does not exist is a 404 (Argo CD or Flux not installed yet, say).
      if (isKubeError(e, 404)) throw waiting('NamespaceNotFound', `cannot create ${what}: Namespace ${namespace} does not exist`, e);
      throw kubeFailure(e, `creating ${what}`);
    }
    return 'created';
  }
  if (!isOurs(live)) {
    throw stalling('SecretConflict', `${what} exists and is not managed by Lattice (label ${LABEL.managedBy}: ${CONTROLLER_MANAGER}); delete or rename it`);
  }
  if (secretMatches(live, desired)) return 'unchanged';
  if ((live.type ?? 'Opaque') !== (desired.type ?? 'Opaque')) {
    // A Secret's type is immutable: replace the object.
    await guarded(`replacing ${what}`, async () => {
      await deps.kube.remove(SECRET, name, namespace);
      await deps.kube.create(SECRET, desired);
    });
    return 'updated';
  }
  await guarded(`updating ${what}`, () => deps.kube.replace(SECRET, { ...desired, metadata: { ...desired.metadata, resourceVersion: live.metadata.resourceVersion } }));
  return 'updated';
}

export async function event(ctx: Ctx, deps: ReconcileDeps, e: ClusterEvent): Promise<void> {
  await deps.events.record(ctx.lc, e);
}

/** The markers of a cluster as stored now (empty when the state Secret does not exist). */
export async function readStateOf(deps: Pick<ReconcileDeps, 'kube'>, cluster: string): Promise<ClusterState> {
  const namespace = NAMES.namespace(cluster);
  const live = secretOf(await guarded(`reading Secret ${namespace}/${NAMES.stateSecret}`, () => deps.kube.get(SECRET, NAMES.stateSecret, namespace)));
  return live ? decodeState(live.data) : EMPTY_STATE;
}

export async function readState(ctx: Ctx, deps: ReconcileDeps): Promise<{ state: ClusterState; live?: SecretObject }> {
  const live = secretOf(await guarded(`reading Secret ${ctx.namespace}/${NAMES.stateSecret}`, () => deps.kube.get(SECRET, NAMES.stateSecret, ctx.namespace)));
  return live ? { state: decodeState(live.data), live } : { state: EMPTY_STATE };
}

/**
 * Changes the state Secret: `change` applies to the markers as they are now (read here), and the write is
 * conditional on that read, so concurrent writers (the reconcile, the cell's token store) never lose each
 * other's markers: a conflict is a transient error and the caller retries. Returns the new state.
 */
export async function writeState(deps: Pick<ReconcileDeps, 'kube'>, cluster: string, change: Partial<ClusterState> | ((current: ClusterState) => ClusterState)): Promise<ClusterState> {
  const namespace = NAMES.namespace(cluster);
  const id = `Secret ${namespace}/${NAMES.stateSecret}`;
  const live = secretOf(await guarded(`reading ${id}`, () => deps.kube.get(SECRET, NAMES.stateSecret, namespace)));
  const current = live ? decodeState(live.data) : EMPTY_STATE;
  const next = typeof change === 'function' ? change(current) : { ...current, ...change };
  if (live && sameState(current, next)) return current;
  const desired = stateSecret(cluster, next);
  if (!live) {
    try {
      await deps.kube.create(SECRET, desired);
    } catch (e) {
      if (isKubeError(e, 404)) throw waiting('NamespaceNotFound', `cannot create ${id}: Namespace ${namespace} does not exist`, e);
      throw kubeFailure(e, `creating ${id}`);
    }
    return next;
  }
  if (!isOurs(live)) throw stalling('SecretConflict', `${id} exists and is not managed by Lattice (label ${LABEL.managedBy}: ${CONTROLLER_MANAGER}); delete or rename it`);
  await guarded(`updating ${id}`, () => deps.kube.replace(SECRET, { ...desired, metadata: { ...desired.metadata, resourceVersion: live.metadata.resourceVersion } }));
  return next;
}
