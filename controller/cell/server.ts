/**
 * The cell's gRPC server (DESIGN §6): agents dial in over mutual TLS and keep one stream each. The
 * server keeps a registry of connected agents (identity, Hello, last heartbeat, health), tells the
 * controller about connects, heartbeats and disconnects, and lets it send commands and await their Acks.
 *
 * Identity: the TLS layer accepts only client certificates signed by the cell CA bundle
 * (`checkClientCertificate`); the certificate's CN is the cluster. The first message must be a Hello
 * naming that same cluster, otherwise the stream ends with PERMISSION_DENIED and nothing is recorded:
 * a child can never speak for another cluster.
 *
 * One stream per cluster: a new accepted stream for a cluster replaces the old one (the old stream is
 * ended with ABORTED), since the newest connection is the live agent (e.g. after a pod restart whose old
 * TCP connection has not timed out yet). An agent that sends nothing for `missedHeartbeats` heartbeat
 * intervals is considered gone: its stream is ended and it is reported disconnected.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Server, ServerCredentials, status as GrpcStatus, type ServerDuplexStream, type ServiceDefinition } from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { LatticeError, transient, waiting } from '../../core/errors.js';
import {
  cellProtocol, commandKindOf, emptyHealth, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
  type Ack, type CellMessage, type CommandBody, type DecodedAgentMessage, type Health, type Hello, type ProxyRequest, type ProxyResponse, type SelfManagement, type UnpivotBatch,
} from './protocol.js';

/** Who is on the other end of a stream, from its verified client certificate. */
export interface AgentIdentity {
  readonly cluster: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly notAfter: Date;
}

/**
 * A snapshot of one connected agent. Its nested values (health, selfManagement, capabilities, certificate) are
 * frozen and shared with later snapshots until they change, so a heartbeat does not deep-copy the health for
 * every event; the snapshot never changes under its holder.
 */
export interface AgentInfo {
  readonly cluster: string;
  /** Unique per stream; changes when a new stream replaces the old. */
  readonly connectionId: string;
  readonly agentVersion: string;
  readonly protocolVersion: number;
  readonly capabilities: readonly string[];
  readonly kubernetesVersion: string;
  /** The peer address as gRPC reports it (e.g. ipv4:10.0.0.7:51234). */
  readonly peer: string;
  readonly certificate: AgentIdentity;
  readonly connectedAt: Date;
  /** The cell's clock when anything last arrived on the stream. */
  readonly lastSeenAt: Date;
  /** The cell's clock when the last Heartbeat arrived; undefined before the first. */
  readonly lastHeartbeat?: Date;
  /** From the last Heartbeat. */
  readonly health?: Health;
  /** From the last Heartbeat that carried it (M8): the child's pivot and spec-sync record. */
  readonly selfManagement?: SelfManagement;
  readonly heartbeats: number;
}

export type DisconnectReason =
  /** The agent ended the stream, or the connection dropped. */
  | 'closed'
  /** Nothing arrived for `missedHeartbeats` intervals. */
  | 'stale'
  /** The stream failed (protocol error, transport error). */
  | 'error'
  /** The cell is closing. */
  | 'shutdown';

/**
 * What the registry reports. A stream replaced by a newer one for the same cluster produces only the
 * new `connected` (with `replaced: true`), never a `disconnected`: the cluster stayed connected.
 */
export type AgentEvent =
  | { readonly type: 'connected'; readonly cluster: string; readonly agent: AgentInfo; readonly replaced: boolean }
  /**
   * `healthChanged`, `selfManagementChanged`: the heartbeat's health, or its self-management record, differs
   * from what the stream's previous heartbeats brought (always true for the first that carries it). Listeners
   * that act on changes only (level-based) skip the rest without comparing anything themselves.
   */
  | { readonly type: 'heartbeat'; readonly cluster: string; readonly agent: AgentInfo; readonly healthChanged: boolean; readonly selfManagementChanged: boolean }
  | { readonly type: 'disconnected'; readonly cluster: string; readonly agent: AgentInfo; readonly reason: DisconnectReason }
  /** M8: a batch of objects streamed back during unpivot. */
  | { readonly type: 'unpivotBatch'; readonly cluster: string; readonly batch: UnpivotBatch };

/** The read side: what the controller looks at and listens to. */
export interface AgentRegistry {
  get(cluster: string): AgentInfo | undefined;
  /** Connected agents, sorted by cluster. */
  list(): AgentInfo[];
  /** Calls `listener` for every event until the returned function is called. Listener errors are logged, not thrown. */
  subscribe(listener: (event: AgentEvent) => void): () => void;
}

export interface SendOptions {
  /**
   * The command id. Pass the same id when re-sending after a timeout or a reconnect: the agent handles
   * an id once and acknowledges every delivery. @default a random UUID
   */
  readonly id?: string;
  /** @default the server's commandTimeoutMs */
  readonly timeoutMs?: number;
}

/**
 * Where the chunks of one proxied response go (M9). Chunks arrive in order (one gRPC stream); `onClose` is
 * called once, with no error after the chunk marked `end`, or with the reason the answer will never come.
 */
export interface ProxySink {
  onResponse(response: ProxyResponse): void;
  onClose(error?: LatticeError): void;
}

/** An open proxied request: `cancel` stops it at the agent (a caller that went away). */
export interface ProxyCall {
  readonly id: string;
  cancel(): void;
}

export interface CellServer extends AgentRegistry {
  /** Binds (port 0: any free port) and resolves to the bound port. */
  listen(port: number, host?: string): Promise<number>;
  /**
   * Sends a command to the cluster's agent and resolves to its Ack (an Ack with ok=false is an answer,
   * not an error). Rejects with a LatticeError when there is no answer: `AgentNotConnected` (waiting),
   * `AgentCommandTimeout`, `AgentDisconnected` (transient), `CellClosed` (transient).
   */
  send(cluster: string, body: CommandBody, options?: SendOptions): Promise<Ack>;
  /**
   * Sends a ProxyRequest to the cluster's agent and routes its ProxyResponse chunks to `sink`; no Ack comes
   * for it. Throws a LatticeError when it cannot be sent: `AgentNotConnected` (waiting), `CellClosed`.
   */
  openProxy(cluster: string, request: ProxyRequest, sink: ProxySink): ProxyCall;
  /** Ends every stream (UNAVAILABLE, so agents reconnect elsewhere), then stops; forced after `graceMs` (default 5000). Idempotent. */
  close(options?: { graceMs?: number }): Promise<void>;
}

export interface CellServerOptions {
  readonly tls: {
    /** The cell's serving certificate and key (PEM). */
    readonly certificate: string;
    readonly privateKey: string;
    /** CAs whose client certificates are accepted (PEM bundle: current, next and previous cell CA). */
    readonly clientCaBundle: string;
  };
  /** Sent to agents in Settings; staleness is judged against it. @default 10000 */
  readonly heartbeatIntervalMs?: number;
  /** @default 3 */
  readonly missedHeartbeats?: number;
  /** How often staleness is checked. @default min(heartbeatIntervalMs / 2, 5000) */
  readonly sweepIntervalMs?: number;
  /** A stream that sends no Hello within this is ended. @default 10000 */
  readonly helloTimeoutMs?: number;
  /** @default 30000 */
  readonly commandTimeoutMs?: number;
  /** Extra admission after the CN check (e.g. refuse certificates of deleted clusters). @default allow */
  readonly authorize?: (identity: AgentIdentity, hello: Hello) => boolean | Promise<boolean>;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** @default silent */
  readonly log?: Logger;
  /** Told how long each heartbeat took from its bytes reaching the decoder to the registry updated (cellMetrics). */
  readonly observer?: CellObserver;
}

/** What the cell reports for metrics (controller/cell/metrics.ts turns it into Prometheus series). */
export interface CellObserver {
  /** One heartbeat handled: seconds from decoding to the registry updated and every listener told. */
  heartbeatHandled(seconds: number): void;
}

type Call = ServerDuplexStream<DecodedAgentMessage, CellMessage>;

interface Pending {
  /** Set right after creation; a re-send of the same id shares it. */
  promise: Promise<Ack> | undefined;
  readonly resolve: (ack: Ack) => void;
  readonly reject: (e: LatticeError) => void;
  readonly timer: NodeJS.Timeout;
}

/** One accepted stream. */
class Connection {
  readonly id = randomUUID();
  readonly pending = new Map<string, Pending>();
  /** Proxied requests waiting for their response chunks, by request id. */
  readonly proxies = new Map<string, ProxySink>();
  lastSeenAt: Date;
  lastHeartbeat?: Date;
  /** Frozen: shared by every snapshot until a heartbeat brings a different one. */
  health?: Health;
  /** Frozen, as health. */
  selfManagement?: SelfManagement;
  heartbeats = 0;
  ended = false;
  /** Captured at accept: a finished call no longer knows its peer. */
  readonly peer: string;
  private readonly capabilities: readonly string[];
  private readonly certificate: AgentIdentity;

  constructor(
    readonly call: Call,
    readonly identity: AgentIdentity,
    readonly hello: Hello,
    readonly connectedAt: Date,
  ) {
    this.lastSeenAt = connectedAt;
    this.peer = call.getPeer();
    this.capabilities = Object.freeze([...hello.capabilities]);
    this.certificate = Object.freeze({ ...identity });
  }

  /**
   * Records a heartbeat's content and returns what changed. Unchanged values keep the frozen objects already
   * recorded (level-based: at one heartbeat per agent every 10 s, nearly every one repeats the last).
   */
  record(health: Health, self: SelfManagement | undefined): { health: boolean; selfManagement: boolean } {
    const healthChanged = !this.health || !sameValue(this.health, health);
    if (healthChanged) this.health = deepFreeze(health);
    const selfChanged = self !== undefined && (!this.selfManagement || !sameValue(this.selfManagement, self));
    if (selfChanged) this.selfManagement = Object.freeze(self);
    return { health: healthChanged, selfManagement: selfChanged };
  }

  info(): AgentInfo {
    return {
      cluster: this.identity.cluster,
      connectionId: this.id,
      agentVersion: this.hello.agentVersion,
      protocolVersion: this.hello.protocolVersion,
      capabilities: this.capabilities,
      kubernetesVersion: this.hello.kubernetesVersion,
      peer: this.peer,
      certificate: this.certificate,
      connectedAt: this.connectedAt,
      lastSeenAt: this.lastSeenAt,
      ...(this.lastHeartbeat ? { lastHeartbeat: this.lastHeartbeat } : {}),
      ...(this.health ? { health: this.health } : {}),
      ...(this.selfManagement ? { selfManagement: this.selfManagement } : {}),
      heartbeats: this.heartbeats,
    };
  }

  rejectAll(error: LatticeError): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.pending.clear();
    const sinks = [...this.proxies.values()];
    this.proxies.clear();
    for (const sink of sinks) sink.onClose(error);
  }
}

/** Ends a stream with a status (OK ends it cleanly). Safe to call on a stream that is already gone. */
function endCall(call: Call, code: GrpcStatus, details: string): void {
  if (call.cancelled || call.destroyed || call.writableEnded) return;
  if (code === GrpcStatus.OK) call.end();
  // grpc-js turns an 'error' emitted on a server stream into the call's status.
  else call.emit('error', { code, details });
}

/** Health as decoded may lack nested messages (an older or partial agent): fill them with zeros. */
function normalizeHealth(h: Health | null | undefined): Health {
  const base = emptyHealth();
  if (!h) return base;
  return {
    nodes: h.nodes ?? base.nodes,
    controlPlane: h.controlPlane ?? base.controlPlane,
    pools: h.pools ?? [],
    addons: h.addons ?? [],
    providers: h.providers ?? [],
    errors: h.errors ?? [],
  };
}

/** Structural equality of decoded protobuf values (plain objects, arrays, strings, numbers, booleans). */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = Object.keys(ra);
  if (keys.length !== Object.keys(rb).length) return false;
  for (const k of keys) if (!sameValue(ra[k], rb[k])) return false;
  return true;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function peerIdentity(call: Call): AgentIdentity | undefined {
  const cert = call.getAuthContext().sslPeerCertificate;
  if (!cert) return undefined;
  // A subject with several CNs arrives as an array: refuse it rather than pick one.
  const cn: unknown = cert.subject.CN;
  if (typeof cn !== 'string' || cn === '') return undefined;
  return { cluster: cn, serialNumber: cert.serialNumber, fingerprint256: cert.fingerprint256, notAfter: new Date(cert.valid_to) };
}

class GrpcCellServer implements CellServer {
  private readonly server: Server;
  private readonly connections = new Map<string, Connection>();
  private readonly listeners = new Set<(event: AgentEvent) => void>();
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly heartbeatIntervalMs: number;
  private readonly staleAfterMs: number;
  private sweepTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;
  private readonly streams = new Set<Call>();
  /** When each decoded message's bytes reached the decoder (performance.now()), while an observer wants latencies. */
  private readonly arrivals = new WeakMap<object, number>();

  constructor(private readonly options: CellServerOptions) {
    this.log = options.log ?? pino({ level: 'silent' });
    this.now = options.now ?? (() => new Date());
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
    this.staleAfterMs = this.heartbeatIntervalMs * (options.missedHeartbeats ?? 3);
    this.server = new Server({
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      // HTTP/2 pings find dead peers behind NATs and load balancers that drop idle flows silently.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    });
    this.server.addService(options.observer ? stampArrivals(cellProtocol().service, this.arrivals) : cellProtocol().service, { Connect: (call: Call) => this.accept(call) });
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    const credentials = ServerCredentials.createSsl(
      Buffer.from(this.options.tls.clientCaBundle),
      [{ cert_chain: Buffer.from(this.options.tls.certificate), private_key: Buffer.from(this.options.tls.privateKey) }],
      true,
    );
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const bound = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p)));
    });
    const sweepMs = this.options.sweepIntervalMs ?? Math.min(this.heartbeatIntervalMs / 2, 5000);
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
    this.log.info({ port: bound }, 'cell listening');
    return bound;
  }

  get(cluster: string): AgentInfo | undefined {
    return this.connections.get(cluster)?.info();
  }

  list(): AgentInfo[] {
    return [...this.connections.values()].map((c) => c.info()).sort((a, b) => (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
  }

  subscribe(listener: (event: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  send(cluster: string, body: CommandBody, options: SendOptions = {}): Promise<Ack> {
    if (this.closing) return Promise.reject(transient('CellClosed', 'the cell is shutting down'));
    const conn = this.connections.get(cluster);
    if (!conn) return Promise.reject(waiting('AgentNotConnected', `the agent of cluster ${cluster} is not connected`));
    const id = options.id ?? randomUUID();
    // A re-send while the first is still outstanding on this stream waits for the same Ack.
    const existing = conn.pending.get(id)?.promise;
    if (existing) return existing;
    const kind = commandKindOf(body);
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs ?? 30_000;
    const promise = new Promise<Ack>((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.pending.delete(id);
        this.log.warn({ cluster, commandId: id, kind }, 'agent command timed out');
        reject(transient('AgentCommandTimeout', `the agent of cluster ${cluster} did not acknowledge ${kind} command ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      conn.pending.set(id, { promise: undefined, resolve, reject, timer });
    });
    const entry = conn.pending.get(id);
    if (entry) entry.promise = promise;
    conn.call.write({ command: { id, ...body } });
    this.log.debug({ cluster, commandId: id, kind }, 'agent command sent');
    return promise;
  }

  openProxy(cluster: string, request: ProxyRequest, sink: ProxySink): ProxyCall {
    if (this.closing) throw transient('CellClosed', 'the cell is shutting down');
    const conn = this.connections.get(cluster);
    if (!conn) throw waiting('AgentNotConnected', `the agent of cluster ${cluster} is not connected`);
    const id = randomUUID();
    conn.proxies.set(id, sink);
    conn.call.write({ command: { id, proxyRequest: request } });
    return {
      id,
      cancel: () => {
        // Only a request still open is cancelled at the agent; one that ended has nothing left to stop.
        if (!conn.proxies.delete(id) || conn.ended) return;
        conn.call.write({ command: { id: randomUUID(), proxyCancel: { requestId: id } } });
      },
    };
  }

  close(options: { graceMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      for (const conn of [...this.connections.values()]) this.drop(conn, 'shutdown', GrpcStatus.UNAVAILABLE, 'the cell is shutting down');
      // Streams still waiting for their Hello are not in the registry.
      for (const call of this.streams) endCall(call, GrpcStatus.UNAVAILABLE, 'the cell is shutting down');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.server.forceShutdown();
          resolve();
        }, options.graceMs ?? 5000);
        timer.unref();
        this.server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.log.info('cell stopped');
    })();
    return this.closing;
  }

  private emit(event: AgentEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (e) {
        this.log.error({ cluster: event.cluster, event: event.type, err: e instanceof Error ? e.name : 'error' }, 'agent event listener failed');
      }
    }
  }

  private accept(call: Call): void {
    if (this.closing) return endCall(call, GrpcStatus.UNAVAILABLE, 'the cell is shutting down');
    const peer = call.getPeer();
    const identity = peerIdentity(call);
    if (!identity) {
      this.log.warn({ peer }, 'agent stream refused: no usable client certificate');
      return endCall(call, GrpcStatus.UNAUTHENTICATED, 'a client certificate with one CN is required');
    }
    this.streams.add(call);
    let conn: Connection | undefined;
    let state: 'hello' | 'admitting' | 'open' | 'ended' = 'hello';
    // Messages are handled one at a time, in order, even while an async admission check runs.
    let queue = Promise.resolve();

    const helloTimer = setTimeout(() => {
      if (state !== 'hello') return;
      state = 'ended';
      this.log.warn({ peer, cluster: identity.cluster }, 'agent stream refused: no hello');
      endCall(call, GrpcStatus.DEADLINE_EXCEEDED, 'no Hello received');
    }, this.options.helloTimeoutMs ?? 10_000);
    helloTimer.unref();

    const finish = (reason: DisconnectReason) => {
      clearTimeout(helloTimer);
      this.streams.delete(call);
      state = 'ended';
      if (conn && !conn.ended) this.drop(conn, reason);
    };
    const refuse = (code: GrpcStatus, details: string, logMessage: string, fields: Record<string, unknown>) => {
      state = 'ended';
      clearTimeout(helloTimer);
      this.streams.delete(call);
      this.log.warn({ peer, cluster: identity.cluster, ...fields }, logMessage);
      endCall(call, code, details);
    };

    const onMessage = async (msg: DecodedAgentMessage): Promise<void> => {
      if (state === 'ended') return;
      if (state === 'hello') {
        const hello = msg.payload === 'hello' ? msg.hello : undefined;
        if (!hello) return refuse(GrpcStatus.INVALID_ARGUMENT, 'the first message must be Hello', 'agent stream refused: no hello first', { payload: msg.payload ?? 'none' });
        if (hello.cluster !== identity.cluster) {
          return refuse(GrpcStatus.PERMISSION_DENIED, 'the client certificate does not belong to the cluster named in Hello', 'agent stream refused: certificate names another cluster', { claimed: hello.cluster.slice(0, 63) });
        }
        if (hello.protocolVersion < 1) return refuse(GrpcStatus.INVALID_ARGUMENT, `unsupported protocol version ${hello.protocolVersion}`, 'agent stream refused: protocol version', { version: hello.protocolVersion });
        state = 'admitting';
        let allowed: boolean;
        try {
          allowed = this.options.authorize ? await this.options.authorize(identity, hello) : true;
        } catch (e) {
          this.log.error({ cluster: identity.cluster, err: e instanceof Error ? e.name : 'error' }, 'agent authorization failed');
          allowed = false;
        }
        if (state !== 'admitting') return;
        if (!allowed || this.closing) return refuse(GrpcStatus.PERMISSION_DENIED, 'the agent is not admitted', 'agent stream refused: not admitted', {});
        clearTimeout(helloTimer);
        conn = new Connection(call, identity, hello, this.now());
        const previous = this.connections.get(identity.cluster);
        this.connections.set(identity.cluster, conn);
        state = 'open';
        if (previous) this.replace(previous);
        call.write({ settings: { heartbeatIntervalMs: this.heartbeatIntervalMs, protocolVersion: PROTOCOL_VERSION, trustBundle: '' } });
        this.log.info({ cluster: identity.cluster, peer, agentVersion: hello.agentVersion, replaced: previous !== undefined }, 'agent connected');
        this.emit({ type: 'connected', cluster: identity.cluster, agent: conn.info(), replaced: previous !== undefined });
        return;
      }
      onOpenMessage(msg);
    };

    /** Everything after the Hello is handled synchronously. */
    const onOpenMessage = (msg: DecodedAgentMessage): void => {
      if (state !== 'open' || !conn) return;
      conn.lastSeenAt = this.now();
      switch (msg.payload) {
        case 'heartbeat': {
          conn.lastHeartbeat = conn.lastSeenAt;
          const self = msg.heartbeat?.selfManagement;
          const changed = conn.record(
            normalizeHealth(msg.heartbeat?.health),
            self ? { pivotComplete: self.pivotComplete === true, moveId: String(self.moveId ?? ''), appliedGeneration: Number(self.appliedGeneration ?? 0) } : undefined,
          );
          conn.heartbeats += 1;
          this.emit({ type: 'heartbeat', cluster: identity.cluster, agent: conn.info(), healthChanged: changed.health, selfManagementChanged: changed.selfManagement });
          const arrived = this.options.observer ? this.arrivals.get(msg) : undefined;
          if (arrived !== undefined) this.options.observer?.heartbeatHandled((performance.now() - arrived) / 1000);
          return;
        }
        case 'ack': {
          const ack = msg.ack;
          if (!ack) return;
          const pending = conn.pending.get(ack.commandId);
          if (!pending) {
            this.log.debug({ cluster: identity.cluster, commandId: ack.commandId }, 'agent ack for no pending command');
            return;
          }
          conn.pending.delete(ack.commandId);
          clearTimeout(pending.timer);
          pending.resolve(ack);
          return;
        }
        case 'unpivotBatch':
          if (msg.unpivotBatch) this.emit({ type: 'unpivotBatch', cluster: identity.cluster, batch: msg.unpivotBatch });
          return;
        case 'proxyResponse': {
          const response = msg.proxyResponse;
          const sink = response ? conn.proxies.get(response.requestId) : undefined;
          // A response for a request cancelled meanwhile (or never sent) has no one to go to.
          if (!response || !sink) return;
          if (response.end) conn.proxies.delete(response.requestId);
          sink.onResponse(response);
          if (response.end) sink.onClose();
          return;
        }
        case 'renewRequest':
          // Renewal over the stream is reserved in the protocol; until the cell signs here, say so, so an
          // agent that asks does not wait for an answer.
          call.write({ renewResponse: { requestId: msg.renewRequest?.requestId ?? '', certificate: '', caBundle: '', error: 'Unsupported' } });
          return;
        case 'hello':
          this.log.warn({ cluster: identity.cluster }, 'agent sent a second hello; ignored');
          return;
        default:
          // A message kind newer than this cell: ignore, the protocol only grows.
          return;
      }
    };

    const failed = (e: unknown) => {
      this.log.error({ cluster: identity.cluster, err: e instanceof Error ? e.name : 'error' }, 'agent message handling failed');
    };
    // Messages behind the Hello wait in `queue` while its admission runs; once the stream is open and nothing
    // waits, a message is handled at once, in order, without a promise chain per heartbeat.
    let backlog = 0;
    call.on('data', (msg: DecodedAgentMessage) => {
      if (backlog === 0 && state === 'open') {
        try {
          onOpenMessage(msg);
        } catch (e) {
          failed(e);
        }
        return;
      }
      backlog += 1;
      queue = queue.then(() => onMessage(msg)).catch(failed).then(() => {
        backlog -= 1;
      });
    });
    // The agent half-closed: end our side too (OK), which completes the call.
    call.on('end', () => {
      endCall(call, GrpcStatus.OK, 'OK');
      finish('closed');
    });
    call.on('cancelled', () => finish('closed'));
    call.on('error', () => finish('error'));
    call.on('close', () => finish('closed'));
  }

  /** A newer stream took over the cluster: end the old one without reporting a disconnect. */
  private replace(old: Connection): void {
    old.ended = true;
    old.rejectAll(transient('AgentDisconnected', `the agent of cluster ${old.identity.cluster} reconnected; re-send with the same id`));
    this.streams.delete(old.call);
    endCall(old.call, GrpcStatus.ABORTED, 'replaced by a newer connection of the same cluster');
    this.log.info({ cluster: old.identity.cluster, connectionId: old.id }, 'agent stream replaced');
  }

  private drop(conn: Connection, reason: DisconnectReason, code?: GrpcStatus, details?: string): void {
    if (conn.ended) return;
    conn.ended = true;
    const cluster = conn.identity.cluster;
    if (this.connections.get(cluster) === conn) this.connections.delete(cluster);
    this.streams.delete(conn.call);
    conn.rejectAll(reason === 'shutdown' ? transient('CellClosed', 'the cell is shutting down') : transient('AgentDisconnected', `the agent of cluster ${cluster} disconnected`));
    if (code !== undefined) endCall(conn.call, code, details ?? '');
    this.log.info({ cluster, reason }, 'agent disconnected');
    this.emit({ type: 'disconnected', cluster, agent: conn.info(), reason });
  }

  private sweep(): void {
    const now = this.now().getTime();
    for (const conn of [...this.connections.values()]) {
      if (now - conn.lastSeenAt.getTime() > this.staleAfterMs) {
        this.drop(conn, 'stale', GrpcStatus.UNAVAILABLE, `no heartbeat for ${this.staleAfterMs} ms`);
      }
    }
  }
}

/**
 * The service with its request decoder wrapped to note when each message's bytes arrived: the start of a
 * heartbeat's handling latency, before protobuf decoding and grpc-js's stream plumbing, which it includes.
 */
function stampArrivals(service: ServiceDefinition, arrivals: WeakMap<object, number>): ServiceDefinition {
  const connect = service.Connect;
  if (!connect) return service;
  const decode = connect.requestDeserialize;
  const requestDeserialize = (bytes: Buffer): unknown => {
    const at = performance.now();
    const message: unknown = decode(bytes);
    if (typeof message === 'object' && message !== null) arrivals.set(message, at);
    return message;
  };
  return { ...service, Connect: { ...connect, requestDeserialize } };
}

/** Builds a cell server; `listen` binds it. Instances share nothing. */
export function createCellServer(options: CellServerOptions): CellServer {
  return new GrpcCellServer(options);
}
