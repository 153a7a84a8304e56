/**
 * The one way a value reaches rendered YAML: canonical JSON (sorted keys), which YAML reads as a flow
 * scalar or collection. A spec string therefore can never open a key, a block or a document.
 * JSON leaves a few characters raw that YAML forbids or, in YAML 1.1 (go-yaml v2, which kubectl and
 * Argo CD use), treats as line breaks; those are escaped too.
 */

import { isRecord } from '../data.js';

const YAML_UNSAFE = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;
const HAS_YAML_UNSAFE = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/;

function escapeUnsafe(json: string): string {
  // Nearly every value is safe: test first rather than run a global replace over each one.
  if (!HAS_YAML_UNSAFE.test(json)) return json;
  return json.replace(YAML_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Serializes plain data as canonical JSON; rejects what JSON cannot represent faithfully. */
export function canonicalJson(value: unknown): string {
  return writeJson(value);
}

/** An array index as a property key: JavaScript orders such keys numerically ahead of all others. */
const INDEX_KEY = /^(?:0|[1-9][0-9]*)$/;

/**
 * Canonical JSON written directly (sorted keys, undefined members dropped, non-finite numbers and
 * non-data refused), without building the sorted copy first: rendering calls this for every value.
 * Output is byte-identical to JSON.stringify of `canonical(value)`, which is kept for the rare object
 * with index-like keys, whose order JSON.stringify takes from the object rather than from the sort.
 */
function writeJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`cannot render non-finite number ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + writeJson(value[i]);
        return `${out}]`;
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      if (keys.some((k) => INDEX_KEY.test(k))) return JSON.stringify(canonical(value));
      let out = '{';
      let first = true;
      for (const key of keys) {
        const v = record[key];
        if (v === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(key)}:${writeJson(v)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`cannot render a ${typeof value}`);
  }
}

function canonical(value: unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`cannot render non-finite number ${value}`);
    return value;
  }
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = canonical(v);
    }
    return out;
  }
  throw new TypeError(`cannot render a ${typeof value}`);
}

/**
 * Rendered strings and keys, remembered: the same names, namespaces, versions and label keys recur in
 * every cluster. Bounded in count and in string length, so a long-running sidecar or agent does not grow
 * with every value it has seen.
 */
const MEMO_LIMIT = 20_000;
const stringMemo = new Map<string, string>();
const keyMemo = new Map<string, string>();

function remember(memo: Map<string, string>, key: string, value: string): string {
  if (memo.size >= MEMO_LIMIT) memo.clear();
  memo.set(key, value);
  return value;
}

/** Strings longer than this are rendered each time: the memo holds names and versions, not documents. */
const MEMO_MAX_LENGTH = 256;

/** The template filter `y`: a YAML-safe rendering of any plain value. */
export function yamlValue(value: unknown): string {
  if (typeof value === 'string') {
    if (value.length > MEMO_MAX_LENGTH) return escapeUnsafe(JSON.stringify(value));
    return stringMemo.get(value) ?? remember(stringMemo, value, escapeUnsafe(JSON.stringify(value)));
  }
  if (value === undefined) throw new TypeError('cannot render undefined: guard optional values with {% if %}');
  return escapeUnsafe(writeJson(value));
}

/**
 * Keys that may stay unquoted: plain, and not a YAML 1.1 boolean or null (`on`, `no`, `y`...), nor
 * anything a lenient 1.1 reader takes for a number (`e0` is NaN to the `yaml` library's 1.1 schema).
 */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
const YAML11_SPECIAL = /^(y|n|yes|no|on|off|true|false|null|[eE][-+]?[0-9_]+)$/i;

function yamlKey(key: string): string {
  const rendered = keyMemo.get(key);
  if (rendered !== undefined) return rendered;
  const fresh = PLAIN_KEY.test(key) && !YAML11_SPECIAL.test(key) ? key : yamlValue(key);
  return key.length > MEMO_MAX_LENGTH ? fresh : remember(keyMemo, key, fresh);
}

const isMap = isRecord;

/** Indentation strings by width, made once. */
const pads: string[] = [];
const padOf = (n: number): string => (pads[n] ??= ' '.repeat(n));

/**
 * The template filter `block(indent)`: block-style YAML for nested data, placed right after a key
 * (`labels:{{ labels | block(4) }}`). Keys are plain only when that is unambiguous; every scalar goes
 * through `yamlValue`, so the output is as injection-proof as `y`.
 */
export function yamlBlock(value: unknown, indent: number): string {
  if (typeof value === 'object' && value !== null && Object.isFrozen(value)) return frozenBlock(value, indent);
  return block(value, indent);
}

/**
 * `block` of objects that cannot change, remembered per object and indent: labels, annotations and sync
 * policies are shared by many objects (a cluster's labels by all of its Cluster API objects), frozen where
 * they are made. Only deeply frozen objects are remembered, checked once on the first render.
 */
const frozenBlocks = new WeakMap<object, string[]>();
/** Frozen objects holding something that is not: rendered each time. */
const shallowlyFrozen = new WeakSet<object>();

function frozenBlock(value: object, indent: number): string {
  if (shallowlyFrozen.has(value)) return block(value, indent);
  let byIndent = frozenBlocks.get(value);
  const hit = byIndent?.[indent];
  if (hit !== undefined) return hit;
  const out = block(value, indent);
  if (!byIndent) {
    if (!isDeepFrozen(value)) {
      shallowlyFrozen.add(value);
      return out;
    }
    byIndent = [];
    frozenBlocks.set(value, byIndent);
  }
  byIndent[indent] = out;
  return out;
}

function isDeepFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  return Object.isFrozen(value) && Object.values(value).every(isDeepFrozen);
}

function block(value: unknown, indent: number): string {
  if (isMap(value)) {
    const pad = padOf(indent);
    let out = '';
    for (const k of Object.keys(value).sort()) {
      const v = value[k];
      if (v === undefined) continue;
      // Strings (most labels and annotations) directly, without another call and its type tests.
      out += `\n${pad}${yamlKey(k)}:${typeof v === 'string' ? ` ${yamlValue(v)}` : yamlBlock(v, indent + 2)}`;
    }
    return out === '' ? ' {}' : out;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return ' []';
    const pad = padOf(indent);
    const nested = `\n${pad}  `;
    let out = '';
    for (const item of value) {
      const inner = yamlBlock(item, indent + 2);
      // the first line of a nested map or list sits on the dash's line
      out += `\n${pad}-${inner.startsWith(nested) ? ` ${inner.slice(indent + 3)}` : inner}`;
    }
    return out;
  }
  return ` ${yamlValue(value)}`;
}

/** Drops undefined values and empty maps and lists, recursively (CAPI v1beta2 rejects `{}`, `[]`). */
export function compact<T>(value: T): T | undefined {
  if (Array.isArray(value)) {
    const items = value.map((v) => compact(v)).filter((v) => v !== undefined);
    return (items.length > 0 ? items : undefined) as T | undefined;
  }
  if (isMap(value)) {
    const entries = Object.entries(value).map(([k, v]) => [k, compact(v)] as const).filter(([, v]) => v !== undefined);
    return (entries.length > 0 ? Object.fromEntries(entries) : undefined) as T | undefined;
  }
  return value;
}

/**
 * YAML produced by one of our own templates (every value in it went through `y` or `block`). Only this
 * type can pass the `nested` filter, so a string from a spec can never be spliced in as YAML.
 */
export class RenderedYaml {
  constructor(readonly text: string) {}
}

/**
 * The template filter `nested(indent)`: a block mapping rendered by another template, re-indented under
 * a key (`valuesObject:{{ values | nested(8) }}`).
 */
export function nestedYaml(value: unknown, indent: number): string {
  if (!(value instanceof RenderedYaml)) throw new TypeError('nested: expected YAML rendered by a template');
  const pad = ' '.repeat(indent);
  const lines = value.text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) return ' {}';
  return lines.map((l) => `\n${pad}${l}`).join('');
}
