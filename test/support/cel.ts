/**
 * Runs a CRD's `x-kubernetes-validations` CEL rules the way the API server does: on the defaulted object,
 * at every schema node that has a value, with `self` bound to that value. Uses @bufbuild/cel (RE2 regexes,
 * cel-spec conformance), so a rule that would not compile or would behave differently in cel-go shows up.
 */
import { run } from '@bufbuild/cel';
import type { SchemaNode } from '../../core/spec/openapi.js';
import { formatPath, type Path, type PathSegment } from '../../core/spec/path.js';

export interface CelViolation {
  /** The code prefix of the rule's message (`CODE: text`), or CEL_EVALUATION_ERROR. */
  readonly code: string;
  readonly path: Path;
  readonly printedPath: string;
  readonly message: string;
}

interface Rule {
  readonly rule: string;
  readonly message: string;
  readonly fieldPath?: string;
}

/** JSON data to CEL values: objects become maps, integers become CEL ints (bigint). */
export function toCel(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toCel);
  if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : value;
  if (value !== null && typeof value === 'object') return new Map(Object.entries(value).map(([k, v]) => [k, toCel(v)]));
  return value;
}

function fieldPathSegments(fieldPath: string | undefined): PathSegment[] {
  return fieldPath ? fieldPath.split('.').filter(Boolean) : [];
}

/** Every CEL rule in a schema, with the code its message starts with. */
export function collectRules(schema: SchemaNode): { code: string; rule: string }[] {
  const out: { code: string; rule: string }[] = [];
  const walk = (node: unknown) => {
    if (!node || typeof node !== 'object') return;
    const n = node as SchemaNode;
    for (const r of (n['x-kubernetes-validations'] as Rule[] | undefined) ?? []) out.push({ code: r.message.split(':')[0] ?? '', rule: r.rule });
    for (const v of Object.values((n.properties ?? {}) as object)) walk(v);
    walk(n.additionalProperties);
    walk(n.items);
  };
  walk(schema);
  return out;
}

export function evaluateCel(schema: SchemaNode, value: unknown, path: Path = []): CelViolation[] {
  if (value === undefined) return [];
  const out: CelViolation[] = [];
  for (const r of (schema['x-kubernetes-validations'] as Rule[] | undefined) ?? []) {
    const where = [...path, ...fieldPathSegments(r.fieldPath)];
    let passed: unknown;
    try {
      passed = run(r.rule, { self: toCel(value) } as never);
    } catch (e) {
      out.push({ code: 'CEL_EVALUATION_ERROR', path: where, printedPath: formatPath(where), message: `${r.rule}: ${(e as Error).message}` });
      continue;
    }
    if (passed !== true) out.push({ code: r.message.split(':')[0] ?? '', path: where, printedPath: formatPath(where), message: r.message });
  }
  const props = schema.properties as Record<string, SchemaNode> | undefined;
  if (props && value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, sub] of Object.entries(props)) out.push(...evaluateCel(sub, (value as Record<string, unknown>)[k], [...path, k]));
  }
  const additional = schema.additionalProperties;
  if (additional && typeof additional === 'object' && value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) out.push(...evaluateCel(additional as SchemaNode, v, [...path, k]));
  }
  if (schema.items && Array.isArray(value)) {
    value.forEach((v, i) => out.push(...evaluateCel(schema.items as SchemaNode, v, [...path, i])));
  }
  return out;
}
