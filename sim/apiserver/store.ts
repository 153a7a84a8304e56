/**
 * The simulated etcd + registry: every object, one global resourceVersion counter, a bounded event history
 * for watches, and the controllers whose effects clients observe through the API (garbage collection,
 * namespace and CRD finalization). All operations are synchronous, so each request is atomic, as a
 * single etcd transaction is.
 *
 * Semantics mirrored (k8s.io/apiserver/pkg/registry/generic/registry.Store and the kinds' strategies):
 * optimistic concurrency on resourceVersion, generation bumps on non-metadata changes only, /status
 * isolation, finalizers and deletionTimestamp, propagation policies, no-op writes that change nothing
 * (no new resourceVersion, no event).
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  alreadyExists, ApiError, badRequest, conflict, expired, forbidden, internalError, invalid, methodNotAllowed, notFound,
  staleResourceVersion, type FieldError, type GroupKind, type GroupResource,
} from './errors.js';
import {
  clone, deepEqual, finalizerWarnings, FOREGROUND_FINALIZER, isRecord, metadataErrors, ORPHAN_FINALIZER, rfc3339,
  type KubeObject, type ObjectMeta,
} from './objects.js';
import {
  CRD_TYPE_ID, crdToResourceType, groupVersion, NAMESPACE_TYPE_ID, ResourceRegistry, type ResourceType, type ServedVersion,
} from './resources.js';
import { prune, SchemaCache, validateWithSchema } from './schema.js';
import { matchesFields, matchesLabels, type FieldRequirement, type LabelRequirement } from './selectors.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One change, as kept in the history and sent to watchers (objects are never mutated once stored). */
export interface StoredEvent {
  readonly rv: number;
  readonly type: WatchEventType;
  readonly typeId: string;
  readonly object: KubeObject;
  /** The object before a MODIFIED change: watchers with selectors need it to turn the change into ADDED/DELETED. */
  readonly prev?: KubeObject;
}

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  readonly dryRun?: boolean;
  /** What to do with unknown fields: 400 (Strict), a warning (Warn, the server default) or nothing. */
  readonly fieldValidation?: FieldValidation;
  /** Collects `Warning` header texts for the response. */
  readonly warnings?: string[];
}

export interface UpdateOptions extends WriteOptions {
  readonly subresource?: 'status';
  /** A patch result: no resourceVersion means "the version I patched", not "unconditional". */
  readonly patch?: boolean;
}

export type PropagationPolicy = 'Background' | 'Foreground' | 'Orphan';

export interface DeleteOptions extends WriteOptions {
  readonly propagationPolicy?: PropagationPolicy;
  readonly preconditions?: { readonly uid?: string; readonly resourceVersion?: string };
}

export interface Selectors {
  readonly namespace?: string;
  readonly labelSelector?: readonly LabelRequirement[];
  readonly fieldSelector?: readonly FieldRequirement[];
}

export interface ListOptions extends Selectors {
  readonly limit?: number;
  readonly continue?: string;
}

export interface ListResult {
  readonly items: KubeObject[];
  readonly resourceVersion: string;
  readonly continue?: string;
  readonly remainingItemCount?: number;
}

export interface WatchOptions extends Selectors {
  /** Unset or "0": synthetic ADDED for every current object first; otherwise replay history after it. */
  readonly resourceVersion?: string;
}

export interface WatchSink {
  event(type: WatchEventType, object: KubeObject): void;
  /** The type stopped being served (its CRD is gone): end the stream. */
  close(): void;
}

export interface StoreOptions {
  readonly validation: boolean;
  readonly historySize: number;
  readonly garbageCollection: boolean;
  readonly now: () => Date;
  readonly log: Logger;
}

interface Watcher extends Selectors {
  readonly type: ResourceType;
  readonly sink: WatchSink;
}

/** The namespaces the API server refuses to delete. */
const UNDELETABLE_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);
const CRD_CLEANUP_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io';
/** utilrand's alphabet: no vowels, no look-alike digits. */
const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const MAX_GENERATED_BASE = 63 - 5;

const gr = (t: ResourceType): GroupResource => ({ group: t.group, resource: t.plural });
const gk = (t: ResourceType): GroupKind => ({ group: t.group, kind: t.kind });
const objectKey = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;
const nonMetadata = (o: KubeObject) => Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'metadata'));
const withoutRv = (o: KubeObject): KubeObject => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
const isDeleting = (o: KubeObject) => o.metadata.deletionTimestamp !== undefined;

export class Store {
  readonly registry: ResourceRegistry;
  private readonly schemas = new SchemaCache();
  private rv = 0;
  private readonly data = new Map<string, Map<string, KubeObject>>();
  private readonly uids = new Map<string, { typeId: string; key: string }>();
  private history: StoredEvent[] = [];
  private compactedRv = 0;
  private readonly watchers = new Set<Watcher>();
  private sweepScheduled = false;
  private closed = false;
  /** Set while installing CRDs from files: their schemas compile on first use, not at install. */
  private installing = false;

  constructor(private readonly opts: StoreOptions, registry = new ResourceRegistry()) {
    this.registry = registry;
  }

  /** The current global resourceVersion (what a list or bookmark reports). */
  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Forgets the whole event history, as etcd compaction does: watches from any older version get 410. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /**
   * Creates CustomResourceDefinitions as a client would, except that their schemas are compiled lazily
   * (on the first write of each version), so loading many large CRDs stays cheap.
   */
  installCrds(crds: readonly KubeObject[]): void {
    const crdType = this.registry.get(CRD_TYPE_ID);
    const version = crdType?.versions[0];
    if (!crdType || !version) return;
    this.installing = true;
    try {
      for (const crd of crds) this.create(crdType, version, undefined, crd);
    } finally {
      this.installing = false;
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers) w.sink.close();
    this.watchers.clear();
  }

  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.bucket(type.id).get(objectKey(namespace, name));
    if (!obj) throw notFound(gr(type), name);
    return obj;
  }

  /** The object with this uid, wherever it is (owner references resolve by uid). */
  byUid(uid: string): { type: ResourceType; object: KubeObject } | undefined {
    const at = this.uids.get(uid);
    const type = at && this.registry.get(at.typeId);
    const object = at && this.data.get(at.typeId)?.get(at.key);
    return type && object ? { type, object } : undefined;
  }

  list(type: ResourceType, options: ListOptions = {}): ListResult {
    const matching = this.sorted(type).filter(([, o]) => this.matches(type, options, o));
    let start = 0;
    if (options.continue) {
      const after = decodeContinue(options.continue);
      start = matching.findIndex(([k]) => k > after);
      if (start < 0) start = matching.length;
    }
    const limit = options.limit && options.limit > 0 ? options.limit : Infinity;
    const page = matching.slice(start, start + limit);
    const remaining = matching.length - start - page.length;
    const last = page[page.length - 1];
    return {
      items: page.map(([, o]) => o),
      resourceVersion: this.resourceVersion,
      ...(remaining > 0 && last ? { continue: encodeContinue(last[0]), remainingItemCount: remaining } : {}),
    };
  }

  create(type: ResourceType, version: ServedVersion, namespace: string | undefined, input: KubeObject, options: WriteOptions = {}): KubeObject {
    if (type.crd && this.crdObject(type)?.metadata.deletionTimestamp) {
      throw methodNotAllowed('create not allowed while custom resource definition is terminating');
    }
    const obj = clone(input);
    this.checkTypeMeta(type, version, obj);
    const meta = obj.metadata;
    if (type.namespaced) {
      if (meta.namespace && meta.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      meta.namespace = namespace;
    } else {
      delete meta.namespace;
    }
    if (meta.resourceVersion) throw internalError('resourceVersion should not be set on objects to be created');
    if (!meta.name && meta.generateName) meta.name = this.generateName(type, namespace, meta.generateName);
    delete meta.uid;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.generation;
    if (version.status && !type.keepStatusOnCreate) delete obj.status;
    this.pruneTopLevel(type, obj, options);
    type.strategy.prepareForCreate?.(obj);
    const errors = [
      ...this.schemaErrors(type, version, obj, options),
      ...metadataErrors(meta, type.nameRule),
      ...(type.strategy.validate?.(obj, undefined) ?? []),
      ...(type.id === CRD_TYPE_ID ? this.prepareCrd(obj, undefined, !this.installing) : []),
    ];
    if (errors.length > 0) throw invalid(gk(type), meta.name ?? meta.generateName ?? '', errors);
    if (type.namespaced) this.checkNamespaceOpen(namespace ?? '');
    const name = meta.name ?? '';
    if (this.bucket(type.id).has(objectKey(namespace, name))) throw alreadyExists(gr(type), name);
    options.warnings?.push(...finalizerWarnings(meta.finalizers ?? []));
    meta.uid = randomUUID();
    meta.creationTimestamp = rfc3339(this.opts.now());
    if (type.generation) meta.generation = 1;
    if (options.dryRun) return obj;
    this.commit(type, 'ADDED', obj);
    return obj;
  }

  /** PUT (and the second half of PATCH). Returns whether the object was created (create-on-update kinds). */
  update(type: ResourceType, version: ServedVersion, namespace: string | undefined, name: string, input: KubeObject, options: UpdateOptions = {}): { object: KubeObject; created: boolean } {
    const existing = this.bucket(type.id).get(objectKey(namespace, name));
    // checkName of the update handler: the body must name the object (an empty name does not match either).
    if (input.metadata.name !== name) {
      throw badRequest(`the name of the object (${input.metadata.name ?? ''}) does not match the name on the URL (${name})`);
    }
    if (type.namespaced && input.metadata.namespace && input.metadata.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (!existing) {
      if (type.allowCreateOnUpdate && !options.subresource) {
        const { resourceVersion: _ignored, ...meta } = input.metadata;
        return { object: this.create(type, version, namespace, { ...input, metadata: meta }, options), created: true };
      }
      throw notFound(gr(type), name);
    }
    this.checkTypeMeta(type, version, input);
    const rv = input.metadata.resourceVersion;
    if (rv !== undefined) {
      if (rv !== existing.metadata.resourceVersion) throw staleResourceVersion(gr(type), name);
    } else if (!type.allowUnconditionalUpdate && !options.patch) {
      throw invalid(gk(type), name, [{ type: 'Invalid', field: 'metadata.resourceVersion', value: 0, detail: 'must be specified for an update' }]);
    }
    if (input.metadata.uid && input.metadata.uid !== existing.metadata.uid) {
      throw conflict(gr(type), name, `Precondition failed: UID in precondition: ${input.metadata.uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
    }

    let next: KubeObject;
    if (options.subresource === 'status') {
      if (type.crd) {
        // Custom resources: a /status write changes the status stanza and nothing else, metadata included.
        next = clone(existing);
        if (input.status !== undefined) next.status = clone(input.status);
        else delete next.status;
      } else {
        // Built-in status strategies keep the old spec but take metadata changes.
        next = clone(input);
        for (const k of new Set([...Object.keys(next), ...Object.keys(existing)])) {
          if (k === 'metadata' || k === 'status' || k === 'apiVersion' || k === 'kind') continue;
          if (existing[k] === undefined) delete next[k];
          else next[k] = clone(existing[k]);
        }
      }
    } else {
      next = clone(input);
      if (version.status) {
        if (existing.status !== undefined) next.status = clone(existing.status);
        else delete next.status;
      }
      type.strategy.prepareForUpdate?.(next, existing);
    }
    const meta = next.metadata;
    const old = existing.metadata;
    meta.name = old.name;
    if (type.namespaced) meta.namespace = old.namespace;
    else delete meta.namespace;
    meta.uid = old.uid;
    meta.creationTimestamp = old.creationTimestamp;
    setOrDelete(meta, 'deletionTimestamp', old.deletionTimestamp);
    setOrDelete(meta, 'deletionGracePeriodSeconds', old.deletionGracePeriodSeconds);
    setOrDelete(meta, 'generation', old.generation);
    delete meta.resourceVersion;
    this.pruneTopLevel(type, next, options);

    const errors = [
      ...this.schemaErrors(type, version, next, options),
      ...metadataErrors(meta, type.nameRule),
      ...(type.strategy.validate?.(next, existing) ?? []),
      ...(type.id === CRD_TYPE_ID && options.subresource !== 'status' ? this.prepareCrd(next, existing, true) : []),
    ];
    const added = (meta.finalizers ?? []).filter((f) => !(old.finalizers ?? []).includes(f));
    if (isDeleting(existing) && added.length > 0) {
      errors.push({ type: 'Forbidden', field: 'metadata.finalizers', detail: `no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}` });
    }
    if (errors.length > 0) throw invalid(gk(type), name, errors);
    options.warnings?.push(...finalizerWarnings(added));

    if (type.generation && options.subresource !== 'status' && !deepEqual(nonMetadata(next), nonMetadata(existing))) {
      meta.generation = (old.generation ?? 0) + 1;
    }
    if (deepEqual(next, withoutRv(existing))) return { object: existing, created: false };
    if (options.dryRun) return { object: { ...next, metadata: { ...meta, resourceVersion: old.resourceVersion } }, created: false };
    if (isDeleting(next) && (meta.finalizers ?? []).length === 0 && !this.pendingSpecFinalizers(type, next)) {
      return { object: this.remove(type, next), created: false };
    }
    this.commit(type, 'MODIFIED', next, existing);
    return { object: next, created: false };
  }

  /** DELETE of one object. `deleted` is false when finalizers keep it (then `object` carries deletionTimestamp). */
  delete(type: ResourceType, namespace: string | undefined, name: string, options: DeleteOptions = {}): { object: KubeObject; deleted: boolean } {
    const existing = this.get(type, namespace, name);
    const pre = options.preconditions;
    if (pre?.uid && pre.uid !== existing.metadata.uid) {
      throw conflict(gr(type), name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(gr(type), name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion ?? ''}`);
    }
    if (type.id === NAMESPACE_TYPE_ID && UNDELETABLE_NAMESPACES.has(name)) throw forbidden(gr(type), name, 'this namespace may not be deleted');
    if (options.dryRun) return { object: existing, deleted: (existing.metadata.finalizers ?? []).length === 0 };
    return this.startDelete(type, existing, options.propagationPolicy);
  }

  /** DELETE of a collection: every matching object, each as a single delete. */
  deleteCollection(type: ResourceType, selectors: Selectors, options: DeleteOptions = {}): KubeObject[] {
    const out: KubeObject[] = [];
    for (const [, obj] of this.sorted(type)) {
      if (!this.matches(type, selectors, obj)) continue;
      if (type.id === NAMESPACE_TYPE_ID && UNDELETABLE_NAMESPACES.has(obj.metadata.name ?? '')) continue;
      out.push(options.dryRun ? obj : this.startDelete(type, obj, options.propagationPolicy).object);
    }
    return out;
  }

  /**
   * Starts a watch: sends the initial events synchronously, then every matching change until stopped.
   * Throws 410 Expired when `resourceVersion` is older than the retained history.
   */
  watch(type: ResourceType, options: WatchOptions, sink: WatchSink): { stop(): void } {
    const watcher: Watcher = { ...options, type, sink };
    const rv = options.resourceVersion;
    if (!rv || rv === '0') {
      for (const [, obj] of this.sorted(type)) if (this.matches(type, options, obj)) sink.event('ADDED', obj);
    } else {
      const from = parseResourceVersion(rv);
      if (from < this.compactedRv) throw expired(`too old resource version: ${from} (${this.compactedRv})`);
      for (let i = firstAfter(this.history, from); i < this.history.length; i++) {
        const ev = this.history[i];
        if (ev && ev.typeId === type.id) this.deliver(watcher, ev);
      }
    }
    this.watchers.add(watcher);
    return { stop: () => this.watchers.delete(watcher) };
  }

  /** Whether a field selector names a field this type can be selected by. */
  fieldSupported(type: ResourceType, field: string): boolean {
    return field === 'metadata.name' || (field === 'metadata.namespace' && type.namespaced) || Object.hasOwn(type.fieldLabels, field);
  }

  // ---- internals -------------------------------------------------------------------------------

  private bucket(typeId: string): Map<string, KubeObject> {
    let b = this.data.get(typeId);
    if (!b) {
      b = new Map();
      this.data.set(typeId, b);
    }
    return b;
  }

  /** Objects of a type in etcd key order (namespace, then name). */
  private sorted(type: ResourceType): [string, KubeObject][] {
    return [...this.bucket(type.id).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  private fieldValue(type: ResourceType, obj: KubeObject, field: string): string {
    if (field === 'metadata.name') return obj.metadata.name ?? '';
    if (field === 'metadata.namespace') return obj.metadata.namespace ?? '';
    return type.fieldLabels[field]?.(obj) ?? '';
  }

  private matches(type: ResourceType, s: Selectors, obj: KubeObject): boolean {
    if (s.namespace !== undefined && obj.metadata.namespace !== s.namespace) return false;
    if (s.labelSelector && !matchesLabels(s.labelSelector, obj.metadata.labels)) return false;
    if (s.fieldSelector && !matchesFields(s.fieldSelector, (f) => this.fieldValue(type, obj, f))) return false;
    return true;
  }

  /** The watch cache's rule: a change that moves an object into or out of the selection is an ADDED or DELETED. */
  private deliver(w: Watcher, ev: StoredEvent): void {
    const now = this.matches(w.type, w, ev.object);
    const before = ev.prev !== undefined && this.matches(w.type, w, ev.prev);
    if (ev.type === 'ADDED' && now) w.sink.event('ADDED', ev.object);
    else if (ev.type === 'DELETED' && now) w.sink.event('DELETED', ev.object);
    else if (ev.type === 'MODIFIED') {
      if (now && before) w.sink.event('MODIFIED', ev.object);
      else if (now) w.sink.event('ADDED', ev.object);
      else if (before && ev.prev) w.sink.event('DELETED', { ...ev.prev, metadata: { ...ev.prev.metadata, resourceVersion: String(ev.rv) } });
    }
  }

  private emit(ev: StoredEvent): void {
    this.history.push(ev);
    const excess = this.history.length - this.opts.historySize;
    if (excess > 0) {
      const dropped = this.history.splice(0, excess);
      this.compactedRv = dropped[dropped.length - 1]?.rv ?? this.compactedRv;
    }
    for (const w of this.watchers) if (w.type.id === ev.typeId) this.deliver(w, ev);
  }

  /** Stores a new version of an object under a new resourceVersion and tells the watchers. */
  private commit(type: ResourceType, eventType: 'ADDED' | 'MODIFIED', obj: KubeObject, prev?: KubeObject): void {
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    const key = objectKey(obj.metadata.namespace, obj.metadata.name ?? '');
    this.bucket(type.id).set(key, obj);
    if (obj.metadata.uid) this.uids.set(obj.metadata.uid, { typeId: type.id, key });
    this.emit({ rv: this.rv, type: eventType, typeId: type.id, object: obj, ...(prev ? { prev } : {}) });
    if (type.id === CRD_TYPE_ID) this.registerCrd(obj);
    if (obj.metadata.ownerReferences || isDeleting(obj)) this.scheduleSweep();
    this.opts.log.debug({ kind: type.kind, namespace: obj.metadata.namespace, name: obj.metadata.name, rv: this.rv, event: eventType }, 'object stored');
  }

  /** Removes an object for good: a DELETED event carrying the deletion's resourceVersion. */
  private remove(type: ResourceType, obj: KubeObject): KubeObject {
    this.rv++;
    const gone: KubeObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(this.rv) } };
    this.bucket(type.id).delete(objectKey(obj.metadata.namespace, obj.metadata.name ?? ''));
    if (obj.metadata.uid) this.uids.delete(obj.metadata.uid);
    this.emit({ rv: this.rv, type: 'DELETED', typeId: type.id, object: gone });
    if (type.id === CRD_TYPE_ID) this.unregisterCrd(gone);
    this.scheduleSweep();
    this.opts.log.debug({ kind: type.kind, namespace: obj.metadata.namespace, name: obj.metadata.name, rv: this.rv }, 'object removed');
    return gone;
  }

  /**
   * Deletion as the generic registry does it: propagation policy becomes the `orphan`/`foregroundDeletion`
   * finalizer; an object without finalizers goes at once, otherwise it gets deletionTimestamp (and, for kinds
   * with a generation, a generation bump) and waits for its finalizers.
   */
  private startDelete(type: ResourceType, existing: KubeObject, policy: PropagationPolicy | undefined): { object: KubeObject; deleted: boolean } {
    if (isDeleting(existing)) return { object: existing, deleted: false };
    const finalizers = [...(existing.metadata.finalizers ?? [])];
    const effective = policy ?? (finalizers.includes(ORPHAN_FINALIZER) ? 'Orphan' : finalizers.includes(FOREGROUND_FINALIZER) ? 'Foreground' : 'Background');
    const without = (f: string) => {
      const i = finalizers.indexOf(f);
      if (i >= 0) finalizers.splice(i, 1);
    };
    if (effective === 'Orphan') {
      without(FOREGROUND_FINALIZER);
      if (!finalizers.includes(ORPHAN_FINALIZER)) finalizers.push(ORPHAN_FINALIZER);
    } else if (effective === 'Foreground') {
      without(ORPHAN_FINALIZER);
      if (!finalizers.includes(FOREGROUND_FINALIZER)) finalizers.push(FOREGROUND_FINALIZER);
    } else {
      without(ORPHAN_FINALIZER);
      without(FOREGROUND_FINALIZER);
    }
    if (type.id === CRD_TYPE_ID && !finalizers.includes(CRD_CLEANUP_FINALIZER)) finalizers.push(CRD_CLEANUP_FINALIZER);
    const next = clone(existing);
    if (finalizers.length === 0 && !this.pendingSpecFinalizers(type, next)) return { object: this.remove(type, next), deleted: true };
    next.metadata.finalizers = finalizers;
    if (finalizers.length === 0) delete next.metadata.finalizers;
    next.metadata.deletionTimestamp = rfc3339(this.opts.now());
    next.metadata.deletionGracePeriodSeconds = 0;
    if (next.metadata.generation !== undefined) next.metadata.generation += 1;
    if (type.id === NAMESPACE_TYPE_ID) next.status = { ...(isRecord(next.status) ? next.status : {}), phase: 'Terminating' };
    if (type.id === CRD_TYPE_ID) setCrdCondition(next, 'Terminating', 'True', 'InstanceDeletionInProgress', 'CustomResource deletion is in progress', this.opts.now());
    this.commit(type, 'MODIFIED', next, existing);
    return { object: next, deleted: false };
  }

  /** A Namespace stays until its `spec.finalizers` (the namespace controller's) are gone too. */
  private pendingSpecFinalizers(type: ResourceType, obj: KubeObject): boolean {
    if (type.id !== NAMESPACE_TYPE_ID) return false;
    const spec = obj.spec;
    return isRecord(spec) && Array.isArray(spec.finalizers) && spec.finalizers.length > 0;
  }

  private checkTypeMeta(type: ResourceType, version: ServedVersion, obj: KubeObject): void {
    const expected = groupVersion(type.group, version.name);
    if (obj.apiVersion !== undefined && obj.apiVersion !== expected) {
      throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${expected})`);
    }
    if (obj.kind !== undefined && obj.kind !== type.kind) {
      throw badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${type.kind})`);
    }
    obj.apiVersion = groupVersion(type.group, type.storageVersion);
    obj.kind = type.kind;
  }

  private unknownFields(paths: readonly string[], options: WriteOptions): void {
    if (paths.length === 0) return;
    const mode = options.fieldValidation ?? 'Warn';
    if (mode === 'Strict') throw badRequest(`strict decoding error: ${paths.map((p) => `unknown field "${p}"`).join(', ')}`);
    if (mode === 'Warn') options.warnings?.push(...paths.map((p) => `unknown field "${p}"`));
  }

  /** Built-ins decode into Go structs, which drops top-level fields they do not have. */
  private pruneTopLevel(type: ResourceType, obj: KubeObject, options: WriteOptions): void {
    const known = type.topLevelFields;
    if (!known) return;
    const unknown = Object.keys(obj).filter((k) => !known.has(k));
    for (const k of unknown) delete obj[k];
    this.unknownFields(unknown, options);
  }

  /** Pruning, defaulting and validation with the version's schema (custom resources, validation on). */
  private schemaErrors(type: ResourceType, version: ServedVersion, obj: KubeObject, options: WriteOptions): FieldError[] {
    if (!this.opts.validation || !version.schema) return [];
    this.unknownFields(prune(obj, version.schema), options);
    const validate = this.schemas.validator(version.schema);
    if (validate instanceof Error) throw internalError(`cannot compile the schema of ${groupVersion(type.group, version.name)} ${type.kind}: ${validate.message}`);
    // The schema sees the object as the client wrote it: in the requested version.
    const asRequested = { ...obj, apiVersion: groupVersion(type.group, version.name) };
    const errors = validateWithSchema(validate, asRequested);
    for (const [k, v] of Object.entries(asRequested)) if (k !== 'apiVersion') obj[k] = v;
    return errors;
  }

  private generateName(type: ResourceType, namespace: string | undefined, base: string): string {
    const prefix = base.slice(0, MAX_GENERATED_BASE);
    for (;;) {
      let suffix = '';
      for (let i = 0; i < 5; i++) suffix += NAME_ALPHABET.charAt(randomInt(NAME_ALPHABET.length));
      const name = prefix + suffix;
      if (!this.bucket(type.id).has(objectKey(namespace, name))) return name;
    }
  }

  /** NamespaceLifecycle admission: no content in a missing (404) or terminating (403) namespace. */
  private checkNamespaceOpen(namespace: string): void {
    const nsType = this.registry.get(NAMESPACE_TYPE_ID);
    const ns = this.bucket(NAMESPACE_TYPE_ID).get(objectKey(undefined, namespace));
    if (!nsType || !ns) throw notFound({ group: '', resource: 'namespaces' }, namespace);
    if (isDeleting(ns)) {
      throw new ApiError(403, 'Forbidden', `unable to create new content in namespace ${namespace} because it is being terminated`, {
        name: namespace, kind: 'namespaces', causes: [{ reason: 'NamespaceTerminating', message: `namespace ${namespace} is being terminated`, field: 'metadata.namespace' }],
      });
    }
  }

  // ---- CustomResourceDefinitions ---------------------------------------------------------------

  private crdObject(type: ResourceType): KubeObject | undefined {
    return type.crd ? this.bucket(CRD_TYPE_ID).get(objectKey(undefined, type.crd)) : undefined;
  }

  /**
   * The CRD strategy and the establishing controller in one step: defaults the names, checks the spec
   * (and, when `compile`, that every schema compiles), and marks the CRD Established at once.
   */
  private prepareCrd(obj: KubeObject, old: KubeObject | undefined, compile: boolean): FieldError[] {
    const spec = isRecord(obj.spec) ? obj.spec : {};
    const names = isRecord(spec.names) ? spec.names : {};
    if (typeof names.kind === 'string') {
      names.singular ??= names.kind.toLowerCase();
      names.listKind ??= `${names.kind}List`;
    }
    spec.conversion ??= { strategy: 'None' };
    const result = crdToResourceType(obj);
    if (!result.ok) return result.errors;
    const type = result.type;
    const errors: FieldError[] = [];
    const existing = this.registry.get(type.id);
    if (existing && !existing.crd) errors.push({ type: 'Invalid', field: 'metadata.name', value: obj.metadata.name, detail: `${type.id} is a built-in resource` });
    if (old && isRecord(old.spec) && old.spec.scope !== spec.scope) errors.push({ type: 'Invalid', field: 'spec.scope', value: spec.scope, detail: 'field is immutable' });
    if (compile && this.opts.validation) {
      type.versions.forEach((v) => {
        const compiled = v.schema && this.schemas.validator(v.schema);
        if (compiled instanceof Error) {
          const i = Array.isArray(spec.versions) ? spec.versions.findIndex((sv: unknown) => isRecord(sv) && sv.name === v.name) : -1;
          errors.push({ type: 'Invalid', field: `spec.versions[${i}].schema.openAPIV3Schema`, value: 'object', detail: compiled.message });
        }
      });
    }
    if (errors.length > 0) return errors;
    if (!old) {
      const now = this.opts.now();
      obj.status = { acceptedNames: { ...names }, storedVersions: [type.storageVersion] };
      setCrdCondition(obj, 'NamesAccepted', 'True', 'NoConflicts', 'no conflicts found', now);
      setCrdCondition(obj, 'Established', 'True', 'InitialNamesAccepted', 'the initial names have been accepted', now);
    }
    return [];
  }

  private registerCrd(obj: KubeObject): void {
    const result = crdToResourceType(obj);
    if (result.ok) this.registry.set(result.type);
  }

  private unregisterCrd(obj: KubeObject): void {
    const result = crdToResourceType(obj);
    if (!result.ok) return;
    const id = result.type.id;
    this.registry.delete(id);
    this.data.delete(id);
    for (const w of this.watchers) {
      if (w.type.id !== id) continue;
      this.watchers.delete(w);
      w.sink.close();
    }
  }

  // ---- controllers: garbage collector, namespace and CRD finalizers --------------------------------

  private scheduleSweep(): void {
    if (this.sweepScheduled || this.closed) return;
    this.sweepScheduled = true;
    // Asynchronous, as the real controllers are: clients may observe the intermediate states.
    setImmediate(() => {
      this.sweepScheduled = false;
      if (!this.closed) this.sweep();
    });
  }

  private allObjects(): { type: ResourceType; object: KubeObject }[] {
    const out: { type: ResourceType; object: KubeObject }[] = [];
    for (const [typeId, bucket] of this.data) {
      const type = this.registry.get(typeId);
      if (type) for (const object of bucket.values()) out.push({ type, object });
    }
    return out;
  }

  /** Rewrites an object as a controller would (no validation); removes it if that empties its finalizers while deleting. */
  private controllerWrite(type: ResourceType, existing: KubeObject, mutate: (next: KubeObject) => void): void {
    const next = clone(existing);
    mutate(next);
    delete next.metadata.resourceVersion;
    if (deepEqual(next, withoutRv(existing))) return;
    if (isDeleting(next) && (next.metadata.finalizers ?? []).length === 0 && !this.pendingSpecFinalizers(type, next)) this.remove(type, next);
    else this.commit(type, 'MODIFIED', next, existing);
  }

  private dropFinalizer(type: ResourceType, obj: KubeObject, finalizer: string): void {
    this.controllerWrite(type, obj, (next) => {
      const rest = (next.metadata.finalizers ?? []).filter((f) => f !== finalizer);
      if (rest.length > 0) next.metadata.finalizers = rest;
      else delete next.metadata.finalizers;
    });
  }

  private current(type: ResourceType, obj: KubeObject): KubeObject | undefined {
    return this.bucket(type.id).get(objectKey(obj.metadata.namespace, obj.metadata.name ?? ''));
  }

  private sweep(): void {
    if (this.opts.garbageCollection) this.collectGarbage();
    this.finalizeNamespaces();
    this.finalizeCrds();
  }

  /** The garbage collector's three jobs: orphaning, foreground deletion, and deleting dependents of vanished owners. */
  private collectGarbage(): void {
    const all = this.allObjects();
    const dependentsOf = (uid: string) => all.filter(({ object }) => object.metadata.ownerReferences?.some((r) => r.uid === uid));
    for (const { type, object } of all) {
      if (!isDeleting(object) || !object.metadata.uid) continue;
      const uid = object.metadata.uid;
      const finalizers = object.metadata.finalizers ?? [];
      if (finalizers.includes(ORPHAN_FINALIZER)) {
        for (const dep of dependentsOf(uid)) {
          const cur = this.current(dep.type, dep.object);
          if (cur) this.controllerWrite(dep.type, cur, (next) => stripOwners(next.metadata, (r) => r.uid === uid));
        }
        const cur = this.current(type, object);
        if (cur) this.dropFinalizer(type, cur, ORPHAN_FINALIZER);
      } else if (finalizers.includes(FOREGROUND_FINALIZER)) {
        const blocks = (o: KubeObject) => o.metadata.ownerReferences?.some((r) => r.uid === uid && r.blockOwnerDeletion === true) === true;
        for (const dep of dependentsOf(uid)) {
          const cur = this.current(dep.type, dep.object);
          if (!cur || isDeleting(cur)) continue;
          // A dependent with dependents of its own is deleted in the foreground too (the GC's attemptToDeleteItem).
          const hasDependents = cur.metadata.uid !== undefined && dependentsOf(cur.metadata.uid).length > 0;
          this.startDelete(dep.type, cur, hasDependents ? 'Foreground' : 'Background');
        }
        const blocking = dependentsOf(uid).some((dep) => {
          const cur = this.current(dep.type, dep.object);
          return cur !== undefined && blocks(cur);
        });
        const cur = this.current(type, object);
        if (!blocking && cur) this.dropFinalizer(type, cur, FOREGROUND_FINALIZER);
      }
    }
    for (const { type, object } of this.allObjects()) {
      const refs = object.metadata.ownerReferences;
      if (!refs || isDeleting(object)) continue;
      const dangling = refs.filter((r) => !this.byUid(r.uid));
      if (dangling.length === 0) continue;
      const waiting = refs.some((r) => this.byUid(r.uid)?.object.metadata.finalizers?.includes(FOREGROUND_FINALIZER));
      const solid = refs.length - dangling.length;
      if (solid === 0) this.startDelete(type, object, 'Background');
      else if (!waiting) this.controllerWrite(type, object, (next) => stripOwners(next.metadata, (r) => !this.byUid(r.uid)));
    }
  }

  /** The namespace controller: delete everything in a terminating namespace, then let the namespace go. */
  private finalizeNamespaces(): void {
    const nsType = this.registry.get(NAMESPACE_TYPE_ID);
    if (!nsType) return;
    for (const ns of [...this.bucket(NAMESPACE_TYPE_ID).values()]) {
      if (!isDeleting(ns)) continue;
      const name = ns.metadata.name ?? '';
      let remaining = 0;
      for (const { type, object } of this.allObjects()) {
        if (!type.namespaced || object.metadata.namespace !== name) continue;
        remaining++;
        if (!isDeleting(object)) {
          const { deleted } = this.startDelete(type, object, 'Background');
          if (deleted) remaining--;
        }
      }
      const cur = this.current(nsType, ns);
      if (remaining === 0 && cur) {
        this.controllerWrite(nsType, cur, (next) => {
          if (isRecord(next.spec)) next.spec.finalizers = [];
        });
      }
    }
  }

  /** The CRD finalizer controller: delete every instance, then drop the cleanup finalizer. */
  private finalizeCrds(): void {
    const crdType = this.registry.get(CRD_TYPE_ID);
    if (!crdType) return;
    for (const crd of [...this.bucket(CRD_TYPE_ID).values()]) {
      if (!isDeleting(crd) || !crd.metadata.finalizers?.includes(CRD_CLEANUP_FINALIZER)) continue;
      const result = crdToResourceType(crd);
      const type = result.ok ? this.registry.get(result.type.id) : undefined;
      let remaining = 0;
      if (type) {
        for (const [, obj] of this.sorted(type)) {
          remaining++;
          if (!isDeleting(obj) && this.startDelete(type, obj, 'Background').deleted) remaining--;
        }
      }
      const cur = this.current(crdType, crd);
      if (remaining === 0 && cur) this.dropFinalizer(crdType, cur, CRD_CLEANUP_FINALIZER);
    }
  }
}

function setOrDelete<K extends keyof ObjectMeta>(meta: ObjectMeta, key: K, value: ObjectMeta[K] | undefined): void {
  if (value === undefined) delete meta[key];
  else meta[key] = value;
}

function stripOwners(meta: ObjectMeta, drop: (r: NonNullable<ObjectMeta['ownerReferences']>[number]) => boolean): void {
  const kept = (meta.ownerReferences ?? []).filter((r) => !drop(r));
  if (kept.length > 0) meta.ownerReferences = kept;
  else delete meta.ownerReferences;
}

function setCrdCondition(obj: KubeObject, type: string, status: string, reason: string, message: string, now: Date): void {
  const st = isRecord(obj.status) ? obj.status : {};
  const conditions = Array.isArray(st.conditions) ? st.conditions.filter((c: unknown) => !(isRecord(c) && c.type === type)) : [];
  conditions.push({ type, status, reason, message, lastTransitionTime: rfc3339(now) });
  st.conditions = conditions;
  obj.status = st;
}

export function parseResourceVersion(rv: string): number {
  if (!/^\d+$/.test(rv)) throw badRequest(`invalid resource version: ${JSON.stringify(rv)}`);
  return Number(rv);
}

/** Index of the first event with rv > `after` (the history is sorted by rv). */
function firstAfter(history: readonly StoredEvent[], after: number): number {
  let lo = 0;
  let hi = history.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((history[mid]?.rv ?? 0) <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function encodeContinue(key: string): string {
  return Buffer.from(JSON.stringify({ v: 1, start: key }), 'utf8').toString('base64url');
}

function decodeContinue(token: string): string {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (isRecord(parsed) && typeof parsed.start === 'string') return parsed.start;
  } catch {
    // fall through to the API server's answer for a token it did not issue
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}
