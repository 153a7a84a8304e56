/**
 * A fleet of agents against one cell, for the scale test and bench/cell.ts: a parent sim API server,
 * a started cell, a child sim API server with one namespace per agent (each holding its bootstrap and
 * identity Secrets), and N agents going through the real bootstrap and connection code. Health is a
 * fixed value, so the measurement is the protocol's cost, not N times the child's list calls.
 * `prepareAgentSide` is the agents' half alone, for a benchmark that runs the cell in another process.
 * Never used by production code paths.
 */
import { pino } from 'pino';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { InMemoryTokenStore, issueBootstrapToken, type BootstrapLimits } from '../controller/cell/bootstrap.js';
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
  /** Milliseconds from start() to each agent's first accepted session, by cluster. */
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

/** What every fleet agent reports: a small healthy cluster. */
export const FLEET_HEALTH: Health = { ...emptyHealth(), nodes: { ready: 3, total: 3 }, controlPlane: { ready: 1, total: 1 }, pools: [{ name: 'general', ready: 2, total: 2 }] };

/** The cluster names of a fleet of `n`, from `first`: agent-000, agent-001, ... */
export function fleetNames(n: number, first = 0): string[] {
  return Array.from({ length: n }, (_, i) => `agent-${String(first + i).padStart(3, '0')}`);
}

export interface AgentSideOptions {
  readonly names: readonly string[];
  /** Until the cell's Settings say otherwise. */
  readonly heartbeatIntervalMs: number;
  /** The cell's coordinates and trust bundle, as the bootstrap Secret carries them. */
  readonly endpoints: { readonly bootstrapUrl: string; readonly cellEndpoint: string };
  readonly caBundle: string;
  /** A valid one-time bootstrap token per name. */
  readonly tokens: ReadonlyMap<string, string>;
}

/** The agents' half of a fleet: a child sim API server and one agent per name. */
export interface AgentSide {
  readonly agents: readonly Agent[];
  /** Milliseconds from start() to each agent's first accepted session, by cluster. */
  readonly connectMs: ReadonlyMap<string, number>;
  /** Starts every agent at once and resolves when all are connected (or rejects after `timeoutMs`). */
  start(timeoutMs?: number): Promise<void>;
  /** See Fleet.restart. */
  restart(timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

export async function prepareAgentSide(options: AgentSideOptions): Promise<AgentSide> {
  const names = options.names;
  const child: SimClients = await startSim({ namespaces: ['default', ...names] });
  const log = pino({ level: 'silent' });
  for (const name of names) {
    const token = options.tokens.get(name);
    if (token === undefined) throw new Error(`no bootstrap token for ${name}`);
    await child.core.createNamespacedSecret({ namespace: name, body: bootstrapSecret({ token, ...options.endpoints, caBundle: options.caBundle }, 'lattice-agent-bootstrap', name) });
  }
  const connectMs = new Map<string, number>();
  let connected = new Set<string>();
  let startedAt = 0;
  const makeAgents = (): Agent[] => names.map((name) => createAgent({
    config: { cluster: name, heartbeatSeconds: options.heartbeatIntervalMs / 1000, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity', addonNamespaces: [] },
    kubeConfig: child.kc,
    namespace: name,
    log,
    health: { collect: async () => FLEET_HEALTH },
    backoff: { initialMs: 50, maxMs: 1000, stableMs: 1000 },
    onConnected: () => {
      connected.add(name);
      if (!connectMs.has(name)) connectMs.set(name, performance.now() - startedAt);
    },
  }));
  let agents = makeAgents();
  const waitConnected = async (since: number, timeoutMs: number) => {
    while (connected.size < agents.length) {
      if (performance.now() > since + timeoutMs) throw new Error(`only ${connected.size} of ${agents.length} agents connected within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    get agents() {
      return agents;
    },
    connectMs,
    async start(timeoutMs = 30_000) {
      startedAt = performance.now();
      for (const a of agents) a.start();
      await waitConnected(startedAt, timeoutMs);
    },
    async restart(timeoutMs = 30_000) {
      await Promise.all(agents.map((a) => a.stop()));
      agents = makeAgents();
      connected = new Set();
      const since = performance.now();
      for (const a of agents) a.start();
      await waitConnected(since, timeoutMs);
      return performance.now() - since;
    },
    async close() {
      await Promise.all(agents.map((a) => a.stop()));
      await child.server.close();
    },
  };
}

export async function prepareFleet(options: FleetOptions): Promise<Fleet> {
  const names = fleetNames(options.agents);
  const parent: SimClients = await startSim({ namespaces: ['default', 'lattice-system'] });
  const tokens = new InMemoryTokenStore();
  const log = pino({ level: 'silent' });
  const cell = await startCell({
    core: parent.core, hosts: ['127.0.0.1'], tokens, grpcPort: 0, bootstrapPort: 0, proxyPort: 0, bindHost: '127.0.0.1', log,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    bootstrapLimits: fleetBootstrapLimits(options.agents),
  });
  const events: AgentEvent[] = [];
  cell.agents.subscribe((e) => {
    events.push(e);
  });
  const issued = new Map<string, string>();
  for (const name of names) issued.set(name, (await issueBootstrapToken(tokens, name, { now: new Date() })).token);
  const side = await prepareAgentSide({
    names, heartbeatIntervalMs: options.heartbeatIntervalMs, tokens: issued, caBundle: cell.ca.trustBundle,
    endpoints: parentEndpoints('127.0.0.1', { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort }),
  });
  return {
    cell,
    get agents() {
      return side.agents;
    },
    events,
    connectMs: side.connectMs,
    start: (timeoutMs) => side.start(timeoutMs),
    restart: (timeoutMs) => side.restart(timeoutMs),
    async close() {
      await side.close();
      await cell.close();
      await parent.server.close();
    },
  };
}

/** Bootstrap limits for a fleet from one source IP: the per-IP limit must not be what is measured. */
export function fleetBootstrapLimits(agents: number): BootstrapLimits {
  return { perIp: { capacity: agents * 2, refillPerSecond: agents }, perCluster: { capacity: 5, refillPerSecond: 1 } };
}
