/**
 * The string formats Kubernetes checks, as ajv format definitions. Kept apart from openapi.ts so that
 * precompiled validators (scripts/precompile.ts) run without loading ajv itself.
 */
import type { Format } from 'ajv';
import { fullFormats } from 'ajv-formats/dist/formats.js';

/** Formats the Kubernetes API server checks (apiextensions-apiserver's supported set, restricted to those we meet). */
export const CHECKED_FORMATS: ReadonlySet<string> = new Set(['date-time', 'date', 'ipv4', 'ipv6', 'cidr', 'hostname', 'uri', 'uuid', 'email', 'byte']);

/** `cidr` as the API server reads it: an IPv4 or IPv6 address, '/', and a prefix length in range. */
function isCidr(value: string): boolean {
  const slash = value.lastIndexOf('/');
  if (slash < 0) return false;
  const addr = value.slice(0, slash);
  const bits = value.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bits)) return false;
  const n = Number(bits);
  if (fullFormats.ipv4 instanceof RegExp && fullFormats.ipv4.test(addr)) return n <= 32;
  if (fullFormats.ipv6 instanceof RegExp && fullFormats.ipv6.test(addr)) return n <= 128;
  return false;
}

/**
 * The formats checked, by name, in ajv-formats' shapes plus `cidr`. Precompiled validators
 * (scripts/precompile.ts) reach these through the names `formats` and `RE2JS`, which their
 * module's factory takes as arguments (see `PRECOMPILED_FREE_NAMES`).
 */
export const KUBERNETES_FORMATS: Readonly<Record<string, Format>> = {
  ...Object.fromEntries([...CHECKED_FORMATS].filter((f) => f !== 'cidr').map((f) => {
    const format = (fullFormats as Record<string, Format | undefined>)[f];
    if (!format) throw new Error(`ajv-formats has no format ${f}`);
    return [f, format];
  })),
  cidr: { type: 'string', validate: isCidr },
};

/** The free names of precompiled validator code, in the order its factory takes them. */
export const PRECOMPILED_FREE_NAMES = ['RE2JS', 'formats'] as const;

