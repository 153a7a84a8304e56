/**
 * The resource types the simulator serves: one table of built-ins (what each kind's registry strategy does
 * that matters to our clients) and the types that CustomResourceDefinitions add. Discovery documents are
 * derived from the same table, so what `/apis` advertises is exactly what the handlers serve.
 */
import type { SchemaNode } from '../../core/spec/openapi.js';
import { type FieldError } from './errors.js';
import { isRecord, type KubeObject, type NameRule, type Obj } from './objects.js';

export interface ServedVersion {
  readonly name: string;
  /** The version installs the `/status` subresource. */
  readonly status: boolean;
  /** The CRD's openAPIV3Schema for this version (custom resources only). */
  readonly schema?: SchemaNode;
  readonly deprecated: boolean;
}

/** What a registry strategy does on create/update (k8s.io/kubernetes/pkg/registry/<group>/<kind>/strategy.go). */
export interface Strategy {
  /** PrepareForCreate: runs on the decoded object before validation. */
  readonly prepareForCreate?: (obj: KubeObject) => void;
  /** PrepareForUpdate of the main resource: runs with the stored object. */
  readonly prepareForUpdate?: (next: KubeObject, old: KubeObject) => void;
  /** Kind-specific validation (422), on create and update. */
  readonly validate?: (obj: KubeObject, old: KubeObject | undefined) => FieldError[];
}

export interface ResourceType {
  /** Storage identity: `${group}/${plural}`; the same for every version. */
  readonly id: string;
  readonly group: string;
  readonly kind: string;
  readonly listKind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  readonly namespaced: boolean;
  /** Served versions, in declaration order. */
  readonly versions: readonly ServedVersion[];
  readonly storageVersion: string;
  /** The CustomResourceDefinition that defines this type; undefined for built-ins. */
  readonly crd?: string;
  /** metadata.generation is maintained (every custom resource; few built-ins). */
  readonly generation: boolean;
  /** PUT of a missing object creates it (Lease, Event). */
  readonly allowCreateOnUpdate: boolean;
  /** PUT without metadata.resourceVersion is accepted (false for custom resources and CRDs). */
  readonly allowUnconditionalUpdate: boolean;
  /** DELETE answers with the object instead of a Success Status. */
  readonly returnDeletedObject: boolean;
  /** Create keeps a client-supplied status even though /status exists (Node). */
  readonly keepStatusOnCreate: boolean;
  readonly nameRule: NameRule;
  /** Built-ins decode into Go structs: top-level fields outside this set are dropped. */
  readonly topLevelFields?: ReadonlySet<string>;
  /** Field selectors beyond metadata.name/metadata.namespace. */
  readonly fieldLabels: Readonly<Record<string, (o: KubeObject) => string>>;
  readonly strategy: Strategy;
}

export const groupVersion = (group: string, version: string): string => (group ? `${group}/${version}` : version);

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const field = (o: KubeObject, ...path: string[]): unknown => path.reduce<unknown>((v, k) => (isRecord(v) ? v[k] : undefined), o);

function topLevel(...fields: string[]): ReadonlySet<string> {
  return new Set(['apiVersion', 'kind', 'metadata', ...fields]);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Secret and ConfigMap: `immutable: true` freezes data (and the flag itself). */
function immutableErrors(obj: KubeObject, old: KubeObject | undefined, fields: readonly string[]): FieldError[] {
  if (!old || old.immutable !== true) return [];
  const errors: FieldError[] = [];
  if (obj.immutable !== true) errors.push({ type: 'Forbidden', field: 'immutable', detail: 'field is immutable when `immutable` is set' });
  for (const f of fields) {
    if (JSON.stringify(obj[f] ?? {}) !== JSON.stringify(old[f] ?? {})) errors.push({ type: 'Forbidden', field: f, detail: 'field is immutable when `immutable` is set' });
  }
  return errors;
}

function stringValues(obj: KubeObject, f: string, base64: boolean): FieldError[] {
  const map = obj[f];
  if (map === undefined || map === null) return [];
  if (!isRecord(map)) return [{ type: 'Invalid', field: f, value: map, detail: 'must be a map of strings' }];
  return Object.entries(map).flatMap(([k, v]): FieldError[] => {
    if (typeof v !== 'string') return [{ type: 'Invalid', field: `${f}[${k}]`, value: v, detail: 'must be a string' }];
    if (base64 && (!BASE64.test(v) || v.length % 4 !== 0)) return [{ type: 'Invalid', field: `${f}[${k}]`, value: '<secret>', detail: 'illegal base64 data' }];
    return [];
  });
}

/** The Secret strategy: stringData is write-only and merged into data (base64). */
function mergeStringData(obj: KubeObject): void {
  const stringData = obj.stringData;
  delete obj.stringData;
  obj.type ??= 'Opaque';
  if (!isRecord(stringData)) return;
  const data: Obj = isRecord(obj.data) ? { ...obj.data } : {};
  for (const [k, v] of Object.entries(stringData)) if (typeof v === 'string') data[k] = Buffer.from(v, 'utf8').toString('base64');
  obj.data = data;
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] as const;
const STATUS_VERBS = ['get', 'patch', 'update'] as const;

interface BuiltinSpec {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  shortNames?: string[];
  status?: boolean;
  generation?: boolean;
  allowCreateOnUpdate?: boolean;
  allowUnconditionalUpdate?: boolean;
  returnDeletedObject?: boolean;
  keepStatusOnCreate?: boolean;
  nameRule?: NameRule;
  fields: string[];
  fieldLabels?: Record<string, (o: KubeObject) => string>;
  strategy?: Strategy;
  categories?: string[];
}

export const CRD_TYPE_ID = 'apiextensions.k8s.io/customresourcedefinitions';
export const NAMESPACE_TYPE_ID = '/namespaces';

/**
 * The built-in kinds: the ones the controller, agent and sidecar touch. Behaviour flags follow each kind's
 * registry strategy in kubernetes/pkg/registry (e.g. Lease and Event allow create-on-update; Node keeps a
 * status given at create; Namespace gets phase Active and the `kubernetes` spec finalizer).
 */
const BUILTINS: readonly BuiltinSpec[] = [
  {
    group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false, shortNames: ['ns'], status: true,
    nameRule: 'label', fields: ['spec', 'status'], returnDeletedObject: true,
    fieldLabels: { 'status.phase': (o) => str(field(o, 'status', 'phase')) },
    strategy: {
      prepareForCreate(obj) {
        const spec = isRecord(obj.spec) ? obj.spec : {};
        spec.finalizers ??= ['kubernetes'];
        obj.spec = spec;
        obj.status = { phase: 'Active' };
      },
      prepareForUpdate(next, old) {
        // spec.finalizers belongs to the namespace controller (the /finalize subresource).
        const spec = isRecord(next.spec) ? next.spec : {};
        const oldFinalizers = field(old, 'spec', 'finalizers');
        if (oldFinalizers === undefined) delete spec.finalizers;
        else spec.finalizers = oldFinalizers;
        next.spec = spec;
      },
    },
  },
  {
    group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true, shortNames: ['cm'],
    fields: ['data', 'binaryData', 'immutable'],
    strategy: {
      validate: (obj, old) => [...stringValues(obj, 'data', false), ...stringValues(obj, 'binaryData', true), ...immutableErrors(obj, old, ['data', 'binaryData'])],
    },
  },
  {
    group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true,
    fields: ['data', 'stringData', 'type', 'immutable'],
    fieldLabels: { type: (o) => str(o.type) },
    strategy: {
      prepareForCreate: mergeStringData,
      prepareForUpdate: (next) => mergeStringData(next),
      validate: (obj, old) => [
        ...stringValues(obj, 'data', true),
        ...immutableErrors(obj, old, ['data']),
        ...(old && old.type !== obj.type ? [{ type: 'Invalid' as const, field: 'type', value: obj.type, detail: 'field is immutable' }] : []),
      ],
    },
  },
  {
    group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true, shortNames: ['sa'],
    returnDeletedObject: true, fields: ['secrets', 'imagePullSecrets', 'automountServiceAccountToken'],
  },
  {
    group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true, shortNames: ['svc'], status: true,
    nameRule: 'label1035', returnDeletedObject: true, fields: ['spec', 'status'], categories: ['all'],
    strategy: {
      prepareForCreate(obj) {
        obj.status = { loadBalancer: {} };
      },
    },
  },
  {
    // Stored only (nothing runs them): the controller labels its own Pod as the cell's leader.
    group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true, shortNames: ['po'], status: true,
    fields: ['spec', 'status'], categories: ['all'],
  },
  {
    group: '', version: 'v1', kind: 'Node', plural: 'nodes', namespaced: false, shortNames: ['no'], status: true,
    keepStatusOnCreate: true, fields: ['spec', 'status'],
    fieldLabels: { 'spec.unschedulable': (o) => String(field(o, 'spec', 'unschedulable') === true) },
  },
  {
    group: '', version: 'v1', kind: 'Event', plural: 'events', namespaced: true, shortNames: ['ev'], allowCreateOnUpdate: true,
    fields: ['involvedObject', 'reason', 'message', 'source', 'firstTimestamp', 'lastTimestamp', 'count', 'type', 'eventTime',
      'series', 'action', 'related', 'reportingComponent', 'reportingInstance'],
    fieldLabels: {
      'involvedObject.kind': (o) => str(field(o, 'involvedObject', 'kind')),
      'involvedObject.namespace': (o) => str(field(o, 'involvedObject', 'namespace')),
      'involvedObject.name': (o) => str(field(o, 'involvedObject', 'name')),
      'involvedObject.uid': (o) => str(field(o, 'involvedObject', 'uid')),
      'involvedObject.apiVersion': (o) => str(field(o, 'involvedObject', 'apiVersion')),
      'involvedObject.resourceVersion': (o) => str(field(o, 'involvedObject', 'resourceVersion')),
      'involvedObject.fieldPath': (o) => str(field(o, 'involvedObject', 'fieldPath')),
      reason: (o) => str(o.reason),
      reportingComponent: (o) => str(o.reportingComponent),
      source: (o) => str(field(o, 'source', 'component')),
      type: (o) => str(o.type),
    },
  },
  {
    group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', namespaced: true, allowCreateOnUpdate: true,
    fields: ['spec'],
  },
  // apps/v1 workloads: stored with a /status subresource so tests can play the Deployment controller; no
  // controller acts on them here. Status given at create is kept, like Node, so fixtures arrive ready-made.
  ...(['Deployment', 'DaemonSet', 'StatefulSet'] as const).map((kind): BuiltinSpec => ({
    group: 'apps', version: 'v1', kind, plural: `${kind.toLowerCase()}s`, namespaced: true, status: true, generation: true,
    keepStatusOnCreate: true, fields: ['spec', 'status'], categories: ['all'],
    shortNames: kind === 'Deployment' ? ['deploy'] : kind === 'DaemonSet' ? ['ds'] : ['sts'],
  })),
  // rbac.authorization.k8s.io/v1: stored, never enforced (the sim authorizes nothing), so manifests that carry
  // RBAC (the agent's, applied into a child by the simulated Flux) apply as they would.
  ...(['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'] as const).map((kind): BuiltinSpec => ({
    group: 'rbac.authorization.k8s.io', version: 'v1', kind, plural: `${kind.toLowerCase()}s`, namespaced: kind.startsWith('Role'),
    fields: kind.endsWith('Binding') ? ['subjects', 'roleRef'] : ['rules', 'aggregationRule'],
  })),
  {
    group: 'apiextensions.k8s.io', version: 'v1', kind: 'CustomResourceDefinition', plural: 'customresourcedefinitions',
    namespaced: false, shortNames: ['crd', 'crds'], status: true, generation: true, allowUnconditionalUpdate: false,
    returnDeletedObject: true, fields: ['spec', 'status'], categories: ['api-extensions'],
  },
];

function builtinType(b: BuiltinSpec): ResourceType {
  return {
    id: `${b.group}/${b.plural}`,
    group: b.group,
    kind: b.kind,
    listKind: `${b.kind}List`,
    plural: b.plural,
    singular: b.kind.toLowerCase(),
    shortNames: b.shortNames ?? [],
    categories: b.categories ?? [],
    namespaced: b.namespaced,
    versions: [{ name: b.version, status: b.status ?? false, deprecated: false }],
    storageVersion: b.version,
    generation: b.generation ?? false,
    allowCreateOnUpdate: b.allowCreateOnUpdate ?? false,
    allowUnconditionalUpdate: b.allowUnconditionalUpdate ?? true,
    returnDeletedObject: b.returnDeletedObject ?? false,
    keepStatusOnCreate: b.keepStatusOnCreate ?? false,
    nameRule: b.nameRule ?? 'subdomain',
    topLevelFields: topLevel(...b.fields),
    fieldLabels: b.fieldLabels ?? {},
    strategy: b.strategy ?? {},
  };
}

export const builtinTypes = (): ResourceType[] => BUILTINS.map(builtinType);

interface CrdVersionSpec {
  name: string;
  served: boolean;
  storage: boolean;
  deprecated: boolean;
  status: boolean;
  schema?: SchemaNode;
}

const VERSION_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const KIND_NAME = /^[A-Za-z][A-Za-z0-9]*$/;
const PLURAL_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Reads and checks a CustomResourceDefinition (apiextensions.k8s.io/v1) the way the CRD strategy's
 * validation does, for the fields the simulator relies on. Returns the type or the field errors.
 */
export function crdToResourceType(crd: KubeObject): { ok: true; type: ResourceType } | { ok: false; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const spec = isRecord(crd.spec) ? crd.spec : {};
  const names = isRecord(spec.names) ? spec.names : {};
  const group = str(spec.group);
  const plural = str(names.plural);
  const kind = str(names.kind);
  if (!group) errors.push({ type: 'Required', field: 'spec.group' });
  else if (!group.includes('.')) errors.push({ type: 'Invalid', field: 'spec.group', value: group, detail: 'should be a domain with at least one dot' });
  if (!plural) errors.push({ type: 'Required', field: 'spec.names.plural' });
  else if (!PLURAL_NAME.test(plural)) errors.push({ type: 'Invalid', field: 'spec.names.plural', value: plural, detail: 'a lowercase RFC 1123 label' });
  if (!kind) errors.push({ type: 'Required', field: 'spec.names.kind' });
  else if (!KIND_NAME.test(kind)) errors.push({ type: 'Invalid', field: 'spec.names.kind', value: kind, detail: 'must be a valid Go identifier-like kind' });
  if (crd.metadata.name !== `${plural}.${group}`) {
    errors.push({ type: 'Invalid', field: 'metadata.name', value: crd.metadata.name ?? '', detail: 'must be spec.names.plural+"."+spec.group' });
  }
  const scope = spec.scope;
  if (scope !== 'Namespaced' && scope !== 'Cluster') errors.push({ type: 'NotSupported', field: 'spec.scope', value: scope ?? '', detail: 'supported values: "Cluster", "Namespaced"' });
  const rawVersions = Array.isArray(spec.versions) ? spec.versions : [];
  if (rawVersions.length === 0) errors.push({ type: 'Required', field: 'spec.versions', detail: 'must have exactly one version marked as storage version' });
  const versions: CrdVersionSpec[] = [];
  rawVersions.forEach((v: unknown, i) => {
    const at = `spec.versions[${i}]`;
    if (!isRecord(v)) {
      errors.push({ type: 'Invalid', field: at, value: v, detail: 'must be an object' });
      return;
    }
    const name = str(v.name);
    if (!VERSION_NAME.test(name)) errors.push({ type: 'Invalid', field: `${at}.name`, value: name, detail: 'a DNS-1035 label' });
    const schema = isRecord(v.schema) && isRecord(v.schema.openAPIV3Schema) ? v.schema.openAPIV3Schema : undefined;
    const served = v.served === true;
    if (served && !schema) errors.push({ type: 'Required', field: `${at}.schema.openAPIV3Schema`, detail: 'schemas are required' });
    const subresources = isRecord(v.subresources) ? v.subresources : {};
    versions.push({ name, served, storage: v.storage === true, deprecated: v.deprecated === true, status: isRecord(subresources.status), ...(schema ? { schema } : {}) });
  });
  const storage = versions.filter((v) => v.storage);
  if (rawVersions.length > 0 && storage.length !== 1) errors.push({ type: 'Invalid', field: 'spec.versions', value: storage.length, detail: 'must have exactly one version marked as storage version' });
  if (new Set(versions.map((v) => v.name)).size !== versions.length) errors.push({ type: 'Duplicate', field: 'spec.versions', value: 'name' });
  const served = versions.filter((v) => v.served);
  if (rawVersions.length > 0 && served.length === 0) errors.push({ type: 'Invalid', field: 'spec.versions', value: 0, detail: 'must have at least one served version' });
  if (errors.length > 0) return { ok: false, errors };
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);
  return {
    ok: true,
    type: {
      id: `${group}/${plural}`,
      group,
      kind,
      listKind: str(names.listKind) || `${kind}List`,
      plural,
      singular: str(names.singular) || kind.toLowerCase(),
      shortNames: strings(names.shortNames),
      categories: strings(names.categories),
      namespaced: scope === 'Namespaced',
      versions: served.map((v) => ({ name: v.name, status: v.status, deprecated: v.deprecated, ...(v.schema ? { schema: v.schema } : {}) })),
      storageVersion: storage[0]?.name ?? '',
      crd: crd.metadata.name,
      generation: true,
      allowCreateOnUpdate: false,
      allowUnconditionalUpdate: false,
      returnDeletedObject: true,
      keepStatusOnCreate: false,
      nameRule: 'subdomain',
      fieldLabels: {},
      strategy: {},
    },
  };
}

/**
 * Kubernetes version priority (k8s.io/apimachinery/pkg/version.CompareKubeAwareVersionStrings): GA before
 * beta before alpha, higher numbers first, anything else last in alphabetical order.
 */
export function compareKubeVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return undefined;
    const stability = m[2] === undefined ? 3 : m[2] === 'beta' ? 2 : 1;
    return [stability, Number(m[1]), Number(m[3] ?? 0)] as const;
  };
  const pa = parse(a);
  const pb = parse(b);
  if (pa && pb) {
    for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pb[i] ?? 0) - (pa[i] ?? 0);
    return 0;
  }
  if (pa) return -1;
  if (pb) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface ResolvedResource {
  readonly type: ResourceType;
  readonly version: ServedVersion;
}

/** The types currently served, with the lookups the HTTP layer and discovery need. */
export class ResourceRegistry {
  private readonly byId = new Map<string, ResourceType>();

  constructor(types: readonly ResourceType[] = builtinTypes()) {
    for (const t of types) this.byId.set(t.id, t);
  }

  get(id: string): ResourceType | undefined {
    return this.byId.get(id);
  }

  set(type: ResourceType): void {
    this.byId.set(type.id, type);
  }

  delete(id: string): void {
    this.byId.delete(id);
  }

  all(): ResourceType[] {
    return [...this.byId.values()];
  }

  /** The type and version a URL names (`/apis/<group>/<version>/<plural>`). */
  resolve(group: string, version: string, plural: string): ResolvedResource | undefined {
    const type = this.byId.get(`${group}/${plural}`);
    const served = type?.versions.find((v) => v.name === version);
    return type && served ? { type, version: served } : undefined;
  }

  /** The type and version an object's apiVersion and kind name. */
  resolveKind(apiVersion: string, kind: string): ResolvedResource | undefined {
    const slash = apiVersion.lastIndexOf('/');
    const group = slash < 0 ? '' : apiVersion.slice(0, slash);
    const version = apiVersion.slice(slash + 1);
    for (const type of this.byId.values()) {
      if (type.group !== group || type.kind !== kind) continue;
      const served = type.versions.find((v) => v.name === version);
      if (served) return { type, version: served };
    }
    return undefined;
  }

  /** Group names with their versions, preferred version first (builtin groups before CRD groups, as the aggregator orders them). */
  groups(): { name: string; versions: string[] }[] {
    const byGroup = new Map<string, { versions: Set<string>; builtin: boolean }>();
    for (const t of this.byId.values()) {
      if (t.group === '') continue;
      const g = byGroup.get(t.group) ?? { versions: new Set<string>(), builtin: false };
      for (const v of t.versions) g.versions.add(v.name);
      g.builtin ||= t.crd === undefined;
      byGroup.set(t.group, g);
    }
    return [...byGroup.entries()]
      .sort(([a, ga], [b, gb]) => (ga.builtin !== gb.builtin ? (ga.builtin ? -1 : 1) : a < b ? -1 : a > b ? 1 : 0))
      .map(([name, g]) => ({ name, versions: [...g.versions].sort(compareKubeVersions) }));
  }

  /** The APIResourceList of one group version. */
  resourceList(group: string, version: string): Obj | undefined {
    const resources: Obj[] = [];
    for (const t of [...this.byId.values()].sort((a, b) => (a.plural < b.plural ? -1 : 1))) {
      const v = t.versions.find((sv) => sv.name === version);
      if (t.group !== group || !v) continue;
      resources.push({
        name: t.plural,
        singularName: t.singular,
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: [...ALL_VERBS],
        ...(t.shortNames.length > 0 ? { shortNames: [...t.shortNames] } : {}),
        ...(t.categories.length > 0 ? { categories: [...t.categories] } : {}),
      });
      if (v.status) resources.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: [...STATUS_VERBS] });
    }
    if (resources.length === 0) return undefined;
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: groupVersion(group, version), resources };
  }
}
