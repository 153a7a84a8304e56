/**
 * Pivot, post-pivot spec sync and unpivot, the parent's side (DESIGN §7, issue M8). A resumable state
 * machine: every step reads the world, acts idempotently and records what it finished in the durable state
 * Secret (state.ts), so a controller that crashes anywhere picks up where the markers say, and the agent's
 * receiver is idempotent too (409 = reuse, uid map rebuilt from `lattice.dev/source-uid`).
 *
 * Pivot, in order, each a boundary a crash may fall on:
 *   start     preconditions hold → `pivot.moveId` recorded (before anything is paused: whoever finds the
 *             marker knows the source may be paused by us)
 *   pause     the Cluster's spec.paused first (it pauses everything CAPI does for the cluster), then the
 *             annotation on the rest
 *   batches   discover (core/move/graph.ts), owners first, one MoveBatch per layer, each acknowledged
 *   complete  MoveComplete: the agent unpauses in the child and records it there
 *   record    `pivotComplete` in the state Secret: from here on the child holds the live objects, and the
 *             source is never unpaused again
 *   cleanup   the non-git objects deleted from the parent children-first (finalizers stripped), the
 *             git-managed ones left as shadows (paused, finalizers stripped, `lattice.dev/pivoted-to`), then
 *             `pivotCleanupComplete`
 * Before `record`, a failure that cannot be retried, a timeout or the spec's deletion aborts: the child's
 * paused copies are released and the source unpaused.
 *
 * Unpivot (deletion of a pivoted cluster): request → the agent pauses in the child and streams its objects
 * back → import (shadows adopted, the rest recreated with their finalizers, paused) → `unpivotImportComplete`
 * → release (the agent deletes its paused copies) → `unpivotReleased` → unpause in the parent → the
 * deletion steps delete the CAPI Cluster and Cluster API tears the infrastructure down.
 *
 * `deps.checkpoint(point)` is called before every action that changes the world; tests use it to stop a
 * controller at each boundary (test/pivot-crash.test.ts).
 */
import { createHash, randomUUID } from 'node:crypto';
import { stalling, transient, waiting, LatticeError } from '../core/errors.js';
import { clusterLast, MOVE, moveBlocker, moveGraph, isCapiCluster, isPaused, pauseAcknowledged, withPause, type ListedObject, type MoveNode } from '../core/move/graph.js';
import { groupOf } from '../core/render/versions.js';
import { AckCode, type Ack } from './cell/protocol.js';
import type { IncomingObject, Mover } from '../kube/mover.js';
import { formatDuration } from './config.js';
import { event, guarded, rec, writeState, type Ctx, type ReconcileDeps, type Step } from './context.js';
import { NAMES } from './resources.js';
import type { ClusterState } from './state.js';

/** The points `deps.checkpoint` is called at, in the order a pivot and an unpivot reach them. */
export const CHECKPOINTS = [
  'pivot:release-leftovers', 'pivot:start', 'pivot:pause-cluster', 'pivot:pause-objects', 'pivot:batch', 'pivot:completing', 'pivot:complete', 'pivot:record',
  'pivot:delete', 'pivot:shadow', 'pivot:cleaned',
  'unpivot:request', 'unpivot:import', 'unpivot:record', 'unpivot:release', 'unpivot:released', 'unpivot:unpause',
  'abort:release', 'abort:unpause', 'abort:record',
  // deletion.ts: just before the CAPI Cluster is deleted (Cluster API then tears the infrastructure down).
  'teardown:delete',
] as const;
export type Checkpoint = (typeof CHECKPOINTS)[number];

async function checkpoint(deps: ReconcileDeps, ctx: Ctx, point: Checkpoint): Promise<void> {
  // A replica that lost its Lease finishes its reconcile; it must not move anything while the new leader does.
  if (deps.isLeader && !deps.isLeader()) throw transient('NotLeader', 'this replica no longer leads; the pivot continues on the leader');
  await deps.checkpoint?.(point, ctx.name);
}

/** Capabilities an agent must announce before the parent pivots into it. */
const PIVOT_CAPABILITIES = ['moveBatch', 'moveComplete', 'unpivotRequest', 'releaseCopies'] as const;

/** Objects of the namespace that never move: the parent's own markers. */
const excluded = (o: ListedObject): boolean => o.apiVersion === 'v1' && o.kind === 'Secret' && o.metadata.name === NAMES.stateSecret;

const objectKey = (apiVersion: string, kind: string, name: string): string => `${groupOf(apiVersion)}/${kind}/${name}`;

/** The git-managed objects of the cluster's namespace (what the render puts there): these become shadows. */
function gitManaged(ctx: Ctx, deps: ReconcileDeps): Set<string> {
  if (!ctx.model) return new Set();
  return new Set(deps.renderer.plan(ctx.model).objects.filter((o) => o.namespace === ctx.namespace).map((o) => objectKey(o.apiVersion, o.kind, o.name)));
}

function moverOf(deps: ReconcileDeps): Mover {
  if (!deps.mover) throw waiting('NoCell', 'moving Cluster API objects needs the cell (--cell-host) on this controller');
  return deps.mover;
}

/** Why the cluster cannot be pivoted now, or undefined when it can. */
export function pivotBlocker(ctx: Ctx, deps: ReconcileDeps): string | undefined {
  if (!deps.config.pivot) return 'pivoting is switched off (--pivot=false)';
  if (ctx.self) return 'this is the parent itself';
  if (!deps.agents || !deps.mover) return 'no cell runs here';
  if (!ctx.capi?.infrastructureReady || !ctx.capi.controlPlaneInitialized) return 'the infrastructure is not ready';
  const notTrue = (ctx.stage ?? []).find((c) => c.type !== 'Pivoted' && c.status !== 'True');
  if (!ctx.stage || notTrue) return notTrue ? `${notTrue.type} is ${notTrue.status}` : 'the stages are not observed yet';
  const agent = ctx.agentInfo;
  if (!agent) return 'the agent is not connected';
  const missing = PIVOT_CAPABILITIES.filter((c) => !agent.capabilities.includes(c));
  if (missing.length > 0) return `the agent (${agent.agentVersion}) cannot receive a pivot (missing ${missing.join(', ')})`;
  const providers = agent.health?.providers ?? [];
  if (providers.length === 0) return 'the child reports no Cluster API providers running yet';
  const down = providers.find((p) => p.ready < p.total || p.total === 0);
  if (down) return `the child's Cluster API provider ${down.name} is not ready (${down.ready}/${down.total})`;
  return undefined;
}

/** A command's Ack as the next step: ok, retry later (transient), or a refusal (stalling). */
function ackOutcome(ack: Ack, what: string): { ok: true } | { ok: false; error: LatticeError } {
  if (ack.ok) return { ok: true };
  // The child's words go into conditions and events: bounded.
  const said = ack.error.length > 300 ? `${ack.error.slice(0, 297)}...` : ack.error;
  const detail = `${what}: the agent answered ${ack.errorCode}${said ? ` (${said})` : ''}`;
  if (ack.errorCode === AckCode.AlreadyPivoted) return { ok: false, error: waiting('WaitingForChild', `${detail}; waiting for its record of the move`) };
  return { ok: false, error: ack.retryable ? transient('MoveRetry', `${detail}; retrying`) : stalling('MoveRejected', detail) };
}

/**
 * The parent's markers say no move completed, but the cluster (its agent, or the status that mirrors the
 * markers) says one did: the state Secret was lost or rewritten. Starting a move, or tearing down, would act
 * on a cluster that holds its own objects; only a person can tell what happened.
 */
export function stateLost(ctx: Ctx): LatticeError | undefined {
  const state = ctx.state;
  if (!state || state.pivotComplete) return undefined;
  const self = ctx.agentInfo?.selfManagement;
  const childSays = self?.pivotComplete === true && self.moveId !== state.pivot?.moveId;
  const statusSays = rec(ctx.statusBefore).pivotComplete === true;
  if (!childSays && !statusSays) return undefined;
  return stalling('PivotStateLost', `Secret ${ctx.namespace}/${NAMES.stateSecret} records no completed pivot, but ${childSays ? `the cluster's agent reports move ${self?.moveId ?? ''} complete` : 'status.pivotComplete is true'}: restore the Secret's pivot-complete marker (and pivot-move-id) before anything else happens to this cluster`);
}

/** A stable id per batch and its objects (by uid), so a re-sent batch is recognised and a changed set is executed again. */
const batchId = (moveId: string, index: number, nodes: readonly MoveNode[]): string =>
  `${moveId}-b${index}-${createHash('sha256').update(nodes.map((n) => n.uid).join(',')).digest('hex').slice(0, 12)}`;

/** The MoveObject of a node: the object as listed (the receiver strips what it must not trust). */
function moveObject(n: MoveNode): { sourceUid: string; manifest: Buffer; owners: { sourceUid: string; apiVersion: string; kind: string; name: string; controller: boolean; blockOwnerDeletion: boolean }[] } {
  return {
    sourceUid: n.uid,
    manifest: Buffer.from(JSON.stringify(n.object), 'utf8'),
    owners: n.owners.map((o) => ({ sourceUid: o.uid, apiVersion: o.apiVersion, kind: o.kind, name: o.name, controller: o.controller === true, blockOwnerDeletion: o.blockOwnerDeletion === true })),
  };
}

/** The namespace's objects in move order (owners first), or a stalling error when they form no graph. */
async function discover(ctx: Ctx, deps: ReconcileDeps): Promise<MoveNode[][]> {
  const objects = await guarded(`listing the Cluster API objects of ${ctx.namespace}`, () => moverOf(deps).list(ctx.namespace));
  const graph = moveGraph(objects, { cluster: NAMES.capiCluster(ctx.name), exclude: excluded });
  if (!graph.ok) throw stalling('MoveGraphInvalid', `the objects of ${ctx.namespace} cannot be moved: ${graph.message}`);
  return graph.batches.map((b) => [...b]);
}

/** Discovery once the controllers have stopped: until then one may still be creating an object we would miss. */
async function discoverPaused(ctx: Ctx, deps: ReconcileDeps): Promise<MoveNode[][]> {
  const batches = await discover(ctx, deps);
  const cluster = batches.flat().find((n) => isCapiCluster(n.object) && n.name === NAMES.capiCluster(ctx.name));
  if (cluster && !pauseAcknowledged(cluster.object)) {
    ctx.pivot = { complete: false, message: 'waiting for Cluster API to acknowledge the pause' };
    throw waiting('WaitingForPause', `waiting for the controllers of Cluster ${ctx.namespace}/${cluster.name} to acknowledge the pause (condition Paused)`);
  }
  return batches;
}

/** Pauses the source: the Cluster first (it pauses everything CAPI does for it), then the rest. */
async function pauseSource(ctx: Ctx, deps: ReconcileDeps): Promise<void> {
  const mover = moverOf(deps);
  const objects = await guarded(`listing the Cluster API objects of ${ctx.namespace}`, () => mover.list(ctx.namespace));
  const cluster = objects.filter((o) => isCapiCluster(o) && !isPaused(o));
  if (cluster.length > 0) {
    await checkpoint(deps, ctx, 'pivot:pause-cluster');
    await guarded(`pausing Cluster ${ctx.namespace}/${NAMES.capiCluster(ctx.name)}`, () => mover.pause(cluster));
  }
  const rest = objects.filter((o) => !isCapiCluster(o) && !isPaused(o) && !excluded(o));
  if (rest.length > 0) {
    await checkpoint(deps, ctx, 'pivot:pause-objects');
    await guarded(`pausing the objects of ${ctx.namespace}`, () => mover.pause(rest));
  }
}

/** The pivot step: starts, continues or finishes a pivot (see the module comment). */
export const pivotStep: Step = async (ctx, deps) => {
  const state = ctx.state;
  if (!state || !ctx.model) return;
  if (state.pivotComplete) {
    await finishPivot(ctx, deps);
    return;
  }
  const lost = stateLost(ctx);
  if (lost) throw lost;
  if (!state.pivot) {
    const blocker = pivotBlocker(ctx, deps);
    if (blocker !== undefined) {
      ctx.pivotWaiting = blocker;
      return;
    }
    // A given-up pivot is retried after a while, not at once: a refusal that repeats would otherwise keep the
    // cluster pausing and unpausing.
    const retryAt = state.pivotAbortedAt ? Date.parse(state.pivotAbortedAt) + deps.config.pivotTimeoutMs / 6 : 0;
    if (deps.now().getTime() < retryAt) return;
    const objects = await guarded(`listing the Cluster API objects of ${ctx.namespace}`, () => moverOf(deps).list(ctx.namespace));
    const notReady = moveBlocker(objects.filter((o) => !excluded(o)));
    if (notReady !== undefined) {
      ctx.pivot = undefined;
      ctx.pivotWaiting = notReady;
      return;
    }
    await releaseLeftovers(ctx, deps);
    await checkpoint(deps, ctx, 'pivot:start');
    ctx.state = await writeState(deps, ctx.name, { pivot: { moveId: randomUUID(), startedAt: deps.now().toISOString() } });
    deps.log.info({ cluster: ctx.name }, 'pivot started');
    await event(ctx, deps, { type: 'Normal', reason: 'PivotStarted', message: `moving the Cluster API objects of ${ctx.namespace} into the cluster` });
    // Status shows Pivoting before anything moves; the state Secret's write (watched) brings the next reconcile.
    ctx.pivot = { complete: false, message: 'the pivot starts: pausing the Cluster API objects' };
    return;
  }
  const pivot = ctx.state?.pivot;
  if (!pivot) return;
  ctx.pivot = { complete: false, message: 'pausing the Cluster API objects' };
  const elapsed = deps.now().getTime() - Date.parse(pivot.startedAt);
  if (elapsed > deps.config.pivotTimeoutMs) {
    if ((await abortPivot(ctx, deps, `not complete after ${formatDuration(deps.config.pivotTimeoutMs)}`)) === 'completed') return finishPivot(ctx, deps);
    throw waiting('PivotTimeout', `the pivot was aborted after ${formatDuration(deps.config.pivotTimeoutMs)} and the source unpaused; it is retried once the preconditions hold`);
  }
  const agentNow = deps.agents?.agent(ctx.name);
  if (agentNow && !agentNow.selfManagement) {
    // Until its first heartbeat, whether the cluster already completed this move is unknown: re-sending a
    // batch to a cluster that manages itself is what must never happen.
    throw waiting('WaitingForChild', 'waiting for the agent\'s first heartbeat (its record of the move)');
  }
  const self = agentNow?.selfManagement;
  if (self?.pivotComplete && self.moveId === pivot.moveId) {
    // The child handled MoveComplete and this controller did not record it (it stopped in between).
    await recordComplete(ctx, deps, 'the cluster reports the move complete; it manages itself');
    return finishPivot(ctx, deps);
  }
  if (!agentNow) {
    ctx.pivot = { complete: false, message: 'waiting for the agent to reconnect' };
    throw waiting('AgentNotConnected', 'the pivot waits for the agent to reconnect (the source stays paused)');
  }
  await pauseSource(ctx, deps);
  const batches = await discoverPaused(ctx, deps);
  const agents = deps.agents;
  if (!agents) return;
  const timeoutMs = deps.config.moveCommandTimeoutMs;
  for (const [i, nodes] of batches.entries()) {
    ctx.pivot = { complete: false, message: `moving batch ${i + 1}/${batches.length}` };
    await checkpoint(deps, ctx, 'pivot:batch');
    const ack = await agents.send(ctx.name, { moveBatch: { moveId: pivot.moveId, batchIndex: i, totalBatches: batches.length, targetNamespace: ctx.namespace, objects: nodes.map(moveObject) } }, { id: batchId(pivot.moveId, i, nodes), timeoutMs });
    const outcome = ackOutcome(ack, `move batch ${i + 1}/${batches.length}`);
    if (!outcome.ok) {
      if (outcome.error.kind === 'stalling') await abortPivot(ctx, deps, outcome.error.message);
      throw outcome.error;
    }
  }
  ctx.pivot = { complete: false, message: 'completing the move' };
  if (!pivot.completing) {
    // Recorded before MoveComplete goes out: from here an abort must hear from the child first (abortPivot).
    await checkpoint(deps, ctx, 'pivot:completing');
    ctx.state = await writeState(deps, ctx.name, (s): ClusterState => {
      // Conditional on the move this reconcile is running: another replica may have given it up meanwhile.
      if (s.pivot?.moveId !== pivot.moveId) throw transient('Conflict', 'the pivot changed meanwhile (another replica); retrying');
      return { ...s, pivot: { ...s.pivot, completing: true } };
    });
  }
  await checkpoint(deps, ctx, 'pivot:complete');
  const ack = await agents.send(ctx.name, { moveComplete: { moveId: pivot.moveId, targetNamespace: ctx.namespace, manifests: [] } }, { id: `${pivot.moveId}-complete`, timeoutMs });
  const outcome = ackOutcome(ack, 'move complete');
  if (!outcome.ok) {
    if (outcome.error.kind === 'stalling') await abortPivot(ctx, deps, outcome.error.message);
    throw outcome.error;
  }
  await recordComplete(ctx, deps, `${batches.reduce((n, b) => n + b.length, 0)} Cluster API objects moved into the cluster in ${batches.length} batches; it manages itself`);
  await finishPivot(ctx, deps);
};

/** The durable end of the move: from here the child holds the live objects and the source is never unpaused. */
async function recordComplete(ctx: Ctx, deps: ReconcileDeps, message: string): Promise<void> {
  await checkpoint(deps, ctx, 'pivot:record');
  ctx.state = await writeState(deps, ctx.name, { pivotComplete: true });
  deps.log.info({ cluster: ctx.name }, 'pivot complete');
  await event(ctx, deps, { type: 'Normal', reason: 'PivotComplete', message });
}

/**
 * Before a new move: copies an earlier, aborted move may have left in the child are released, so the new
 * move never reuses a stale one (the receiver treats an existing object as already received).
 */
async function releaseLeftovers(ctx: Ctx, deps: ReconcileDeps): Promise<void> {
  const agents = deps.agents;
  if (!agents) return;
  await checkpoint(deps, ctx, 'pivot:release-leftovers');
  const ack = await agents.send(ctx.name, { releaseCopies: { namespace: ctx.namespace } }, { id: `leftovers-${randomUUID()}`, timeoutMs: deps.config.moveCommandTimeoutMs });
  const outcome = ackOutcome(ack, 'releasing leftovers of an earlier move');
  if (!outcome.ok) throw outcome.error;
  if ((ack.release?.deleted ?? 0) > 0) deps.log.warn({ cluster: ctx.name, deleted: ack.release?.deleted }, 'leftover copies released');
}

/** After the move: the parent's copies cleaned up once, then the Cluster shadow checked on every reconcile. */
async function finishPivot(ctx: Ctx, deps: ReconcileDeps): Promise<void> {
  ctx.pivot = { complete: true, message: 'the move is complete' };
  if (ctx.state?.pivotCleanupComplete) {
    // A Cluster that lost its shadow marks (deleted and re-applied by the GitOps engine, say) would be
    // provisioned a second time by the parent's Cluster API: shadow it again at once.
    const cluster = ctx.capiCluster;
    if (cluster && (!isPaused(cluster as ListedObject) || cluster.metadata.annotations?.[MOVE.pivotedTo] !== ctx.name || (cluster.metadata.finalizers ?? []).length > 0)) {
      deps.log.warn({ cluster: ctx.name }, 'shadow lost its marks; shadowing again');
      await shadow(ctx, deps, await discover(ctx, deps));
      await guardNamespace(ctx, deps, ctx.name);
    }
    return;
  }
  const batches = await discover(ctx, deps);
  const git = gitManaged(ctx, deps);
  const isGit = (n: MoveNode) => git.has(objectKey(n.apiVersion, n.kind, n.name));
  const mover = moverOf(deps);
  // Dependents first, as Kubernetes' garbage collector would: a layer never outlives what it owns.
  for (const nodes of [...batches].reverse()) {
    const doomed = nodes.filter((n) => !isGit(n));
    if (doomed.length === 0) continue;
    await checkpoint(deps, ctx, 'pivot:delete');
    // One layer: independent objects, deleted concurrently.
    await guarded(`deleting the moved objects of ${ctx.namespace}`, () => mover.remove([...doomed].reverse().map((n) => n.object), { concurrent: true }));
  }
  await shadow(ctx, deps, batches.map((b) => b.filter(isGit)));
  await guardNamespace(ctx, deps, ctx.name);
  await checkpoint(deps, ctx, 'pivot:cleaned');
  ctx.state = await writeState(deps, ctx.name, { pivotCleanupComplete: true });
  deps.log.info({ cluster: ctx.name }, 'pivot source cleaned up');
}

/**
 * The namespace label deploy/base/pivot-guard.yaml keys on: while it is set, only the controller may write a
 * Cluster API object there that is not paused (a shadow deleted and re-applied by GitOps is refused, not live).
 * `null` removes it (after an unpivot import, so the GitOps engine manages the live objects again).
 */
async function guardNamespace(ctx: Ctx, deps: ReconcileDeps, value: string | null): Promise<void> {
  await guarded(`labelling Namespace ${ctx.namespace}`, () => moverOf(deps).patch({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ctx.namespace } }, { metadata: { labels: { [MOVE.pivotedTo]: value } } }));
}

/** Makes the objects inert shadows: paused, finalizers stripped, annotated with where they live now. */
async function shadow(ctx: Ctx, deps: ReconcileDeps, batches: readonly (readonly MoveNode[])[]): Promise<void> {
  const mover = moverOf(deps);
  const pending = batches.flat().filter((n) => {
    const o = n.object;
    return !(o.metadata.annotations?.[MOVE.pivotedTo] === ctx.name && isPaused(o) && (o.metadata.finalizers ?? []).length === 0);
  });
  // Every object is already paused and each patch stands alone (shadowing is idempotent), so they go out
  // SHADOW_CONCURRENCY at a time; a checkpoint still precedes each one, all of a group's before its writes
  // start, so a stop at a checkpoint (or a lost Lease) never leaves a write running.
  for (let i = 0; i < pending.length; i += SHADOW_CONCURRENCY) {
    const group = pending.slice(i, i + SHADOW_CONCURRENCY);
    for (let k = 0; k < group.length; k++) await checkpoint(deps, ctx, 'pivot:shadow');
    await settleAll(group.map((n) => {
      const o = n.object;
      const patch: Record<string, unknown> = {
        metadata: { finalizers: null, annotations: { [MOVE.pivotedTo]: ctx.name, ...(isCapiCluster(o) ? {} : { [MOVE.paused]: '' }) } },
        ...(isCapiCluster(o) ? { spec: { paused: true } } : {}),
      };
      return guarded(`shadowing ${n.kind} ${ctx.namespace}/${n.name}`, () => mover.patch(o, patch));
    }));
  }
}

/** Shadow patches in flight at once (as many as the mover writes concurrently). */
const SHADOW_CONCURRENCY = 8;

/** Waits for every write, then fails with the first failure: none is left running behind an error. */
async function settleAll(writes: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(writes);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Gives up a pivot that is not complete, without ever letting the objects be live on both sides:
 *  - the child already completed this move (its heartbeat says so): the pivot is complete, not aborted;
 *  - otherwise the child's paused copies are released; the agent refuses while its copies are live, so an
 *    acknowledged release proves the child holds nothing live;
 *  - without that proof the source is unpaused only if MoveComplete was never sent (`pivot.completing`
 *    unset): before it, the child's copies cannot be live.
 * Resolves to what happened; throws `waiting` when the child must answer first.
 */
export async function abortPivot(ctx: Ctx, deps: ReconcileDeps, why: string): Promise<'aborted' | 'completed'> {
  const pivot = ctx.state?.pivot;
  if (!pivot || ctx.state?.pivotComplete) return 'completed';
  const agents = deps.agents;
  const agent = agents?.agent(ctx.name);
  if (agent?.selfManagement?.pivotComplete && agent.selfManagement.moveId === pivot.moveId) {
    await recordComplete(ctx, deps, 'the cluster reports the move complete; it manages itself');
    return 'completed';
  }
  if (agents && agent && pivot.completing) {
    // MoveComplete may have gone out: roll forward rather than back. The child either completes (or already
    // has: same id) or refuses because it never got the Cluster, and then holds nothing live.
    await checkpoint(deps, ctx, 'pivot:complete');
    const ack = await agents.send(ctx.name, { moveComplete: { moveId: pivot.moveId, targetNamespace: ctx.namespace, manifests: [] } }, { id: `${pivot.moveId}-complete`, timeoutMs: deps.config.moveCommandTimeoutMs });
    if (ack.ok) {
      await recordComplete(ctx, deps, 'the move was completed rather than given up: the cluster manages itself');
      return 'completed';
    }
    const outcome = ackOutcome(ack, 'completing the move before giving it up');
    if (!outcome.ok && outcome.error.kind !== 'stalling') throw outcome.error;
  }
  let released = false;
  const overdue = deps.now().getTime() - Date.parse(pivot.startedAt) > deps.config.pivotTimeoutMs;
  if (!agent && !overdue) {
    // The child's copies should go before the source wakes up; an agent away longer than the pivot timeout
    // is not waited for (its copies are paused, and the next pivot releases leftovers before it starts).
    throw waiting('AgentNotConnected', `the pivot is being given up (${why}): waiting for the agent to release the cluster's paused copies`);
  }
  if (agents && agent) {
    await checkpoint(deps, ctx, 'abort:release');
    try {
      const ack = await agents.send(ctx.name, { releaseCopies: { namespace: ctx.namespace } }, { id: `${pivot.moveId}-abort-${randomUUID()}`, timeoutMs: deps.config.moveCommandTimeoutMs });
      released = ack.ok;
      if (!ack.ok) deps.log.warn({ cluster: ctx.name, code: ack.errorCode }, 'child copies not released on abort');
    } catch (e) {
      deps.log.warn({ cluster: ctx.name, code: e instanceof LatticeError ? e.code : 'error' }, 'child copies not released on abort');
    }
  }
  if (!released && pivot.completing) {
    throw waiting('PivotAbortBlocked', `the pivot must be given up (${why}), but the cluster may already hold its objects live: waiting for its agent to confirm before the parent's copies are unpaused`);
  }
  await unpauseNamespace(ctx, deps, 'abort:unpause');
  await checkpoint(deps, ctx, 'abort:record');
  ctx.state = await writeState(deps, ctx.name, (s): ClusterState => {
    const { pivot: _aborted, ...rest } = s;
    return { ...rest, pivotAbortedAt: deps.now().toISOString() };
  });
  ctx.pivot = undefined;
  deps.log.warn({ cluster: ctx.name, reason: why }, 'pivot aborted');
  await event(ctx, deps, { type: 'Warning', reason: 'PivotAborted', message: `the pivot was aborted and the source unpaused: ${why}` });
  return 'aborted';
}

/** Unpauses whatever is paused in the cluster's namespace (the parent's side again holds the live objects); whether anything was. */
async function unpauseNamespace(ctx: Ctx, deps: ReconcileDeps, point: Checkpoint): Promise<boolean> {
  const mover = moverOf(deps);
  const objects = await guarded(`listing the Cluster API objects of ${ctx.namespace}`, () => mover.list(ctx.namespace));
  const paused = objects.filter((o) => isPaused(o) && !excluded(o));
  if (paused.length === 0) return false;
  await checkpoint(deps, ctx, point);
  await guarded(`unpausing the objects of ${ctx.namespace}`, () => mover.unpause(clusterLast(paused)));
  return true;
}

/**
 * The cluster's spec for its agent (DESIGN §7.5): sent on every new connection and generation before the
 * pivot (it names the addon namespaces the agent reports on) and, after the pivot, until the child reports
 * it applied the generation.
 */
export const specSyncStep: Step = async (ctx, deps) => {
  const agents = deps.agents;
  const agent = ctx.agentInfo;
  if (!agents || !agent || ctx.self || !ctx.model || !agent.capabilities.includes('specSync')) return;
  const applied = agent.selfManagement?.appliedGeneration ?? 0;
  ctx.appliedGeneration = applied;
  const key = `${agent.connectionId}/${ctx.generation}`;
  const remembered = deps.specSyncs?.get(ctx.name);
  const pivoted = ctx.state?.pivotComplete === true;
  if (remembered === key && (!pivoted || applied >= ctx.generation)) return;
  const meta = ctx.lc.metadata;
  const cluster = { apiVersion: ctx.lc.apiVersion ?? 'lattice.dev/v1alpha1', kind: 'LatticeCluster', metadata: { name: meta.name, ...(meta.labels ? { labels: meta.labels } : {}) }, spec: ctx.lc.spec };
  const ack = await agents.send(ctx.name, { specSync: { cluster: Buffer.from(JSON.stringify(cluster), 'utf8'), generation: ctx.generation } }, { id: `spec-${meta.uid ?? ctx.name}-${ctx.generation}-${pivoted ? 'pivoted' : 'pre'}`, timeoutMs: deps.config.moveCommandTimeoutMs });
  if (!ack.ok) {
    throw ack.retryable ? transient('SpecSyncFailed', `the agent did not apply generation ${ctx.generation}: ${ack.errorCode}${ack.error ? ` (${ack.error})` : ''}`)
      : stalling('SpecSyncRejected', `the agent refused generation ${ctx.generation}: ${ack.errorCode}${ack.error ? ` (${ack.error})` : ''}`);
  }
  deps.specSyncs?.set(ctx.name, key);
  if (ack.specSync) ctx.appliedGeneration = Math.max(applied, ack.specSync.appliedGeneration);
  if (pivoted && (ctx.appliedGeneration ?? 0) >= ctx.generation && applied < ctx.generation) {
    deps.log.info({ cluster: ctx.name, generation: ctx.generation }, 'spec applied in the child');
    await event(ctx, deps, { type: 'Normal', reason: 'SpecApplied', message: `the cluster applied generation ${ctx.generation} to itself` });
  }
};

// --- Unpivot ------------------------------------------------------------------------------------

/**
 * What the parent accepts back: exactly this cluster's graph (one Cluster, named after it, and what belongs to
 * it), never the parent's own state Secret, everything paused whatever the child sent: a compromised child
 * must not make the parent provision anything.
 */
export function checkedImport(ctx: Pick<Ctx, 'name' | 'namespace'>, objects: readonly IncomingObject[]): IncomingObject[] {
  if (objects.length === 0) throw stalling('UnpivotEmpty', 'the agent sent no Cluster API objects back; refusing to tear down what the parent cannot see');
  const listed = objects.map((o) => ({ ...(o.object as unknown as ListedObject), metadata: { ...(o.object as unknown as ListedObject).metadata, uid: o.sourceUid, ownerReferences: o.owners } }));
  if (listed.some(excluded)) throw stalling('UnpivotRejected', `the agent sent a Secret named ${NAMES.stateSecret}, which only the parent writes`);
  const clusters = listed.filter(isCapiCluster);
  if (clusters.length !== 1 || clusters[0]?.metadata.name !== NAMES.capiCluster(ctx.name)) {
    throw stalling('UnpivotRejected', `the agent sent ${clusters.length} Cluster objects (${clusters.map((c) => c.metadata.name).join(', ')}); exactly Cluster ${NAMES.capiCluster(ctx.name)} is expected`);
  }
  const graph = moveGraph(listed, { cluster: NAMES.capiCluster(ctx.name) });
  if (!graph.ok) throw stalling('UnpivotRejected', `the objects sent back do not form the cluster's graph: ${graph.message}`);
  const inGraph = new Set(graph.batches.flat().map((n) => n.uid));
  const stray = listed.filter((o) => !inGraph.has(o.metadata.uid ?? ''));
  if (stray.length > 0) throw stalling('UnpivotRejected', `the agent sent objects that do not belong to Cluster ${NAMES.capiCluster(ctx.name)}: ${stray.slice(0, 5).map((o) => `${o.kind ?? '?'} ${o.metadata.name}`).join(', ')}`);
  return objects.map((o) => ({ ...o, object: withPause(o.object as unknown as ListedObject) as unknown as Record<string, unknown> }));
}

/** The objects of the unpivot answer, in order, for the mover. */
function incoming(batches: readonly { objects: readonly { sourceUid: string; manifest: Buffer; owners: readonly { sourceUid: string; apiVersion: string; kind: string; name: string; controller: boolean; blockOwnerDeletion: boolean }[] }[] }[]): IncomingObject[] {
  const out: IncomingObject[] = [];
  for (const b of batches) {
    for (const o of b.objects) {
      let object: unknown;
      try {
        object = JSON.parse(Buffer.from(o.manifest).toString('utf8'));
      } catch {
        throw stalling('UnpivotInvalid', `the agent sent an object (source uid ${o.sourceUid}) that is not JSON`);
      }
      if (typeof object !== 'object' || object === null || Array.isArray(object)) throw stalling('UnpivotInvalid', `the agent sent an object (source uid ${o.sourceUid}) that is not a JSON object`);
      out.push({
        sourceUid: o.sourceUid,
        object: object as Record<string, unknown>,
        owners: o.owners.map((r) => ({ uid: r.sourceUid, apiVersion: r.apiVersion, kind: r.kind, name: r.name, ...(r.controller ? { controller: true } : {}), ...(r.blockOwnerDeletion ? { blockOwnerDeletion: true } : {}) })),
      });
    }
  }
  return out;
}

/**
 * Deletion of a cluster that pivoted: brings its live objects back before anything is torn down. Runs in
 * the deletion steps; returns once the parent holds live (unpaused) objects again.
 */
export async function unpivot(ctx: Ctx, deps: ReconcileDeps): Promise<void> {
  const agents = deps.agents;
  const mover = moverOf(deps);
  let state = ctx.state;
  if (!state) return;
  if (!state.unpivotImportComplete) {
    if (!agents?.agent(ctx.name)) throw waiting('AgentNotConnected', 'the unpivot waits for the agent: the cluster holds its own Cluster API objects and must send them back before teardown');
    await checkpoint(deps, ctx, 'unpivot:request');
    const { ack, batches } = await agents.unpivot(ctx.name, ctx.namespace, { id: `unpivot-${randomUUID()}`, timeoutMs: deps.config.moveCommandTimeoutMs });
    const outcome = ackOutcome(ack, 'unpivot');
    if (!outcome.ok) throw outcome.error;
    const objects = checkedImport(ctx, incoming(batches));
    await checkpoint(deps, ctx, 'unpivot:import');
    // Shadows are replaced by the live versions. Before the clean-up finished, every object still here is a
    // stale original of the move: the cluster's version replaces it too.
    const cleaned = state.pivotCleanupComplete === true;
    const adopt = (existing: ListedObject) => !excluded(existing) && (!cleaned || existing.metadata.annotations?.[MOVE.pivotedTo] === ctx.name);
    const result = await guarded(`importing the objects of ${ctx.namespace}`, () => mover.receive(ctx.namespace, objects, { adopt }));
    if (result.errors.length > 0) {
      const first = result.errors[0];
      const detail = `${result.errors.length} object(s) not imported${first ? `, first (source uid ${first.sourceUid}): ${first.message}` : ''}`;
      throw result.errors.every((e) => e.retryable) ? transient('UnpivotImportFailed', detail) : stalling('UnpivotImportRejected', detail);
    }
    await checkpoint(deps, ctx, 'unpivot:record');
    state = ctx.state = await writeState(deps, ctx.name, { unpivotImportComplete: true });
    deps.log.info({ cluster: ctx.name, objects: objects.length }, 'unpivot imported');
    await event(ctx, deps, { type: 'Normal', reason: 'UnpivotImported', message: `${objects.length} Cluster API objects imported back from the cluster` });
  }
  // The parent holds the live objects again: the GitOps engine may write them (pivot-guard.yaml). Every time
  // (an idempotent patch), so a stop right after the import marker leaves no label behind.
  await guardNamespace(ctx, deps, null);
  if (!state.unpivotReleased) {
    if (!agents?.agent(ctx.name)) throw waiting('AgentNotConnected', 'waiting for the agent to delete its paused copies of the Cluster API objects');
    await checkpoint(deps, ctx, 'unpivot:release');
    const ack = await agents.send(ctx.name, { releaseCopies: { namespace: ctx.namespace } }, { id: `release-${randomUUID()}`, timeoutMs: deps.config.moveCommandTimeoutMs });
    const outcome = ackOutcome(ack, 'release');
    if (!outcome.ok) throw outcome.error;
    await checkpoint(deps, ctx, 'unpivot:released');
    ctx.state = await writeState(deps, ctx.name, { unpivotReleased: true });
  }
  if (await unpauseNamespace(ctx, deps, 'unpivot:unpause')) {
    deps.log.info({ cluster: ctx.name }, 'unpivot complete');
    await event(ctx, deps, { type: 'Normal', reason: 'Unpivoted', message: 'the Cluster API objects are live in the parent again; tearing the cluster down' });
  }
}
