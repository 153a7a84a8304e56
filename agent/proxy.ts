/**
 * The agent's end of the Kubernetes API proxy (DESIGN §6, issue M9): ProxyRequest commands from the cell are
 * executed against the child's API server and answered with ProxyResponse chunks on the same stream, with
 * no Ack (the response is the answer). Requests run as the child's `lattice-proxy` ServiceAccount, which the
 * agent impersonates: what Argo CD or Flux may do in the child is that account's RBAC, never the agent's own
 * (which moves Cluster API objects and reads its Secrets).
 *
 * The rules of proxy-rules.ts are applied again here (paths, verbs, headers, sizes): the agent is the last
 * gate before the API server. A watch is forwarded chunk by chunk as the API server writes it; any other
 * answer is sent in chunks of up to 256 KiB, so a small GET is one message. When the stream to the parent is
 * full, the agent stops reading from the API server until it drains. Requests end with their session:
 * the cell re-sends nothing (a caller retries, as it would against the API server).
 */
import { request as httpRequest, Agent as HttpAgent, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ProxyRequest, ProxyResponse } from '../controller/cell/protocol.js';
import { allowedHeaders, checkApiPath, isWatch, PROXY_LIMITS, PROXY_VERBS, type ProxyLimits, responseHeaders, statusBody } from '../controller/cell/proxy-rules.js';
import type { CommandContext } from './dispatch.js';

export interface ProxyExecutorOptions {
  /** The child's API server, with the agent's credentials. */
  readonly kubeConfig: KubeConfig;
  /** The user every request impersonates (`system:serviceaccount:lattice-system:lattice-proxy`); none: the agent's own identity. */
  readonly impersonate?: string;
  readonly log: Logger;
  /** Overrides of PROXY_LIMITS (tests). */
  readonly limits?: Partial<ProxyLimits>;
}

/** The proxy on one stream session: requests end with it. */
export interface ProxySession {
  execute(id: string, request: ProxyRequest): void;
  cancel(requestId: string): void;
  /** Ends every request of the session (the stream is gone). */
  close(): void;
  /** Requests in flight. */
  readonly open: number;
}

export interface ProxyExecutor {
  session(context: CommandContext): ProxySession;
  /** Requests in flight over every session (metrics, tests). */
  inFlight(): number;
  /** Drops pooled connections to the API server. */
  close(): void;
}

interface Target {
  readonly base: URL;
  readonly agent: HttpAgent;
  readonly secure: boolean;
}

const errorCode = (e: unknown): string => {
  const o = e as { code?: unknown; name?: unknown } | undefined;
  return typeof o?.code === 'string' ? o.code : typeof o?.name === 'string' ? o.name : 'Error';
};

export function createProxyExecutor(options: ProxyExecutorOptions): ProxyExecutor {
  const limits: ProxyLimits = { ...PROXY_LIMITS, ...options.limits };
  const log = options.log;
  let target: Promise<Target> | undefined;
  const sessions = new Set<ProxySession>();

  // One pooled agent for every request: the TLS material is the kubeconfig's, the connections are kept alive.
  const connect = (): Promise<Target> => (target ??= (async () => {
    const cluster = options.kubeConfig.getCurrentCluster();
    if (!cluster) throw Object.assign(new Error('no cluster'), { code: 'NoCluster' });
    const base = new URL(cluster.server);
    const tls: RequestOptions = {};
    await options.kubeConfig.applyToHTTPSOptions(tls);
    const secure = base.protocol === 'https:';
    const pool = { keepAlive: true, maxSockets: limits.maxInFlight };
    const agent = secure
      ? new HttpsAgent({ ...pool, ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}), ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}), ...(tls.servername ? { servername: tls.servername } : {}) })
      : new HttpAgent(pool);
    return { base, agent, secure };
  })().catch((e: unknown) => {
    target = undefined;
    throw e;
  }));

  /**
   * The Authorization header as the kubeconfig gives it, read again every 10 s: a projected ServiceAccount token
   * rotates (client-go re-reads it each minute), and reading it per request would cost more than the request.
   */
  let auth: { value: Record<string, string>; at: number } | undefined;
  const authorization = async (): Promise<Record<string, string>> => {
    if (auth && performance.now() - auth.at < 10_000) return auth.value;
    const opts: RequestOptions = {};
    await options.kubeConfig.applyToHTTPSOptions(opts);
    const header = (opts.headers as Record<string, string> | undefined)?.Authorization ?? (opts.headers as Record<string, string> | undefined)?.authorization;
    (opts.agent as HttpAgent | undefined)?.destroy();
    auth = { value: header ? { authorization: header } : {}, at: performance.now() };
    return auth.value;
  };

  return {
    inFlight: () => [...sessions].reduce((n, s) => n + s.open, 0),
    session(context) {
      const running = new Map<string, ClientRequest | undefined>();

      const send = (response: Omit<ProxyResponse, 'headers' | 'body' | 'error'> & Partial<Pick<ProxyResponse, 'headers' | 'body' | 'error'>>): boolean =>
        context.send({ proxyResponse: { headers: [], body: Buffer.alloc(0), error: '', ...response } });
      /** A complete answer in one message: refusals, and failures before anything was sent. */
      const answer = (requestId: string, statusCode: number, reason: string, message: string) =>
        send({ requestId, statusCode, headers: [{ name: 'content-type', value: 'application/json' }], body: Buffer.from(statusBody(statusCode, reason, message)), sequence: 0, end: true });

      const run = async (id: string, req: ProxyRequest): Promise<void> => {
        const verb = req.verb.toUpperCase();
        if (!PROXY_VERBS.has(verb)) return void answer(id, 405, 'MethodNotAllowed', `${verb} is not proxied`);
        const check = checkApiPath(req.path);
        if (!check.ok) return void answer(id, 403, 'Forbidden', check.message);
        if (req.body.length > limits.maxRequestBodyBytes) return void answer(id, 413, 'RequestEntityTooLarge', `the request body is larger than ${limits.maxRequestBodyBytes} bytes`);
        const watch = isWatch(req.path, req.query);
        let t: Target;
        let auth: Record<string, string>;
        try {
          [t, auth] = await Promise.all([connect(), authorization()]);
        } catch (e) {
          log.warn({ requestId: id, code: errorCode(e) }, 'proxy request not sent');
          return void send({ requestId: id, statusCode: 502, sequence: 0, end: true, error: errorCode(e) });
        }
        if (!running.has(id)) return; // cancelled while the credentials were read
        const url = new URL(t.base);
        url.pathname = t.base.pathname.replace(/\/+$/, '') + req.path;
        url.search = req.query;
        const headers: Record<string, string> = {};
        for (const h of allowedHeaders(req.headers, 'request')) headers[h.name] = h.value;
        Object.assign(headers, auth);
        if (options.impersonate) headers['impersonate-user'] = options.impersonate;
        if (req.body.length > 0 || ['POST', 'PUT', 'PATCH'].includes(verb)) headers['content-length'] = String(req.body.length);

        let sequence = 0;
        let finished = false;
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        let received = 0;
        let upstream: IncomingMessage | undefined;
        const timer = setTimeout(() => {
          // A watch that reached its time ends cleanly, as the API server ends it; the caller watches again.
          if (watch && sequence > 0 && !finished) {
            done();
            outgoing.destroy();
            send({ requestId: id, statusCode: 0, sequence: sequence++, end: true });
            return;
          }
          fail('Timeout');
        }, req.timeoutMs > 0 ? req.timeoutMs : limits.requestTimeoutMs);
        const done = () => {
          finished = true;
          clearTimeout(timer);
          running.delete(id);
        };
        const fail = (code: string) => {
          if (finished) return;
          // Cancelled by the cell: the caller is gone, and nobody waits for an answer.
          const cancelled = !running.has(id);
          done();
          outgoing.destroy();
          if (!cancelled) send({ requestId: id, statusCode: 502, sequence: sequence++, end: true, error: code });
        };
        /** Sends what is pending (the status and headers first of all), in chunks of at most chunkBytes. */
        const flush = (end: boolean) => {
          const body = Buffer.concat(pending, pendingBytes);
          pending = [];
          pendingBytes = 0;
          let offset = 0;
          do {
            const piece = body.subarray(offset, offset + limits.chunkBytes);
            offset += piece.length;
            const last = end && offset >= body.length;
            const first = sequence === 0;
            const ok = send({
              requestId: id,
              statusCode: first ? upstream?.statusCode ?? 502 : 0,
              headers: first && upstream ? responseHeaders(upstream.headers) : [],
              body: piece,
              sequence: sequence++,
              end: last,
            });
            // The session is gone: nobody will read the rest.
            if (!ok) {
              done();
              outgoing.destroy();
              return;
            }
          } while (offset < body.length);
          // The stream to the parent is full: stop reading from the API server until it drains, so a slow
          // parent costs the agent a bounded buffer, not the whole answer in memory.
          const wait = context.backpressure?.();
          if (wait && upstream && !end) {
            const paused = upstream;
            paused.pause();
            void wait.then(() => {
              if (!finished) paused.resume();
            });
          }
        };

        const mod = t.secure ? httpsRequest : httpRequest;
        const outgoing = mod(url, { method: verb, headers, agent: t.agent }, (res) => {
          upstream = res;
          if (finished) return void res.destroy();
          if (watch) flush(false);
          res.on('data', (chunk: Buffer) => {
            if (finished) return;
            received += chunk.length;
            if (!watch && received > limits.maxResponseBytes) return fail('ResponseTooLarge');
            pending.push(chunk);
            pendingBytes += chunk.length;
            if (watch || pendingBytes >= limits.coalesceBytes) flush(false);
          });
          res.on('end', () => {
            if (finished) return;
            flush(true);
            done();
          });
          res.on('error', (e) => fail(errorCode(e)));
          res.on('aborted', () => fail('UpstreamAborted'));
        });
        running.set(id, outgoing);
        outgoing.on('error', (e) => fail(errorCode(e)));
        outgoing.end(req.body.length > 0 ? req.body : undefined);
      };

      const session: ProxySession = {
        execute(id, req) {
          // A repeat of a request still running is the same request: the cell re-sends nothing, so ignore it.
          if (running.has(id)) return;
          if (running.size >= limits.maxInFlight) return void answer(id, 429, 'TooManyRequests', `${running.size} proxied requests are in flight`);
          running.set(id, undefined);
          void run(id, req).catch((e: unknown) => {
            log.error({ requestId: id, code: errorCode(e) }, 'proxy request failed');
            running.delete(id);
          });
        },
        cancel(requestId) {
          const outgoing = running.get(requestId);
          running.delete(requestId);
          outgoing?.destroy();
        },
        close() {
          for (const outgoing of running.values()) outgoing?.destroy();
          running.clear();
          sessions.delete(session);
        },
        get open() {
          return running.size;
        },
      };
      sessions.add(session);
      return session;
    },
    close() {
      void target?.then((t) => t.agent.destroy(), () => undefined);
      target = undefined;
    },
  };
}
