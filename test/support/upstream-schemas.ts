/**
 * Offline validation of rendered manifests against the upstream providers' CRD schemas
 * (../shared/upstream-crds, described in its SOURCES.md), the way the API server would validate them:
 *  - defaults first, then validation (apiextensions-apiserver defaults before it validates, so a field that
 *    is both required and defaulted, such as CAPO `OpenStackCluster.spec.identityRef.type`, may be omitted);
 *  - unknown fields are errors (kubectl's `--validate=strict`, server-side field validation);
 *  - ObjectMeta is checked on its own, since CRD schemas only say `metadata: {type: object}`.
 * The conversion from structural schema to JSON Schema is core's (core/spec/openapi.ts), so this utility is
 * also a regression guard for it. Not covered: `x-kubernetes-validations` (CEL, see ./cel.ts) and admission
 * webhook rules, which are not in the schemas at all.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { compileStructuralSchema, createKubernetesAjv, type SchemaNode } from '../../core/spec/openapi.js';
import { formatPath, fromJsonPointer, type Path } from '../../core/spec/path.js';
import { SHARED } from './repo.js';

/** Where the upstream CRD files live (shared between worktrees; never copied into the project). */
export const UPSTREAM_CRDS_DIR = join(SHARED, 'upstream-crds');

/** The outcome of a check: every error found, each `dotted.path: message`. */
export type UpstreamResult = { ok: true } | { ok: false; errors: string[] };

/** One served version of one upstream CRD. */
export interface UpstreamSchemaInfo {
  /** `${group}/${version}`, as written in a manifest's apiVersion. */
  readonly apiVersion: string;
  readonly kind: string;
  /** The CRD file, relative to the directory it was loaded from. */
  readonly file: string;
  /** The version is served but marked `deprecated: true` in the CRD. */
  readonly deprecated: boolean;
}

export interface UpstreamSchemas {
  /** The directory the CRDs were read from. */
  readonly dir: string;
  /** Every served version of every CRD found, sorted by apiVersion then kind. */
  readonly schemas: readonly UpstreamSchemaInfo[];
  /** The CRD's openAPIV3Schema (structural, as written upstream) for one served version; do not modify it. */
  schema(apiVersion: string, kind: string): SchemaNode | undefined;
  /**
   * Validates one object against the schema of its apiVersion and kind, on a defaulted deep copy
   * (the argument is never modified).
   */
  validate(obj: unknown): UpstreamResult;
  /**
   * Compiles one schema (once; the result, success or failure, is cached) and reports a compile failure
   * as an error instead of throwing. `validate` compiles on first use; tests call this to check them all.
   */
  compile(apiVersion: string, kind: string): UpstreamResult;
}

interface Slot {
  readonly info: UpstreamSchemaInfo;
  readonly schema: SchemaNode;
  compiled?: { readonly validate: ValidateFunction } | { readonly error: string };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

interface CrdVersion {
  readonly name: string;
  readonly served?: boolean;
  readonly deprecated?: boolean;
  readonly schema?: { readonly openAPIV3Schema?: SchemaNode };
}

interface Crd {
  readonly kind: 'CustomResourceDefinition';
  readonly spec: {
    readonly group: string;
    readonly names: { readonly kind: string };
    readonly versions: readonly CrdVersion[];
  };
}

function isCrd(doc: unknown): doc is Crd {
  return isObj(doc) && doc.kind === 'CustomResourceDefinition' && typeof doc.apiVersion === 'string'
    && doc.apiVersion.startsWith('apiextensions.k8s.io/') && isObj(doc.spec) && typeof doc.spec.group === 'string'
    && isObj(doc.spec.names) && typeof doc.spec.names.kind === 'string' && Array.isArray(doc.spec.versions);
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return yamlFiles(path);
      return e.isFile() && /\.ya?ml$/.test(e.name) ? [path] : [];
    })
    .sort();
}

/**
 * Reads every YAML file under `dir` (recursively, all documents of each file), keeps the
 * CustomResourceDefinitions, and indexes each served version by apiVersion and kind. Schemas are compiled
 * lazily: the CRDs are large and most tests need only a few of them. Throws on unreadable YAML, a served
 * version without a schema, or the same apiVersion and kind defined twice, since any of these would make
 * the validation silently depend on file order.
 */
export function loadUpstreamSchemas(dir: string = UPSTREAM_CRDS_DIR): UpstreamSchemas {
  const byKind = new Map<string, Map<string, Slot>>();
  for (const path of yamlFiles(dir)) {
    const file = relative(dir, path);
    for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
      const problem = doc.errors[0];
      if (problem) throw new Error(`${file}: invalid YAML: ${problem.message}`);
      // Trusted upstream files: no alias limit.
      const crd: unknown = doc.toJS({ maxAliasCount: -1 });
      if (!isCrd(crd)) continue;
      const kind = crd.spec.names.kind;
      for (const version of crd.spec.versions) {
        if (version.served !== true) continue;
        const apiVersion = `${crd.spec.group}/${version.name}`;
        const schema = version.schema?.openAPIV3Schema;
        if (!isObj(schema)) throw new Error(`${file}: ${apiVersion} ${kind} is served but has no openAPIV3Schema`);
        const versions = byKind.get(kind) ?? new Map<string, Slot>();
        byKind.set(kind, versions);
        const earlier = versions.get(apiVersion);
        if (earlier) throw new Error(`${apiVersion} ${kind} is defined twice: in ${earlier.info.file} and in ${file}`);
        versions.set(apiVersion, { info: { apiVersion, kind, file, deprecated: version.deprecated === true }, schema });
      }
    }
  }

  let ajv: Ajv | undefined;
  const compile = (slot: Slot) => {
    if (slot.compiled) return slot.compiled;
    // One ajv for all schemas: compiled validators stay cached in it and in the slot.
    ajv ??= createKubernetesAjv();
    try {
      slot.compiled = { validate: compileStructuralSchema(ajv, slot.schema, { rejectUnknownFields: true }) };
    } catch (e) {
      const { apiVersion, kind, file } = slot.info;
      slot.compiled = { error: `cannot compile the schema of ${apiVersion} ${kind} (${file}) with core/spec/openapi.ts: ${(e as Error).message}` };
    }
    return slot.compiled;
  };

  const lookup = (apiVersion: string, kind: string): Slot | string => {
    const versions = byKind.get(kind);
    const slot = versions?.get(apiVersion);
    if (slot) return slot;
    const served = versions ? `${kind} is served as ${[...versions.keys()].sort().join(', ')}` : `no CRD under ${dir} defines kind ${kind}`;
    return `no upstream schema for apiVersion ${apiVersion} kind ${kind}: ${served}`;
  };

  const schemas = [...byKind.values()]
    .flatMap((versions) => [...versions.values()].map((s) => s.info))
    .sort((a, b) => (a.apiVersion === b.apiVersion ? compare(a.kind, b.kind) : compare(a.apiVersion, b.apiVersion)));

  return {
    dir,
    schemas,
    schema(apiVersion, kind) {
      const slot = lookup(apiVersion, kind);
      return typeof slot === 'string' ? undefined : slot.schema;
    },
    compile(apiVersion, kind) {
      const slot = lookup(apiVersion, kind);
      if (typeof slot === 'string') return { ok: false, errors: [slot] };
      const compiled = compile(slot);
      return 'error' in compiled ? { ok: false, errors: [compiled.error] } : { ok: true };
    },
    validate(obj) {
      if (!isObj(obj) || typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
        return { ok: false, errors: ['(root): must be an object with string apiVersion and kind'] };
      }
      const slot = lookup(obj.apiVersion, obj.kind);
      if (typeof slot === 'string') return { ok: false, errors: [slot] };
      const compiled = compile(slot);
      if ('error' in compiled) return { ok: false, errors: [compiled.error] };
      const copy = structuredClone(obj);
      // ajv (useDefaults) fills in defaults for absent fields of each object before checking it, so
      // `required` sees the defaulted object, as after the API server's defaulting step.
      const schemaErrors = compiled.validate(copy) ? [] : (compiled.validate.errors ?? []).map((e) => describeError(e, copy));
      const errors = [...new Set([...metadataErrors(copy.metadata), ...schemaErrors])];
      return errors.length === 0 ? { ok: true } : { ok: false, errors };
    },
  };
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function at(path: Path): string {
  return path.length === 0 ? '(root)' : formatPath(path);
}

/** One ajv error as `dotted.path: message`; missing and unknown fields are named in the path. */
function describeError(err: ErrorObject, data: unknown): string {
  const base = fromJsonPointer(err.instancePath, data);
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'required':
      return `${at([...base, String(params.missingProperty)])}: required field missing`;
    case 'additionalProperties':
      return `${at([...base, String(params.additionalProperty)])}: unknown field`;
    case 'enum':
      return `${at(base)}: ${err.message ?? 'invalid'}: ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${at(base)}: ${err.message ?? `fails ${err.keyword}`}`;
  }
}

/**
 * ObjectMeta as far as a manifest can get it wrong: CRD schemas leave `metadata` as a bare object because
 * the API server validates it separately (ValidateObjectMeta). Name presence and string-valued
 * labels/annotations are checked here; name syntax, label syntax and lengths are not.
 */
function metadataErrors(metadata: unknown): string[] {
  if (metadata === undefined) return ['metadata.name: required field missing'];
  if (!isObj(metadata)) return ['metadata: must be object'];
  const errors: string[] = [];
  if (metadata.name === undefined) errors.push('metadata.name: required field missing');
  else if (typeof metadata.name !== 'string' || metadata.name === '') errors.push('metadata.name: must be a non-empty string');
  for (const field of ['labels', 'annotations'] as const) {
    const map = metadata[field];
    if (map === undefined) continue;
    if (!isObj(map)) {
      errors.push(`metadata.${field}: must be object`);
      continue;
    }
    for (const [key, value] of Object.entries(map)) {
      if (typeof value !== 'string') errors.push(`${formatPath(['metadata', field, key])}: must be string`);
    }
  }
  return errors;
}
