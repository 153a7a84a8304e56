/**
 * Validation issues: what every spec error looks like, and the catalogue of stable codes.
 *
 * Codes are part of the product's contract: users grep for them, CI systems match on them, and the
 * CRD's CEL rules prefix their messages with the same code so the API server and `lattice validate`
 * name a problem the same way.
 */

/** Stable issue codes. The key equals the value; a test checks both and that each is documented. */
export const IssueCode = {
  // files and YAML
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  FILE_NOT_UTF8: 'FILE_NOT_UTF8',
  FILE_BINARY: 'FILE_BINARY',
  FILE_UNREADABLE: 'FILE_UNREADABLE',
  PATH_ESCAPES_ROOT: 'PATH_ESCAPES_ROOT',
  YAML_SYNTAX: 'YAML_SYNTAX',
  YAML_DUPLICATE_KEY: 'YAML_DUPLICATE_KEY',
  YAML_ALIAS_LIMIT: 'YAML_ALIAS_LIMIT',
  YAML_RECURSIVE_ALIAS: 'YAML_RECURSIVE_ALIAS',
  // documents
  DOCUMENT_NOT_OBJECT: 'DOCUMENT_NOT_OBJECT',
  MISSING_API_VERSION_OR_KIND: 'MISSING_API_VERSION_OR_KIND',
  UNSUPPORTED_API_VERSION: 'UNSUPPORTED_API_VERSION',
  METADATA_NAME_MISSING: 'METADATA_NAME_MISSING',
  NAMESPACE_ON_CLUSTER_SCOPED: 'NAMESPACE_ON_CLUSTER_SCOPED',
  METADATA_LABELS_INVALID: 'METADATA_LABELS_INVALID',
  METADATA_ANNOTATIONS_INVALID: 'METADATA_ANNOTATIONS_INVALID',
  DUPLICATE_OBJECT: 'DUPLICATE_OBJECT',
  // schema (ajv over the CRD's openAPIV3Schema)
  REQUIRED_FIELD_MISSING: 'REQUIRED_FIELD_MISSING',
  WRONG_TYPE: 'WRONG_TYPE',
  UNKNOWN_FIELD: 'UNKNOWN_FIELD',
  VALUE_NOT_ALLOWED: 'VALUE_NOT_ALLOWED',
  PATTERN_MISMATCH: 'PATTERN_MISMATCH',
  FORMAT_INVALID: 'FORMAT_INVALID',
  OUT_OF_RANGE: 'OUT_OF_RANGE',
  LENGTH_OUT_OF_RANGE: 'LENGTH_OUT_OF_RANGE',
  COUNT_OUT_OF_RANGE: 'COUNT_OUT_OF_RANGE',
  SCHEMA_VIOLATION: 'SCHEMA_VIOLATION',
  // cross-field rules (mirrored as x-kubernetes-validations CEL in crds/)
  CLUSTER_NAME_INVALID: 'CLUSTER_NAME_INVALID',
  PROVIDER_CONFIG_NOT_ONE: 'PROVIDER_CONFIG_NOT_ONE',
  AWS_VPC_NEEDS_SUBNETS: 'AWS_VPC_NEEDS_SUBNETS',
  CONTROL_PLANE_REPLICAS_NOT_ODD: 'CONTROL_PLANE_REPLICAS_NOT_ODD',
  POOL_ID_INVALID: 'POOL_ID_INVALID',
  POOL_REPLICAS_REQUIRED: 'POOL_REPLICAS_REQUIRED',
  AUTOSCALING_BOUNDS_INCOMPLETE: 'AUTOSCALING_BOUNDS_INCOMPLETE',
  AUTOSCALING_MIN_ABOVE_MAX: 'AUTOSCALING_MIN_ABOVE_MAX',
  NODE_LABEL_KEY_INVALID: 'NODE_LABEL_KEY_INVALID',
  NODE_LABEL_VALUE_INVALID: 'NODE_LABEL_VALUE_INVALID',
  NODE_LABEL_RESTRICTED: 'NODE_LABEL_RESTRICTED',
  TAINT_KEY_INVALID: 'TAINT_KEY_INVALID',
  TAINT_VALUE_INVALID: 'TAINT_VALUE_INVALID',
  INSTANCE_TYPE_FORM: 'INSTANCE_TYPE_FORM',
  INSTANCE_TYPE_PROVIDER_MISMATCH: 'INSTANCE_TYPE_PROVIDER_MISMATCH',
  PARENT_PORTS_NOT_DISTINCT: 'PARENT_PORTS_NOT_DISTINCT',
  INFRA_PROVIDER_CREDENTIALS_REQUIRED: 'INFRA_PROVIDER_CREDENTIALS_REQUIRED',
  BOOTSTRAP_NOT_SUPPORTED: 'BOOTSTRAP_NOT_SUPPORTED',
  // across documents
  PROVIDER_TYPE_MISMATCH: 'PROVIDER_TYPE_MISMATCH',
} as const;
export type IssueCode = (typeof IssueCode)[keyof typeof IssueCode];

/** One problem in one input file. Positions are 1-based; `path` is '' for file-level problems. */
export interface Issue {
  readonly code: IssueCode;
  readonly message: string;
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** Field path inside the document, for example `spec.nodes.workerPools.gpu.min`. */
  readonly path: string;
  readonly expected?: string;
  readonly found?: string;
  /** 0-based index of the YAML document in a multi-document file. */
  readonly document?: number;
}

/** A validation result: the value, or every issue found. */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly issues: readonly Issue[] };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T>(issues: readonly Issue[]): Result<T> => ({ ok: false, issues });

/** Orders issues by file, then position, then code, so reports are stable across runs. */
export function sortIssues(issues: readonly Issue[]): Issue[] {
  return [...issues].sort(
    (a, b) =>
      cmp(a.file, b.file) || a.line - b.line || a.col - b.col || cmp(a.path, b.path) || cmp(a.code, b.code),
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Formats an issue as `file:line:col: CODE path: message (expected X, found Y)`. */
export function formatIssue(issue: Issue): string {
  const where = `${issue.file}:${issue.line}:${issue.col}`;
  const path = issue.path ? ` ${issue.path}:` : '';
  const detail =
    issue.expected !== undefined || issue.found !== undefined
      ? ` (expected ${issue.expected ?? '?'}, found ${issue.found ?? '?'})`
      : '';
  return `${where}: error ${issue.code}${path} ${issue.message}${detail}`;
}
