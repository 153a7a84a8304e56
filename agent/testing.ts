/**
 * A fleet of agents against one cell, for the scale test and bench/agents.ts: a parent sim API server,
 * a started cell, a child sim API server with one namespace per agent (each holding its bootstrap and
 * identity Secrets), and N agents going through the real bootstrap and connection code. Health is a
 * fixed value, so the measurement is the protocol's cost, not N times the child's list calls.
 * Never used by production code paths.
 */
import { pino } from 'pino';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { InMemoryTokenStore, issueBootstrapToken } from '../controller/cell/bootstrap.js';
import { startCell, type Cell } from '../controller/cell/cell.js';
import { emptyHealth, type Health } from '../controller/cell/protocol.js';
import { bootstrapSecret, parentEndpoints } from '../controller/cell/secrets.js';
import type { AgentEvent } from '../controller/cell/server.js';
import { createAgent, type Agent } from './agent.js';

export interface FleetOptions {
  readonly agents: number;
  readonly heartbeatIntervalMs: number;
}

export interface Fleet {
  readonly cell: Cell;
  /** The running agents (replaced by `restart`). */
  readonly agents: readonly Agent[];
  readonly events: readonly AgentEvent[];
  /** Milliseconds from start() to each agent's first `connected` event, by cluster. */
  readonly connectMs: ReadonlyMap<string, number>;
  /** Starts every agent at once and resolves when all are connected (or rejects after `timeoutMs`). */
  start(timeoutMs?: number): Promise<void>;
  /**
   * Stops every agent and starts new ones (new processes, as after a node drain): they load their stored
   * identities instead of bootstrapping. Resolves to the milliseconds until all are connected again.
   */
  restart(timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

const HEALTH: Health = { ...emptyHealth(), nodes: { ready: 3, total: 3 }, controlPlane: { ready: 1, total: 1 }, pools: [{ name: 'general', ready: 2, total: 2 }] };

export async function prepareFleet(options: FleetOptions): Promise<Fleet> {
  const names = Array.from({ length: options.agents }, (_, i) => `agent-${String(i).padStart(3, '0')}`);
  const parent: SimClients = await startSim({ namespaces: ['default', 'lattice-system'] });
  const child: SimClients = await startSim({ namespaces: ['default', ...names] });
  const tokens = new InMemoryTokenStore();
  const log = pino({ level: 'silent' });
  const cell = await startCell({
    core: parent.core, hosts: ['127.0.0.1'], tokens, grpcPort: 0, bootstrapPort: 0, proxyPort: 0, bindHost: '127.0.0.1', log,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    // One source IP for the whole fleet: the per-IP limit must not be what is measured.
    bootstrapLimits: { perIp: { capacity: options.agents * 2, refillPerSecond: options.agents }, perCluster: { capacity: 5, refillPerSecond: 1 } },
  });
  const events: AgentEvent[] = [];
  const connectMs = new Map<string, number>();
  let startedAt = 0;
  cell.agents.subscribe((e) => {
    events.push(e);
    if (e.type === 'connected' && !connectMs.has(e.cluster)) connectMs.set(e.cluster, performance.now() - startedAt);
  });
  const endpoints = parentEndpoints('127.0.0.1', { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort });
  for (const name of names) {
    const { token } = await issueBootstrapToken(tokens, name, { now: new Date() });
    await child.core.createNamespacedSecret({ namespace: name, body: bootstrapSecret({ token, ...endpoints, caBundle: cell.ca.trustBundle }, 'lattice-agent-bootstrap', name) });
  }
  const makeAgents = (): Agent[] => names.map((name) => createAgent({
    config: { cluster: name, heartbeatSeconds: 10, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity', addonNamespaces: [] },
    kubeConfig: child.kc,
    namespace: name,
    log,
    health: { collect: async () => HEALTH },
    backoff: { initialMs: 50, maxMs: 1000, stableMs: 1000 },
  }));
  let agents = makeAgents();
  const waitConnected = async (count: () => number, since: number, timeoutMs: number) => {
    while (count() < agents.length) {
      if (performance.now() > since + timeoutMs) throw new Error(`only ${count()} of ${agents.length} agents connected within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    cell,
    get agents() {
      return agents;
    },
    events,
    connectMs,
    async start(timeoutMs = 30_000) {
      startedAt = performance.now();
      for (const a of agents) a.start();
      await waitConnected(() => connectMs.size, startedAt, timeoutMs);
    },
    async restart(timeoutMs = 30_000) {
      await Promise.all(agents.map((a) => a.stop()));
      agents = makeAgents();
      const mark = events.length;
      const since = performance.now();
      for (const a of agents) a.start();
      await waitConnected(() => new Set(events.slice(mark).filter((e) => e.type === 'connected').map((e) => e.cluster)).size, since, timeoutMs);
      return performance.now() - since;
    },
    async close() {
      await Promise.all(agents.map((a) => a.stop()));
      await cell.close();
      await Promise.all([parent.server.close(), child.server.close()]);
    },
  };
}
