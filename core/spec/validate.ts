/**
 * Spec validation: files → documents → our objects validated with the CRD schemas (ajv, compiled once
 * per validator) and the cross-field rules, defaults applied → a typed, located set of objects, or every
 * issue found in every file. Documents that are not ours pass through untouched.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { isRecord } from '../data.js';
import { IssueCode, fail, ok, sortIssues, type Issue, type Result } from './issues.js';
import type { InfraProvider, LatticeCluster } from './model.js';
import type { SchemaNode } from './openapi.js';
import { formatPath, fromJsonPointer, type Path } from './path.js';
import { checkRules, configuredProviders, type Violation } from './rules.js';
import { firstPass } from './first-pass.js';
import { DEFAULT_SOURCE_LIMITS, parseSourceFile, type SourceDocument, type SourceFile, type SourceLimits } from './source.js';

/** The API group whose kinds Lattice owns. */
export const LATTICE_GROUP = 'lattice.dev';

/** Where an object came from. */
export interface Origin {
  readonly file: string;
  /** 0-based document index in the file (with the file, enough to find it; positions are for issues). */
  readonly document: number;
}

/** A Kubernetes object as read from a file. */
export interface KubernetesObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly [k: string]: unknown };
  readonly [k: string]: unknown;
}

export interface Located<T> {
  readonly origin: Origin;
  readonly object: T;
}

/** Everything found in a set of spec files, each kind sorted by name for deterministic output. */
export interface SpecSet {
  readonly clusters: readonly Located<LatticeCluster>[];
  readonly infraProviders: readonly Located<InfraProvider>[];
  /** Documents that are not ours, untouched, in input order. */
  readonly others: readonly Located<KubernetesObject>[];
}

/** One of our kinds: its scope, and a validator (which also applies defaults) per served version. */
export interface KindSchema {
  readonly kind: string;
  readonly namespaced: boolean;
  readonly versions: ReadonlyMap<string, ValidateFunction>;
}

type KindInfo = KindSchema;

/**
 * Turns a version's openAPIV3Schema into its validator: ajv compiling now (`ajvSchemaCompiler` in
 * openapi.ts), or the validator precompiled for that kind and version at build time.
 */
export type SchemaCompiler = (schema: SchemaNode, key: { readonly kind: string; readonly version: string }) => ValidateFunction;

/** An object one file holds, checked on its own (schema, defaults, rules), and where it came from. */
export interface CheckedObject {
  readonly origin: Origin;
  readonly object: KubernetesObject;
  /** One of our kinds (validated and defaulted), rather than an object passed through. */
  readonly ours: boolean;
}

/** What checking some files on their own found: every per-file issue, or their objects in file order. */
export interface FileChecks {
  readonly issues: readonly Issue[];
  readonly objects: readonly CheckedObject[];
}

export interface SpecValidator {
  /** Validates files together (cross-document checks included); never returns partial results. */
  validate(files: readonly SourceFile[]): Result<SpecSet>;
  /**
   * The per-file half of `validate`, so that parts of a large input can be checked in parallel.
   * Positions are computed here; the documents stay behind.
   */
  checkFiles(files: readonly SourceFile[]): FileChecks;
  /**
   * The cross-document half over per-file checks of all the files, in file order: the spec set when
   * nothing at all is wrong, else undefined, and `validate` over the same files gives the located report.
   */
  combine(checks: readonly FileChecks[]): SpecSet | undefined;
  /** The kinds this validator owns, for messages and classification. */
  readonly kinds: readonly string[];
}

export interface SpecValidatorOptions {
  readonly limits?: SourceLimits;
}

const isObj = isRecord;

/**
 * Our kinds in CustomResourceDefinition objects (the parsed files of crds/), each served version's schema
 * handed to `compile`. The CRDs are the one source of truth: nothing about our kinds' fields is written
 * anywhere else.
 */
export function kindSchemas(crds: readonly unknown[], compile: SchemaCompiler): KindSchema[] {
  const kinds: KindSchema[] = [];
  for (const crd of crds) {
    if (!isObj(crd) || !isObj(crd.spec) || crd.spec.group !== LATTICE_GROUP) continue;
    const kind = (crd.spec.names as { kind: string }).kind;
    const versions = new Map<string, ValidateFunction>();
    for (const v of (crd.spec.versions as { name: string; served: boolean; schema: { openAPIV3Schema: SchemaNode } }[]) ?? []) {
      if (v.served) versions.set(v.name, compile(v.schema.openAPIV3Schema, { kind, version: v.name }));
    }
    kinds.push({ kind, namespaced: crd.spec.scope === 'Namespaced', versions });
  }
  return kinds;
}

/** Builds a validator over our kinds (see `kindSchemas`). */
export function createSpecValidator(schemas: readonly KindSchema[], options: SpecValidatorOptions = {}): SpecValidator {
  const kinds = new Map<string, KindInfo>(schemas.map((k) => [k.kind, k]));
  const limits = options.limits ?? DEFAULT_SOURCE_LIMITS;
  return {
    kinds: [...kinds.keys()].sort(),
    validate: (files) => validateFiles(files, kinds, limits),
    checkFiles: (files) => checkFiles(files, kinds, limits),
    combine: (checks) => combine(checks),
  };
}

/** Every document of the files checked on its own, with its source; per-file issues go to `issues`. */
function* checkedDocuments(files: readonly SourceFile[], kinds: ReadonlyMap<string, KindInfo>, limits: SourceLimits, issues: Issue[]): Generator<CheckedObject & { readonly doc: SourceDocument }> {
  const check = (docs: readonly SourceDocument[]) => docs.map((doc) => ({ doc, checked: checkDocument(doc, kinds) }));
  for (const file of files) {
    // The first pass (first-pass.ts) reads most files; a file it gives up on, or whose documents have any
    // issue, is read again by the full pass, so every issue is reported as the full pass finds it.
    const first = firstPass(file, limits);
    let checks = first && check(first.documents);
    if (!checks || checks.some(({ checked }) => checked.issues.length > 0)) {
      const parsed = first ? first.full() : parseSourceFile(file, limits);
      if (!parsed.ok) {
        issues.push(...parsed.issues);
        continue;
      }
      checks = check(parsed.value);
    }
    for (const { doc, checked } of checks) {
      issues.push(...checked.issues);
      if (checked.object) yield { doc, origin: { file: doc.file, document: doc.index }, object: checked.object, ours: checked.ours };
    }
  }
}

function checkFiles(files: readonly SourceFile[], kinds: ReadonlyMap<string, KindInfo>, limits: SourceLimits): FileChecks {
  const issues: Issue[] = [];
  const objects = [...checkedDocuments(files, kinds, limits, issues)].map(({ origin, object, ours }) => ({ origin, object, ours }));
  return { issues, objects };
}

function combine(checks: readonly FileChecks[]): SpecSet | undefined {
  if (checks.some((c) => c.issues.length > 0)) return undefined;
  const clusters: Located<LatticeCluster>[] = [];
  const infraProviders: Located<InfraProvider>[] = [];
  const others: Located<KubernetesObject>[] = [];
  const seen = new Set<string>();
  for (const { origin, object, ours } of checks.flatMap((c) => c.objects)) {
    const id = objectId(object);
    if (id && seen.has(id)) return undefined;
    if (id) seen.add(id);
    classify({ origin, object }, ours, clusters, infraProviders, others);
  }
  if (clusters.some(({ object }) => providerTypeMismatch(object, infraProviders) !== undefined)) return undefined;
  return sortedSpecSet(clusters, infraProviders, others);
}

/** Files an object among clusters, InfraProviders and the rest (objects that are not ours). */
function classify(
  located: Located<KubernetesObject>, ours: boolean,
  clusters: Located<LatticeCluster>[], infraProviders: Located<InfraProvider>[], others: Located<KubernetesObject>[],
): void {
  const { origin, object } = located;
  if (ours && object.kind === 'LatticeCluster') clusters.push({ origin, object: object as unknown as LatticeCluster });
  else if (ours && object.kind === 'InfraProvider') infraProviders.push({ origin, object: object as unknown as InfraProvider });
  else others.push(located);
}

function sortedSpecSet(clusters: Located<LatticeCluster>[], infraProviders: Located<InfraProvider>[], others: Located<KubernetesObject>[]): SpecSet {
  const byName = <T extends { metadata: { name: string; namespace?: string } }>(a: Located<T>, b: Located<T>) =>
    `${a.object.metadata.namespace ?? ''}/${a.object.metadata.name}` < `${b.object.metadata.namespace ?? ''}/${b.object.metadata.name}` ? -1 : 1;
  return { clusters: clusters.sort(byName), infraProviders: infraProviders.sort(byName), others };
}

function validateFiles(files: readonly SourceFile[], kinds: ReadonlyMap<string, KindInfo>, limits: SourceLimits): Result<SpecSet> {
  const issues: Issue[] = [];
  const clusters: Located<LatticeCluster>[] = [];
  const infraProviders: Located<InfraProvider>[] = [];
  const others: Located<KubernetesObject>[] = [];
  const seen = new Map<string, { doc: SourceDocument; object: KubernetesObject }>();

  for (const { doc, origin, object, ours } of checkedDocuments(files, kinds, limits, issues)) {
    const id = objectId(object);
    const first = id ? seen.get(id) : undefined;
    if (id && first) {
      issues.push(issueAt(doc, {
        code: IssueCode.DUPLICATE_OBJECT, path: ['metadata', 'name'], message: `${object.kind} "${object.metadata?.name}" is defined twice`,
        expected: 'one definition', found: `another at ${first.doc.file}:${first.doc.locate([]).line}`,
      }));
    } else if (id) {
      seen.set(id, { doc, object });
    }
    classify({ origin, object }, ours, clusters, infraProviders, others);
  }
  issues.push(...crossDocumentIssues(clusters, infraProviders, seen));
  if (issues.length > 0) return fail(sortIssues(issues));
  return ok(sortedSpecSet(clusters, infraProviders, others));
}

function objectId(o: KubernetesObject): string | undefined {
  const name = o.metadata?.name;
  if (typeof name !== 'string') return undefined;
  const group = o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '';
  return `${group}/${o.kind}/${o.metadata?.namespace ?? ''}/${name}`;
}

function issueAt(doc: SourceDocument, v: Violation): Issue {
  const pos = doc.locate(v.path, { atKey: v.atKey ?? false });
  return {
    code: v.code, message: v.message, file: doc.file, line: pos.line, col: pos.col, path: formatPath(v.path), document: doc.index,
    ...(v.expected !== undefined ? { expected: v.expected } : {}), ...(v.found !== undefined ? { found: v.found } : {}),
  };
}

interface Checked {
  readonly issues: Issue[];
  readonly object?: KubernetesObject;
  readonly ours: boolean;
}

function checkDocument(doc: SourceDocument, kinds: ReadonlyMap<string, KindInfo>): Checked {
  const data = doc.data;
  if (!isObj(data)) {
    return { ours: false, issues: [issueAt(doc, { code: IssueCode.DOCUMENT_NOT_OBJECT, path: [], message: 'a document must be a Kubernetes object (a mapping)', expected: 'a mapping', found: describe(data) })] };
  }
  const { apiVersion, kind } = data;
  if (typeof apiVersion !== 'string' || apiVersion === '' || typeof kind !== 'string' || kind === '') {
    return { ours: false, issues: [issueAt(doc, {
      code: IssueCode.MISSING_API_VERSION_OR_KIND, path: typeof apiVersion === 'string' && apiVersion !== '' ? ['kind'] : ['apiVersion'],
      message: 'every document needs apiVersion and kind', expected: 'apiVersion and kind strings',
      found: `apiVersion ${describe(apiVersion)}, kind ${describe(kind)}`,
    })] };
  }
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
  if (group !== LATTICE_GROUP) return { ours: false, issues: [], object: data as KubernetesObject };

  const info = kinds.get(kind);
  const validateFn = info?.versions.get(version ?? '');
  if (!info || !validateFn) {
    const known = [...kinds.values()].flatMap((k) => [...k.versions.keys()].map((v) => `${LATTICE_GROUP}/${v} ${k.kind}`));
    return { ours: false, issues: [issueAt(doc, {
      code: IssueCode.UNSUPPORTED_API_VERSION, path: info ? ['apiVersion'] : ['kind'], message: `${apiVersion} ${kind} is not a kind this version of Lattice serves`,
      expected: known.join(' or '), found: `${apiVersion} ${kind}`,
    })] };
  }

  const issues: Issue[] = [];
  const metadata = isObj(data.metadata) ? data.metadata : undefined;
  if (typeof metadata?.name !== 'string' || metadata.name === '') {
    issues.push(issueAt(doc, { code: IssueCode.METADATA_NAME_MISSING, path: ['metadata', 'name'], message: `a ${kind} needs metadata.name`, expected: 'a name', found: describe(metadata?.name) }));
  }
  if (!info.namespaced && metadata?.namespace !== undefined) {
    issues.push(issueAt(doc, {
      code: IssueCode.NAMESPACE_ON_CLUSTER_SCOPED, path: ['metadata', 'namespace'], message: `${kind} is cluster-scoped; remove metadata.namespace`,
      expected: 'no namespace', found: describe(metadata.namespace),
    }));
  }
  const object = structuredClone(data);
  if (!validateFn(object)) {
    for (const err of validateFn.errors ?? []) issues.push(issueAt(doc, schemaViolation(err, object)));
  }
  issues.push(...checkRules(kind, object).map((v) => issueAt(doc, v)));
  return { ours: true, issues, object: object as KubernetesObject };
}

function crossDocumentIssues(
  clusters: readonly Located<LatticeCluster>[],
  providers: readonly Located<InfraProvider>[],
  seen: ReadonlyMap<string, { doc: SourceDocument }>,
): Issue[] {
  const issues: Issue[] = [];
  for (const { object } of clusters) {
    const mismatch = providerTypeMismatch(object, providers);
    if (!mismatch) continue;
    const id = objectId(object as unknown as KubernetesObject);
    const entry = id ? seen.get(id) : undefined;
    if (!entry) continue;
    issues.push(issueAt(entry.doc, {
      code: IssueCode.PROVIDER_TYPE_MISMATCH, path: ['spec', 'providerRef'],
      message: `InfraProvider "${object.spec?.providerRef}" is of type ${mismatch.want}, but the cluster configures ${mismatch.configured}`,
      expected: `provider.config.${mismatch.want}`, found: `provider.config.${mismatch.configured}`,
    }));
  }
  return issues;
}

/** The InfraProvider's type and the provider the cluster configures, when they differ. */
function providerTypeMismatch(cluster: LatticeCluster, providers: readonly Located<InfraProvider>[]): { want: string; configured: string } | undefined {
  const ref = cluster.spec?.providerRef;
  const provider = providers.find((p) => p.object.metadata?.name === ref);
  const configured = configuredProviders(cluster.spec);
  const want = provider?.object.spec?.type;
  if (!provider || !want || configured.length !== 1 || configured[0] === want) return undefined;
  return { want, configured: configured[0] ?? '' };
}

/** A short, safe description of a value for "found" (never more than 80 characters). */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value);
  return `${typeof value} ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}

const article = (t: string) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

/** Turns one ajv error into a violation with a path, an actionable message, and expected/found. */
function schemaViolation(err: ErrorObject, root: unknown): Violation {
  const base = fromJsonPointer(err.instancePath, root);
  const schema = (err.parentSchema ?? {}) as SchemaNode;
  const value = valueAt(root, base);
  const last = base[base.length - 1];
  const field = typeof last === 'string' ? last : 'value';
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'required': {
      const missing = String(p.missingProperty);
      return { code: IssueCode.REQUIRED_FIELD_MISSING, path: [...base, missing], message: `required field "${missing}" is missing`, expected: `field "${missing}"`, found: 'nothing' };
    }
    case 'additionalProperties': {
      const extra = String(p.additionalProperty);
      const known = Object.keys((schema.properties ?? {}) as object);
      const hint = closest(extra, known);
      return {
        code: IssueCode.UNKNOWN_FIELD, path: [...base, extra], atKey: true,
        message: `unknown field "${extra}"${hint ? `; did you mean "${hint}"?` : ''}`, expected: `one of ${known.join(', ')}`, found: `"${extra}"`,
      };
    }
    case 'type': {
      const want = String(p.type);
      let message = `${field} must be ${article(want)}`;
      if (want === 'boolean' && isObj(value) && 'enabled' in value) {
        message = `${field} is a boolean: write "${field}: ${JSON.stringify(value.enabled ?? false)}", not "${field}: {enabled: ...}"`;
      } else if (want === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
        message = `${field} must be a string; quote the value so YAML does not read it as a ${typeof value}`;
      }
      return { code: IssueCode.WRONG_TYPE, path: base, message, expected: want, found: describe(value) };
    }
    case 'enum':
      return { code: IssueCode.VALUE_NOT_ALLOWED, path: base, message: `${field} has a value that is not allowed`, expected: `one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`, found: describe(value) };
    case 'pattern':
      return { code: IssueCode.PATTERN_MISMATCH, path: base, message: `${field} is not in the expected form`, expected: typeof schema.description === 'string' ? schema.description.replace(/\.$/, '') : `a string matching ${String(p.pattern)}`, found: describe(value) };
    case 'format':
      return { code: IssueCode.FORMAT_INVALID, path: base, message: `${field} is not a valid ${String(p.format)}`, expected: `a valid ${String(p.format)}`, found: describe(value) };
    case 'minimum': case 'maximum': case 'exclusiveMinimum': case 'exclusiveMaximum':
      return { code: IssueCode.OUT_OF_RANGE, path: base, message: `${field} is out of range`, expected: `${String(p.comparison)} ${String(p.limit)}`, found: describe(value) };
    case 'minLength': case 'maxLength':
      return { code: IssueCode.LENGTH_OUT_OF_RANGE, path: base, message: `${field} has the wrong length`, expected: `${err.keyword === 'minLength' ? 'at least' : 'at most'} ${String(p.limit)} characters`, found: `${String(value).length} characters` };
    case 'minItems': case 'maxItems': case 'minProperties': case 'maxProperties':
      return { code: IssueCode.COUNT_OUT_OF_RANGE, path: base, message: `${field} has the wrong number of entries`, expected: `${err.keyword.startsWith('min') ? 'at least' : 'at most'} ${String(p.limit)}`, found: `${Array.isArray(value) ? value.length : isObj(value) ? Object.keys(value).length : 0}` };
    default:
      return { code: IssueCode.SCHEMA_VIOLATION, path: base, message: `${field} ${err.message ?? 'is invalid'}`, found: describe(value) };
  }
}

function valueAt(root: unknown, path: Path): unknown {
  let node = root;
  for (const seg of path) node = isObj(node) || Array.isArray(node) ? (node as Record<string | number, unknown>)[seg] : undefined;
  return node;
}

/** The known name closest to a misspelt one, when it is close enough to be a likely typo. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] ?? 0;
      row[j] = Math.min((row[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] ?? 0;
}
