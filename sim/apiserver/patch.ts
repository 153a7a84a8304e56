/**
 * The patch formats of PATCH requests. JSON merge patch (RFC 7386) is implemented here; JSON patch
 * (RFC 6902) is fast-json-patch's, with its errors mapped to the API server's codes: a malformed patch
 * is 400, a patch that does not apply to the object (failed `test`, missing path) is 422.
 */
import jsonpatch from 'fast-json-patch';
import { ApiError, badRequest } from './errors.js';
import { isRecord } from './objects.js';

export const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

/** RFC 7386: objects merge recursively, null deletes, anything else (arrays included) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** The errors that mean "this patch does not apply to this object" rather than "this is not a patch". */
const NOT_APPLICABLE = new Set([
  'TEST_OPERATION_FAILED', 'OPERATION_PATH_UNRESOLVABLE', 'OPERATION_FROM_UNRESOLVABLE', 'OPERATION_PATH_CANNOT_ADD',
  'OPERATION_PATH_ILLEGAL_ARRAY_INDEX', 'OPERATION_VALUE_OUT_OF_BOUNDS',
]);

/** RFC 6902 on a copy of `doc`. */
export function applyJsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  try {
    return jsonpatch.applyPatch(structuredClone(doc), ops as jsonpatch.Operation[], true, true, true).newDocument;
  } catch (e) {
    if (e instanceof jsonpatch.JsonPatchError) {
      const message = e.message.split('\n')[0] ?? e.message;
      if (NOT_APPLICABLE.has(e.name)) {
        return throwInvalidPatch(JSON.stringify(ops), message);
      }
      throw badRequest(`invalid JSON patch: ${message}`);
    }
    throw e;
  }
}

function throwInvalidPatch(patch: string, why: string): never {
  throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: patch: Invalid value: ${JSON.stringify(patch.length > 200 ? `${patch.slice(0, 200)}...` : patch)}: ${why}`, {
    causes: [{ reason: 'FieldValueInvalid', message: why, field: 'patch' }],
  });
}
