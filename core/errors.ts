/**
 * Errors by consequence (CONVENTIONS "Errors", after source-controller's taxonomy). Every adapter has one
 * translator from these to its surface: conditions and requeue (controller), HTTP status and JSON body
 * (sidecar), gRPC status (cell), exit code and stderr (CLI).
 *
 * - stalling:  the user must change something (the spec, a reference); retrying cannot help.
 * - waiting:   a dependency is not ready yet; requeue without alarm.
 * - transient: something failed that may work next time; retry with backoff.
 *
 * Messages are for people and must never carry secret material, tokens or URLs with credentials; `cause`
 * keeps the underlying error for logs that are allowed to see it.
 */

export type ErrorKind = 'stalling' | 'waiting' | 'transient';

export class LatticeError extends Error {
  constructor(
    readonly kind: ErrorKind,
    /** Stable, machine-readable: a condition reason, a metric label, an error code. UpperCamelCase. */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LatticeError';
  }
}

export const stalling = (code: string, message: string, cause?: unknown): LatticeError => new LatticeError('stalling', code, message, cause === undefined ? undefined : { cause });
export const waiting = (code: string, message: string, cause?: unknown): LatticeError => new LatticeError('waiting', code, message, cause === undefined ? undefined : { cause });
export const transient = (code: string, message: string, cause?: unknown): LatticeError => new LatticeError('transient', code, message, cause === undefined ? undefined : { cause });

/** Any thrown value as a LatticeError: unknown failures are transient (retry), never shown raw. */
export function asLatticeError(e: unknown, code = 'InternalError'): LatticeError {
  if (e instanceof LatticeError) return e;
  return transient(code, 'an unexpected error occurred; see the logs', e);
}
