/**
 * The cell's heartbeat path, level-based: a heartbeat that repeats the last one updates the registry
 * (lastSeenAt, count) but writes nothing to the parent's API server, wakes no reconcile, and shares the
 * snapshot values already recorded; a changed one is flagged as such. Handling time reaches the cell's
 * Prometheus histogram. The cost is measured by bench/cell.ts, never asserted here.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { InMemoryTokenStore } from '../controller/cell/bootstrap.js';
import { startCell, type Cell } from '../controller/cell/cell.js';
import { cellMetrics } from '../controller/cell/metrics.js';
import { emptyHealth, type Health, type SelfManagement } from '../controller/cell/protocol.js';
import type { AgentEvent } from '../controller/cell/server.js';
import { issueTestIdentity, RawAgent } from '../controller/cell/testing.js';
import { cellIntegration } from '../controller/agents.js';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  readonly cell: Cell;
  readonly events: AgentEvent[];
  /** Requests the parent's API server received, as "verb resource". */
  readonly requests: string[];
  /** Clusters the controller's work queue was woken for (cellIntegration's subscription). */
  readonly wakeups: string[];
  readonly registry: Registry;
  agent(cluster: string): Promise<RawAgent>;
}

async function setup(): Promise<Setup> {
  const requests: string[] = [];
  const parent: SimClients = await startSim({ namespaces: ['default', 'lattice-system'], onRequest: (r) => requests.push(`${r.verb} ${r.resource}`) });
  cleanups.push(() => parent.server.close());
  const registry = new Registry();
  const tokens = new InMemoryTokenStore();
  const cell = await startCell({
    core: parent.core, hosts: ['127.0.0.1'], tokens, grpcPort: 0, bootstrapPort: 0, proxyPort: 0, bindHost: '127.0.0.1',
    log: pino({ level: 'silent' }), heartbeatIntervalMs: 60_000, observer: cellMetrics(registry),
  });
  cleanups.push(() => cell.close());
  const events: AgentEvent[] = [];
  cell.agents.subscribe((e) => events.push(e));
  const wakeups: string[] = [];
  cleanups.push(cellIntegration(cell, { host: '127.0.0.1', tokens }).subscribe((cluster) => wakeups.push(cluster)));
  return {
    cell, events, requests, wakeups, registry,
    async agent(cluster) {
      const identity = await issueTestIdentity(cell.ca.signer, cluster);
      const raw = new RawAgent(`127.0.0.1:${cell.grpcPort}`, { caBundle: cell.ca.trustBundle, ...identity });
      cleanups.push(() => raw.close());
      raw.hello(cluster);
      await eventually(() => expect(raw.accepted).toBe(true), { timeoutMs: 10_000 });
      return raw;
    },
  };
}

const health = (ready: number): Health => ({ ...emptyHealth(), nodes: { ready, total: 3 }, pools: [{ name: 'general', ready, total: 3 }] });
const self = (appliedGeneration: number): SelfManagement => ({ pivotComplete: false, moveId: '', appliedGeneration });
const beats = (events: readonly AgentEvent[]) => events.filter((e): e is Extract<AgentEvent, { type: 'heartbeat' }> => e.type === 'heartbeat');

describe('cell heartbeats', () => {
  it('writes nothing to the parent and wakes no reconcile for heartbeats that repeat the last', async () => {
    // GIVEN a connected agent that has sent its first heartbeat
    const s = await setup();
    const raw = await s.agent('dev');
    raw.send({ heartbeat: { sentAtUnixMs: Date.now(), sequence: 1, health: health(3), selfManagement: self(1) } });
    await eventually(() => expect(beats(s.events)).toHaveLength(1));
    const requestsBefore = s.requests.length;
    const wakeupsBefore = s.wakeups.length;
    // WHEN it sends 20 more heartbeats with the same health and record (only the time and sequence move)
    for (let i = 2; i <= 21; i++) raw.send({ heartbeat: { sentAtUnixMs: Date.now(), sequence: i, health: health(3), selfManagement: self(1) } });
    await eventually(() => expect(s.cell.agents.get('dev')?.heartbeats).toBe(21));
    // THEN the registry counted them, but the parent's API server saw no request and the queue was not woken
    expect(s.requests.slice(requestsBefore)).toEqual([]);
    expect(s.wakeups.slice(wakeupsBefore)).toEqual([]);
    // AND the events say nothing changed, and share the values recorded by the first
    const all = beats(s.events);
    expect(all[0]).toMatchObject({ healthChanged: true, selfManagementChanged: true });
    expect(all.slice(1).every((e) => !e.healthChanged && !e.selfManagementChanged)).toBe(true);
    expect(all.at(-1)?.agent.health).toBe(all[0]?.agent.health);
    expect(all.at(-1)?.agent.heartbeats).toBe(21);
  }, 30_000);

  it('flags a changed health or record, and the controller is woken for a changed record only', async () => {
    // GIVEN a connected agent with one heartbeat recorded
    const s = await setup();
    const raw = await s.agent('dev');
    raw.send({ heartbeat: { sentAtUnixMs: Date.now(), sequence: 1, health: health(3), selfManagement: self(1) } });
    await eventually(() => expect(beats(s.events)).toHaveLength(1));
    const wakeupsBefore = s.wakeups.length;
    // WHEN a node becomes unready, then the child confirms a new spec generation
    raw.send({ heartbeat: { sentAtUnixMs: Date.now(), sequence: 2, health: health(2), selfManagement: self(1) } });
    raw.send({ heartbeat: { sentAtUnixMs: Date.now(), sequence: 3, health: health(2), selfManagement: self(2) } });
    await eventually(() => expect(beats(s.events)).toHaveLength(3));
    // THEN each heartbeat says what changed, the registry shows the latest, and only the record woke the queue
    const [, second, third] = beats(s.events);
    expect(second).toMatchObject({ healthChanged: true, selfManagementChanged: false });
    expect(third).toMatchObject({ healthChanged: false, selfManagementChanged: true });
    expect(s.cell.agents.get('dev')?.health?.nodes).toEqual({ ready: 2, total: 3 });
    expect(s.cell.agents.get('dev')?.selfManagement?.appliedGeneration).toBe(2);
    expect(s.wakeups.slice(wakeupsBefore)).toEqual(['dev']);
  }, 30_000);

  it('hands out frozen snapshots: a holder cannot change what the registry or other holders see', async () => {
    // GIVEN an agent whose heartbeat is recorded
    const s = await setup();
    const raw = await s.agent('dev');
    raw.send({ heartbeat: { sentAtUnixMs: Date.now(), sequence: 1, health: health(3), selfManagement: self(1) } });
    await eventually(() => expect(beats(s.events)).toHaveLength(1));
    const info = s.cell.agents.get('dev');
    // WHEN a holder tries to change its snapshot's nested values
    const nodes = info?.health?.nodes as { ready: number } | undefined;
    const attempt = () => {
      if (nodes) nodes.ready = 0;
    };
    // THEN it is refused, and the registry still has what the agent sent
    expect(attempt).toThrow(TypeError);
    expect(Object.isFrozen(info?.capabilities)).toBe(true);
    expect(Object.isFrozen(info?.certificate)).toBe(true);
    expect(s.cell.agents.get('dev')?.health?.nodes).toEqual({ ready: 3, total: 3 });
  }, 30_000);

  it('handles heartbeats in order and times each one in lattice_cell_heartbeat_handling_seconds', async () => {
    // GIVEN a connected agent
    const s = await setup();
    const raw = await s.agent('dev');
    // WHEN it sends 50 heartbeats back to back, each with another ready count
    for (let i = 1; i <= 50; i++) raw.heartbeat(health(i), i);
    await eventually(() => expect(beats(s.events)).toHaveLength(50));
    // THEN they were handled in the order sent, the registry holds the last, and each was timed once
    expect(beats(s.events).map((e) => e.agent.heartbeats)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(beats(s.events).map((e) => e.agent.health?.nodes.ready)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(s.cell.agents.get('dev')?.health?.nodes.ready).toBe(50);
    const text = await s.registry.metrics();
    expect(text).toMatch(/^lattice_cell_heartbeat_handling_seconds_count 50$/m);
    expect(text).toMatch(/^lattice_cell_heartbeat_handling_seconds_bucket\{le="\+Inf"\} 50$/m);
  }, 30_000);
});
