/**
 * Moving Cluster API objects between API servers (DESIGN §7), for both ends of the pivot: the agent
 * receives a pivot and sends an unpivot back, the controller imports an unpivot into the parent. What moves
 * and in which order is core/move/graph.ts; this module only reads and writes, through client-node's
 * generic `KubernetesObjectApi` (paths by discovery, so any provider's kinds work without a table here).
 *
 * Rules every caller relies on:
 * - only movable kinds (core/move/graph.ts `movable`) are ever created, whatever the sender says;
 * - receiving is idempotent: a 409 means "already there", its uid is reused, and the uid map is rebuilt
 *   from the `lattice.dev/source-uid` annotations of what is already in the namespace, so a batch re-sent
 *   after a crash on either side creates nothing twice;
 * - errors carry the HTTP code and the API server's reason only: client-node's ApiException message holds
 *   the response body and headers (a Secret's data, a bearer token), which must never reach a log or an Ack.
 */
import { setTimeout as sleepMs } from 'node:timers/promises';
import {
  ApiException, ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject, type V1APIResourceList,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { isRecord } from '../core/data.js';
import { LatticeError } from '../core/errors.js';
import { groupOfApiVersion, isCapiCluster, isPaused, movable, movableGroup, MOVE, pausePatch, prepareForCreate, unpausePatch, type ListedObject, type OwnerRef } from '../core/move/graph.js';

export type { ListedObject, OwnerRef };

/** One object to receive, as the sender listed it. */
export interface IncomingObject {
  /** metadata.uid on the sending side. */
  readonly sourceUid: string;
  /** The object as JSON; server fields and status are stripped here, never trusted. */
  readonly object: Record<string, unknown>;
  /** Its owners, by SOURCE uid (rebuilt with the receiver's uids). */
  readonly owners: readonly OwnerRef[];
}

export interface ReceiveResult {
  /** Source uid → receiver uid, for every object that exists on the receiver now (created or found). */
  readonly mappings: { sourceUid: string; targetUid: string }[];
  /** Objects not received; `retryable` when sending them again may work (5xx, network, an owner that failed so). */
  readonly errors: { sourceUid: string; message: string; retryable: boolean }[];
}

export interface ReceiveOptions {
  /**
   * For an object that already exists: true replaces it with the incoming one (PUT with its resourceVersion,
   * keeping its uid). The parent imports an unpivot into its shadows so; the agent never adopts.
   */
  readonly adopt?: (existing: ListedObject) => boolean;
}

export interface Mover {
  /**
   * Every object in `namespace` of a movable kind: namespaced CRDs whose group is movableGroup() (served
   * storage version; with or without the `cluster.x-k8s.io/provider` label, which pinned or hand-installed
   * CRDs may lack; a labelled CRD outside the allowlist could never be moved, so it is not listed), plus v1
   * Secrets and ConfigMaps. Plain JSON with apiVersion and kind set. Throws MoverError when a list fails.
   */
  list(namespace: string): Promise<ListedObject[]>;
  /**
   * Creates the objects in `namespace` (created if missing), owners before what they own and independent
   * objects concurrently. Per object: a kind outside the allowlist, or not served here as a namespaced kind, is
   * an error (not retryable); prepareForCreate with a uid map of the owners received before (read by name,
   * matched on their `lattice.dev/source-uid`) plus this call's mappings; 409 reuses the existing object's uid (replacing the object when `adopt` says
   * so); 5xx, 429 and network errors are retried, then reported retryable; other 4xx are not retryable. An
   * object whose owner failed earlier in the same call is not created without it (reported with the owner's
   * retryability). Never throws for per-object failures.
   */
  receive(namespace: string, objects: readonly IncomingObject[], options?: ReceiveOptions): Promise<ReceiveResult>;
  /**
   * Pauses every object not yet paused (pausePatch, JSON merge patch): a Cluster first, then the rest
   * concurrently; returns how many were patched.
   */
  pause(objects: readonly ListedObject[]): Promise<number>;
  /** Unpauses every paused object (unpausePatch): the rest concurrently, then a Cluster; returns how many were patched. */
  unpause(objects: readonly ListedObject[]): Promise<number>;
  /**
   * Deletes in the order given (callers pass dependents first), or all at once with `concurrent` (one layer
   * of independent objects): annotation MOVE.deleteForMove, finalizers stripped, DELETE; 404 is fine.
   * Returns how many existed.
   */
  remove(objects: readonly ListedObject[], options?: { readonly concurrent?: boolean }): Promise<number>;
  /** A JSON merge patch of one object (404 → false). */
  patch(object: ListedObject, patch: Record<string, unknown>): Promise<boolean>;
  /**
   * Server-side apply (forced, as the mover's field manager) of one object, which must name its namespace and be
   * of a movable kind served here as namespaced (the same allowlist as receive). Throws MoverError.
   */
  apply(object: Record<string, unknown>): Promise<ListedObject>;
}

export interface MoverOptions {
  readonly kubeConfig: KubeConfig;
  readonly fieldManager: string;
  readonly log: Logger;
  /** Retries of 5xx, 429 and network failures: attempts in all, and the first delay (doubling). @default {attempts: 4, delayMs: 200} */
  readonly retry?: { readonly attempts?: number; readonly delayMs?: number };
  /** @default a timer */
  readonly sleep?: (ms: number) => Promise<void>;
  /** How long the movable kinds (from the CRDs) are reused before they are listed again. @default 30000 */
  readonly discoveryTtlMs?: number;
  /** apiVersion by kind to read and write at when served (templates/versions.yaml `apiVersions`). @default storage versions */
  readonly apiVersions?: Readonly<Record<string, string>>;
}

/**
 * A failed API call: the operation, the HTTP code and the Status reason; nothing from the body or the headers.
 * Retryable (kind transient) for 5xx, 429 and network errors; stalling otherwise. HTTP code 0: no answer came
 * (retryable), or the mover refused the object itself, before any request (not retryable; see `refused`).
 */
export class MoverError extends LatticeError {
  constructor(
    readonly operation: string,
    readonly httpCode: number,
    readonly reason: string,
    readonly retryable: boolean,
  ) {
    super(retryable ? 'transient' : 'stalling', 'KubeRequestFailed', `${operation}: ${httpCode === 0 ? reason : `${httpCode} ${reason}`}`);
    this.name = 'MoverError';
  }
}

export const isMoverError = (e: unknown, httpCode?: number): e is MoverError => e instanceof MoverError && (httpCode === undefined || e.httpCode === httpCode);
/** The mover refused the object itself (allowlist, scope, missing name): sending it again cannot help. */
export const refused = (e: unknown): e is MoverError => isMoverError(e, 0) && !e.retryable;

/**
 * Requests one mover call keeps in flight for independent objects (one layer of a move, a pause): enough to
 * hide the round trips, few enough not to crowd an API server (client-go's default QPS is 5 with a burst of 10).
 */
const CONCURRENCY = 8;

/** Runs `f` over `items` with at most `limit` at once; resolves to the results in the order of `items`; the first failure rejects. */
async function inParallel<T, R>(items: readonly T[], limit: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await f(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const count = (flags: readonly boolean[]): number => flags.filter(Boolean).length;

/** Cluster API Clusters apart from the rest, each in the order given. */
function splitClusters(objects: readonly ListedObject[]): [ListedObject[], ListedObject[]] {
  return [objects.filter((o) => isCapiCluster(o)), objects.filter((o) => !isCapiCluster(o))];
}

const CORE_KINDS = [{ apiVersion: 'v1', kind: 'ConfigMap' }, { apiVersion: 'v1', kind: 'Secret' }] as const;

/** The Status body of an ApiException, whatever form client-node left it in. */
function statusOf(body: unknown): Record<string, unknown> | undefined {
  if (isRecord(body)) return body;
  if (typeof body !== 'string' || body === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Any failure as a MoverError, keeping only what may be shown. */
function classify(e: unknown, operation: string): MoverError {
  if (e instanceof MoverError) return e;
  if (e instanceof ApiException) {
    const code = Number(e.code);
    const status = statusOf(e.body as unknown);
    let reason = typeof status?.reason === 'string' && status.reason !== '' ? status.reason : 'Unknown';
    // A resource type that is not served answers 404 without naming an object (discovery or the list path).
    if (code === 404 && !(isRecord(status?.details) && typeof status.details.name === 'string')) reason = 'NotServed';
    return new MoverError(operation, code, reason, code >= 500 || code === 429);
  }
  // KubernetesObjectApi's discovery found the group/version but not the kind.
  if (e instanceof Error && e.message.startsWith('Unrecognized API version and kind')) return new MoverError(operation, 404, 'NotServed', false);
  // No HTTP answer: connection refused, reset, TLS, DNS. Only the errno travels (messages carry URLs).
  const errno = (x: unknown): string | undefined => (isRecord(x) && typeof x.code === 'string' && /^[A-Z_]+$/.test(x.code) ? x.code : undefined);
  const code = errno(e) ?? (isRecord(e) ? errno(e.cause) : undefined);
  return new MoverError(operation, 0, code ? `network error (${code})` : 'network error', true);
}

/** Plain JSON (client-node's typed models carry Date objects) with apiVersion and kind set. */
function toListed(value: unknown, apiVersion: string, kind: string): ListedObject {
  const json: unknown = JSON.parse(JSON.stringify(value ?? null));
  if (!isRecord(json) || !isRecord(json.metadata) || typeof json.metadata.name !== 'string') throw new MoverError(`read ${kind}`, 0, 'the API server returned something that is not an object', false);
  return { ...json, apiVersion, kind } as ListedObject;
}

const describeObject = (o: { readonly kind?: string; readonly metadata: { readonly name: string; readonly namespace?: string } }): string => `${o.kind ?? '?'} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;

interface Kind {
  readonly apiVersion: string;
  readonly kind: string;
}

class KubeMover implements Mover {
  private readonly objects: KubernetesObjectApi;
  private readonly extensions: ApiextensionsV1Api;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  /** Discovery by apiVersion, kept for the mover's life (as KubernetesObjectApi keeps its own); refreshed on a miss. */
  private readonly discovered = new Map<string, V1APIResourceList>();
  private readonly attempts: number;
  private readonly delayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly log: Logger;
  private movableKinds?: { readonly at: number; readonly kinds: Promise<Kind[]> };

  constructor(private readonly options: MoverOptions) {
    this.objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
    this.extensions = options.kubeConfig.makeApiClient(ApiextensionsV1Api);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.attempts = Math.max(1, options.retry?.attempts ?? 4);
    this.delayMs = options.retry?.delayMs ?? 200;
    this.sleep = options.sleep ?? ((ms) => sleepMs(ms));
    this.log = options.log;
  }

  /** Runs `f`, retrying what may work next time with a doubling delay; throws a MoverError. */
  private async call<T>(operation: string, f: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await f();
      } catch (e) {
        const error = classify(e, operation);
        if (!error.retryable || attempt >= this.attempts) throw error;
        this.log.debug({ operation, httpCode: error.httpCode, reason: error.reason, attempt }, 'kube request failed; retrying');
        await this.sleep(this.delayMs * 2 ** (attempt - 1));
      }
    }
  }

  /**
   * The kinds, read again at most every `discoveryTtlMs`: listing every CRD (schemas included) is the costliest
   * read of a move, and a move lists its namespace several times. A failed read is not kept.
   */
  private kinds(): Promise<Kind[]> {
    const ttl = this.options.discoveryTtlMs ?? 30_000;
    const now = performance.now();
    if (this.movableKinds && now - this.movableKinds.at < ttl) return this.movableKinds.kinds;
    const kinds = this.discoverKinds();
    this.movableKinds = { at: now, kinds };
    kinds.catch(() => {
      if (this.movableKinds?.kinds === kinds) this.movableKinds = undefined;
    });
    return kinds;
  }

  /** The movable, namespaced kinds this API server serves (rendered or storage version), sorted (so lists come back in a stable order). */
  private async discoverKinds(): Promise<Kind[]> {
    const crds = await this.call('list customresourcedefinitions', () => this.extensions.listCustomResourceDefinition());
    const listed: Kind[] = [...CORE_KINDS];
    for (const crd of crds.items) {
      const group = crd.spec.group;
      // Cluster-scoped kinds never move with a namespace: created "in" a namespace they would land cluster-wide.
      if (crd.spec.scope !== 'Namespaced' || !movableGroup(group)) continue;
      // clusterctl reads the storage version: the one every object is stored at, so nothing is converted twice.
      // The version Lattice renders the kind at, when served: what git applies, so what the GitOps engine and
      // the move see is the same shape (an API server converts between served versions; a simulated one
      // cannot). Otherwise the storage version, as clusterctl reads it.
      const preferred = this.options.apiVersions?.[crd.spec.names.kind];
      const rendered = preferred?.startsWith(`${group}/`) ? crd.spec.versions.find((v) => v.served && `${group}/${v.name}` === preferred) : undefined;
      const version = rendered ?? crd.spec.versions.find((v) => v.storage && v.served) ?? crd.spec.versions.find((v) => v.served);
      if (version) listed.push({ apiVersion: `${group}/${version.name}`, kind: crd.spec.names.kind });
    }
    return listed.sort((a, b) => (a.apiVersion === b.apiVersion ? (a.kind < b.kind ? -1 : 1) : a.apiVersion < b.apiVersion ? -1 : 1));
  }

  /**
   * Whether `kind` is served at `apiVersion` as a namespaced resource. A cluster-scoped kind of a movable group
   * (an AWSClusterStaticIdentity, say) must never be created from a namespace's move: it would land cluster-wide.
   */
  private async namespaced(apiVersion: string, kind: string): Promise<boolean> {
    const find = (list?: V1APIResourceList) => list?.resources.find((r) => r.kind === kind && !r.name.includes('/'));
    let resource = find(this.discovered.get(apiVersion));
    if (!resource) {
      const group = groupOfApiVersion(apiVersion);
      const version = apiVersion.slice(apiVersion.indexOf('/') + 1);
      try {
        const list = await this.call(`discover ${apiVersion}`, () => (group === '' ? this.core.getAPIResources() : this.custom.getAPIResources({ group, version })));
        this.discovered.set(apiVersion, list);
        resource = find(list);
      } catch (e) {
        if (isMoverError(e, 404)) return false;
        throw e;
      }
    }
    return resource?.namespaced === true;
  }

  async list(namespace: string): Promise<ListedObject[]> {
    const kinds = await this.kinds();
    const lists = await Promise.all(kinds.map(async ({ apiVersion, kind }) => {
      const list = await this.call(`list ${kind} in ${namespace}`, () => this.objects.list(apiVersion, kind, namespace));
      return list.items.map((item) => toListed(item, apiVersion, kind));
    }));
    return lists.flat();
  }

  private async ensureNamespace(namespace: string): Promise<void> {
    try {
      await this.call(`get namespace ${namespace}`, () => this.core.readNamespace({ name: namespace }));
      return;
    } catch (e) {
      if (!isMoverError(e, 404)) throw e;
    }
    try {
      await this.call(`create namespace ${namespace}`, () => this.core.createNamespace({ body: { metadata: { name: namespace } }, fieldManager: this.options.fieldManager }));
      this.log.info({ namespace }, 'namespace created for received objects');
    } catch (e) {
      if (!isMoverError(e, 409)) throw e;
    }
  }

  private async read(kind: Kind, name: string, namespace: string): Promise<ListedObject | undefined> {
    try {
      const found = await this.call(`get ${kind.kind} ${namespace}/${name}`, () => this.objects.read({ apiVersion: kind.apiVersion, kind: kind.kind, metadata: { name, namespace } }));
      return toListed(found, kind.apiVersion, kind.kind);
    } catch (e) {
      if (isMoverError(e, 404) && e.reason !== 'NotServed') return undefined;
      throw e;
    }
  }

  async receive(namespace: string, objects: readonly IncomingObject[], options: ReceiveOptions = {}): Promise<ReceiveResult> {
    const mappings: { sourceUid: string; targetUid: string }[] = [];
    const errors: { sourceUid: string; message: string; retryable: boolean }[] = [];
    const uidMap = new Map<string, string>();
    const inCall = new Set(objects.map((o) => o.sourceUid));
    try {
      await this.ensureNamespace(namespace);
      // Owners received before (an earlier batch, or before a crash, ours or the sender's) say which source
      // they came from: each is read by name, which costs a request per owner, not a list of every kind.
      await this.resolveOwners(namespace, objects.flatMap((o) => o.owners).filter((r) => !inCall.has(r.uid)), uidMap);
    } catch (e) {
      const error = classify(e, `prepare ${namespace}`);
      this.log.warn({ namespace, httpCode: error.httpCode, reason: error.reason }, 'cannot receive objects');
      return { mappings, errors: objects.map((o) => ({ sourceUid: o.sourceUid, message: error.message, retryable: error.retryable })) };
    }
    const failed = new Map<string, boolean>();
    const results = new Map<string, { targetUid: string } | { message: string; retryable: boolean }>();
    // In waves: an object goes once its owners in this call have gone (owners first, as given), and the
    // objects of a wave, independent of each other, are created concurrently.
    let pending = [...objects];
    while (pending.length > 0) {
      const waiting = new Set(pending.map((o) => o.sourceUid));
      const ready = pending.filter((o) => !o.owners.some((r) => r.uid !== o.sourceUid && waiting.has(r.uid)));
      // An ownership cycle (never from a well-formed graph) goes one at a time, in the order given.
      const wave = ready.length > 0 ? ready : pending.slice(0, 1);
      await inParallel(wave, CONCURRENCY, async (incoming) => {
        const result = await this.receiveOne(namespace, incoming, { uidMap, failed }, options);
        results.set(incoming.sourceUid, result);
        if ('targetUid' in result) uidMap.set(incoming.sourceUid, result.targetUid);
        else failed.set(incoming.sourceUid, result.retryable);
      });
      const done = new Set(wave.map((o) => o.sourceUid));
      pending = pending.filter((o) => !done.has(o.sourceUid));
    }
    // Reported in the order given, whatever order the requests finished in.
    for (const incoming of objects) {
      const result = results.get(incoming.sourceUid);
      if (!result) continue;
      if ('targetUid' in result) mappings.push({ sourceUid: incoming.sourceUid, targetUid: result.targetUid });
      else errors.push({ sourceUid: incoming.sourceUid, message: result.message, retryable: result.retryable });
    }
    this.log.info({ namespace, received: mappings.length, failed: errors.length }, 'objects received');
    return { mappings, errors };
  }

  /** Maps owners received earlier (their `lattice.dev/source-uid`) to their uids here; owners not found stay unmapped. */
  private async resolveOwners(namespace: string, owners: readonly OwnerRef[], uidMap: Map<string, string>): Promise<void> {
    const distinct = [...new Map(owners.map((r) => [r.uid, r])).values()];
    if (distinct.length === 0) return;
    const kinds = await this.kinds();
    await inParallel(distinct, CONCURRENCY, async (ref) => {
      // Read at the version served here for the owner's group and kind (the sender's may differ).
      const served = kinds.find((k) => k.kind === ref.kind && groupOfApiVersion(k.apiVersion) === groupOfApiVersion(ref.apiVersion));
      if (!served) return;
      const found = await this.read(served, ref.name, namespace);
      if (found?.metadata.uid && found.metadata.annotations?.[MOVE.sourceUid] === ref.uid) uidMap.set(ref.uid, found.metadata.uid);
    });
  }

  private async receiveOne(
    namespace: string, incoming: IncomingObject,
    known: { readonly uidMap: ReadonlyMap<string, string>; readonly failed: ReadonlyMap<string, boolean> },
    options: ReceiveOptions,
  ): Promise<{ targetUid: string } | { message: string; retryable: boolean }> {
    const { uidMap, failed } = known;
    const o = incoming.object;
    const apiVersion = typeof o.apiVersion === 'string' ? o.apiVersion : '';
    const kind = typeof o.kind === 'string' ? o.kind : '';
    const name = isRecord(o.metadata) && typeof o.metadata.name === 'string' ? o.metadata.name : '';
    if (!apiVersion || !kind || !name) return { message: 'the object has no apiVersion, kind or metadata.name', retryable: false };
    // The allowlist: a sender (a compromised parent, a child during unpivot) can never create RBAC, workloads or webhooks here.
    if (!movable(apiVersion, kind)) return { message: `${kind} (${groupOfApiVersion(apiVersion) || 'core'}) may not be moved`, retryable: false };
    try {
      if (!(await this.namespaced(apiVersion, kind))) return { message: `${kind} (${apiVersion}) is not served here as a namespaced kind`, retryable: false };
    } catch (e) {
      const error = classify(e, `discover ${apiVersion}`);
      return { message: error.message, retryable: error.retryable };
    }
    // Created without an owner that failed, the object would keep a dangling ownership forever (a 409 on retry reuses it as is).
    const owner = incoming.owners.find((r) => failed.has(r.uid));
    if (owner) return { message: `its owner ${owner.kind} ${owner.name} was not received`, retryable: failed.get(owner.uid) ?? false };
    const body = prepareForCreate(o, { namespace, sourceUid: incoming.sourceUid, owners: incoming.owners, uidMap }) as KubernetesObject & Record<string, unknown>;
    const what = `${kind} ${namespace}/${name}`;
    try {
      const created = await this.call(`create ${what}`, () => this.objects.create(body, undefined, undefined, this.options.fieldManager));
      const uid = created.metadata?.uid;
      if (!uid) return { message: `create ${what}: the API server returned no uid`, retryable: true };
      this.log.debug({ namespace, kind, name }, 'object created');
      return { targetUid: uid };
    } catch (e) {
      const error = classify(e, `create ${what}`);
      if (error.httpCode !== 409) {
        this.log.warn({ namespace, kind, name, httpCode: error.httpCode, reason: error.reason }, 'object not received');
        return { message: error.message, retryable: error.retryable };
      }
    }
    try {
      return await this.reuse({ apiVersion, kind }, name, namespace, body, options);
    } catch (e) {
      const error = classify(e, `update ${what}`);
      this.log.warn({ namespace, kind, name, httpCode: error.httpCode, reason: error.reason }, 'object not received');
      return { message: error.message, retryable: error.retryable };
    }
  }

  /** The object exists already: reuse its uid, replacing it first when the caller adopts it. */
  private async reuse(kind: Kind, name: string, namespace: string, body: Record<string, unknown>, options: ReceiveOptions): Promise<{ targetUid: string } | { message: string; retryable: boolean }> {
    const what = `${kind.kind} ${namespace}/${name}`;
    // A replace that loses a race with another writer (409 on resourceVersion) reads again and retries.
    for (let round = 1; ; round++) {
      const existing = await this.read(kind, name, namespace);
      // 409 then 404: it was being deleted. Sending again creates it.
      if (!existing?.metadata.uid) return { message: `${what} exists but could not be read`, retryable: true };
      if (!(options.adopt?.(existing) ?? false)) {
        this.log.debug({ namespace, kind: kind.kind, name }, 'object already there; uid reused');
        return { targetUid: existing.metadata.uid };
      }
      const meta = isRecord(body.metadata) ? body.metadata : {};
      const replacement = { ...body, metadata: { ...meta, uid: existing.metadata.uid, resourceVersion: existing.metadata.resourceVersion } } as KubernetesObject & Record<string, unknown>;
      try {
        await this.call(`update ${what}`, () => this.objects.replace(replacement, undefined, undefined, this.options.fieldManager));
        this.log.info({ namespace, kind: kind.kind, name }, 'existing object adopted');
        return { targetUid: existing.metadata.uid };
      } catch (e) {
        if (!isMoverError(e, 409) || round >= 3) throw e;
      }
    }
  }

  async patch(object: ListedObject, patch: Record<string, unknown>): Promise<boolean> {
    const apiVersion = object.apiVersion ?? '';
    const kind = object.kind ?? '';
    const meta = isRecord(patch.metadata) ? patch.metadata : {};
    // KubernetesObjectApi takes the path from the body; name and namespace in a merge patch change nothing.
    const body = { ...patch, apiVersion, kind, metadata: { ...meta, name: object.metadata.name, ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}) } };
    try {
      await this.call(`patch ${describeObject(object)}`, () => this.objects.patch(body, undefined, undefined, this.options.fieldManager, undefined, PatchStrategy.MergePatch));
      return true;
    } catch (e) {
      if (isMoverError(e, 404) && e.reason !== 'NotServed') return false;
      throw e;
    }
  }

  async pause(objects: readonly ListedObject[]): Promise<number> {
    // A Cluster first, alone: paused, it stops its controllers from acting on the rest while they are paused.
    const [clusters, rest] = splitClusters(objects.filter((o) => !isPaused(o)));
    let patched = 0;
    for (const o of clusters) if (await this.patch(o, pausePatch(o))) patched += 1;
    patched += count(await inParallel(rest, CONCURRENCY, (o) => this.patch(o, pausePatch(o))));
    if (patched > 0) this.log.info({ patched }, 'objects paused');
    return patched;
  }

  async unpause(objects: readonly ListedObject[]): Promise<number> {
    // A Cluster last, alone: nothing is reconciled until everything it holds is unpaused (clusterLast).
    const [clusters, rest] = splitClusters(objects.filter((o) => isPaused(o)));
    let patched = count(await inParallel(rest, CONCURRENCY, (o) => this.patch(o, unpausePatch(o))));
    for (const o of clusters) if (await this.patch(o, unpausePatch(o))) patched += 1;
    if (patched > 0) this.log.info({ patched }, 'objects unpaused');
    return patched;
  }

  async remove(objects: readonly ListedObject[], options: { readonly concurrent?: boolean } = {}): Promise<number> {
    const removeOne = async (o: ListedObject): Promise<boolean> => {
      // One patch: the annotation lets validating webhooks allow the delete (research/capi.md C.4 step 6), and
      // without finalizers the object goes at once instead of waiting for a (paused) controller.
      if (!(await this.patch(o, { metadata: { annotations: { [MOVE.deleteForMove]: '' }, finalizers: null } }))) return false;
      try {
        await this.call(`delete ${describeObject(o)}`, () => this.objects.delete({ apiVersion: o.apiVersion ?? '', kind: o.kind ?? '', metadata: { name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) } }));
      } catch (e) {
        if (!(isMoverError(e, 404) && e.reason !== 'NotServed')) throw e;
      }
      return true;
    };
    let existed = 0;
    if (options.concurrent) existed = count(await inParallel(objects, CONCURRENCY, removeOne));
    else for (const o of objects) if (await removeOne(o)) existed += 1;
    if (existed > 0) this.log.info({ deleted: existed }, 'objects deleted');
    return existed;
  }

  async apply(object: Record<string, unknown>): Promise<ListedObject> {
    const apiVersion = typeof object.apiVersion === 'string' ? object.apiVersion : '';
    const kind = typeof object.kind === 'string' ? object.kind : '';
    const meta = isRecord(object.metadata) ? object.metadata : {};
    const name = typeof meta.name === 'string' ? meta.name : '';
    const namespace = typeof meta.namespace === 'string' ? meta.namespace : '';
    const what = `apply ${kind || '?'} ${namespace ? `${namespace}/` : ''}${name || '?'}`;
    // Without a namespace client-node would use the kubeconfig's default: never guess where an object goes.
    if (!apiVersion || !kind || !name || !namespace) throw new MoverError(what, 0, 'the object has no apiVersion, kind, name or namespace', false);
    // The same allowlist as receive: apply carries objects from the other side too (MoveComplete's manifests).
    if (!movable(apiVersion, kind)) throw new MoverError(what, 0, `${kind} (${groupOfApiVersion(apiVersion) || 'core'}) may not be moved`, false);
    if (!(await this.namespaced(apiVersion, kind))) throw new MoverError(what, 0, `${kind} (${apiVersion}) is not served here as a namespaced kind`, false);
    const applied = await this.call(what, () => this.objects.patch(object as KubernetesObject, undefined, undefined, this.options.fieldManager, true, PatchStrategy.ServerSideApply));
    return toListed(applied, apiVersion, kind);
  }
}

/** A Mover over one API server. */
export function createMover(options: MoverOptions): Mover {
  return new KubeMover(options);
}
