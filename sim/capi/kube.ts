/**
 * The simulated CAPI controllers' view of an API server: unstructured objects over client-node's
 * CustomObjectsApi (raw JSON, so no typed deserialization turns timestamps into Dates), Secrets and Nodes
 * over CoreV1Api, discovery for the version a `{apiGroup, kind}` reference resolves to, and the CRD
 * schemas, read once, that tell which status fields a kind has. Every write is counted, uses
 * `fieldValidation=Strict` (an unknown field is a 400, not a silent prune) and optimistic concurrency.
 */
import {
  ApiException, ApisApi, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Node, type V1Secret,
} from '@kubernetes/client-node';

import type { ObjectMeta } from '../apiserver/objects.js';

export type Json = Record<string, unknown>;

// The same metadata shapes the simulated API server stores; as a client, sim/capi always has a name.
export type { OwnerReference } from '../apiserver/objects.js';
export type Meta = ObjectMeta & { name: string };

/** An unstructured custom resource as the API server returns it. */
export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  [field: string]: unknown;
}

/** A Secret in the shape this package writes (base64 `data`). */
export interface SecretObject {
  metadata: Meta;
  type: string;
  data: Record<string, string>;
}

/** What a CRD says about one served version of a kind. */
export interface KindInfo {
  readonly apiVersion: string;
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  readonly namespaced: boolean;
  /** The version has a /status subresource, so status is written there (and only there). */
  readonly statusSubresource: boolean;
  /** openAPIV3Schema of the version; undefined for kinds not defined by a CRD. */
  readonly schema: Json | undefined;
}

export const isJson = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
export const rec = (v: unknown): Json => (isJson(v) ? v : {});
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
export const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) ? v : undefined);
export const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.lastIndexOf('/');
  return slash < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

/** Whether the schema defines the property path (walking `properties`, and `items` for arrays). */
export function schemaHas(schema: Json | undefined, path: readonly string[]): boolean {
  let node: Json | undefined = schema;
  for (const key of path) {
    if (!node) return false;
    const props: Json | undefined = isJson(node.properties) ? node.properties : isJson(node.items) && isJson(node.items.properties) ? node.items.properties : undefined;
    node = props && isJson(props[key]) ? props[key] : undefined;
  }
  return node !== undefined;
}

function toMeta(v: unknown): Meta {
  const m = rec(v);
  const name = str(m.name);
  if (name === undefined) throw new Error('object without metadata.name');
  return m as unknown as Meta;
}

/** Validates the minimal shape of an object read from the API server. */
export function toKObject(v: unknown): KObject {
  const o = rec(v);
  if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') throw new Error('object without apiVersion/kind');
  return { ...o, apiVersion: o.apiVersion, kind: o.kind, metadata: toMeta(o.metadata) };
}

/** HTTP status of a client-node failure, or undefined for anything else (network errors, bugs). */
export function httpCode(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

/**
 * A short description of a failure for logs and errors: the API server's Status reason and message for
 * client-node failures (whose own message carries the response headers), else the error's message.
 */
export function describeError(e: unknown): string {
  if (e instanceof ApiException) {
    let body: unknown = e.body;
    try {
      if (typeof body === 'string') body = JSON.parse(body);
    } catch {
      // Not JSON: only the code is shown.
    }
    const status = rec(body);
    return `HTTP ${e.code}${typeof status.reason === 'string' ? ` ${status.reason}` : ''}${typeof status.message === 'string' ? `: ${status.message}` : ''}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** A conflict (409) on a write: someone else wrote first; the next pass starts from what they wrote. */
export class Conflict extends Error {}

const STRICT = 'Strict';
const FIELD_MANAGER = 'lattice-capi-sim';

/**
 * One reconcile pass's access to the API server. Discovery is cached for the pass (a CRD installed later is
 * seen by the next pass); CRD schemas are cached for the sim's lifetime through `schemaCache`.
 */
export class Kube {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly apis: ApisApi;
  private groups: Map<string, string[]> | undefined;
  private readonly resources = new Map<string, Promise<KindInfo[] | undefined>>();
  writes = 0;

  constructor(kc: KubeConfig, private readonly schemaCache: Map<string, Promise<Json | undefined>>) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apis = kc.makeApiClient(ApisApi);
  }

  // ---- discovery -------------------------------------------------------------------------------

  /** Served versions of every API group, preferred version first (GET /apis). */
  private async groupVersions(): Promise<Map<string, string[]>> {
    if (this.groups) return this.groups;
    const out = new Map<string, string[]>();
    for (const g of (await this.apis.getAPIVersions()).groups) {
      const preferred = g.preferredVersion?.version;
      const versions = g.versions.map((v) => v.version);
      out.set(g.name, preferred ? [preferred, ...versions.filter((v) => v !== preferred)] : versions);
    }
    this.groups = out;
    return out;
  }

  private groupResources(group: string, version: string): Promise<KindInfo[] | undefined> {
    const key = `${group}/${version}`;
    let cached = this.resources.get(key);
    if (!cached) {
      cached = (async () => {
        let resources;
        try {
          resources = (await this.custom.getAPIResources({ group, version })).resources;
        } catch (e) {
          if (httpCode(e) === 404) return undefined;
          throw e;
        }
        const names = new Set(resources.map((r) => r.name));
        const kinds: KindInfo[] = [];
        for (const r of resources) {
          if (r.name.includes('/')) continue;
          kinds.push({
            apiVersion: key, group, version, kind: r.kind, plural: r.name, namespaced: r.namespaced,
            statusSubresource: names.has(`${r.name}/status`), schema: undefined,
          });
        }
        return kinds;
      })();
      this.resources.set(key, cached);
    }
    return cached;
  }

  /**
   * The served kind at this apiVersion, with its CRD schema; undefined when not served. CAPI learns
   * what a provider serves from discovery too (and skips what is not there).
   */
  async kindInfo(apiVersion: string, kind: string): Promise<KindInfo | undefined> {
    const { group, version } = splitApiVersion(apiVersion);
    if (group === '') return undefined;
    const found = (await this.groupResources(group, version))?.find((k) => k.kind === kind);
    if (!found) return undefined;
    return { ...found, schema: await this.crdSchema(found) };
  }

  /**
   * The apiVersion a v1beta2 `{apiGroup, kind}` reference resolves to. CAPI reads it from the CRD's
   * `cluster.x-k8s.io/<contract>` label (capi.md B.1); pinned upstream CRDs carry no such label, so
   * `preferred` (the version the objects were written at) wins, then the group's preferred version.
   */
  async resolve(apiGroup: string, kind: string, preferred: string | undefined): Promise<string | undefined> {
    const versions = (await this.groupVersions()).get(apiGroup) ?? [];
    const order = preferred && splitApiVersion(preferred).group === apiGroup
      ? [splitApiVersion(preferred).version, ...versions] : versions;
    for (const v of order) {
      if ((await this.groupResources(apiGroup, v))?.some((k) => k.kind === kind)) return `${apiGroup}/${v}`;
    }
    return undefined;
  }

  private crdSchema(info: KindInfo): Promise<Json | undefined> {
    const key = `${info.plural}.${info.group}/${info.version}`;
    let cached = this.schemaCache.get(key);
    if (!cached) {
      cached = (async () => {
        let crd: unknown;
        try {
          crd = await this.custom.getClusterCustomObject({
            group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', name: `${info.plural}.${info.group}`,
          });
        } catch (e) {
          // Aggregated APIs and built-ins have no CRD; nothing to learn then.
          if (httpCode(e) === 404 || httpCode(e) === 403) return undefined;
          throw e;
        }
        const version = list(rec(rec(crd).spec).versions).map(rec).find((v) => v.name === info.version);
        const schema = rec(version?.schema).openAPIV3Schema;
        return isJson(schema) ? schema : undefined;
      })();
      // A failed read is retried by a later pass rather than cached.
      cached.catch(() => this.schemaCache.delete(key));
      this.schemaCache.set(key, cached);
    }
    return cached;
  }

  // ---- custom resources --------------------------------------------------------------------------

  async get(info: KindInfo, namespace: string, name: string): Promise<KObject | undefined> {
    try {
      const body: unknown = await this.custom.getNamespacedCustomObject({ group: info.group, version: info.version, namespace, plural: info.plural, name });
      return toKObject(body);
    } catch (e) {
      if (httpCode(e) === 404) return undefined;
      throw e;
    }
  }

  async list(info: KindInfo, namespace: string | undefined, labelSelector?: string): Promise<KObject[]> {
    const selector = labelSelector !== undefined ? { labelSelector } : {};
    const body: unknown = namespace === undefined
      ? await this.custom.listClusterCustomObject({ group: info.group, version: info.version, plural: info.plural, ...selector })
      : await this.custom.listNamespacedCustomObject({ group: info.group, version: info.version, namespace, plural: info.plural, ...selector });
    const apiVersion = info.apiVersion;
    // List items carry apiVersion/kind in JSON lists from the API server; fill them in if a server omits them.
    return list(rec(body).items).map((i) => toKObject({ apiVersion, kind: info.kind, ...rec(i) }));
  }

  /** Creates the object; undefined when it already exists (another pass or controller made it). */
  async create(info: KindInfo, obj: KObject): Promise<KObject | undefined> {
    const namespace = obj.metadata.namespace ?? '';
    this.writes++;
    try {
      const body: unknown = await this.custom.createNamespacedCustomObject({
        group: info.group, version: info.version, namespace, plural: info.plural, body: obj, fieldValidation: STRICT, fieldManager: FIELD_MANAGER,
      });
      return toKObject(body);
    } catch (e) {
      if (httpCode(e) === 409) return undefined;
      throw e;
    }
  }

  /** PUT with the object's resourceVersion; throws Conflict when it is stale. */
  async replace(info: KindInfo, obj: KObject): Promise<KObject> {
    return this.put(info, obj, false);
  }

  /** PUT of the status (through /status when the CRD has the subresource), with optimistic concurrency. */
  async replaceStatus(info: KindInfo, obj: KObject): Promise<KObject> {
    return this.put(info, obj, info.statusSubresource);
  }

  private async put(info: KindInfo, obj: KObject, status: boolean): Promise<KObject> {
    const request = {
      group: info.group, version: info.version, namespace: obj.metadata.namespace ?? '', plural: info.plural, name: obj.metadata.name,
      body: obj, fieldValidation: STRICT, fieldManager: FIELD_MANAGER,
    };
    this.writes++;
    try {
      const body: unknown = status ? await this.custom.replaceNamespacedCustomObjectStatus(request) : await this.custom.replaceNamespacedCustomObject(request);
      return toKObject(body);
    } catch (e) {
      if (httpCode(e) === 409) throw new Conflict(`${info.kind} ${obj.metadata.namespace ?? ''}/${obj.metadata.name} changed meanwhile`);
      throw e;
    }
  }

  /** Deletes (background propagation); false when it was already gone. */
  async remove(info: KindInfo, namespace: string, name: string): Promise<boolean> {
    this.writes++;
    try {
      await this.custom.deleteNamespacedCustomObject({ group: info.group, version: info.version, namespace, plural: info.plural, name, propagationPolicy: 'Background' });
      return true;
    } catch (e) {
      if (httpCode(e) === 404) return false;
      throw e;
    }
  }

  // ---- Secrets -----------------------------------------------------------------------------------

  async listSecrets(namespace: string, labelSelector: string): Promise<SecretObject[]> {
    const secrets = await this.core.listNamespacedSecret({ namespace, labelSelector });
    return secrets.items.map(fromV1Secret);
  }

  async createSecret(secret: SecretObject): Promise<void> {
    this.writes++;
    try {
      await this.core.createNamespacedSecret({ namespace: secret.metadata.namespace ?? '', body: toV1Secret(secret), fieldValidation: STRICT, fieldManager: FIELD_MANAGER });
    } catch (e) {
      if (httpCode(e) !== 409) throw e;
    }
  }

  async replaceSecret(secret: SecretObject): Promise<void> {
    this.writes++;
    try {
      await this.core.replaceNamespacedSecret({
        namespace: secret.metadata.namespace ?? '', name: secret.metadata.name, body: toV1Secret(secret), fieldValidation: STRICT, fieldManager: FIELD_MANAGER,
      });
    } catch (e) {
      if (httpCode(e) === 409) throw new Conflict(`Secret ${secret.metadata.namespace ?? ''}/${secret.metadata.name} changed meanwhile`);
      throw e;
    }
  }

  async removeSecret(namespace: string, name: string): Promise<boolean> {
    this.writes++;
    try {
      await this.core.deleteNamespacedSecret({ namespace, name });
      return true;
    } catch (e) {
      if (httpCode(e) === 404) return false;
      throw e;
    }
  }
}

function fromV1Secret(s: V1Secret): SecretObject {
  const m = s.metadata ?? {};
  const meta: Meta = {
    name: m.name ?? '',
    ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
    ...(m.uid !== undefined ? { uid: m.uid } : {}),
    ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
    ...(m.labels ? { labels: m.labels } : {}),
    ...(m.ownerReferences ? {
      ownerReferences: m.ownerReferences.map((o) => ({
        apiVersion: o.apiVersion, kind: o.kind, name: o.name, uid: o.uid,
        ...(o.controller !== undefined ? { controller: o.controller } : {}),
        ...(o.blockOwnerDeletion !== undefined ? { blockOwnerDeletion: o.blockOwnerDeletion } : {}),
      })),
    } : {}),
  };
  return { metadata: meta, type: s.type ?? 'Opaque', data: s.data ?? {} };
}

function toV1Secret(s: SecretObject): V1Secret {
  const { creationTimestamp: _c, deletionTimestamp: _d, ...meta } = s.metadata;
  return { apiVersion: 'v1', kind: 'Secret', metadata: meta, type: s.type, data: s.data };
}

/** Nodes in a child cluster (the simulated workload cluster's API server). */
export class ChildNodes {
  private readonly core: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async names(): Promise<string[]> {
    return (await this.core.listNode()).items.map((n) => n.metadata?.name ?? '');
  }

  /** Creates the Node unless it exists; true when created. */
  async ensure(node: V1Node): Promise<boolean> {
    try {
      await this.core.createNode({ body: node, fieldManager: FIELD_MANAGER });
      return true;
    } catch (e) {
      if (httpCode(e) === 409) return false;
      throw e;
    }
  }
}
