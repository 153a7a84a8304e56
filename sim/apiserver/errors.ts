/**
 * Kubernetes `Status` failures, built the way k8s.io/apimachinery/pkg/api/errors builds them, so clients
 * that branch on `code`, `reason` and `details` (client-node, kubectl, controller code under test) see
 * exactly what a real API server would send.
 */

/** One field problem (k8s.io/apimachinery/pkg/util/validation/field.Error). */
export interface FieldError {
  readonly type: 'Required' | 'Invalid' | 'NotSupported' | 'Forbidden' | 'TypeInvalid' | 'Duplicate' | 'TooLong' | 'TooMany';
  /** Dotted field path, as the API server prints it (`spec.nodes[0].name`). */
  readonly field: string;
  readonly value?: unknown;
  readonly detail?: string;
}

export interface StatusCause {
  readonly reason?: string;
  readonly message?: string;
  readonly field?: string;
}

export interface StatusDetails {
  readonly name?: string;
  readonly group?: string;
  readonly kind?: string;
  readonly uid?: string;
  readonly causes?: readonly StatusCause[];
}

/** The `v1 Status` object of every error response (and of some delete responses). */
export interface Status {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Success' | 'Failure';
  readonly message?: string;
  readonly reason?: string;
  readonly details?: StatusDetails;
  readonly code: number;
}

/** An error that the HTTP layer turns into a `Status` body with its code. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): Status {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      ...(this.reason ? { reason: this.reason } : {}),
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** A resource as errors name it: `configmaps`, or `latticeclusters.lattice.dev`. */
export interface GroupResource {
  readonly group: string;
  readonly resource: string;
}

/** A kind as validation errors name it: `ConfigMap`, or `LatticeCluster.lattice.dev`. */
export interface GroupKind {
  readonly group: string;
  readonly kind: string;
}

const qualifiedResource = (gr: GroupResource) => (gr.group ? `${gr.resource}.${gr.group}` : gr.resource);
const resourceDetails = (gr: GroupResource, name: string): StatusDetails => ({
  name,
  ...(gr.group ? { group: gr.group } : {}),
  kind: gr.resource,
});

export const notFound = (gr: GroupResource, name: string): ApiError =>
  new ApiError(404, 'NotFound', `${qualifiedResource(gr)} "${name}" not found`, resourceDetails(gr, name));

/** 404 for a path that names no resource (the API server's text for unknown URLs). */
export const noSuchPath = (): ApiError => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});

export const alreadyExists = (gr: GroupResource, name: string): ApiError =>
  new ApiError(409, 'AlreadyExists', `${qualifiedResource(gr)} "${name}" already exists`, resourceDetails(gr, name));

export const conflict = (gr: GroupResource, name: string, why: string): ApiError =>
  new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(gr)} "${name}": ${why}`, resourceDetails(gr, name));

/** The optimistic-concurrency failure every controller retries on. */
export const staleResourceVersion = (gr: GroupResource, name: string): ApiError =>
  conflict(gr, name, 'the object has been modified; please apply your changes to the latest version and try again');

export const forbidden = (gr: GroupResource, name: string, why: string): ApiError =>
  new ApiError(403, 'Forbidden', `${qualifiedResource(gr)} "${name}" is forbidden: ${why}`, resourceDetails(gr, name));

export const badRequest = (message: string): ApiError => new ApiError(400, 'BadRequest', message);

export const methodNotAllowed = (message = 'the server does not allow this method on the requested resource'): ApiError =>
  new ApiError(405, 'MethodNotAllowed', message, {});

export const unsupportedMediaType = (contentType: string, accepted: readonly string[]): ApiError =>
  new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format (${contentType || 'none'}) - accepted media types include: ${accepted.join(', ')}`, {});

/** 410 Gone as the watch cache reports a resourceVersion older than its history. */
export const expired = (message: string): ApiError => new ApiError(410, 'Expired', message);

export const unauthorized = (): ApiError => new ApiError(401, 'Unauthorized', 'Unauthorized');

export const tooLarge = (limit: number): ApiError =>
  new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`);

export const internalError = (message: string): ApiError => new ApiError(500, 'InternalError', message);

const TYPE_TEXT: Record<FieldError['type'], string> = {
  Required: 'Required value',
  Invalid: 'Invalid value',
  NotSupported: 'Unsupported value',
  Forbidden: 'Forbidden',
  TypeInvalid: 'Invalid value',
  Duplicate: 'Duplicate value',
  TooLong: 'Too long',
  TooMany: 'Too many',
};

function printValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (Array.isArray(value)) return '"array"';
  if (typeof value === 'object') return '"object"';
  return 'null';
}

/** field.Error.ErrorBody(): `Required value`, `Invalid value: "x": detail`. */
export function fieldErrorBody(e: FieldError): string {
  const withValue = e.type !== 'Required' && e.type !== 'Forbidden' && e.type !== 'TooLong' && e.value !== undefined;
  let s = withValue ? `${TYPE_TEXT[e.type]}: ${printValue(e.value)}` : TYPE_TEXT[e.type];
  if (e.detail) s += `: ${e.detail}`;
  return s;
}

/** 422 Invalid with one cause per field error, message `Kind.group "name" is invalid: ...`. */
export function invalid(gk: GroupKind, name: string, errors: readonly FieldError[]): ApiError {
  const qualified = gk.group ? `${gk.kind}.${gk.group}` : gk.kind;
  const texts = errors.map((e) => `${e.field}: ${fieldErrorBody(e)}`);
  const joined = texts.length === 1 ? (texts[0] ?? '') : `[${texts.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${qualified} "${name}" is invalid: ${joined}`, {
    name,
    ...(gk.group ? { group: gk.group } : {}),
    kind: gk.kind,
    causes: errors.map((e) => ({ reason: `FieldValue${e.type}`, message: fieldErrorBody(e), field: e.field })),
  });
}
