/**
 * What apiextensions-apiserver does to a custom resource with its version's structural schema, in order:
 * prune unknown fields (and nulls of non-nullable fields), apply defaults, validate. The JSON Schema
 * conversion is core's (core/spec/openapi.ts); pruning and error mapping live here.
 * `x-kubernetes-validations` (CEL) rules are not evaluated.
 */
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { compileStructuralSchema, createKubernetesAjv, type SchemaNode } from '../../core/spec/openapi.js';
import { formatPath, fromJsonPointer, type Path } from '../../core/spec/path.js';
import type { FieldError } from './errors.js';
import { isRecord, type Obj } from './objects.js';

const asSchema = (v: unknown): SchemaNode | undefined => (isRecord(v) ? v : undefined);

/**
 * Structural pruning (k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning): removes every field the
 * schema does not specify, unless `x-kubernetes-preserve-unknown-fields` is set there; embedded resources
 * keep apiVersion, kind and metadata. Mutates `value`; returns the paths of the pruned unknown fields.
 */
export function prune(value: unknown, schema: SchemaNode, path: Path = [], root = true): string[] {
  const pruned: string[] = [];
  walk(value, schema, path, root, pruned);
  return pruned;
}

function walk(value: unknown, schema: SchemaNode, path: Path, root: boolean, pruned: string[]): void {
  if (schema['x-kubernetes-int-or-string'] === true) return;
  if (Array.isArray(value)) {
    const items = asSchema(schema.items);
    if (items) value.forEach((v, i) => walk(v, items, [...path, i], false, pruned));
    return;
  }
  if (!isRecord(value)) return;
  const props = asSchema(schema.properties) as Record<string, unknown> | undefined;
  const additional = schema.additionalProperties;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  const embedded = root || schema['x-kubernetes-embedded-resource'] === true;
  for (const key of Object.keys(value)) {
    // ObjectMeta is decoded and checked separately; apiVersion and kind are type information.
    if (embedded && (key === 'apiVersion' || key === 'kind' || key === 'metadata')) continue;
    const child = value[key];
    const propSchema = props ? asSchema(props[key]) : undefined;
    const childSchema = propSchema ?? asSchema(additional);
    if (childSchema) {
      if (child === null && childSchema.nullable !== true) {
        // Null values of non-nullable fields are pruned before defaulting.
        delete value[key];
        continue;
      }
      walk(child, childSchema, [...path, key], false, pruned);
    } else if (!preserve && additional !== true) {
      pruned.push(formatPath([...path, key]));
      delete value[key];
    }
  }
}

/**
 * Validators by schema text, shared by every server of the process: compiling is pure (same ajv options, same
 * schema, same function), and tests and the demo run many servers with the same CRDs.
 */
let sharedAjv: Ajv | undefined;
const byText = new Map<string, ValidateFunction | Error>();

/** Per-server schema compiler: validators compiled on first use and kept per schema object. */
export class SchemaCache {
  private readonly compiled = new WeakMap<SchemaNode, ValidateFunction | Error>();

  /** The validator of a schema; compile errors are returned, not thrown, and cached too. */
  validator(schema: SchemaNode): ValidateFunction | Error {
    const hit = this.compiled.get(schema);
    if (hit) return hit;
    const text = JSON.stringify(schema);
    let result = byText.get(text);
    if (!result) {
      sharedAjv ??= createKubernetesAjv();
      try {
        // Unknown fields are already pruned (the API server prunes rather than rejects by default).
        result = compileStructuralSchema(sharedAjv, schema, { rejectUnknownFields: false });
      } catch (e) {
        result = e instanceof Error ? e : new Error(String(e));
      }
      byText.set(text, result);
    }
    this.compiled.set(schema, result);
    return result;
  }
}

/** Applies defaults in place and returns the schema violations as API field errors. */
export function validateWithSchema(validate: ValidateFunction, obj: Obj): FieldError[] {
  if (validate(obj)) return [];
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const err of validate.errors ?? []) {
    const fe = toFieldError(err, obj);
    const key = `${fe.field}|${fe.type}|${fe.detail ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(fe);
  }
  return out;
}

function toFieldError(err: ErrorObject, data: unknown): FieldError {
  const base = fromJsonPointer(err.instancePath, data);
  const at = formatPath(base) || '<root>';
  const params = err.params as Record<string, unknown>;
  const value: unknown = err.data;
  switch (err.keyword) {
    case 'required':
      return { type: 'Required', field: formatPath([...base, String(params.missingProperty)]) };
    case 'enum':
      return { type: 'NotSupported', field: at, value, detail: `supported values: ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'type':
      return { type: 'TypeInvalid', field: at, value: Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value, detail: `${at} in body must be of type ${String(params.type)}: "${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value}"` };
    case 'additionalProperties':
      return { type: 'Invalid', field: formatPath([...base, String(params.additionalProperty)]), detail: 'unknown field' };
    case 'maxLength':
      return { type: 'TooLong', field: at, detail: `may not be more than ${String(params.limit)} bytes` };
    case 'maxItems':
      return { type: 'TooMany', field: at, value: Array.isArray(value) ? value.length : value, detail: `must have at most ${String(params.limit)} items` };
    case 'pattern':
      return { type: 'Invalid', field: at, value, detail: `${at} in body should match '${String(params.pattern)}'` };
    case 'format':
      return { type: 'Invalid', field: at, value, detail: `${at} in body must be of type ${String(params.format)}: ${JSON.stringify(value)}` };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { type: 'Invalid', field: at, value, detail: `${at} in body should be ${String(params.comparison)} ${String(params.limit)}` };
    default:
      return { type: 'Invalid', field: at, value, detail: err.message ?? `fails ${err.keyword}` };
  }
}
