/**
 * Reconciling one LatticeCluster: a list of small steps that read the world and act on it, then one
 * outcome (outcome.ts) that becomes the status, patched through /status only when it changed, and the
 * requeue. Level-based: the key is all a reconcile gets; everything else is read now: from the watches'
 * caches first, read-only, and from the API server when that finds something to do (cache.ts).
 *
 * Steps, in order (each may stop the pipeline with a LatticeError):
 *   ensureFinalizer   lattice.dev/unpivot, so deletion waits for teardown (DESIGN §7)
 *   resolveProvider   the InfraProvider in the controller's namespace
 *   validateSpec      the same rules as `lattice validate` (core), InfraProvider type included
 *   copyCredentials   the InfraProvider's Secret as capi-X/<providerRef>-credentials (+ AWS identity)
 *                     → the spec is accepted: status.observedGeneration moves (the wave-0 gate)
 *   loadState         the durable state Secret capi-X/lattice-state
 *   observeCapi       Cluster (v1beta2/v1beta1 shapes), control plane, MachineDeployments; provisioning clock
 *   observeStages     the addon objects of the GitOps engine → stage conditions
 *   register          the Argo CD cluster Secret or the Flux kubeconfig Secret: CAPI's kubeconfig, or the
 *                     cell's API proxy while the cluster is pivoted (M9)
 *   deliverBootstrap  the agent's one-time token into the child (M7)
 *   specSyncStep      the spec to the agent; after the pivot, until the child applied the generation
 *   pivotStep         pivot once the cluster is up; afterwards keep the parent's copies shadows (pivot.ts)
 *   observePivot      the Pivoted condition from where the pivot step got to
 * Deletion (deletionTimestamp set) has its own list:
 *   protection        lattice.dev/deletion-protection: "true" holds everything (Stalled)
 *   markers           the durable markers; a pivot that never completed is aborted (source unpaused)
 *   unpivotFirst      a pivoted cluster's objects come back first (pivot.ts): phase Unpivoting
 *   registration      back to CAPI's kubeconfig once the objects are back (register, above)
 *   teardown          delete the CAPI Cluster and wait until Cluster API has removed it (never for --self)
 *   cleanup           registration, credentials copy, state Secret; then the finalizer goes
 */
import { asLatticeError, LatticeError } from '../core/errors.js';
import { statusEvents } from './events.js';
import type { KObject } from './kube.js';
import { computeOutcome, mergePatch, type Observed } from './outcome.js';
import { LATTICE_CLUSTER, NAMES } from './resources.js';
import { errorSummary } from './watch.js';
import { deleteSteps, finishDeletion } from './deletion.js';
import { removeRegistration, STEPS } from './steps.js';
import { bootstrapTokenStatus } from './agents.js';
import { kubeFailure, rec, type Ctx, type ReconcileDeps, type ReconcileResult } from './context.js';
import { readOnlyDeps, type Attempt } from './cache.js';

/** childrenHealth of the `--self` cluster: every other LatticeCluster, as far as the parent knows it with the cell's view of each agent. */
function childrenHealth(ctx: Ctx, deps: ReconcileDeps): Record<string, unknown>[] | undefined {
  if (!ctx.self || !deps.clusters) return undefined;
  return deps.clusters().filter((c) => c.metadata.name !== ctx.name).map((c) => {
    const spec = rec(c.spec);
    const status = rec(c.status);
    const cp = rec(rec(spec.nodes).controlPlane);
    const pools = Object.values(rec(rec(spec.nodes).workerPools)).map(rec);
    const totalControlPlane = typeof cp.replicas === 'number' ? cp.replicas : 0;
    const totalWorkers = pools.reduce((n, p) => n + (typeof p.replicas === 'number' ? p.replicas : typeof p.min === 'number' ? p.min : 0), 0);
    const readyControlPlane = typeof status.readyControlPlane === 'number' ? status.readyControlPlane : 0;
    const readyWorkers = typeof status.readyWorkers === 'number' ? status.readyWorkers : 0;
    const agent = deps.agents?.agent(c.metadata.name);
    const agentState = !deps.agents ? 'Unknown' : agent ? 'Connected' : rec(c.status).bootstrapComplete === true ? 'Disconnected' : 'Unknown';
    return { name: c.metadata.name, agentState, readyControlPlane, totalControlPlane, readyNodes: readyControlPlane + readyWorkers, totalNodes: totalControlPlane + totalWorkers };
  }).sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * Reconciles the LatticeCluster `name` once. Never throws: failures become status and a retry. With the
 * watches' caches wired in (`deps.cachedKube`), a read-only pass over them comes first (cache.ts): when it
 * finds nothing to do and the status already says what it computed, that is the result, and no request was
 * made; otherwise the reconcile runs against the API server as if the first pass had not happened.
 */
export async function reconcile(deps: ReconcileDeps, name: string): Promise<ReconcileResult> {
  if (deps.cachedKube) {
    const attempt: Attempt = {};
    const settled = await reconcilePass(readOnlyDeps(deps, deps.cachedKube(attempt), attempt), name, { attempt, log: deps.log });
    deps.metrics?.reconcilePasses.inc({ pass: settled ? 'cached' : 'cached-then-live' });
    if (settled) return settled;
  }
  const result = await reconcilePass(deps, name);
  // Without a read-only pass the live one always concludes.
  return result ?? { result: 'error', retry: true, statusWritten: false };
}

/**
 * One pass of the steps. `readOnly`: the pass runs against the caches with every action refused, and returns
 * undefined (the live pass takes over) when it tried to act, when its status differs from the stored one, or
 * when the cluster is gone, being deleted or has no status yet (those always read the server).
 */
async function reconcilePass(deps: ReconcileDeps, name: string, readOnly?: { attempt: Attempt; log: ReconcileDeps['log'] }): Promise<ReconcileResult | undefined> {
  let lc: KObject | undefined;
  try {
    lc = await deps.kube.get(LATTICE_CLUSTER, name);
  } catch (e) {
    if (readOnly) return undefined;
    deps.log.warn({ cluster: name, err: kubeFailure(e, 'reading').message }, 'cluster not readable');
    return { result: 'error', retry: true, statusWritten: false };
  }
  if (!lc) {
    if (readOnly) return undefined;
    // Deleted without our finalizer (e.g. the controller was not running): leave no registration behind.
    try {
      await removeRegistration(deps, name);
    } catch (e) {
      deps.log.warn({ cluster: name, err: asLatticeError(e).message }, 'registration cleanup failed');
      return { result: 'error', retry: true, statusWritten: false };
    }
    return { result: 'gone', retry: false, statusWritten: false };
  }

  const ctx: Ctx = {
    name,
    lc,
    generation: typeof lc.metadata.generation === 'number' ? lc.metadata.generation : 1,
    statusBefore: lc.status,
    namespace: NAMES.namespace(name),
    self: deps.config.self === name,
    accepted: false,
  };
  const deleting = lc.metadata.deletionTimestamp !== undefined;
  // A cluster never reconciled gets its first status: nothing to learn from the caches first.
  if (readOnly && (deleting || lc.status === undefined)) return undefined;
  let error: LatticeError | undefined;
  for (const step of deleting ? deleteSteps : STEPS) {
    try {
      await step(ctx, deps);
    } catch (e) {
      error = e instanceof LatticeError ? e : kubeFailure(e, 'reconciling');
      break;
    }
  }
  if (readOnly?.attempt.action !== undefined) return undefined;

  if (deleting && ctx.finished && !error) return finishDeletion(ctx, deps);

  const observed: Observed = {
    generation: ctx.generation,
    accepted: ctx.accepted,
    ...(error ? { error } : {}),
    ...(ctx.capiExists !== undefined ? { capiExists: ctx.capiExists } : {}),
    ...(ctx.failure && !deleting ? { failure: ctx.failure } : {}),
    ...(ctx.stage ? { stageConditions: ctx.stage } : {}),
    ...(ctx.capi?.controlPlaneReady !== undefined ? { readyControlPlane: ctx.capi.controlPlaneReady } : ctx.capiExists === false ? { readyControlPlane: 0 } : {}),
    ...(ctx.pools ? { readyWorkers: ctx.pools.readyWorkers, workerPools: ctx.pools.pools } : {}),
    ...(ctx.capi?.endpoint ? { endpoint: ctx.capi.endpoint } : {}),
    ...(ctx.state ? { markers: { pivotComplete: ctx.state.pivotComplete, unpivotImportComplete: ctx.state.unpivotImportComplete, bootstrapComplete: ctx.state.bootstrapComplete } } : {}),
    ...(childrenHealth(ctx, deps) ? { childrenHealth: childrenHealth(ctx, deps) } : {}),
    ...(ctx.deletion ? { deletion: ctx.deletion } : {}),
    ...(deps.agents && ctx.state ? { bootstrapToken: bootstrapTokenStatus(ctx.state, deps.now()) ?? null } : {}),
    ...(ctx.agentInfo?.lastHeartbeat ? { lastHeartbeat: ctx.agentInfo.lastHeartbeat } : {}),
    ...(ctx.state?.pivot && !ctx.state.pivotComplete && !deleting ? { pivoting: true } : {}),
    ...(ctx.state && !ctx.state.pivot && !ctx.state.pivotComplete && (!deps.config.pivot || !deps.agents) ? { pivotDisabled: true } : {}),
    ...(ctx.appliedGeneration !== undefined ? { appliedGeneration: ctx.appliedGeneration } : {}),
  };
  const outcome = computeOutcome(observed, ctx.statusBefore, deps.config, deps.now());
  const patch = mergePatch(ctx.statusBefore, outcome.status);
  // Only the live pass writes a status (and the events of its transitions).
  if (readOnly && patch !== undefined) return undefined;
  const log = (readOnly?.log ?? deps.log).child({ cluster: name });
  if (error) {
    const fields = { code: error.code, kind: error.kind, message: error.message, ...(error.cause !== undefined ? { cause: errorSummary(error.cause) } : {}) };
    if (error.kind === 'transient') log.warn(fields, 'reconcile failed; retrying');
    else log.debug(fields, 'reconcile stopped');
  }

  let statusWritten = false;
  if (patch !== undefined) {
    try {
      ctx.lc = await deps.kube.mergePatch(LATTICE_CLUSTER, name, undefined, { metadata: { resourceVersion: ctx.lc.metadata.resourceVersion }, status: patch }, { status: true });
      statusWritten = true;
      deps.metrics?.statusWrites.inc();
    } catch (e) {
      const failure = kubeFailure(e, `writing the status of LatticeCluster ${name}`);
      log.warn({ code: failure.code, message: failure.message }, 'status not written; retrying');
      return { result: 'error', retry: true, statusWritten: false, phase: outcome.phase };
    }
    const before = rec(ctx.statusBefore);
    if (before.phase !== outcome.phase) log.info({ phase: outcome.phase, previous: before.phase }, 'phase changed');
    // Independent and best effort (the sink never throws): recorded together rather than one round trip
    // after another, which a cluster taken over in one step (a dozen transitions) would otherwise wait for.
    await Promise.all(statusEvents(ctx.statusBefore, outcome.status).map((e) => deps.events.record(ctx.lc, e)));
  }
  return { result: outcome.result, retry: outcome.retry, statusWritten, phase: outcome.phase, ...(outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : {}) };
}

export type { ReconcileDeps, ReconcileResult, ValidationCache } from './context.js';
