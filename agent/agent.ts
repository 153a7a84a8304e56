/**
 * The agent (DESIGN §6): gets an identity (stored, or by bootstrap), then keeps one stream to the cell
 * open for as long as it runs, reconnecting with capped exponential backoff and full jitter. Everything it
 * needs from the world comes in through `AgentOptions`, so tests run many agents in one process.
 *
 * Every attempt re-reads the bootstrap Secret for the cell endpoint and CA bundle, so a parent that moved
 * (or a CA bundle extended for rotation) is picked up without a restart; the controller must therefore
 * keep that Secret after bootstrap (it may blank the spent token).
 *
 * Commands are handled by agent/pivot.ts (spec sync, pivot and unpivot, one at a time); the child-local pivot
 * record (agent/state.ts) is loaded before each session so that heartbeats carry it.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LatticeError } from '../core/errors.js';
import { AGENT } from '../core/flavor/agent.js';
import { joinPemBundle } from '../controller/cell/pki.js';
import { createMover, type Mover } from '../kube/mover.js';
import { CommandDispatcher, type CommandHandlers } from './dispatch.js';
import { kubeHealthSource, type HealthSource } from './health.js';
import { BootstrapError, ensureIdentity, readParentInfo, type Identity, type IdentityDeps } from './identity.js';
import type { AgentConfig } from './config.js';
import { pivotHandlers } from './pivot.js';
import { createProxyExecutor, type ProxyExecutor } from './proxy.js';
import { specRenderer } from '../cli/load.js';
import { emptySpecState, type SpecState } from './spec.js';
import { secretSelfManagementStore, type SelfManagementStore } from './state.js';
import { backoffDelay, DEFAULT_BACKOFF, runSession, type BackoffOptions } from './stream.js';

export interface AgentOptions {
  readonly config: AgentConfig;
  /** The child cluster's API (in-cluster config in production). */
  readonly kubeConfig: KubeConfig;
  /** Where the agent's Secrets are (POD_NAMESPACE). */
  readonly namespace: string;
  readonly log: Logger;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** For the backoff jitter. @default Math.random */
  readonly random?: () => number;
  readonly backoff?: Partial<BackoffOptions>;
  /** @default health from the child's API server */
  readonly health?: HealthSource;
  /** Handlers added to (or replacing) the built-in ones (tests; M9 receivers). */
  readonly handlers?: CommandHandlers;
  /** @default a mover over `kubeConfig`, field manager `lattice-agent` */
  readonly mover?: Mover;
  /** The child-local pivot record. @default the Secret `<namespace>/lattice-agent-state` */
  readonly selfManagement?: SelfManagementStore;
  /**
   * Serves the API proxy (M9). @default an executor over `kubeConfig` impersonating the child's
   * `lattice-proxy` ServiceAccount; null: proxy requests are answered Unsupported.
   */
  readonly proxy?: ProxyExecutor | null;
  /** @default the package version */
  readonly version?: string;
  /** The bootstrap HTTPS call (tests inject failures). */
  readonly post?: IdentityDeps['post'];
  /** @default 15000 */
  readonly settingsTimeoutMs?: number;
  /** Called each time the cell accepts a session (tests and benchmarks time connects with it). */
  readonly onConnected?: () => void;
}

/** What /readyz and the logs report. Error codes only: never a message that could carry a secret. */
export interface AgentStatus {
  readonly connected: boolean;
  readonly hasIdentity: boolean;
  /** Whether this process obtained its identity by bootstrap (false: loaded from the Secret). */
  readonly bootstrapped: boolean;
  /** Accepted sessions so far. */
  readonly sessions: number;
  readonly lastError?: string;
  readonly stopped: boolean;
}

export interface Agent {
  /** Starts the identity + connection loop. */
  start(): void;
  /** Ends the stream gracefully (the cell records a clean disconnect) and stops the loop. Idempotent. */
  stop(): Promise<void>;
  status(): AgentStatus;
  readonly dispatcher: CommandDispatcher;
  readonly spec: SpecState;
  /** The child-local pivot record heartbeats carry. */
  readonly selfManagement: SelfManagementStore;
}

let packageVersion: string | undefined;
/** The package's version, read once from the nearest package.json of the lattice package. */
export function agentVersion(): string {
  if (packageVersion) return packageVersion;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'lattice-gitops' && typeof pkg.version === 'string') return (packageVersion = pkg.version);
    } catch {
      // not here; go up
    }
    const parent = dirname(dir);
    if (parent === dir) return (packageVersion = '0.0.0');
    dir = parent;
  }
}

class LatticeAgent implements Agent {
  readonly dispatcher: CommandDispatcher;
  readonly spec: SpecState = emptySpecState();
  readonly selfManagement: SelfManagementStore;
  private readonly abort = new AbortController();
  private readonly idDeps: IdentityDeps;
  private readonly health: HealthSource;
  private readonly backoff: BackoffOptions;
  private readonly log: Logger;
  private readonly proxy: ProxyExecutor | undefined;
  private identity?: Identity;
  private connected = false;
  private bootstrapped = false;
  private sessions = 0;
  private lastError?: string;
  private running?: Promise<void>;
  private kubernetesVersion?: string;

  constructor(private readonly options: AgentOptions) {
    this.log = options.log;
    const now = options.now ?? (() => new Date());
    const core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.idDeps = {
      core,
      namespace: options.namespace,
      cluster: options.config.cluster,
      bootstrapSecret: options.config.bootstrapSecret,
      identitySecret: options.config.identitySecret,
      now,
      log: this.log,
      ...(options.post ? { post: options.post } : {}),
    };
    const configured = options.config.addonNamespaces;
    this.health = options.health ?? kubeHealthSource(options.kubeConfig, () => [...new Set([...configured, ...this.spec.addonNamespaces])]);
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.selfManagement = options.selfManagement ?? secretSelfManagementStore({ core, namespace: options.namespace, log: this.log });
    const mover = options.mover ?? createMover({ kubeConfig: options.kubeConfig, fieldManager: AGENT.name, log: this.log, apiVersions: specRenderer().versions.apiVersions });
    this.proxy = options.proxy === null ? undefined : options.proxy ?? createProxyExecutor({
      kubeConfig: options.kubeConfig,
      impersonate: `system:serviceaccount:${options.namespace}:${AGENT.proxyServiceAccount}`,
      log: this.log.child({ component: 'proxy' }),
    });
    this.dispatcher = new CommandDispatcher({
      handlers: { ...pivotHandlers({ cluster: options.config.cluster, mover, state: this.selfManagement, spec: this.spec, log: this.log }), ...options.handlers },
      log: this.log,
    });
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    this.proxy?.close();
  }

  status(): AgentStatus {
    return {
      connected: this.connected,
      hasIdentity: this.identity !== undefined,
      bootstrapped: this.bootstrapped,
      sessions: this.sessions,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      stopped: this.abort.signal.aborted,
    };
  }

  private async k8sVersion(): Promise<string> {
    if (this.kubernetesVersion) return this.kubernetesVersion;
    try {
      this.kubernetesVersion = (await this.options.kubeConfig.makeApiClient(VersionApi).getCode()).gitVersion;
      return this.kubernetesVersion;
    } catch {
      return '';
    }
  }

  /**
   * Loads the pivot record before a session, so the first heartbeat already carries it. A failure does not
   * keep the agent from connecting: heartbeats leave the record out until a later attempt (or a handler) loads it.
   */
  private async loadSelfManagement(): Promise<void> {
    if (this.selfManagement.current()) return;
    try {
      await this.selfManagement.load();
    } catch (e) {
      this.log.warn({ code: e instanceof LatticeError ? e.code : 'InternalError' }, 'agent state not loaded');
    }
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    const now = this.idDeps.now;
    let attempt = 0;
    while (!signal.aborted) {
      let retryAfterMs = 0;
      try {
        if (!this.identity || this.identity.notAfter <= now()) {
          if (this.identity) this.log.warn({ notAfter: this.identity.notAfter.toISOString() }, 'agent certificate expired; bootstrapping again');
          this.identity = undefined;
          const got = await ensureIdentity(this.idDeps);
          this.identity = got.identity;
          this.bootstrapped ||= got.bootstrapped;
          if (!got.bootstrapped) this.log.info({ notAfter: got.identity.notAfter.toISOString() }, 'agent identity loaded');
        }
        const parent = await readParentInfo(this.idDeps);
        await this.loadSelfManagement();
        if (signal.aborted) break;
        const end = await runSession({
          endpoint: parent.cellEndpoint,
          // The bundle of the answer plus the Secret's: the controller extends the latter during a CA rotation.
          tls: { privateKey: this.identity.privateKey, certificate: this.identity.certificate, caBundle: joinPemBundle([this.identity.caBundle, parent.caBundle]) },
          cluster: this.options.config.cluster,
          agentVersion: this.options.version ?? agentVersion(),
          kubernetesVersion: await this.k8sVersion(),
          health: this.health,
          dispatcher: this.dispatcher,
          ...(this.proxy ? { proxy: this.proxy } : {}),
          selfManagement: () => this.selfManagement.current(),
          heartbeatIntervalMs: this.options.config.heartbeatSeconds * 1000,
          ...(this.options.settingsTimeoutMs !== undefined ? { settingsTimeoutMs: this.options.settingsTimeoutMs } : {}),
          now,
          log: this.log,
          onConnected: () => {
            this.connected = true;
            this.sessions += 1;
            this.lastError = undefined;
            this.options.onConnected?.();
          },
          onDisconnected: () => {
            this.connected = false;
          },
        }, signal);
        if (signal.aborted) break;
        this.lastError = `stream ended: gRPC status ${end.status.code}`;
        this.log.warn({ code: end.status.code, accepted: end.accepted, connectedMs: Math.round(end.connectedMs) }, 'cell stream ended');
        if (end.accepted && end.connectedMs >= this.backoff.stableMs) attempt = 0;
      } catch (e) {
        const code = e instanceof LatticeError ? e.code : 'InternalError';
        this.lastError = code;
        if (e instanceof BootstrapError && e.retryAfterSeconds !== undefined) retryAfterMs = e.retryAfterSeconds * 1000;
        const kind = e instanceof LatticeError ? e.kind : 'transient';
        if (e instanceof LatticeError) this.log.warn({ code, kind }, 'agent attempt failed');
        else this.log.error({ code, err: e instanceof Error ? e.name : 'error' }, 'agent attempt failed');
      }
      if (signal.aborted) break;
      const delay = Math.max(retryAfterMs, backoffDelay(attempt, this.backoff, this.options.random ?? Math.random));
      attempt += 1;
      await sleep(delay, signal);
    }
    this.connected = false;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** Builds an agent; `start()` runs it. Instances share nothing. */
export function createAgent(options: AgentOptions): Agent {
  return new LatticeAgent(options);
}
