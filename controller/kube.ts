/**
 * The controller's Kubernetes client: get, list, create, replace, merge-patch and delete by resource,
 * returning plain JSON objects (typed client-node models carry Date objects; we compare JSON). Failures
 * become `KubeError`s carrying the HTTP code and the API server's reason only: client-node's
 * ApiException message holds the response body and headers, which must not reach logs or conditions.
 */
import {
  ApiException, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig, type KubernetesListObject,
  type KubernetesObject, type V1Secret,
} from '@kubernetes/client-node';
import { isRecord } from '../core/data.js';
import { apiVersionOf, type Resource } from './resources.js';

/** Object metadata as the controller uses it (timestamps as RFC 3339 strings). */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  [key: string]: unknown;
}

/** A Kubernetes object as plain JSON. */
export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/** A Secret as plain JSON: `data` values are base64. */
export interface SecretObject extends KObject {
  type?: string;
  data?: Record<string, string>;
}

/** A failed API call: HTTP code and the API server's reason, nothing from the body or headers. */
export class KubeError extends Error {
  constructor(
    readonly code: number,
    /** The Status reason (NotFound, Conflict, Forbidden...), or `NotServed` when the resource type does not exist. */
    readonly reason: string,
    readonly operation: string,
  ) {
    super(`${operation}: ${code} ${reason}`);
    this.name = 'KubeError';
  }
}

/** True when `e` is a KubeError with this HTTP code. */
export const isKubeError = (e: unknown, code?: number): e is KubeError => e instanceof KubeError && (code === undefined || e.code === code);

export interface ListOptions {
  readonly namespace?: string;
  readonly labelSelector?: string;
}

export interface Kube {
  /** The object, or undefined when it does not exist. Throws `KubeError` 404 `NotServed` when the resource is not served. */
  get(r: Resource, name: string, namespace?: string): Promise<KObject | undefined>;
  list(r: Resource, options?: ListOptions): Promise<KObject[]>;
  create(r: Resource, obj: KObject): Promise<KObject>;
  /** PUT: conditional on `metadata.resourceVersion` when set (409 on conflict). */
  replace(r: Resource, obj: KObject): Promise<KObject>;
  /** JSON merge patch (RFC 7386) of a custom resource, or of its status subresource. */
  mergePatch(r: Resource, name: string, namespace: string | undefined, patch: Record<string, unknown>, options?: { status?: boolean }): Promise<KObject>;
  /** Deletes; false when it was already gone. */
  remove(r: Resource, name: string, namespace?: string): Promise<boolean>;
  /** The list function and watch path of a ListWatch over `r`. */
  lister(r: Resource, options?: ListOptions): { path: string; list: () => Promise<KubernetesListObject<KubernetesObject>> };
}

/** Plain JSON (Dates become RFC 3339 strings) with a checked metadata.name. */
export function toObject(value: unknown): KObject {
  const json: unknown = JSON.parse(JSON.stringify(value ?? null));
  if (!isRecord(json) || !isRecord(json.metadata) || typeof json.metadata.name !== 'string') throw new Error('the API server returned something that is not an object');
  return json as KObject;
}

function describe(r: Resource, verb: string, name?: string, namespace?: string): string {
  const id = `${r.plural}${r.group ? `.${r.group}` : ''}`;
  return `${verb} ${id}${name ? ` ${namespace ? `${namespace}/` : ''}${name}` : ''}`;
}

/** Maps a client-node failure to a KubeError; anything else (network errors) passes through. */
function translate(e: unknown, operation: string): unknown {
  if (!(e instanceof ApiException)) return e;
  let reason = 'Unknown';
  let served = true;
  const body: unknown = e.body;
  try {
    const status: unknown = typeof body === 'string' && body !== '' ? JSON.parse(body) : body;
    if (isRecord(status)) {
      if (typeof status.reason === 'string') reason = status.reason;
      // A missing resource type answers 404 with empty details; a missing object names itself.
      if (e.code === 404 && !(isRecord(status.details) && typeof status.details.name === 'string')) served = false;
    }
  } catch {
    // not a Status body: keep the code only
  }
  return new KubeError(e.code, served ? reason : 'NotServed', operation);
}

async function call<T>(operation: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw translate(e, operation);
  }
}

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** A Kube over client-node: CustomObjectsApi for custom resources, CoreV1Api for the few core kinds used. */
export function createKube(kc: KubeConfig, options: { fieldManager: string }): Kube {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const fieldManager = options.fieldManager;

  const coreOnly = (r: Resource, verb: string): never => {
    throw new Error(`kube: ${verb} of core ${r.kind} is not supported by the controller's client`);
  };

  const path = (r: Resource, namespace?: string): string => {
    const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
    return r.namespaced && namespace ? `${base}/namespaces/${namespace}/${r.plural}` : `${base}/${r.plural}`;
  };

  const listRaw = async (r: Resource, o: ListOptions = {}): Promise<KubernetesListObject<KubernetesObject>> => {
    const op = describe(r, 'list');
    const labelSelector = o.labelSelector;
    if (r.group === '') {
      if (r.kind !== 'Secret') return coreOnly(r, 'list');
      return call(op, () => (o.namespace
        ? core.listNamespacedSecret({ namespace: o.namespace, ...(labelSelector ? { labelSelector } : {}) })
        : core.listSecretForAllNamespaces({ ...(labelSelector ? { labelSelector } : {}) })));
    }
    const g = { group: r.group, version: r.version };
    const result: unknown = await call(op, () => (!r.namespaced
      ? custom.listClusterCustomObject({ ...g, plural: r.plural, ...(labelSelector ? { labelSelector } : {}) })
      : o.namespace
        ? custom.listNamespacedCustomObject({ ...g, namespace: o.namespace, plural: r.plural, ...(labelSelector ? { labelSelector } : {}) })
        : custom.listCustomObjectForAllNamespaces({ ...g, resourcePlural: r.plural, ...(labelSelector ? { labelSelector } : {}) })));
    return result as KubernetesListObject<KubernetesObject>;
  };

  return {
    async get(r, name, namespace) {
      const op = describe(r, 'get', name, namespace);
      try {
        if (r.group === '') {
          if (r.kind === 'Secret') return toObject(await call(op, () => core.readNamespacedSecret({ name, namespace: namespace ?? '' })));
          if (r.kind === 'Namespace') return toObject(await call(op, () => core.readNamespace({ name })));
          return coreOnly(r, 'get');
        }
        const g = { group: r.group, version: r.version, plural: r.plural, name };
        return toObject(await call(op, () => (r.namespaced ? custom.getNamespacedCustomObject({ ...g, namespace: namespace ?? '' }) : custom.getClusterCustomObject(g))));
      } catch (e) {
        if (isKubeError(e, 404) && e.reason !== 'NotServed') return undefined;
        throw e;
      }
    },

    async list(r, o) {
      const list = await listRaw(r, o);
      return (list.items ?? []).map(toObject);
    },

    async create(r, obj) {
      const namespace = obj.metadata.namespace ?? '';
      const op = describe(r, 'create', obj.metadata.name, namespace);
      const body = { apiVersion: apiVersionOf(r), kind: r.kind, ...obj };
      if (r.group === '') {
        if (r.kind === 'Secret') return toObject(await call(op, () => core.createNamespacedSecret({ namespace, body: body as V1Secret, fieldManager })));
        if (r.kind === 'Event') return toObject(await call(op, () => core.createNamespacedEvent({ namespace, body: body as never, fieldManager })));
        return coreOnly(r, 'create');
      }
      const g = { group: r.group, version: r.version, plural: r.plural, body, fieldManager };
      return toObject(await call(op, () => (r.namespaced ? custom.createNamespacedCustomObject({ ...g, namespace }) : custom.createClusterCustomObject(g))));
    },

    async replace(r, obj) {
      const namespace = obj.metadata.namespace ?? '';
      const name = obj.metadata.name;
      const op = describe(r, 'update', name, namespace);
      const body = { apiVersion: apiVersionOf(r), kind: r.kind, ...obj };
      if (r.group === '') {
        if (r.kind === 'Secret') return toObject(await call(op, () => core.replaceNamespacedSecret({ name, namespace, body: body as V1Secret, fieldManager })));
        return coreOnly(r, 'update');
      }
      const g = { group: r.group, version: r.version, plural: r.plural, name, body, fieldManager };
      return toObject(await call(op, () => (r.namespaced ? custom.replaceNamespacedCustomObject({ ...g, namespace }) : custom.replaceClusterCustomObject(g))));
    },

    async mergePatch(r, name, namespace, patch, o = {}) {
      if (r.group === '') return coreOnly(r, 'patch');
      const op = describe(r, o.status ? 'patch status of' : 'patch', name, namespace);
      const g = { group: r.group, version: r.version, plural: r.plural, name, body: patch, fieldManager };
      if (r.namespaced) {
        const ns = { ...g, namespace: namespace ?? '' };
        return toObject(await call(op, () => (o.status ? custom.patchNamespacedCustomObjectStatus(ns, MERGE_PATCH) : custom.patchNamespacedCustomObject(ns, MERGE_PATCH))));
      }
      return toObject(await call(op, () => (o.status ? custom.patchClusterCustomObjectStatus(g, MERGE_PATCH) : custom.patchClusterCustomObject(g, MERGE_PATCH))));
    },

    async remove(r, name, namespace) {
      const op = describe(r, 'delete', name, namespace);
      try {
        if (r.group === '') {
          if (r.kind !== 'Secret') return coreOnly(r, 'delete');
          await call(op, () => core.deleteNamespacedSecret({ name, namespace: namespace ?? '' }));
        } else {
          const g = { group: r.group, version: r.version, plural: r.plural, name };
          await call(op, () => (r.namespaced ? custom.deleteNamespacedCustomObject({ ...g, namespace: namespace ?? '' }) : custom.deleteClusterCustomObject(g)));
        }
        return true;
      } catch (e) {
        if (isKubeError(e, 404)) return false;
        throw e;
      }
    },

    lister(r, o = {}) {
      return { path: path(r, o.namespace), list: () => listRaw(r, o) };
    },
  };
}
