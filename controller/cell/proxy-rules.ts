/**
 * The Kubernetes API proxy's rules (DESIGN §6), shared by both ends of the tunnel: the cell applies them to
 * what callers send, the agent applies them again to what the stream brings (a cell is trusted, but the
 * agent is the last gate before the child's API server). Pure: no I/O.
 *
 * Only Kubernetes API paths pass (no /logs, /metrics, /debug, no node or service proxy subresource of the
 * API server itself), only the verbs a GitOps engine uses, and only the headers that carry meaning for the
 * API server: callers never choose the identity (no Authorization, no Impersonate-*), and hop-by-hop
 * headers stay on their hop.
 */

/** Limits of one proxied request, in one place for both ends. */
export const PROXY_LIMITS = {
  /** The Kubernetes API server's own limit on a request body (apiserver MaxRequestBodyBytes, 3 MiB). */
  maxRequestBodyBytes: 3 * 1024 * 1024,
  /** A non-watch response larger than this is cut off (a LIST of everything without paging). */
  maxResponseBytes: 256 * 1024 * 1024,
  /** Body bytes per ProxyResponse message (well under the stream's 16 MiB message limit). */
  chunkBytes: 1024 * 1024,
  /** Body bytes the agent collects before it sends a chunk of a non-watch response (fewer, larger messages). */
  coalesceBytes: 256 * 1024,
  /** Bytes the cell holds for a caller that reads slower than the child answers, before it gives up on the caller. */
  maxBufferedBytes: 16 * 1024 * 1024,
  /** Requests in flight per cluster at the cell, and per session at the agent (watches included: Argo CD keeps one per resource type); more get 429. */
  maxInFlight: 512,
  /** A request (not a watch) that has no complete answer by then fails with 504 (the API server's default is 60 s). */
  requestTimeoutMs: 60_000,
  /** The longest a watch is held open; watches end and clients re-watch, as with the API server's own timeouts. */
  maxWatchMs: 60 * 60 * 1000,
} as const;

/** Limits as numbers (PROXY_LIMITS's own type is its literal values), for overrides. */
export type ProxyLimits = { readonly [K in keyof typeof PROXY_LIMITS]: number };

/** The verbs a GitOps engine (and kubectl) uses against the API; anything else is refused. */
export const PROXY_VERBS: ReadonlySet<string> = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** Request headers passed to the child API server (lower case). Everything else is dropped. */
const REQUEST_HEADERS: ReadonlySet<string> = new Set(['accept', 'accept-encoding', 'content-type', 'content-encoding', 'user-agent', 'if-match', 'if-none-match']);

/** Response headers passed back to the caller (lower case). */
const RESPONSE_HEADERS: ReadonlySet<string> = new Set(['content-type', 'content-encoding', 'cache-control', 'warning', 'audit-id', 'retry-after', 'etag', 'last-modified']);

export interface ProxyHeader {
  readonly name: string;
  readonly value: string;
}

/** The allowed request headers of a caller's request, in a stable order. */
export function requestHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): ProxyHeader[] {
  return pick(headers, REQUEST_HEADERS);
}

/** The allowed headers of the child's response. */
export function responseHeaders(headers: Readonly<Record<string, string | string[] | number | undefined>>): ProxyHeader[] {
  return pick(headers, RESPONSE_HEADERS);
}

/** Again on the receiving side: a header list from the stream, filtered by the same table. */
export function allowedHeaders(list: readonly ProxyHeader[], direction: 'request' | 'response'): ProxyHeader[] {
  const allowed = direction === 'request' ? REQUEST_HEADERS : RESPONSE_HEADERS;
  return list.filter((h) => allowed.has(h.name.toLowerCase()) && !/[\r\n]/.test(h.value)).map((h) => ({ name: h.name.toLowerCase(), value: h.value }));
}

function pick(headers: Readonly<Record<string, string | string[] | number | undefined>>, allowed: ReadonlySet<string>): ProxyHeader[] {
  const out: ProxyHeader[] = [];
  for (const [key, raw] of Object.entries(headers).sort(([a], [b]) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1))) {
    const name = key.toLowerCase();
    if (!allowed.has(name)) continue;
    const values = Array.isArray(raw) ? raw : raw === undefined ? [] : [String(raw)];
    for (const value of values) if (!/[\r\n]/.test(value)) out.push({ name, value });
  }
  return out;
}

export type PathCheck = { readonly ok: true } | { readonly ok: false; readonly message: string };

/**
 * Whether an API path may be proxied: `/api`, `/apis`, `/version` and `/openapi/...` (what discovery and
 * the GitOps engines' clients read), with no dot segments, no encoded slashes or dots, no empty segments
 * and nothing but URL path characters. The API server's own proxy subresources (`.../proxy`) are refused:
 * they would reach Services and Nodes inside the child, which is not what the proxy is for.
 */
export function checkApiPath(path: string): PathCheck {
  if (!/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/.test(path)) return { ok: false, message: 'the path has characters an API path never has' };
  if (/%2f|%2e|%5c|%00/i.test(path)) return { ok: false, message: 'the path has an encoded slash, dot or NUL' };
  const segments = path.split('/').slice(1);
  if (segments.some((s, i) => s === '.' || s === '..' || (s === '' && i < segments.length - 1))) return { ok: false, message: 'the path has an empty or dot segment' };
  const root = segments[0] ?? '';
  if (!['api', 'apis', 'version', 'openapi'].includes(root)) return { ok: false, message: 'only /api, /apis, /version and /openapi are proxied' };
  if (root === 'openapi' && segments.length < 2) return { ok: false, message: 'only /api, /apis, /version and /openapi are proxied' };
  if (segments.includes('proxy')) return { ok: false, message: 'the API server\'s proxy subresources are not proxied' };
  return { ok: true };
}

/** Whether a request is a watch (`?watch=true|1`, or the legacy `/watch/` paths): streamed with no size limit and a longer timeout. */
export function isWatch(path: string, query: string): boolean {
  if (/^\/api\/[^/]+\/watch\/|^\/apis\/[^/]+\/[^/]+\/watch\//.test(path)) return true;
  const watch = new URLSearchParams(query).get('watch');
  return watch === 'true' || watch === '1';
}

/**
 * How long a request may take: a watch as long as its `timeoutSeconds` asks (plus a margin for the final
 * event), capped; anything else the API server's default.
 */
export function requestTimeoutMs(path: string, query: string): number {
  if (!isWatch(path, query)) return PROXY_LIMITS.requestTimeoutMs;
  const asked = Number(new URLSearchParams(query).get('timeoutSeconds'));
  if (Number.isFinite(asked) && asked > 0) return Math.min(asked * 1000 + 5_000, PROXY_LIMITS.maxWatchMs);
  return PROXY_LIMITS.maxWatchMs;
}

/** A Kubernetes `Status` body, so clients (client-go, client-node, kubectl) show the proxy's refusals as they show the API server's. */
export function statusBody(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
