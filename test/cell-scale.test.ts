/**
 * 100 agents at once against one cell: all bootstrap, connect and keep heartbeating. Timings and memory
 * are measured by bench/cell.ts, not asserted here.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../sim/apiserver/testing.js';
import { prepareFleet, type Fleet } from '../agent/testing.js';

let fleet: Fleet | undefined;
afterAll(async () => {
  await fleet?.close();
});

describe('cell at scale', () => {
  it('keeps 100 agents connected and heartbeating at once', async () => {
    // GIVEN 100 children, each with its own bootstrap Secret, and a cell expecting heartbeats every 500 ms
    fleet = await prepareFleet({ agents: 100, heartbeatIntervalMs: 500 });
    const f = fleet;
    // WHEN all agents start together
    await f.start(60_000);
    // THEN every one is connected and has heartbeated at least three times, and none was dropped
    await eventually(() => {
      const list = f.cell.agents.list();
      expect(list).toHaveLength(100);
      expect(Math.min(...list.map((a) => a.heartbeats))).toBeGreaterThanOrEqual(3);
    }, { timeoutMs: 20_000, intervalMs: 50 });
    expect(f.events.filter((e) => e.type === 'disconnected')).toEqual([]);
    expect(f.agents.every((a) => a.status().connected && a.status().bootstrapped)).toBe(true);
    expect(f.cell.agents.get('agent-042')?.health?.nodes).toEqual({ ready: 3, total: 3 });
  }, 90_000);
});
