/**
 * The Kubernetes API proxy (DESIGN §6, issue M9): `https://<cell>:<proxyPort>/clusters/<name>/<api path>`.
 * After a pivot the child's API is reachable only through the stream its agent opened, so Argo CD or Flux in
 * the parent reach it here: each request is tunnelled as a ProxyRequest over that agent's stream and executed
 * by the agent with its own identity; the answer comes back in ProxyResponse chunks and is streamed to the
 * caller as it arrives (a watch stays open for as long as it runs).
 *
 * Callers authenticate with the cluster's bearer token (proxy-token.ts); a token never opens another
 * cluster. Refusals are Kubernetes `Status` bodies, so clients report them as they report the API server's:
 * 401 (no or wrong token), 403 (a path or verb that is never proxied), 404 (not a /clusters/<name>/ URL),
 * 413 (a body over the API server's own limit), 429 (too many requests in flight for the cluster), 502 (the
 * agent could not run it), 503 at once with Retry-After when the agent is not connected, 504 (no answer in
 * time).
 *
 * Limits (proxy-rules.ts): request bodies are read up to 3 MiB before anything is sent; a response is
 * streamed, a non-watch one up to 256 MiB; a caller that reads slower than the child answers may hold 16 MiB
 * in the cell before it is cut off.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { constants as h2, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { pino, type Logger } from 'pino';
import { LatticeError } from '../../core/errors.js';
import { RateLimiter } from './ratelimit.js';
import { allowedHeaders, checkApiPath, isWatch, PROXY_LIMITS, PROXY_VERBS, type ProxyLimits, requestHeaders, requestTimeoutMs, statusBody } from './proxy-rules.js';
import type { ProxyTokens } from './proxy-token.js';
import type { CellServer, ProxyCall } from './server.js';
import type { ProxyResponse } from './protocol.js';

/** The capability an agent announces when it serves proxy requests. */
export const PROXY_CAPABILITY = 'proxyRequest';

const CLUSTER_URL = /^\/clusters\/([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)(\/[^?#]*)?(?:\?([^#]*))?$/;

/** Counts for /metrics: what the proxy answered, by outcome. */
export interface ProxyObserver {
  request(outcome: { readonly cluster: string; readonly code: number; readonly verb: string; readonly watch: boolean }): void;
}

export interface ApiProxyOptions {
  readonly agents: Pick<CellServer, 'get' | 'openProxy'>;
  readonly tokens: ProxyTokens;
  readonly log?: Logger;
  readonly observer?: ProxyObserver;
  /** Overrides of PROXY_LIMITS (tests). */
  readonly limits?: Partial<ProxyLimits>;
  /** @default Date.now */
  readonly now?: () => number;
}

/** HTTP/1.1 or, through node's compatibility API, HTTP/2: the handler uses only what both offer. */
type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;
type Handler = (req: Req, res: Res) => void;

/**
 * Ends a response so the caller knows it is incomplete: HTTP/1.1 by cutting the connection, HTTP/2 by
 * resetting the stream (ending it would look like a complete body).
 */
function breakOff(res: Res): void {
  if ('stream' in res) res.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}

/** The proxy as a request handler (startCell serves it on proxyPort with the cell's serving certificate). */
export function createApiProxy(options: ApiProxyOptions): Handler {
  const log = options.log ?? pino({ level: 'silent' });
  const limits: ProxyLimits = { ...PROXY_LIMITS, ...options.limits };
  const inFlight = new Map<string, number>();
  // Failed authentications per source address: a token cannot be guessed, but a flood must not cost CPU or log volume.
  const failures = new RateLimiter({ capacity: 20, refillPerSecond: 2, now: options.now ?? Date.now });

  return (req, res) => {
    const verb = (req.method ?? 'GET').toUpperCase();
    // Reported with a bounded value: a caller chooses the method.
    const verbLabel = PROXY_VERBS.has(verb) ? verb : 'OTHER';
    let watch = false;
    let cluster = '';
    const refuse = (code: number, reason: string, message: string, headers: Record<string, string> = {}) => {
      options.observer?.request({ cluster, code, verb: verbLabel, watch });
      if (res.headersSent) return breakOff(res);
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
      res.end(statusBody(code, reason, message));
    };
    const match = CLUSTER_URL.exec(req.url ?? '');
    if (!match) return refuse(404, 'NotFound', 'the proxy serves /clusters/<cluster>/<Kubernetes API path>');
    cluster = match[1] ?? '';
    const path = match[2] ?? '/';
    const query = match[3] ?? '';
    watch = isWatch(path, query);
    const source = req.socket.remoteAddress ?? 'unknown';

    const presented = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!presented || !options.tokens.verify(cluster, presented)) {
      const limited = failures.take(source);
      // Logged until the source's budget is spent: a flood costs no log volume.
      if (limited.ok) log.warn({ cluster, source, token: presented ? 'wrong' : 'missing' }, 'proxy request unauthenticated');
      // The same answer for a missing token, a wrong one and an unknown cluster: nothing to learn from it.
      return refuse(401, 'Unauthorized', 'Unauthorized', limited.ok ? {} : { 'retry-after': String(limited.retryAfterSeconds) });
    }
    if (!PROXY_VERBS.has(verb)) return refuse(405, 'MethodNotAllowed', `${verb} is not proxied`);
    const pathCheck = checkApiPath(path);
    if (!pathCheck.ok) return refuse(403, 'Forbidden', pathCheck.message);
    const agent = options.agents.get(cluster);
    if (!agent) return refuse(503, 'ServiceUnavailable', `the agent of cluster ${cluster} is not connected`, { 'retry-after': '5' });
    if (!agent.capabilities.includes(PROXY_CAPABILITY)) return refuse(502, 'BadGateway', `the agent of cluster ${cluster} (version ${agent.agentVersion}) does not serve the API proxy`);
    const open = inFlight.get(cluster) ?? 0;
    if (open >= limits.maxInFlight) return refuse(429, 'TooManyRequests', `cluster ${cluster} has ${open} proxied requests in flight`, { 'retry-after': '1' });

    // HTTP/1.1 closes the connection after a refused upload (the rest of the body would follow); HTTP/2 forbids
    // the header and resets only the stream.
    const closing: Record<string, string> = req.httpVersionMajor === 1 ? { connection: 'close' } : {};
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limits.maxRequestBodyBytes) {
      refuse(413, 'RequestEntityTooLarge', `the request body is larger than ${limits.maxRequestBodyBytes} bytes`, closing);
      return void req.resume();
    }

    inFlight.set(cluster, open + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (inFlight.get(cluster) ?? 1) - 1;
      if (n <= 0) inFlight.delete(cluster);
      else inFlight.set(cluster, n);
    };
    res.on('close', release);

    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > limits.maxRequestBodyBytes) {
        tooLarge = true;
        chunks.length = 0;
        refuse(413, 'RequestEntityTooLarge', `the request body is larger than ${limits.maxRequestBodyBytes} bytes`, closing);
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => breakOff(res));
    req.on('end', () => {
      if (tooLarge || res.writableEnded) return;
      tunnel(Buffer.concat(chunks));
    });

    const tunnel = (body: Buffer) => {
      const timeoutMs = watch ? requestTimeoutMs(path, query) : limits.requestTimeoutMs;
      let call: ProxyCall;
      let sequence = 0;
      let sent = 0;
      let done = false;
      const finish = () => {
        done = true;
        clearTimeout(timer);
      };
      const timer = setTimeout(() => {
        if (done) return;
        finish();
        call.cancel();
        // A watch that reached its time ends cleanly, as the API server ends it; anything else was too slow.
        if (watch && res.headersSent) return void res.end();
        refuse(504, 'Timeout', `cluster ${cluster} did not answer within ${timeoutMs} ms`);
      // A little past the agent's own deadline (timeoutMs travels with the request), so its answer can still come.
      }, timeoutMs + Math.min(2_000, timeoutMs));
      const abort = (why: string) => {
        if (done) return;
        finish();
        call.cancel();
        log.warn({ cluster, verb, watch, why }, 'proxy response cut off');
        breakOff(res);
      };
      const onResponse = (r: ProxyResponse) => {
        if (done) return;
        if (r.sequence !== sequence++) return abort('out of order');
        if (r.error !== '') {
          // Once the status line is out, only a cut connection tells the caller the body is incomplete.
          if (res.headersSent) return abort(r.error.slice(0, 64));
          finish();
          return refuse(502, 'BadGateway', `the agent of cluster ${cluster} could not execute the request: ${r.error.slice(0, 200)}`);
        }
        if (!res.headersSent) {
          const headers: OutgoingHttpHeaders = {};
          for (const h of allowedHeaders(r.headers, 'response')) {
            const prior = headers[h.name];
            headers[h.name] = prior === undefined ? h.value : [...(Array.isArray(prior) ? prior : [String(prior)]), h.value];
          }
          res.writeHead(r.statusCode || 502, headers);
          // A watch's first bytes (the headers) go at once, so the caller knows the watch is established
          // (HTTP/2's writeHead sends them by itself).
          if (watch && !('stream' in res)) res.flushHeaders();
        }
        if (r.body.length > 0) {
          sent += r.body.length;
          if (!watch && sent > limits.maxResponseBytes) return abort('response too large');
          // Narrowed for the compiler: both write a Buffer the same way.
          if ('stream' in res) res.write(r.body);
          else res.write(r.body);
          const buffered = 'stream' in res ? res.stream.writableLength : res.writableLength;
          if (buffered > limits.maxBufferedBytes) return abort('caller too slow');
        }
        if (r.end) {
          finish();
          options.observer?.request({ cluster, code: res.statusCode, verb: verbLabel, watch });
          res.end();
        }
      };
      const onClose = (error?: LatticeError) => {
        if (done || !error) return;
        if (res.headersSent) return abort(error.code);
        finish();
        refuse(503, 'ServiceUnavailable', `the agent of cluster ${cluster} disconnected before answering`, { 'retry-after': '5' });
      };
      try {
        call = options.agents.openProxy(cluster, { verb, path, query, headers: requestHeaders(req.headers), body, timeoutMs }, { onResponse, onClose });
      } catch (e) {
        finish();
        const code = e instanceof LatticeError ? e.code : 'InternalError';
        return refuse(503, 'ServiceUnavailable', code === 'CellClosed' ? 'the cell is shutting down' : `the agent of cluster ${cluster} is not connected`, { 'retry-after': '5' });
      }
      // The caller went away (a watch closed, a client timeout): stop the work at the agent.
      res.on('close', () => {
        if (done) return;
        finish();
        call.cancel();
      });
    };
  };
}
