/**
 * One session of the agent's stream to the cell: dial with mutual TLS, send Hello, wait for Settings
 * (the cell accepted us), then heartbeat every interval and answer commands, until the stream ends.
 * Reconnecting is the caller's loop (agent.ts); a session never retries by itself.
 */
import { performance } from 'node:perf_hooks';
import { Client, credentials, status as GrpcStatus, type StatusObject } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { emptyHealth, MAX_MESSAGE_BYTES, openConnectStream, PROTOCOL_VERSION, type AgentMessage, type DecodedCellMessage, type Health, type SelfManagement } from '../controller/cell/protocol.js';
import type { CommandContext, CommandDispatcher } from './dispatch.js';
import type { HealthSource } from './health.js';
import type { ProxyExecutor } from './proxy.js';

export interface BackoffOptions {
  /** First delay cap. @default 1000 */
  readonly initialMs: number;
  /** @default 30000 */
  readonly maxMs: number;
  /** A session accepted and alive this long resets the backoff. @default 30000 */
  readonly stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000, stableMs: 30_000 };

/**
 * Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * uniform in [0, min(max, initial * 2^attempt)), so a parent restart does not bring every child back in
 * the same instant.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

export interface SessionOptions {
  readonly endpoint: string;
  readonly tls: { readonly privateKey: string; readonly certificate: string; readonly caBundle: string };
  readonly cluster: string;
  readonly agentVersion: string;
  readonly kubernetesVersion: string;
  readonly health: HealthSource;
  readonly dispatcher: CommandDispatcher;
  /** Serves the API proxy's requests (M9); without it they are answered Unsupported. */
  readonly proxy?: ProxyExecutor;
  /** The child's pivot record for each heartbeat; undefined (not sent) while the agent does not know it. */
  readonly selfManagement?: () => SelfManagement | undefined;
  /** Until the cell's Settings say otherwise. */
  readonly heartbeatIntervalMs: number;
  /** A session without Settings by then is given up. @default 15000 */
  readonly settingsTimeoutMs?: number;
  readonly now: () => Date;
  readonly log: Logger;
  readonly onConnected: () => void;
  readonly onDisconnected: () => void;
}

export interface SessionEnd {
  /** Whether the cell accepted the Hello. */
  readonly accepted: boolean;
  /** From acceptance to the end; 0 when never accepted. */
  readonly connectedMs: number;
  readonly status: { readonly code: number; readonly details: string };
}

/** Runs one session; resolves when the stream ends (never rejects). Aborting ends it gracefully. */
export function runSession(options: SessionOptions, signal: AbortSignal): Promise<SessionEnd> {
  const client = new Client(options.endpoint, credentials.createSsl(Buffer.from(options.tls.caBundle), Buffer.from(options.tls.privateKey), Buffer.from(options.tls.certificate)), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    // Find a dead parent (or a NAT that forgot us) even when no heartbeat is due.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  const call = openConnectStream(client);
  const log = options.log;

  return new Promise<SessionEnd>((resolve) => {
    let ended = false;
    let acceptedAt: number | undefined;
    let interval = options.heartbeatIntervalMs;
    let heartbeatTimer: NodeJS.Timeout | undefined;
    let sequence = 0;
    let collecting = false;

    const settingsTimer = setTimeout(() => {
      log.warn({ endpoint: options.endpoint }, 'cell sent no settings; reconnecting');
      call.cancel();
    }, options.settingsTimeoutMs ?? 15_000);

    const finish = (status: StatusObject | { code: number; details: string }) => {
      if (ended) return;
      ended = true;
      clearTimeout(settingsTimer);
      if (heartbeatTimer) clearTimeout(heartbeatTimer);
      signal.removeEventListener('abort', onAbort);
      proxy?.close();
      client.close();
      if (acceptedAt !== undefined) options.onDisconnected();
      resolve({ accepted: acceptedAt !== undefined, connectedMs: acceptedAt === undefined ? 0 : performance.now() - acceptedAt, status: { code: status.code, details: status.details } });
    };

    const beat = async () => {
      if (ended || collecting) return;
      collecting = true;
      let health: Health;
      try {
        health = await options.health.collect();
      } catch {
        health = { ...emptyHealth(), errors: ['health collection failed'] };
      } finally {
        collecting = false;
      }
      if (ended) return;
      sequence += 1;
      const selfManagement = options.selfManagement?.();
      call.write({ heartbeat: { sentAtUnixMs: options.now().getTime(), sequence, health, ...(selfManagement ? { selfManagement } : {}) } });
    };
    const schedule = () => {
      if (heartbeatTimer) clearTimeout(heartbeatTimer);
      // Timer-driven, not chained on the collection, so a slow API server does not stretch the interval.
      heartbeatTimer = setTimeout(() => {
        void beat();
        schedule();
      }, interval);
    };

    // Handlers write on the session their command came on, never on a later one: a message for a stream
    // that ended is dropped, and the handler learns it.
    const context: CommandContext = {
      send: (message: AgentMessage) => {
        if (ended) return false;
        call.write(message);
        return true;
      },
      backpressure: () => (ended || !call.writableNeedDrain ? undefined : new Promise<void>((resolve) => {
        const done = () => {
          call.off('drain', done);
          call.off('close', done);
          resolve();
        };
        call.once('drain', done);
        call.once('close', done);
      })),
    };
    const proxy = options.proxy?.session(context);

    call.on('data', (msg: DecodedCellMessage) => {
      if (ended) return;
      if (msg.payload === 'settings' && msg.settings) {
        if (msg.settings.heartbeatIntervalMs > 0) interval = msg.settings.heartbeatIntervalMs;
        if (acceptedAt === undefined) {
          acceptedAt = performance.now();
          clearTimeout(settingsTimer);
          log.info({ endpoint: options.endpoint, heartbeatMs: interval }, 'connected to cell');
          options.onConnected();
          // The first heartbeat goes at once, so the parent sees health on connect, not an interval later.
          void beat();
        }
        schedule();
        return;
      }
      if (msg.payload === 'command' && msg.command) {
        // Proxied requests are answered by their ProxyResponse chunks, not by an Ack.
        if (proxy && msg.command.body === 'proxyRequest' && msg.command.proxyRequest) return proxy.execute(msg.command.id, msg.command.proxyRequest);
        if (proxy && msg.command.body === 'proxyCancel' && msg.command.proxyCancel) return proxy.cancel(msg.command.proxyCancel.requestId);
        void options.dispatcher.dispatch(msg.command, context).then((ack) => {
          if (!ended) call.write({ ack });
        });
      }
    });
    // 'error' carries the same status as 'status'; listening keeps it from being thrown.
    call.on('error', () => undefined);
    call.on('status', (status: StatusObject) => finish(status));

    const onAbort = () => {
      if (ended) return;
      // Half-close: the cell ends its side with OK and records a clean disconnect. Cancel if it does not.
      call.end();
      setTimeout(() => call.cancel(), 2000).unref();
    };
    signal.addEventListener('abort', onAbort);
    if (signal.aborted) {
      finish({ code: GrpcStatus.CANCELLED, details: 'stopped' });
      call.cancel();
      return;
    }
    call.write({
      hello: {
        cluster: options.cluster,
        agentVersion: options.agentVersion,
        protocolVersion: PROTOCOL_VERSION,
        capabilities: [...options.dispatcher.capabilities, ...(options.proxy ? ['proxyRequest', 'proxyCancel'] : [])],
        kubernetesVersion: options.kubernetesVersion,
      },
    });
  });
}
