/**
 * The object graph of a pivot or an unpivot (DESIGN §7, research/capi.md Part C): which objects of a
 * cluster's namespace move, in which order, and how each is cleaned before it is created on the other
 * side. Both ends use it: the parent's controller to pivot and to import, the child's agent to receive
 * and to send back. Pure: objects in, objects out.
 *
 * The rules follow `clusterctl move` where providers rely on them, with the per-cluster filter of the
 * reference implementation (research/reference-lattice.md §5.2):
 *  - a node per object, keyed by its uid; hard owners from ownerReferences;
 *  - soft ownership: an owner-less Secret or ConfigMap named `<cluster>-…` belongs to the Cluster (covers
 *    `-kubeconfig`, `-ca`, `-etcd`, `-sa`, `-proxy` and the rest);
 *  - the move set: the Cluster, everything that reaches it through owners or soft owners, and anything
 *    labelled `cluster.x-k8s.io/cluster-name: <cluster>` or `clusterctl.cluster.x-k8s.io/move`;
 *  - order: layered topological sort (Kahn), owners before dependents; owners outside the set are
 *    ignored; a cycle is an error, never a silent partial move.
 */
import { isRecord } from '../data.js';
import { groupOf } from '../render/versions.js';

/** Annotations and labels of the move, in one place. */
export const MOVE = {
  /** The object's uid on the side it came from; the receiver rebuilds its uid map from it after a crash. */
  sourceUid: 'lattice.dev/source-uid',
  /** On a parent's shadow: the git-managed object is inert here, the cluster manages itself. */
  pivotedTo: 'lattice.dev/pivoted-to',
  /** CAPI's pause annotation for every object but the Cluster (research/capi.md B.7). */
  paused: 'cluster.x-k8s.io/paused',
  /** clusterctl's label for objects that move although nothing owns them. */
  move: 'clusterctl.cluster.x-k8s.io/move',
  clusterName: 'cluster.x-k8s.io/cluster-name',
  /** Set before deleting a moved object so validating webhooks allow it (research/capi.md C.4 step 6). */
  deleteForMove: 'clusterctl.cluster.x-k8s.io/delete-for-move',
  /** A provider that cannot pause at once holds the move with it until it has quiesced (research/capi.md C.4 step 3). */
  blockMove: 'clusterctl.cluster.x-k8s.io/block-move',
} as const;

/**
 * What may move: Cluster API groups and core Secrets/ConfigMaps only, so a compromised sender can never
 * create RBAC, workloads or anything else on the receiving side. The agent's RBAC (core/flavor/agent.ts)
 * grants exactly these groups. `runtime.cluster.x-k8s.io` is not among them: its one kind, ExtensionConfig,
 * is cluster-scoped (never in a namespace's move) and registers webhooks CAPI calls, which no sender may do.
 */
export const MOVABLE_GROUPS: readonly string[] = [
  'cluster.x-k8s.io', 'infrastructure.cluster.x-k8s.io', 'bootstrap.cluster.x-k8s.io',
  'controlplane.cluster.x-k8s.io', 'ipam.cluster.x-k8s.io', 'addons.cluster.x-k8s.io',
];
const MOVABLE_GROUP_SET = new Set(MOVABLE_GROUPS);
const MOVABLE_CORE_KINDS = new Set(['Secret', 'ConfigMap']);

/** The API group of an apiVersion ("" for core). */
export const groupOfApiVersion = groupOf;

/** Whether objects of this kind may be moved (and received). */
export function movable(apiVersion: string, kind: string): boolean {
  const group = groupOfApiVersion(apiVersion);
  return group === '' ? apiVersion === 'v1' && MOVABLE_CORE_KINDS.has(kind) : MOVABLE_GROUP_SET.has(group);
}

/** Whether a CRD's group holds movable kinds (discovery when CRDs lack the `cluster.x-k8s.io/provider` label). */
export const movableGroup = (group: string): boolean => MOVABLE_GROUP_SET.has(group);

export interface OwnerRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly uid: string;
  readonly controller?: boolean;
  readonly blockOwnerDeletion?: boolean;
}

/** An object as listed (plain JSON). */
export interface ListedObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly ownerReferences?: readonly OwnerRef[];
    readonly finalizers?: readonly string[];
    readonly [key: string]: unknown;
  };
  readonly [key: string]: unknown;
}

export interface MoveNode {
  readonly uid: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  /** Hard owners inside the move set (outside owners are dropped: the receiver could not resolve them). */
  readonly owners: readonly OwnerRef[];
  readonly object: ListedObject;
}

export type GraphResult =
  | { readonly ok: true; readonly batches: readonly (readonly MoveNode[])[] }
  | { readonly ok: false; readonly code: 'NoCluster' | 'CycleDetected' | 'MissingUid'; readonly message: string };

export interface GraphOptions {
  /** The CAPI Cluster's name. */
  readonly cluster: string;
  /** Objects that never move even when the rules select them (e.g. the parent's own state Secret). */
  readonly exclude?: (o: ListedObject) => boolean;
}

const isCapiCluster = (o: ListedObject): boolean => o.kind === 'Cluster' && groupOfApiVersion(o.apiVersion ?? '') === 'cluster.x-k8s.io';
const key = (o: ListedObject) => `${o.apiVersion ?? ''}/${o.kind ?? ''}/${o.metadata.name}`;
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** Kind, then name, then apiVersion: two movable groups may serve kinds of the same name. */
const byKindNameVersion = (a: MoveNode, b: MoveNode): number => compare(a.kind, b.kind) || compare(a.name, b.name) || compare(a.apiVersion, b.apiVersion);

/**
 * The move set of one cluster in batches, owners first. Deterministic: within a batch, nodes are sorted by
 * kind and name, so the same objects give the same batches whatever order they were listed in.
 */
export function moveGraph(objects: readonly ListedObject[], options: GraphOptions): GraphResult {
  const candidates = objects.filter((o) => movable(o.apiVersion ?? '', o.kind ?? '') && !(options.exclude?.(o) ?? false));
  const missing = candidates.find((o) => !o.metadata.uid);
  if (missing) return { ok: false, code: 'MissingUid', message: `${missing.kind ?? '?'} ${missing.metadata.name} has no metadata.uid` };
  const byUid = new Map(candidates.map((o) => [o.metadata.uid as string, o]));
  const cluster = candidates.find((o) => isCapiCluster(o) && o.metadata.name === options.cluster);
  if (!cluster) return { ok: false, code: 'NoCluster', message: `Cluster ${options.cluster} is not among the objects` };
  const clusterUid = cluster.metadata.uid as string;

  // Edges child -> owners (hard and soft), limited to known objects.
  const ownersOf = new Map<string, string[]>();
  for (const [uid, o] of byUid) {
    const refs = (o.metadata.ownerReferences ?? []).map((r) => r.uid).filter((u) => byUid.has(u));
    const soft = refs.length === 0 && o.apiVersion === 'v1' && o.metadata.name.startsWith(`${options.cluster}-`) && uid !== clusterUid ? [clusterUid] : [];
    ownersOf.set(uid, [...refs, ...soft]);
  }
  // Everything that reaches the Cluster through owners: a walk down the reversed edges.
  const dependents = new Map<string, string[]>();
  for (const [uid, owners] of ownersOf) for (const owner of owners) dependents.set(owner, [...(dependents.get(owner) ?? []), uid]);
  const reached = new Set<string>([clusterUid]);
  const queue = [clusterUid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const d of dependents.get(next) ?? []) {
      if (reached.has(d)) continue;
      reached.add(d);
      queue.push(d);
    }
  }
  const selected = new Set<string>();
  for (const [uid, o] of byUid) {
    const labels = o.metadata.labels ?? {};
    if (reached.has(uid) || labels[MOVE.clusterName] === options.cluster || labels[MOVE.move] !== undefined) selected.add(uid);
  }

  // Layered Kahn over the selected set.
  const placed = new Set<string>();
  const batches: MoveNode[][] = [];
  let remaining = [...selected];
  while (remaining.length > 0) {
    const layer = remaining.filter((uid) => (ownersOf.get(uid) ?? []).every((owner) => !selected.has(owner) || placed.has(owner) || owner === uid));
    if (layer.length === 0) {
      const stuck = remaining.map((u) => byUid.get(u)).filter((o): o is ListedObject => o !== undefined).map(key).sort().slice(0, 5);
      return { ok: false, code: 'CycleDetected', message: `the ownerReferences form a cycle among: ${stuck.join(', ')}` };
    }
    const nodes = layer.map((uid) => {
      const o = byUid.get(uid) as ListedObject;
      return {
        uid,
        apiVersion: o.apiVersion ?? '',
        kind: o.kind ?? '',
        name: o.metadata.name,
        owners: (o.metadata.ownerReferences ?? []).filter((r) => selected.has(r.uid)),
        object: o,
      };
    }).sort(byKindNameVersion);
    for (const uid of layer) placed.add(uid);
    batches.push(nodes);
    const done = new Set(layer);
    remaining = remaining.filter((uid) => !done.has(uid));
  }
  return { ok: true, batches };
}

/** Metadata fields the server owns; never sent to the other side. */
const SERVER_FIELDS = ['uid', 'resourceVersion', 'creationTimestamp', 'generation', 'selfLink', 'managedFields', 'ownerReferences', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName'] as const;
/** Annotations that belong to the tools of the side the object came from. */
const DROPPED_ANNOTATION = /^(kubectl\.kubernetes\.io\/last-applied-configuration|meta\.helm\.sh\/.*|argocd\.argoproj\.io\/tracking-id|kustomize\.toolkit\.fluxcd\.io\/.*)$/;

/**
 * The object to create on the receiving side: server fields and status stripped, forced into
 * `namespace`, `lattice.dev/source-uid` recorded, ownerReferences rebuilt with the receiver's uids
 * (`uidMap`: source uid → receiver uid; owners not in it are dropped). Finalizers are kept: the receiver
 * is the side that will manage the object.
 */
export function prepareForCreate(object: unknown, options: { readonly namespace: string; readonly sourceUid: string; readonly owners: readonly OwnerRef[]; readonly uidMap: ReadonlyMap<string, string> }): Record<string, unknown> {
  const o = isRecord(object) ? object : {};
  const meta: Record<string, unknown> = { ...(isRecord(o.metadata) ? o.metadata : {}) };
  for (const f of SERVER_FIELDS) delete meta[f];
  const annotations = Object.fromEntries(Object.entries(isRecord(meta.annotations) ? meta.annotations : {}).filter(([k]) => !DROPPED_ANNOTATION.test(k)));
  annotations[MOVE.sourceUid] = options.sourceUid;
  meta.annotations = annotations;
  meta.namespace = options.namespace;
  const owners = options.owners.flatMap((r) => {
    const uid = options.uidMap.get(r.uid);
    return uid ? [{ apiVersion: r.apiVersion, kind: r.kind, name: r.name, uid, ...(r.controller ? { controller: true } : {}), ...(r.blockOwnerDeletion ? { blockOwnerDeletion: true } : {}) }] : [];
  });
  if (owners.length > 0) meta.ownerReferences = owners;
  const { status: _status, metadata: _metadata, ...rest } = o;
  return { ...rest, metadata: meta };
}

/**
 * Whether CAPI considers the object paused on its own (the Cluster's spec.paused pauses everything else too).
 * A Cluster is paused by spec.paused or by the annotation: CAPI's `annotations.IsPaused(cluster, cluster)`
 * checks both, so a Cluster carrying only the annotation is paused as well.
 */
export function isPaused(o: ListedObject): boolean {
  const annotated = o.metadata.annotations?.[MOVE.paused] !== undefined;
  if (isCapiCluster(o)) return (isRecord(o.spec) && o.spec.paused === true) || annotated;
  return annotated;
}

/** The JSON merge patch that pauses an object (Cluster: spec.paused; the rest: the annotation). */
export function pausePatch(o: ListedObject): Record<string, unknown> {
  return isCapiCluster(o) ? { spec: { paused: true } } : { metadata: { annotations: { [MOVE.paused]: '' } } };
}

/**
 * The merge patch that unpauses an object: spec.paused removed rather than set false (clusterctl does the
 * same so it never becomes an owner of the field), the annotation removed.
 */
export function unpausePatch(o: ListedObject): Record<string, unknown> {
  if (!isCapiCluster(o)) return { metadata: { annotations: { [MOVE.paused]: null } } };
  // The annotation also pauses a Cluster (see isPaused); removed only when present, so the patch never adds an
  // empty annotations map to a Cluster that had none.
  return { spec: { paused: null }, ...(o.metadata.annotations?.[MOVE.paused] !== undefined ? { metadata: { annotations: { [MOVE.paused]: null } } } : {}) };
}

export { isCapiCluster };

/**
 * The order to unpause in: the Cluster last, so that while its spec.paused holds, no controller acts on the
 * others, and everything starts at once.
 */
export function clusterLast<T extends ListedObject>(objects: readonly T[]): T[] {
  return [...objects.filter((o) => !isCapiCluster(o)), ...objects.filter(isCapiCluster)];
}

/** The object with its pause applied (what pausePatch would make of it), for objects that are not stored yet. */
export function withPause<T extends ListedObject>(o: T): T {
  if (isPaused(o)) return o;
  if (isCapiCluster(o)) return { ...o, spec: { ...(isRecord(o.spec) ? o.spec : {}), paused: true } };
  return { ...o, metadata: { ...o.metadata, annotations: { ...(o.metadata.annotations ?? {}), [MOVE.paused]: '' } } };
}

/**
 * Whether the Cluster's controllers have acknowledged its pause: CAPI v1beta2 controllers set the `Paused`
 * condition at the generation they observed, and only then stop creating objects (research/capi.md C.8.3).
 * A Cluster without that condition (an older contract) cannot say, and counts as acknowledged.
 */
export function pauseAcknowledged(cluster: ListedObject): boolean {
  const status = isRecord(cluster.status) ? cluster.status : {};
  const conditions = Array.isArray(status.conditions) ? status.conditions.filter(isRecord) : [];
  const paused = conditions.find((c) => c.type === 'Paused');
  if (!paused) return true;
  const generation = cluster.metadata.generation;
  const observed = paused.observedGeneration;
  return paused.status === 'True' && (typeof generation !== 'number' || typeof observed !== 'number' || observed >= generation);
}

/**
 * What `clusterctl move` checks before it moves anything (research/capi.md C.3, C.4): every Machine has its
 * Node, nothing is being deleted, no object asks to block the move, and nothing was paused by someone else
 * (unpausing it afterwards would undo their pause). The first problem found, or undefined.
 */
export function moveBlocker(objects: readonly ListedObject[]): string | undefined {
  for (const o of objects) {
    const id = `${o.kind ?? '?'} ${o.metadata.name}`;
    if (o.metadata.deletionTimestamp !== undefined) return `${id} is being deleted`;
    if (o.metadata.annotations?.[MOVE.blockMove] !== undefined) return `${id} has the ${MOVE.blockMove} annotation`;
    if (isPaused(o)) return `${id} is paused (unpause it, or the pivot would unpause it afterwards)`;
    if (o.kind === 'Machine' && groupOf(o.apiVersion ?? '') === 'cluster.x-k8s.io') {
      const status = isRecord(o.status) ? o.status : {};
      if (!isRecord(status.nodeRef) || typeof status.nodeRef.name !== 'string') return `${id} has no Node yet (still provisioning)`;
    }
  }
  return undefined;
}
