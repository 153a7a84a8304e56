/**
 * The controller's side of the agent (DESIGN §6, issue M7): the cell's token store kept in each
 * cluster's state Secret, the bootstrap Secret delivered into the child before the agent stage, and the
 * agent's connection turned into `AgentConnected`, `bootstrapComplete`, `lastHeartbeat` and the parent's
 * `childrenHealth`.
 *
 * Tokens: only the sha256 is stored (state Secret, DESIGN §5); the token itself exists in the
 * controller's memory while it is written into the child's `lattice-system/lattice-agent-bootstrap`, and
 * in that Secret. Every token write is conditional on the state Secret's resourceVersion, so a lease or a
 * consumption is atomic even with the reconcile writing other markers at the same moment.
 */
import { createHash } from 'node:crypto';
import { CoreV1Api, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { LatticeError, stalling, transient, waiting } from '../core/errors.js';
import { AGENT } from '../core/flavor/agent.js';
import { issueBootstrapToken, type StoredToken, type TokenStore } from './cell/bootstrap.js';
import type { Cell } from './cell/cell.js';
import { BOOTSTRAP_KEYS, bootstrapSecret, parentEndpoints } from './cell/secrets.js';
import type { AgentInfo, CellServer, SendOptions } from './cell/server.js';
import type { Ack, CommandBody, UnpivotBatch } from './cell/protocol.js';
import { b64decode, guarded, readStateOf, secretOf, writeState, type Ctx, type ReconcileDeps, type Step } from './context.js';
import { KUBECONFIG_KEY, NAMES, SECRET } from './resources.js';
import type { BootstrapTokenRecord, ClusterState } from './state.js';
import type { ProxyEndpoint } from './registration.js';

/** What the reconcile needs from the cell. */
export interface AgentIntegration {
  readonly tokens: TokenStore;
  /** The agent of a cluster as the cell knows it now. */
  agent(cluster: string): AgentInfo | undefined;
  /** What goes into each child's bootstrap Secret besides the token; undefined while no cell runs here. */
  delivery(): { readonly bootstrapUrl: string; readonly cellEndpoint: string; readonly caBundle: string } | undefined;
  /** How a pivoted cluster is reached through this cell's API proxy; undefined while no cell runs here. */
  proxy(cluster: string): ProxyEndpoint | undefined;
  /** How long a minted token is valid. */
  readonly tokenTtlMs: number;
  /** Calls `onCluster` whenever an agent connects, disconnects or (rarely) matters otherwise. */
  subscribe(onCluster: (cluster: string) => void): () => void;
  /** Sends a command to the cluster's agent and resolves to its Ack (CellServer.send: same errors). */
  send(cluster: string, body: CommandBody, options?: SendOptions): Promise<Ack>;
  /**
   * Sends an UnpivotRequest and gathers the UnpivotBatch messages answering it. Resolves once the Ack has
   * come and every batch it counts has arrived, in batch order; `id` must be new for every attempt (the
   * agent memoizes ids, and a repeat would be acknowledged without the batches).
   */
  unpivot(cluster: string, namespace: string, options: { readonly id: string; readonly timeoutMs: number }): Promise<{ ack: Ack; batches: UnpivotBatch[] }>;
}

/** Limits of one unpivot answer: far above a real cluster's objects (a few hundred, a few MiB). */
const MAX_UNPIVOT_BYTES = 256 * 1024 * 1024;
const MAX_UNPIVOT_BATCHES = 10_000;

/** The unpivot exchange over a cell's server (see AgentIntegration.unpivot). */
async function unpivotOver(server: CellServer, cluster: string, namespace: string, options: { readonly id: string; readonly timeoutMs: number }): Promise<{ ack: Ack; batches: UnpivotBatch[] }> {
  const batches = new Map<number, UnpivotBatch>();
  let bytes = 0;
  let overflow = false;
  const unsubscribe = server.subscribe((e) => {
    if (e.type !== 'unpivotBatch' || e.cluster !== cluster || e.batch.commandId !== options.id || overflow) return;
    // Bounded: a child (compromised, or broken) must not be able to fill the parent's memory.
    bytes += e.batch.objects.reduce((n, o) => n + o.manifest.length, 0);
    if (bytes > MAX_UNPIVOT_BYTES || batches.size >= MAX_UNPIVOT_BATCHES) {
      overflow = true;
      batches.clear();
      return;
    }
    batches.set(e.batch.batchIndex, e.batch);
  });
  try {
    const ack = await server.send(cluster, { unpivotRequest: { namespace } }, options);
    if (overflow) throw stalling('UnpivotTooLarge', `the agent of cluster ${cluster} sent more than ${MAX_UNPIVOT_BATCHES} batches or ${MAX_UNPIVOT_BYTES / 1024 / 1024} MiB of objects back; refusing to import them`);
    if (!ack.ok) return { ack, batches: [] };
    // Batches travel on the stream before the Ack, in order: all of them are here, or the stream lost some.
    const expected = ack.unpivot?.batches ?? 0;
    const got = [...batches.values()].sort((a, b) => a.batchIndex - b.batchIndex);
    if (got.length !== expected || got.some((b, i) => b.batchIndex !== i || b.totalBatches !== expected)) {
      throw transient('UnpivotIncomplete', `the agent of cluster ${cluster} acknowledged the unpivot with ${expected} batches but ${got.length} arrived; asking again`);
    }
    return { ack, batches: got };
  } finally {
    unsubscribe();
  }
}

/** Wires a running cell into the reconcile. `host` is what children dial (a DNS name or an IP). */
/** Where the cell is reached: by agents (`host`), and by the parent's GitOps engine for the API proxy (`proxyHost`, default `host`). */
export interface CellAddress {
  readonly host: string;
  readonly proxyHost?: string;
  readonly tokens: TokenStore;
  readonly tokenTtlMs?: number;
}

export function cellIntegration(cell: Cell, options: CellAddress): AgentIntegration {
  const proxyHost = options.proxyHost ?? options.host;
  const hostPart = proxyHost.includes(':') ? `[${proxyHost}]` : proxyHost;
  return {
    tokens: options.tokens,
    agent: (cluster) => cell.agents.get(cluster),
    delivery: () => ({ ...parentEndpoints(options.host, { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort }), caBundle: cell.ca.trustBundle }),
    proxy: (cluster) => ({ server: `https://${hostPart}:${cell.proxyPort}/clusters/${cluster}`, caBundle: cell.ca.trustBundle, token: cell.proxyTokens.token(cluster) }),
    tokenTtlMs: options.tokenTtlMs ?? 60 * 60 * 1000,
    // Heartbeats change nothing the status shows at that rate (see lastHeartbeat below): connections, and
    // the child's self-management record when it changes (a pivot or spec sync the child confirms).
    // The cell compares each heartbeat with the connection's last one, so nothing is compared here.
    subscribe: (onCluster) => cell.agents.subscribe((e) => {
      if (e.type === 'connected' || e.type === 'disconnected' || (e.type === 'heartbeat' && e.selfManagementChanged)) onCluster(e.cluster);
    }),
    send: (cluster, body, sendOptions) => cell.agents.send(cluster, body, sendOptions),
    unpivot: (cluster, namespace, unpivotOptions) => unpivotOver(cell.agents, cluster, namespace, unpivotOptions),
  };
}

/**
 * A cell that runs only while this controller replica leads: agents must reach the replica whose view of
 * them becomes status. Standby replicas do not listen, so agents that reach one are refused and retry with
 * backoff until they land on the leader (the Service spreads connections).
 */
export function leaderCell(options: CellAddress & { readonly start: () => Promise<Cell> }): { integration: AgentIntegration; service: { start(): Promise<void>; stop(): Promise<void> } } {
  let current: { cell: Cell; integration: AgentIntegration; detach: () => void } | undefined;
  const listeners = new Set<(cluster: string) => void>();
  const integration: AgentIntegration = {
    tokens: options.tokens,
    agent: (cluster) => current?.integration.agent(cluster),
    delivery: () => current?.integration.delivery(),
    proxy: (cluster) => current?.integration.proxy(cluster),
    tokenTtlMs: options.tokenTtlMs ?? 60 * 60 * 1000,
    subscribe(onCluster) {
      listeners.add(onCluster);
      return () => listeners.delete(onCluster);
    },
    send: (cluster, body, sendOptions) => current ? current.integration.send(cluster, body, sendOptions) : Promise.reject(waiting('AgentNotConnected', `the cell is not running on this replica; the agent of cluster ${cluster} cannot be reached`)),
    unpivot: (cluster, namespace, unpivotOptions) => current ? current.integration.unpivot(cluster, namespace, unpivotOptions) : Promise.reject(waiting('AgentNotConnected', `the cell is not running on this replica; the agent of cluster ${cluster} cannot be reached`)),
  };
  return {
    integration,
    service: {
      async start() {
        if (current) return;
        const cell = await options.start();
        const inner = cellIntegration(cell, options);
        const detach = inner.subscribe((cluster) => {
          for (const l of listeners) l(cluster);
        });
        current = { cell, integration: inner, detach };
      },
      async stop() {
        const c = current;
        current = undefined;
        if (!c) return;
        c.detach();
        await c.cell.close();
      },
    },
  };
}

const toStored = (t: BootstrapTokenRecord): StoredToken => ({
  hash: t.sha256,
  issuedAt: new Date(t.issuedAt),
  expiresAt: new Date(t.expiresAt),
  ...(t.consumedAt ? { consumedAt: new Date(t.consumedAt) } : {}),
  ...(t.lease ? { lease: { id: t.lease.id, until: new Date(t.lease.until) } } : {}),
});

const CONFLICT_RETRIES = 5;

/**
 * The cell's TokenStore over `capi-X/lattice-state`. Each operation reads the markers and writes them back
 * conditionally; a conflict (another writer in between) is retried on fresh data.
 */
export function stateSecretTokenStore(deps: Pick<ReconcileDeps, 'kube'>): TokenStore {
  const update = async (cluster: string, change: (current: ClusterState) => { next: ClusterState; result: boolean }): Promise<boolean> => {
    for (let attempt = 0; ; attempt++) {
      let result = false;
      try {
        await writeState(deps, cluster, (current) => {
          const r = change(current);
          result = r.result;
          return r.next;
        });
        return result;
      } catch (e) {
        if (!(e instanceof LatticeError) || e.code !== 'Conflict' || attempt >= CONFLICT_RETRIES) throw e;
      }
    }
  };
  return {
    async lookup(cluster) {
      const t = (await readStateOf(deps, cluster)).bootstrapToken;
      return t ? toStored(t) : undefined;
    },
    async recordIssued(cluster, token) {
      await update(cluster, (s) => ({ next: { ...s, bootstrapToken: { sha256: token.hash, issuedAt: token.issuedAt.toISOString(), expiresAt: token.expiresAt.toISOString() } }, result: true }));
    },
    acquireLease(cluster, r) {
      return update(cluster, (s) => {
        const t = s.bootstrapToken;
        const usable = t !== undefined && t.sha256 === r.hash && t.consumedAt === undefined && Date.parse(t.expiresAt) > r.now.getTime()
          && (t.lease === undefined || Date.parse(t.lease.until) <= r.now.getTime());
        if (!usable || !t) return { next: s, result: false };
        return { next: { ...s, bootstrapToken: { ...t, lease: { id: r.leaseId, until: r.until.toISOString() } } }, result: true };
      });
    },
    async releaseLease(cluster, leaseId) {
      await update(cluster, (s) => {
        const t = s.bootstrapToken;
        if (!t || t.lease?.id !== leaseId) return { next: s, result: false };
        const { lease: _released, ...rest } = t;
        return { next: { ...s, bootstrapToken: rest }, result: true };
      });
    },
    consume(cluster, leaseId, at) {
      return update(cluster, (s) => {
        const t = s.bootstrapToken;
        if (!t || t.lease?.id !== leaseId) return { next: s, result: false };
        const { lease: _done, ...rest } = t;
        return { next: { ...s, bootstrapToken: { ...rest, consumedAt: at.toISOString() } }, result: true };
      });
    },
  };
}

const sha256Hex = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

/** The agent's connection, as the reconcile records it: `bootstrapComplete` once it has connected. */
export const observeAgent: Step = async (ctx, deps) => {
  const agents = deps.agents;
  if (!agents || ctx.self) return;
  const info = agents.agent(ctx.name);
  ctx.agentInfo = info;
  if (info && ctx.state && !ctx.state.bootstrapComplete) ctx.state = await writeState(deps, ctx.name, { bootstrapComplete: true });
};

/**
 * Before the agent stage: a valid one-time token and the cell's coordinates in the child's
 * `lattice-system/lattice-agent-bootstrap`. Needs the child's API (CAPI's kubeconfig), so it starts once the
 * control plane is up; an expired unused token is replaced. The agent keeps the Secret after bootstrap (it
 * re-reads the endpoint and CA from it), so it is never deleted here.
 */
export const deliverBootstrap: Step = async (ctx, deps) => {
  const agents = deps.agents;
  const state = ctx.state;
  if (!agents || ctx.self || !state || state.bootstrapComplete || !ctx.capi?.controlPlaneInitialized) return;
  const token = state.bootstrapToken;
  // Consumed: the agent holds its certificate and is about to connect; nothing to deliver again.
  if (token?.consumedAt) return;
  const source = secretOf(await guarded(`reading Secret ${ctx.namespace}/${NAMES.kubeconfigSecret(ctx.name)}`, () => deps.kube.get(SECRET, NAMES.kubeconfigSecret(ctx.name), ctx.namespace)));
  const kubeconfig = source?.data?.[KUBECONFIG_KEY];
  if (kubeconfig === undefined) return;
  // Asked for last: from here the child is read and written (the reconcile's read-only pass stops here, cache.ts).
  const delivery = agents.delivery();
  if (!delivery) return;
  const child = childCore(b64decode(kubeconfig));
  const now = deps.now();
  const id = `Secret ${AGENT.namespace}/${AGENT.bootstrapSecret} in the child`;
  const live = await inChild(ctx, `reading ${id}`, async () => {
    try {
      return await child.readNamespacedSecret({ name: AGENT.bootstrapSecret, namespace: AGENT.namespace });
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  });
  const liveToken = live?.data?.[BOOTSTRAP_KEYS.token];
  const delivered = token !== undefined && Date.parse(token.expiresAt) > now.getTime() && liveToken !== undefined
    && sha256Hex(b64decode(liveToken)) === token.sha256 && sameDelivery(live, delivery);
  if (delivered) return;
  const issued = await issueBootstrapToken(agents.tokens, ctx.name, { now, ttlMs: agents.tokenTtlMs });
  const desired = bootstrapSecret({ token: issued.token, ...delivery });
  await inChild(ctx, `writing ${id}`, async () => {
    await child.createNamespace({ body: { metadata: { name: AGENT.namespace } } }).catch((e: unknown) => {
      if (statusCode(e) !== 409) throw e;
    });
    if (live) await child.replaceNamespacedSecret({ name: AGENT.bootstrapSecret, namespace: AGENT.namespace, body: { ...desired, metadata: { ...desired.metadata, resourceVersion: live.metadata?.resourceVersion } } });
    else await child.createNamespacedSecret({ namespace: AGENT.namespace, body: desired });
  });
  ctx.state = { ...state, bootstrapToken: { sha256: sha256Hex(issued.token), issuedAt: now.toISOString(), expiresAt: issued.expiresAt.toISOString() } };
  deps.log.info({ cluster: ctx.name, expiresAt: issued.expiresAt.toISOString() }, 'bootstrap token delivered');
  await deps.events.record(ctx.lc, { type: 'Normal', reason: 'BootstrapTokenIssued', message: `a one-time bootstrap token was written to the child's ${AGENT.namespace}/${AGENT.bootstrapSecret}; it expires at ${issued.expiresAt.toISOString()}` });
};

function sameDelivery(live: V1Secret | undefined, d: NonNullable<ReturnType<AgentIntegration['delivery']>>): boolean {
  const get = (k: string) => {
    const v = live?.data?.[k];
    return v === undefined ? undefined : b64decode(v);
  };
  return get(BOOTSTRAP_KEYS.bootstrapUrl) === d.bootstrapUrl && get(BOOTSTRAP_KEYS.cellEndpoint) === d.cellEndpoint && get(BOOTSTRAP_KEYS.ca) === d.caBundle;
}

function childCore(kubeconfig: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  return kc.makeApiClient(CoreV1Api);
}

const statusCode = (e: unknown): number | undefined => (typeof e === 'object' && e !== null && 'code' in e ? Number((e as { code: unknown }).code) : undefined);

/** The child is not reachable yet (or refuses): wait, without leaking what the client said. */
async function inChild<T>(ctx: Ctx, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof LatticeError) throw e;
    const code = statusCode(e);
    throw waiting('ChildUnreachable', `${what}: the child's API server ${code !== undefined && !Number.isNaN(code) ? `answered ${code}` : 'is not reachable'} (cluster ${ctx.name})`, e);
  }
}

/** status.bootstrapToken: the token's state, never the token. */
export function bootstrapTokenStatus(state: ClusterState | undefined, now: Date): Record<string, string> | undefined {
  const t = state?.bootstrapToken;
  if (!t) return undefined;
  const s = t.consumedAt ? 'Consumed' : Date.parse(t.expiresAt) <= now.getTime() ? 'Expired' : 'Issued';
  return { state: s, issuedAt: rfc3339(t.issuedAt), expiresAt: rfc3339(t.expiresAt) };
}

const rfc3339 = (iso: string): string => new Date(iso).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The AgentConnected input of the stage conditions. */
export function agentConnection(info: AgentInfo | undefined): { connected: boolean; message?: string } {
  if (!info) return { connected: false };
  return { connected: true, message: `agent ${info.agentVersion} connected since ${rfc3339(info.connectedAt.toISOString())}` };
}
