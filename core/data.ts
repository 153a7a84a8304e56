/** Narrowing helpers for untyped data (parsed YAML, JSON), shared by every core module. */

/** A plain mapping: an object that is neither null nor an array. */
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
