/**
 * Kubernetes structural schemas (CRD openAPIV3Schema, OpenAPI 3.0 dialect) turned into JSON Schema that
 * ajv compiles, with the API server's semantics where they differ:
 *  - unknown fields are errors (kubectl's default `--validate=strict` / server-side field validation),
 *    except under `x-kubernetes-preserve-unknown-fields` or in objects that declare no properties;
 *  - `nullable`, `x-kubernetes-int-or-string` and OpenAPI 3.0's boolean `exclusiveMinimum/Maximum`;
 *  - only the formats the API server validates are checked; others are annotations, as in Kubernetes;
 *  - `pattern` is RE2, the API server's regex dialect (upstream CRDs use RE2-only syntax such as `(?i)`).
 * `x-kubernetes-validations` (CEL) are not JSON Schema; core mirrors them in rules.ts and tests run the CEL.
 */
import { RE2JS } from '@bufbuild/re2';
import { Ajv, _, type ValidateFunction } from 'ajv';
import { CHECKED_FORMATS, KUBERNETES_FORMATS } from './formats.js';

export type SchemaNode = Record<string, unknown>;

/** JSON Schema keywords carried over as they are. */
const PASSTHROUGH = [
  'type', 'enum', 'pattern', 'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems',
  'uniqueItems', 'minProperties', 'maxProperties', 'multipleOf', 'default', 'description', 'required',
] as const;

export interface ConvertOptions {
  /** Reject fields the schema does not declare (strict field validation). @default true */
  readonly rejectUnknownFields?: boolean;
}

/** Converts one structural schema node (and everything below it) into ajv-ready JSON Schema. */
export function structuralToJsonSchema(node: SchemaNode, options: ConvertOptions = {}): SchemaNode {
  return convert(node, options.rejectUnknownFields ?? true, false);
}

function convert(node: SchemaNode, strict: boolean, inJunctor: boolean): SchemaNode {
  const out: SchemaNode = {};
  for (const key of PASSTHROUGH) if (node[key] !== undefined) out[key] = node[key];

  if (node['x-kubernetes-int-or-string'] === true) {
    delete out.type;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  if (typeof node.format === 'string' && CHECKED_FORMATS.has(node.format)) out.format = node.format;
  if (node.exclusiveMinimum === true && typeof node.minimum === 'number') {
    delete out.minimum;
    out.exclusiveMinimum = node.minimum;
  }
  if (node.exclusiveMaximum === true && typeof node.maximum === 'number') {
    delete out.maximum;
    out.exclusiveMaximum = node.maximum;
  }
  if (node.nullable === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
  }

  const props = node.properties as Record<string, SchemaNode> | undefined;
  if (props) {
    out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, convert(v, strict, false)]));
  }
  const additional = node.additionalProperties;
  if (additional !== undefined && typeof additional === 'object' && additional !== null) {
    out.additionalProperties = convert(additional as SchemaNode, strict, false);
  } else if (typeof additional === 'boolean') {
    out.additionalProperties = additional;
  } else if (strict && props && !inJunctor && node['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  if (node.items && typeof node.items === 'object') out.items = convert(node.items as SchemaNode, strict, false);
  for (const junctor of ['allOf', 'anyOf', 'oneOf'] as const) {
    const list = node[junctor];
    if (Array.isArray(list)) {
      const converted = list.map((s: SchemaNode) => convert(s, strict, true));
      out[junctor] = out[junctor] ? [...(out[junctor] as SchemaNode[]), ...converted] : converted;
    }
  }
  if (node.not && typeof node.not === 'object') out.not = convert(node.not as SchemaNode, strict, true);
  return out;
}

/** ajv's regex engine hook, answering with RE2 so `pattern` means what it means to the API server. */
const re2Engine = Object.assign((pattern: string) => RE2JS.compile(pattern), { code: 'RE2JS.compile' });

/**
 * A new ajv configured for Kubernetes schemas: all errors, defaults applied, Kubernetes formats. With
 * `source`, it also keeps each validator's code for ajv's standalone output (build time only).
 */
export function createKubernetesAjv(options: { source?: boolean } = {}): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    // parentSchema in errors: messages name the expected fields and use the schema's descriptions.
    verbose: true,
    useDefaults: true,
    strict: true,
    strictTypes: false,
    strictRequired: false,
    allowUnionTypes: true,
    logger: false,
    code: { regExp: re2Engine, ...(options.source ? { source: true, formats: _`formats` } : {}) },
  });
  for (const [name, format] of Object.entries(KUBERNETES_FORMATS)) ajv.addFormat(name, format);
  return ajv;
}

/** Compiles a structural schema into a validator that also applies the schema's defaults in place. */
export function compileStructuralSchema(ajv: Ajv, schema: SchemaNode, options: ConvertOptions = {}): ValidateFunction {
  return ajv.compile(structuralToJsonSchema(schema, options));
}

/** A compiler over one new Kubernetes ajv: schemas are compiled when asked for. */
export function ajvSchemaCompiler(options: ConvertOptions = {}): (schema: SchemaNode) => ValidateFunction {
  const ajv = createKubernetesAjv();
  return (schema) => compileStructuralSchema(ajv, schema, options);
}
