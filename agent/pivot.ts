/**
 * The child's side of the pivot and the unpivot (DESIGN §7, research/reference-lattice.md §5.3), as command
 * handlers of the agent:
 *
 * - moveBatch: receive the parent's objects into `capi-<cluster>`, paused, with kube/mover.ts (allowlist,
 *   uid map from the source-uid annotations, 409 = already there); Ack with the uid mappings.
 * - moveComplete: unpause the received objects (the Cluster last), record the pivot in the child-local state
 *   Secret (agent/state.ts); a re-send for the recorded move is acknowledged at once.
 * - specSync: keep the spec (agent/spec.ts) and, once the child manages itself, render its Cluster API
 *   objects with the same `core` and server-side apply them in the child; record the applied generation.
 * - unpivotRequest: pause, then stream the namespace's move graph back owners first (UnpivotBatch messages
 *   on the command's session), then Ack.
 * - releaseCopies: delete the paused copies without teardown (finalizers stripped, dependents first); refused
 *   while the namespace's Cluster is live.
 *
 * They run one at a time (one queue for all of them, the dispatcher runs commands concurrently): each reads
 * the namespace and then writes it, and two interleaved would act on what the other is changing.
 *
 * Safety rules: only `capi-<cluster>` is ever touched; only movable kinds are created (the mover's
 * allowlist); received objects stay paused until moveComplete; a Cluster that is not paused is never deleted.
 */
import type { Logger } from 'pino';
import { parse } from 'yaml';
import { specRenderer } from '../cli/load.js';
import { isRecord } from '../core/data.js';
import { LatticeError } from '../core/errors.js';
import { clusterLast, isCapiCluster, isPaused, movable, moveGraph, MOVE, pauseAcknowledged, withPause, type ListedObject, type MoveNode, type OwnerRef } from '../core/move/graph.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { AckCode, MAX_MESSAGE_BYTES, type DecodedCommand, type MoveObject, type SelfManagement } from '../controller/cell/protocol.js';
import { refused as refusedByMover, type IncomingObject, type Mover } from '../kube/mover.js';
import type { CommandContext, CommandHandler, Outcome } from './dispatch.js';
import { checkSpecSync, keepSpec, type SpecState, type SpecSyncDeps } from './spec.js';
import type { SelfManagementStore } from './state.js';

export interface PivotDeps {
  /** The agent's cluster: its objects live in `capi-<cluster>`. */
  readonly cluster: string;
  readonly mover: Mover;
  readonly state: SelfManagementStore;
  /** The kept spec, shared with heartbeat health (addon namespaces). */
  readonly spec: SpecState;
  readonly log: Logger;
  /** @default core's validator (agent/spec.ts) */
  readonly validate?: SpecSyncDeps['validate'];
  /** @default core's addon catalog (agent/spec.ts) */
  readonly addonNamespacesOf?: SpecSyncDeps['addonNamespacesOf'];
  /** The cluster's Cluster API objects for a spec. @default specRenderer().renderCluster, parsed */
  readonly render?: (cluster: LatticeCluster) => readonly unknown[];
}

export type PivotCommand = 'moveBatch' | 'moveComplete' | 'specSync' | 'unpivotRequest' | 'releaseCopies';
export type PivotHandlers = Readonly<Record<PivotCommand, CommandHandler>>;

/**
 * UnpivotBatch messages stay under half the stream's message limit: a layer of the graph larger than that is
 * split into several messages (objects of one layer do not own each other, so the order stays owners first).
 */
const BATCH_BYTES = MAX_MESSAGE_BYTES / 2;

const invalid = (error: string): Outcome => ({ ok: false, code: AckCode.Invalid, error });
const alreadyPivoted = (moveId: string): Outcome => ({ ok: false, code: AckCode.AlreadyPivoted, error: `the cluster already manages itself (move ${moveId})`, retryable: false });
const failed = (error: string, retryable: boolean): Outcome => ({ ok: false, code: AckCode.Failed, error, retryable });

/** A thrown LatticeError (a MoverError, the state store's) as a failed Ack; anything else goes to the dispatcher. */
function failure(e: unknown): Outcome {
  if (e instanceof LatticeError) return failed(e.message, e.kind === 'transient');
  throw e;
}

/** Runs tasks one at a time, in order of arrival. */
function serialQueue(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return (task) => {
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };
}

/** A manifest of a MoveObject or MoveComplete: a JSON object naming a movable kind, or why not. */
function parseManifest(bytes: Uint8Array): { object: Record<string, unknown> & ListedObject } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { problem: 'the manifest is not JSON' };
  }
  if (!isRecord(value) || !isRecord(value.metadata) || typeof value.metadata.name !== 'string' || value.metadata.name === '') return { problem: 'the manifest is not an object with metadata.name' };
  const apiVersion = typeof value.apiVersion === 'string' ? value.apiVersion : '';
  const kind = typeof value.kind === 'string' ? value.kind : '';
  if (!movable(apiVersion, kind)) return { problem: `${kind || 'an object without kind'} (${apiVersion || 'no apiVersion'}) may not be moved` };
  return { object: value as Record<string, unknown> & ListedObject };
}

const hasSourceUid = (o: ListedObject): boolean => o.metadata.annotations?.[MOVE.sourceUid] !== undefined;

function toMoveObject(node: MoveNode): MoveObject {
  return {
    sourceUid: node.uid,
    manifest: Buffer.from(JSON.stringify(node.object)),
    owners: node.owners.map((r) => ({ sourceUid: r.uid, apiVersion: r.apiVersion, kind: r.kind, name: r.name, controller: r.controller ?? false, blockOwnerDeletion: r.blockOwnerDeletion ?? false })),
  };
}

/** The graph's layers as messages of at most BATCH_BYTES of manifests each, in order. */
function chunk(batches: readonly (readonly MoveNode[])[]): MoveObject[][] {
  const messages: MoveObject[][] = [];
  for (const layer of batches) {
    let current: MoveObject[] = [];
    let bytes = 0;
    for (const node of layer) {
      const o = toMoveObject(node);
      if (current.length > 0 && bytes + o.manifest.length > BATCH_BYTES) {
        messages.push(current);
        current = [];
        bytes = 0;
      }
      current.push(o);
      bytes += o.manifest.length;
    }
    if (current.length > 0) messages.push(current);
  }
  return messages;
}

function defaultRender(cluster: LatticeCluster): unknown[] {
  return specRenderer().renderCluster(cluster).map((d) => parse(d.text) as unknown);
}

/** The pivot handlers of one agent (one queue shared by all of them). */
export function pivotHandlers(deps: PivotDeps): PivotHandlers {
  const namespace = `capi-${deps.cluster}`;
  const log = deps.log;
  const queue = serialQueue();
  const specDeps: SpecSyncDeps = {
    cluster: deps.cluster, state: deps.spec, log,
    ...(deps.validate ? { validate: deps.validate } : {}),
    ...(deps.addonNamespacesOf ? { addonNamespacesOf: deps.addonNamespacesOf } : {}),
  };
  const render = deps.render ?? defaultRender;

  /** Only the cluster's own namespace, whatever the parent asks: the agent never reaches into another. */
  const wrongNamespace = (ns: string): Outcome | undefined => (ns === namespace ? undefined : invalid(`the namespace must be ${namespace}`));
  const serial = (f: (command: DecodedCommand, context: CommandContext) => Promise<Outcome>): CommandHandler => (command, context) => queue(async () => {
    try {
      return await f(command, context);
    } catch (e) {
      return failure(e);
    }
  });

  const moveBatch = async (command: DecodedCommand): Promise<Outcome> => {
    const batch = command.moveBatch;
    if (!batch) return invalid('moveBatch carries no batch');
    const refused = wrongNamespace(batch.targetNamespace);
    if (refused) return refused;
    // A cluster that manages itself takes no more copies: a batch re-sent after the move completed (a parent
    // that stopped before recording it) would bring back objects the cluster has deleted since.
    const recorded = await deps.state.load();
    if (recorded.pivotComplete) return alreadyPivoted(recorded.moveId);
    const objects: IncomingObject[] = [];
    // Everything is checked before anything is created: a malformed batch changes nothing.
    for (const o of batch.objects) {
      if (!o.sourceUid) return invalid('an object of the batch has no source uid');
      const parsed = parseManifest(o.manifest);
      if ('problem' in parsed) return invalid(`object ${o.sourceUid}: ${parsed.problem}`);
      // The parent paused them before sending; should one come unpaused, it is paused here anyway: two
      // management clusters reconciling the same infrastructure is what the pivot must never allow.
      if (!isPaused(parsed.object)) log.warn({ moveId: batch.moveId, kind: parsed.object.kind, name: parsed.object.metadata.name }, 'received object was not paused; pausing it');
      const object: Record<string, unknown> = withPause(parsed.object);
      const owners: OwnerRef[] = o.owners.map((r) => ({ apiVersion: r.apiVersion, kind: r.kind, name: r.name, uid: r.sourceUid, ...(r.controller ? { controller: true } : {}), ...(r.blockOwnerDeletion ? { blockOwnerDeletion: true } : {}) }));
      objects.push({ sourceUid: o.sourceUid, object, owners });
    }
    const result = await deps.mover.receive(namespace, objects);
    log.info({ moveId: batch.moveId, batch: batch.batchIndex, total: batch.totalBatches, received: result.mappings.length, failed: result.errors.length }, 'move batch received');
    const moveBatchResult = { mappings: result.mappings, errors: result.errors };
    const first = result.errors[0];
    if (!first) return { ok: true, moveBatch: moveBatchResult };
    return {
      ok: false, code: AckCode.Failed, retryable: result.errors.some((e) => e.retryable), moveBatch: moveBatchResult,
      error: `${result.errors.length} of ${objects.length} objects were not received; first: ${first.message}`,
    };
  };

  const moveComplete = async (command: DecodedCommand): Promise<Outcome> => {
    const complete = command.moveComplete;
    if (!complete) return invalid('moveComplete carries nothing');
    const refused = wrongNamespace(complete.targetNamespace);
    if (refused) return refused;
    if (!complete.moveId) return invalid('moveComplete has no move id');
    const manifests: (Record<string, unknown> & ListedObject)[] = [];
    for (const [i, bytes] of complete.manifests.entries()) {
      const parsed = parseManifest(bytes);
      if ('problem' in parsed) {
        // Extra manifests are optional help for self-management, not part of the move: one the agent may not
        // apply is logged and skipped, the pivot itself completes.
        log.warn({ moveId: complete.moveId, manifest: i, problem: parsed.problem }, 'move complete manifest ignored');
        continue;
      }
      manifests.push(parsed.object);
    }
    const state = await deps.state.load();
    if (state.pivotComplete && state.moveId === complete.moveId) {
      log.info({ moveId: complete.moveId }, 'move already complete');
      return { ok: true, moveComplete: { unpaused: 0 } };
    }
    if (state.pivotComplete) return alreadyPivoted(state.moveId);
    const received = (await deps.mover.list(namespace)).filter(hasSourceUid);
    // Recording a pivot without the Cluster would tell the parent the child manages what it does not hold.
    if (!received.some((o) => isCapiCluster(o) && o.metadata.name === deps.cluster)) return failed(`no Cluster ${deps.cluster} was received in ${namespace}`, false);
    const unpaused = await deps.mover.unpause(clusterLast(received));
    for (const m of manifests) {
      try {
        await deps.mover.apply({ ...m, metadata: { ...m.metadata, namespace } });
      } catch (e) {
        // Skipped like the ones refused above (a cluster-scoped kind, say); a failed apply fails the command.
        if (!refusedByMover(e)) throw e;
        log.warn({ moveId: complete.moveId, kind: m.kind, reason: e.reason }, 'move complete manifest ignored');
      }
    }
    await deps.state.save({ ...state, pivotComplete: true, moveId: complete.moveId });
    log.info({ moveId: complete.moveId, unpaused, manifests: manifests.length }, 'pivot complete');
    return { ok: true, moveComplete: { unpaused } };
  };

  const specSync = async (command: DecodedCommand): Promise<Outcome> => {
    const check = checkSpecSync(specDeps, command);
    if (check.status === 'refused') return check.outcome;
    const state = await deps.state.load();
    const current = (s: SelfManagement): Outcome => ({ ok: true, specSync: { appliedGeneration: s.appliedGeneration } });
    if (check.status === 'older') return current(state);
    if (check.generation < state.appliedGeneration) {
      log.info({ generation: check.generation, applied: state.appliedGeneration }, 'spec sync older than applied spec; ignored');
      return current(state);
    }
    keepSpec(specDeps, check.cluster, check.generation);
    // Before the pivot the parent's GitOps applies the spec; the child only keeps it.
    if (!state.pivotComplete) return current(state);
    let rendered: readonly unknown[];
    try {
      rendered = render(check.cluster);
    } catch {
      return failed('the synced spec could not be rendered; see the agent logs', false);
    }
    const objects = rendered.filter(isRecord).filter((o) => o.kind !== 'Namespace' && movable(typeof o.apiVersion === 'string' ? o.apiVersion : '', typeof o.kind === 'string' ? o.kind : ''));
    for (const o of objects) {
      await deps.mover.apply({ ...o, metadata: { ...(isRecord(o.metadata) ? o.metadata : {}), namespace } });
    }
    const next = { ...state, appliedGeneration: check.generation };
    await deps.state.save(next);
    log.info({ generation: check.generation, objects: objects.length }, 'spec applied');
    return current(next);
  };

  const unpivotRequest = async (command: DecodedCommand, context: CommandContext): Promise<Outcome> => {
    const request = command.unpivotRequest;
    if (!request) return invalid('unpivotRequest carries nothing');
    const refused = wrongNamespace(request.namespace);
    if (refused) return refused;
    // A namespace without the Cluster, or with a cycle, is refused before anything is paused.
    const before = await deps.mover.list(namespace);
    const precheck = moveGraph(before, { cluster: deps.cluster });
    if (!precheck.ok) return failed(`${precheck.code}: ${precheck.message}`, false);
    // Paused, then read again, so what goes back is what stays: nothing here changes them afterwards, once the
    // controllers have acknowledged the pause (until then one may still be creating an object).
    const paused = await deps.mover.pause(before);
    const after = await deps.mover.list(namespace);
    const cluster = after.find((o) => isCapiCluster(o) && o.metadata.name === deps.cluster);
    if (cluster && !pauseAcknowledged(cluster)) return failed(`waiting for the controllers of Cluster ${deps.cluster} to acknowledge the pause`, true);
    const graph = moveGraph(after, { cluster: deps.cluster });
    if (!graph.ok) return failed(`${graph.code}: ${graph.message}`, false);
    const messages = chunk(graph.batches);
    let objects = 0;
    for (const [batchIndex, batch] of messages.entries()) {
      // A message for a session that ended is dropped; failing (retryable) makes a re-send run the whole request again.
      if (!context.send({ unpivotBatch: { commandId: command.id, batchIndex, totalBatches: messages.length, namespace, objects: batch } })) {
        return failed('the stream ended while the objects were being sent back', true);
      }
      objects += batch.length;
    }
    log.info({ paused, objects, batches: messages.length }, 'objects sent back for unpivot');
    return { ok: true, unpivot: { objects, batches: messages.length } };
  };

  const releaseCopies = async (command: DecodedCommand): Promise<Outcome> => {
    const release = command.releaseCopies;
    if (!release) return invalid('releaseCopies carries nothing');
    const refused = wrongNamespace(release.namespace);
    if (refused) return refused;
    const listed = await deps.mover.list(namespace);
    const live = listed.find((o) => isCapiCluster(o) && !isPaused(o));
    if (live) return failed(`Cluster ${live.metadata.name} in ${namespace} is not paused: live objects are never deleted`, false);
    // Dependents first: the graph's layers reversed. The graph also holds what the child created after the pivot
    // (Machines of a scale-up...): those went back in the unpivot too, and left behind, the garbage collector
    // would hand them to controllers that tear down what they point at.
    const graph = moveGraph(listed, { cluster: deps.cluster });
    const ordered = graph.ok ? [...graph.batches].reverse().flat().map((n) => n.object) : [];
    const inGraph = new Set(ordered.map((o) => o.metadata.uid));
    const rest = listed.filter((o) => !inGraph.has(o.metadata.uid) && hasSourceUid(o)).reverse();
    const deleted = await deps.mover.remove([...ordered, ...rest]);
    const state = await deps.state.load();
    if (state.pivotComplete) await deps.state.save({ ...state, pivotComplete: false });
    log.info({ deleted }, 'copies released');
    return { ok: true, release: { deleted } };
  };

  return {
    moveBatch: serial(moveBatch),
    moveComplete: serial(moveComplete),
    specSync: serial(specSync),
    unpivotRequest: serial(unpivotRequest),
    releaseCopies: serial(releaseCopies),
  };
}
