/**
 * N agents against one cell, in one process (agent/testing.ts `prepareFleet`): every agent bootstraps
 * (key, CSR, HTTPS exchange, identity Secret in a child sim API server) and connects over mutual TLS at
 * the same moment, then heartbeats for a while. Measures how long until all are connected, the
 * per-agent connect latency, heartbeat throughput, CPU while holding, memory, and how long N new agent
 * processes with stored identities (no bootstrap) take to be connected again. The process holds the
 * two sim API servers, the cell and all N agents, so memory is an upper bound for the cell's share.
 * Run: npx tsx bench/agents.ts [agents=100] [heartbeatMs=1000] [holdMs=10000]
 * Prints one line: `bench agents n=… heartbeat_ms=… all_connected_ms=… connect_p50_ms=… …`.
 */
import { prepareFleet } from '../agent/testing.js';

const n = Number(process.argv[2] ?? 100);
const heartbeatIntervalMs = Number(process.argv[3] ?? 1000);
const holdMs = Number(process.argv[4] ?? 10_000);

const mb = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;
const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

// Run with `node --expose-gc --import tsx` for steadier memory figures; without it these are no-ops.
global.gc?.();
const baseline = process.memoryUsage();
const fleet = await prepareFleet({ agents: n, heartbeatIntervalMs });
const started = performance.now();
await fleet.start(120_000);
const allConnectedMs = performance.now() - started;
const connect = [...fleet.connectMs.values()].sort((a, b) => a - b);

const beatsBefore = fleet.cell.agents.list().reduce((s, a) => s + a.heartbeats, 0);
const cpuBefore = process.cpuUsage();
const holdStart = performance.now();
await new Promise((r) => setTimeout(r, holdMs));
const held = performance.now() - holdStart;
const cpu = process.cpuUsage(cpuBefore);
const beatsAfter = fleet.cell.agents.list().reduce((s, a) => s + a.heartbeats, 0);
const connected = fleet.cell.agents.list().length;
const disconnects = fleet.events.filter((e) => e.type === 'disconnected').length;
global.gc?.();
const after = process.memoryUsage();
// New agent processes with stored identities: the connect cost without bootstrap.
const reconnectMs = await fleet.restart(120_000);
await fleet.close();

process.stdout.write([
  'bench agents',
  `n=${n}`,
  `heartbeat_ms=${heartbeatIntervalMs}`,
  `connected=${connected}`,
  `disconnects=${disconnects}`,
  `all_connected_ms=${Math.round(allConnectedMs)}`,
  `connect_p50_ms=${Math.round(percentile(connect, 50))}`,
  `connect_p95_ms=${Math.round(percentile(connect, 95))}`,
  `connect_max_ms=${Math.round(connect[connect.length - 1] ?? 0)}`,
  `restart_all_connected_ms=${Math.round(reconnectMs)}`,
  `heartbeats_per_s=${Math.round(((beatsAfter - beatsBefore) / held) * 1000)}`,
  `hold_cpu_pct=${Math.round(((cpu.user + cpu.system) / 1000 / held) * 100)}`,
  `rss_mb=${mb(after.rss)}`,
  `rss_delta_mb=${mb(after.rss - baseline.rss)}`,
  `heap_delta_mb=${mb(after.heapUsed - baseline.heapUsed)}`,
].join(' ') + '\n');
