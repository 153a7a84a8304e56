/**
 * Kubernetes objects as the simulator holds them: plain JSON with a typed `metadata`. Decoding mirrors
 * what the API server's JSON decoder does to ObjectMeta (wrong types are a 400, unknown metadata fields are
 * dropped); validation mirrors ValidateObjectMeta (bad names, labels, finalizers and owner references are a 422).
 */
import { isLabelKey, isLabelValue } from '../../core/spec/syntax.js';
import { badRequest, type FieldError } from './errors.js';

export type Obj = Record<string, unknown>;

export const isRecord = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

/** An object with decoded metadata; everything else is whatever JSON the client sent. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** JSON deep equality (key order ignored), the `apiequality.Semantic.DeepEqual` of plain JSON. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

export const clone = <T>(v: T): T => structuredClone(v);

/** RFC 3339 with second precision, as metav1.Time serializes. */
export const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

const STRING_FIELDS = ['name', 'generateName', 'namespace', 'uid', 'resourceVersion'] as const;

function decodeError(field: string, got: unknown, want: string) {
  const kind = Array.isArray(got) ? 'array' : got === null ? 'null' : typeof got;
  return badRequest(`json: cannot unmarshal ${kind} into Go struct field ObjectMeta.metadata.${field} of type ${want}`);
}

function stringMap(field: string, v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw decodeError(field, v, 'map[string]string');
  for (const [k, val] of Object.entries(v)) if (typeof val !== 'string') throw decodeError(`${field}.${k}`, val, 'string');
  return { ...(v as Record<string, string>) };
}

function decodeOwnerRef(v: unknown, i: number): OwnerReference {
  if (!isRecord(v)) throw decodeError(`ownerReferences[${i}]`, v, 'v1.OwnerReference');
  const ref: Obj = {};
  for (const f of ['apiVersion', 'kind', 'name', 'uid'] as const) {
    const s = v[f];
    if (s !== undefined && s !== null && typeof s !== 'string') throw decodeError(`ownerReferences.${f}`, s, 'string');
    ref[f] = s ?? '';
  }
  for (const f of ['controller', 'blockOwnerDeletion'] as const) {
    const b = v[f];
    if (b === undefined || b === null) continue;
    if (typeof b !== 'boolean') throw decodeError(`ownerReferences.${f}`, b, 'bool');
    ref[f] = b;
  }
  return ref as unknown as OwnerReference;
}

/**
 * Checks the shape of a request body and returns a copy with decoded metadata. Unknown metadata fields
 * (and managedFields/selfLink, which the simulator does not keep) are dropped, as decoding into ObjectMeta does.
 */
export function decodeObject(body: unknown): KubeObject {
  if (!isRecord(body)) throw badRequest('the request body must be a JSON object (a Kubernetes object)');
  for (const f of ['apiVersion', 'kind'] as const) {
    if (body[f] !== undefined && typeof body[f] !== 'string') throw badRequest(`json: cannot unmarshal ${typeof body[f]} into Go struct field .${f} of type string`);
  }
  const raw = body.metadata ?? {};
  if (!isRecord(raw)) throw decodeError('', raw, 'v1.ObjectMeta');
  const meta: ObjectMeta = {};
  for (const f of STRING_FIELDS) {
    const v = raw[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw decodeError(f, v, 'string');
    if (v !== '') meta[f] = v;
  }
  if (raw.generation !== undefined && raw.generation !== null) {
    if (typeof raw.generation !== 'number' || !Number.isInteger(raw.generation)) throw decodeError('generation', raw.generation, 'int64');
    meta.generation = raw.generation;
  }
  for (const f of ['creationTimestamp', 'deletionTimestamp'] as const) {
    const v = raw[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw decodeError(f, v, 'v1.Time');
    meta[f] = v;
  }
  if (raw.deletionGracePeriodSeconds !== undefined && raw.deletionGracePeriodSeconds !== null) {
    if (typeof raw.deletionGracePeriodSeconds !== 'number') throw decodeError('deletionGracePeriodSeconds', raw.deletionGracePeriodSeconds, 'int64');
    meta.deletionGracePeriodSeconds = raw.deletionGracePeriodSeconds;
  }
  const labels = stringMap('labels', raw.labels);
  if (labels) meta.labels = labels;
  const annotations = stringMap('annotations', raw.annotations);
  if (annotations) meta.annotations = annotations;
  if (raw.finalizers !== undefined && raw.finalizers !== null) {
    if (!Array.isArray(raw.finalizers)) throw decodeError('finalizers', raw.finalizers, '[]string');
    raw.finalizers.forEach((f, i) => {
      if (typeof f !== 'string') throw decodeError(`finalizers[${i}]`, f, 'string');
    });
    if (raw.finalizers.length > 0) meta.finalizers = [...(raw.finalizers as string[])];
  }
  if (raw.ownerReferences !== undefined && raw.ownerReferences !== null) {
    if (!Array.isArray(raw.ownerReferences)) throw decodeError('ownerReferences', raw.ownerReferences, '[]v1.OwnerReference');
    if (raw.ownerReferences.length > 0) meta.ownerReferences = raw.ownerReferences.map(decodeOwnerRef);
  }
  const out: KubeObject = { ...clone(body), metadata: meta };
  return out;
}

export type NameRule = 'subdomain' | 'label' | 'label1035';

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** The apimachinery messages for each name rule, so errors read like the real ones. */
export function nameErrors(rule: NameRule, name: string): string[] {
  switch (rule) {
    case 'subdomain':
      return [
        ...(name.length > 253 ? ['must be no more than 253 characters'] : []),
        ...(SUBDOMAIN.test(name) ? [] : ["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
      ];
    case 'label':
      return [
        ...(name.length > 63 ? ['must be no more than 63 characters'] : []),
        ...(LABEL.test(name) ? [] : ["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
      ];
    case 'label1035':
      return [
        ...(name.length > 63 ? ['must be no more than 63 characters'] : []),
        ...(LABEL1035.test(name) ? [] : ["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]),
      ];
  }
}

/** The finalizers Kubernetes itself defines; any other finalizer must be a qualified name with a prefix. */
export const STANDARD_FINALIZERS = new Set(['kubernetes', 'orphan', 'foregroundDeletion']);
export const ORPHAN_FINALIZER = 'orphan';
export const FOREGROUND_FINALIZER = 'foregroundDeletion';

const MAX_ANNOTATIONS_BYTES = 256 * 1024;

/** Since Kubernetes 1.29 an unqualified, non-standard finalizer is accepted with a warning, not rejected. */
export function finalizerWarnings(added: readonly string[]): string[] {
  return added
    .filter((f) => !f.includes('/') && !STANDARD_FINALIZERS.has(f))
    .map((f) => `metadata.finalizers: ${JSON.stringify(f)}: prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers`);
}

/** ValidateObjectMeta, as far as the simulator's clients can get it wrong. */
export function metadataErrors(meta: ObjectMeta, nameRule: NameRule): FieldError[] {
  const errors: FieldError[] = [];
  if (!meta.name) {
    errors.push({ type: 'Required', field: 'metadata.name', detail: 'name or generateName is required' });
  } else {
    for (const detail of nameErrors(nameRule, meta.name)) errors.push({ type: 'Invalid', field: 'metadata.name', value: meta.name, detail });
  }
  for (const [key, value] of Object.entries(meta.labels ?? {})) {
    if (!isLabelKey(key)) errors.push({ type: 'Invalid', field: 'metadata.labels', value: key, detail: 'name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character' });
    if (!isLabelValue(value)) errors.push({ type: 'Invalid', field: `metadata.labels`, value, detail: "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character" });
  }
  let annotationBytes = 0;
  for (const [key, value] of Object.entries(meta.annotations ?? {})) {
    if (!isLabelKey(key)) errors.push({ type: 'Invalid', field: 'metadata.annotations', value: key, detail: 'name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character' });
    annotationBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (annotationBytes > MAX_ANNOTATIONS_BYTES) errors.push({ type: 'TooLong', field: 'metadata.annotations', detail: `may not be more than ${MAX_ANNOTATIONS_BYTES} bytes` });
  (meta.finalizers ?? []).forEach((f, i) => {
    if (!isLabelKey(f)) errors.push({ type: 'Invalid', field: `metadata.finalizers[${i}]`, value: f, detail: 'name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character' });
  });
  let controllers = 0;
  (meta.ownerReferences ?? []).forEach((ref, i) => {
    for (const f of ['apiVersion', 'kind', 'name', 'uid'] as const) {
      if (!ref[f]) errors.push({ type: 'Required', field: `metadata.ownerReferences[${i}].${f}`, detail: `${f} must not be empty` });
    }
    if (ref.controller) controllers++;
  });
  if (controllers > 1) errors.push({ type: 'Invalid', field: 'metadata.ownerReferences', value: meta.ownerReferences?.length ?? 0, detail: 'Only one reference can have Controller set to true' });
  return errors;
}
