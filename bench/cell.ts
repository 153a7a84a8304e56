/**
 * N agents heartbeating against one cell (DESIGN §6; M10 target: 1,000 agents at 10 s under 15% of one core
 * in the cell's process). The cell runs in a process of its own, with what it writes to in production
 * (the parent's API server, here the sim) and the controller's consumer of agent events
 * (`cellIntegration(...).subscribe`, the queue feed); the agents run in other processes, each with a child
 * sim API server holding their bootstrap and identity Secrets. So the CPU and memory measured are the cell's.
 *
 * Lines (one JSON line each, bench/lib.ts `emit`):
 * - `hold-cpu`: the cell process's CPU (process.cpuUsage inside it) per window of one heartbeat interval, as
 *   % of one core; target < 15 for 1,000 agents at 10 s.
 * - `heartbeat-p99`: per window, the p99 of heartbeat handling (bytes reaching the decoder -> registry
 *   updated and listeners told; the cell's `lattice_cell_heartbeat_handling_seconds` observer).
 * - `rss`, `heap`: the cell process after the hold (after a GC).
 * - `all-connected`: from starting every agent (bootstrap: key, CSR, token exchange, identity Secret) to all
 *   connected; `reconnect-stored-identities`: new agents that load their stored identities, to all connected.
 *
 * Floor, in the same run: a bare @grpc/grpc-js server (same .proto, same mutual TLS, default options) whose
 * handler only decodes and drops, fed by as many raw streams sending the same heartbeat at the same rate
 * (phases spread over the interval). Its CPU, latency (decoder -> handler), memory and time to open every
 * stream are what gRPC and TLS cost by themselves.
 *
 * Run: npx tsx bench/cell.ts [--agents=1000] [--heartbeat-ms=10000] [--hold-ms=5 intervals] [--agent-procs=2]
 *      [--quick] [--cpu-prof=DIR (a .cpuprofile of the cell process during the hold)]
 * Every process it starts is stopped at the end, on failure, on a signal, and after a hard deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Client, credentials, Server, ServerCredentials, type ServerDuplexStream, type ServiceDefinition } from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { fleetBootstrapLimits, fleetNames, FLEET_HEALTH, prepareAgentSide, type AgentSide } from '../agent/testing.js';
import { cellIntegration } from '../controller/agents.js';
import { InMemoryTokenStore, issueBootstrapToken } from '../controller/cell/bootstrap.js';
import { startCell, type Cell } from '../controller/cell/cell.js';
import { cellMetrics } from '../controller/cell/metrics.js';
import { issueServingCertificate } from '../controller/cell/pki.js';
import { cellProtocol, MAX_MESSAGE_BYTES, openConnectStream, type AgentMessage } from '../controller/cell/protocol.js';
import { parentEndpoints } from '../controller/cell/secrets.js';
import { issueTestIdentity } from '../controller/cell/testing.js';
import { startSim } from '../sim/apiserver/testing.js';
import { args, emit, percentile, quick, repoRoot, round, summarize } from './lib.js';

const { flags } = args();
const num = (name: string, fallback: number): number => {
  const v = flags.get(name);
  return v === undefined ? fallback : Number(v);
};
const role = flags.get('role') ?? 'main';

// --- IPC between the processes ---------------------------------------------------------------------

interface Request { readonly id: number; readonly op: string; readonly args?: unknown }
interface Reply { readonly id: number; readonly ok: boolean; readonly value?: unknown; readonly error?: string }
type Handlers = Record<string, (args: never) => unknown>;

/** A worker process answers requests from the main process, and ends when the main process goes away. */
function serve(handlers: Handlers): void {
  process.on('message', (m: Request) => {
    const handler = handlers[m.op] as ((a: unknown) => unknown) | undefined;
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown op ${m.op}`);
        return handler(m.args);
      })
      .then(
        (value) => process.send?.({ id: m.id, ok: true, value } satisfies Reply),
        (e: unknown) => process.send?.({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) } satisfies Reply),
      );
  });
  process.on('disconnect', () => process.exit(1));
  process.send?.({ id: 0, ok: true, value: 'ready' } satisfies Reply);
}

/** A started worker: `call` sends one request and awaits its reply. */
class Worker {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;
  exited = false;

  constructor(readonly name: string, readonly child: ChildProcess) {
    this.ready = new Promise((resolve, reject) => {
      this.waiting.set(0, { resolve: () => resolve(), reject });
    });
    child.on('message', (r: Reply) => {
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if (r.ok) w.resolve(r.value);
      else w.reject(new Error(`${name}: ${r.error ?? 'failed'}`));
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`${name} exited (${code ?? signal ?? 'unknown'})`));
      this.waiting.clear();
    });
  }

  call<T>(op: string, callArgs?: unknown, timeoutMs = 60_000): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: ${op} took longer than ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, op, args: callArgs } satisfies Request);
    });
  }

  /** Asks the worker to close, then kills it if it has not exited within `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await this.call('close', undefined, graceMs).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}

const workers: Worker[] = [];
const script = fileURLToPath(import.meta.url);

function startWorker(name: string, workerRole: string, nodeFlags: readonly string[] = []): Worker {
  // process.execArgv carries tsx's loader; stdout is the main process's alone (the JSON lines).
  const child = spawn(process.execPath, [...process.execArgv, ...nodeFlags, script, `--role=${workerRole}`], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const w = new Worker(name, child);
  workers.push(w);
  return w;
}

function killAll(): void {
  for (const w of workers) if (!w.exited) w.child.kill('SIGKILL');
}

// --- Measurement windows, shared by the cell and the floor server -----------------------------------

/** What one window (between two `mark`s) cost in the measured process. */
interface WindowSample {
  readonly cpuPct: number;
  readonly cpuMs: number;
  readonly elapsedMs: number;
  readonly heartbeats: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

function windows(): { handled(ms: number): void; mark(): WindowSample } {
  let latencies: number[] = [];
  let cpu = process.cpuUsage();
  let at = performance.now();
  return {
    handled: (ms) => {
      latencies.push(ms);
    },
    mark() {
      const used = process.cpuUsage(cpu);
      const now = performance.now();
      const elapsedMs = now - at;
      const l = latencies;
      const sample: WindowSample = {
        cpuPct: ((used.user + used.system) / 1000 / elapsedMs) * 100,
        cpuMs: (used.user + used.system) / 1000,
        elapsedMs,
        heartbeats: l.length,
        p50Ms: percentile(l, 50),
        p99Ms: percentile(l, 99),
        maxMs: l.length ? Math.max(...l) : Number.NaN,
      };
      latencies = [];
      cpu = process.cpuUsage();
      at = performance.now();
      return sample;
    },
  };
}

interface Memory { readonly rssMb: number; readonly heapUsedMb: number; readonly heapTotalMb: number }

function memory(): Memory {
  // The worker runs with --expose-gc: figures after a full collection are steadier.
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  const mb = (b: number) => round(b / 1024 / 1024, 1);
  return { rssMb: mb(m.rss), heapUsedMb: mb(m.heapUsed), heapTotalMb: mb(m.heapTotal) };
}

interface FloorTls { readonly certificate: string; readonly privateKey: string; readonly clientCaBundle: string; readonly caBundle: string; readonly client: { privateKey: string; certificate: string } }

// --- The cell's process ---------------------------------------------------------------------------

async function cellRole(): Promise<void> {
  const parent = await startSim({ namespaces: ['default', 'lattice-system'] });
  const tokens = new InMemoryTokenStore();
  const win = windows();
  const metrics = cellMetrics(new Registry());
  let cell: Cell | undefined;
  let connected = 0;
  let enqueued = 0;
  let profiler: Session | undefined;
  serve({
    async setup(a: { agents: number; heartbeatMs: number }) {
      cell = await startCell({
        core: parent.core, hosts: ['127.0.0.1'], tokens, grpcPort: 0, bootstrapPort: 0, proxyPort: 0, bindHost: '127.0.0.1',
        log: pino({ level: 'silent' }),
        heartbeatIntervalMs: a.heartbeatMs,
        bootstrapLimits: fleetBootstrapLimits(a.agents),
        // The controller's histogram, plus the raw figures for this benchmark's percentiles.
        observer: {
          heartbeatHandled: (seconds) => {
            metrics.heartbeatHandled(seconds);
            win.handled(seconds * 1000);
          },
        },
      });
      // The controller's consumer of agent events, as in `lattice controller` (its callback feeds the work queue).
      cellIntegration(cell, { host: '127.0.0.1', tokens }).subscribe(() => {
        enqueued += 1;
      });
      cell.agents.subscribe((e) => {
        if (e.type === 'connected' && !e.replaced) connected += 1;
        else if (e.type === 'disconnected') connected -= 1;
      });
      const issued: [string, string][] = [];
      for (const name of fleetNames(a.agents)) issued.push([name, (await issueBootstrapToken(tokens, name, { now: new Date() })).token]);
      return { endpoints: parentEndpoints('127.0.0.1', { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort }), caBundle: cell.ca.trustBundle, tokens: issued };
    },
    // --cpu-prof: the hold alone, not the bootstrap before it.
    async profileStart() {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    },
    async profileStop(a: { dir: string }) {
      if (!profiler) return '';
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      const file = join(a.dir, `cell-hold-${process.pid}.cpuprofile`);
      await writeFile(file, JSON.stringify(profile));
      return file;
    },
    mark: () => {
      const woken = enqueued;
      enqueued = 0;
      return { ...win.mark(), connected, enqueued: woken };
    },
    memory,
    async floorTls(): Promise<FloorTls> {
      if (!cell) throw new Error('no cell');
      const serving = await issueServingCertificate({ ca: cell.ca.signer, hosts: ['127.0.0.1'], now: new Date() });
      const client = await issueTestIdentity(cell.ca.signer, 'floor');
      return { certificate: serving.certificate, privateKey: serving.privateKey, clientCaBundle: cell.ca.clientCaBundle, caBundle: cell.ca.trustBundle, client };
    },
    async close() {
      await cell?.close();
      await parent.server.close();
      setImmediate(() => process.exit(0));
    },
  });
}

// --- An agents' process ---------------------------------------------------------------------------

async function agentsRole(): Promise<void> {
  let side: AgentSide | undefined;
  serve({
    async prepare(a: { first: number; count: number; heartbeatMs: number; endpoints: { bootstrapUrl: string; cellEndpoint: string }; caBundle: string; tokens: [string, string][] }) {
      side = await prepareAgentSide({ names: fleetNames(a.count, a.first), heartbeatIntervalMs: a.heartbeatMs, endpoints: a.endpoints, caBundle: a.caBundle, tokens: new Map(a.tokens) });
    },
    async start(a: { timeoutMs: number }) {
      if (!side) throw new Error('not prepared');
      await side.start(a.timeoutMs);
      return [...side.connectMs.values()];
    },
    restart: (a: { timeoutMs: number }) => {
      if (!side) throw new Error('not prepared');
      return side.restart(a.timeoutMs);
    },
    async close() {
      await side?.close();
      setImmediate(() => process.exit(0));
    },
  });
}

// --- The floor: a bare gRPC server and raw streams -------------------------------------------------

async function floorServerRole(): Promise<void> {
  const win = windows();
  const arrivals = new WeakMap<object, number>();
  let server: Server | undefined;
  let streams = 0;
  const service = cellProtocol().service;
  const connect = service.Connect;
  if (!connect) throw new Error('no Connect');
  const decode = connect.requestDeserialize;
  // The same arrival stamp as the cell's: before decoding.
  const timed: ServiceDefinition = {
    ...service,
    Connect: {
      ...connect,
      requestDeserialize: (bytes: Buffer) => {
        const at = performance.now();
        const m: unknown = decode(bytes);
        if (typeof m === 'object' && m !== null) arrivals.set(m, at);
        return m;
      },
    },
  };
  serve({
    async listen(tls: FloorTls) {
      server = new Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
      server.addService(timed, {
        Connect: (call: ServerDuplexStream<object, unknown>) => {
          streams += 1;
          call.on('data', (m: object) => {
            const at = arrivals.get(m);
            if (at !== undefined) win.handled(performance.now() - at);
          });
          call.on('error', () => undefined);
          call.on('end', () => call.end());
        },
      });
      const creds = ServerCredentials.createSsl(Buffer.from(tls.clientCaBundle), [{ cert_chain: Buffer.from(tls.certificate), private_key: Buffer.from(tls.privateKey) }], true);
      return new Promise<number>((resolve, reject) => server?.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
    },
    streams: () => streams,
    mark: () => win.mark(),
    memory,
    close() {
      server?.forceShutdown();
      setImmediate(() => process.exit(0));
    },
  });
}

async function floorClientsRole(): Promise<void> {
  const clients: Client[] = [];
  const timers: NodeJS.Timeout[] = [];
  serve({
    open(a: { endpoint: string; tls: FloorTls; count: number; heartbeatMs: number }) {
      const creds = credentials.createSsl(Buffer.from(a.tls.caBundle), Buffer.from(a.tls.client.privateKey), Buffer.from(a.tls.client.certificate));
      for (let i = 0; i < a.count; i++) {
        // One connection per stream, as N agents have (they share no credentials, so no subchannel).
        const client = new Client(a.endpoint, creds, { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
        clients.push(client);
        const call = openConnectStream(client);
        call.on('error', () => undefined);
        call.on('data', () => undefined);
        let sequence = 0;
        // The agent's heartbeat, as agent/stream.ts writes it for the fleet's health and an empty pivot record.
        const beat = () => {
          sequence += 1;
          const message: AgentMessage = { heartbeat: { sentAtUnixMs: Date.now(), sequence, health: FLEET_HEALTH, selfManagement: { pivotComplete: false, moveId: '', appliedGeneration: 0 } } };
          call.write(message);
        };
        beat();
        // Phases spread over the interval, as agents that connected at different moments.
        timers.push(setTimeout(() => {
          beat();
          timers.push(setInterval(beat, a.heartbeatMs));
        }, Math.random() * a.heartbeatMs));
      }
    },
    close() {
      for (const t of timers) clearTimeout(t);
      for (const c of clients) c.close();
      setImmediate(() => process.exit(0));
    },
  });
}

// --- The run ----------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const since = performance.now();
  while (!(await check())) {
    if (performance.now() - since > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
  return performance.now() - since;
}

async function main(): Promise<void> {
  const agents = num('agents', quick ? 100 : 1000);
  const heartbeatMs = num('heartbeat-ms', 10_000);
  const holdMs = num('hold-ms', (quick ? 2 : 5) * heartbeatMs);
  const agentProcs = Math.max(1, Math.min(agents, num('agent-procs', quick ? 1 : 2)));
  const count = Math.max(1, Math.round(holdMs / heartbeatMs));
  const windowMs = holdMs / count;
  const cpuProf = flags.get('cpu-prof');
  const params = { agents, heartbeatMs, holdMs, agentProcs };
  const connectTimeoutMs = 30_000 + agents * 100;
  const log = (msg: string) => process.stderr.write(`bench cell: ${msg}\n`);

  // The cell.
  const cell = startWorker('cell', 'cell', ['--expose-gc']);
  await cell.ready;
  const setup = await cell.call<{ endpoints: { bootstrapUrl: string; cellEndpoint: string }; caBundle: string; tokens: [string, string][] }>('setup', { agents, heartbeatMs });
  const cellIdle = await cell.call<Memory>('memory');

  // The agents, split over their processes.
  const per = Math.ceil(agents / agentProcs);
  const fleets: Worker[] = [];
  for (let p = 0; p * per < agents; p++) {
    const w = startWorker(`agents-${p}`, 'agents');
    fleets.push(w);
    const first = p * per;
    const n = Math.min(per, agents - first);
    await w.ready;
    await w.call('prepare', { first, count: n, heartbeatMs, endpoints: setup.endpoints, caBundle: setup.caBundle, tokens: setup.tokens.slice(first, first + n) }, 120_000);
  }
  log(`${agents} agents in ${fleets.length} processes prepared; starting`);
  await cell.call('mark');
  const startedAt = performance.now();
  const connectMs = (await Promise.all(fleets.map((w) => w.call<number[]>('start', { timeoutMs: connectTimeoutMs }, connectTimeoutMs + 5000)))).flat();
  const allConnectedMs = performance.now() - startedAt;
  const bootstrapCell = await cell.call<WindowSample>('mark');
  log(`all connected in ${Math.round(allConnectedMs)} ms; holding ${count} x ${windowMs} ms`);

  // The hold: one window per heartbeat interval, after a short settle for the bootstrap's leftovers.
  await sleep(Math.min(2000, windowMs / 2));
  if (cpuProf) await cell.call('profileStart');
  await cell.call('mark');
  const held: (WindowSample & { connected: number; enqueued: number })[] = [];
  for (let i = 0; i < count; i++) {
    await sleep(windowMs);
    held.push(await cell.call('mark'));
  }
  if (cpuProf) log(`cell profile of the hold: ${await cell.call<string>('profileStop', { dir: cpuProf })}`);
  const cellMem = await cell.call<Memory>('memory');
  log(`cell hold: ${held.map((s) => `${round(s.cpuPct, 1)}%`).join(' ')}`);

  await cell.call('mark');
  const reconnectMs = Math.max(...(await Promise.all(fleets.map((w) => w.call<number>('restart', { timeoutMs: connectTimeoutMs }, connectTimeoutMs + 20_000)))));
  const reconnectCell = await cell.call<WindowSample>('mark');
  log(`reconnected with stored identities in ${Math.round(reconnectMs)} ms`);
  const tls = await cell.call<FloorTls>('floorTls');
  await Promise.all(fleets.map((w) => w.stop()));
  await cell.stop();

  // The floor: the same streams and rate into a bare server.
  const floor = startWorker('floor-server', 'floor-server', ['--expose-gc']);
  await floor.ready;
  const floorIdle = await floor.call<Memory>('memory');
  const port = await floor.call<number>('listen', tls);
  const feeders: Worker[] = [];
  for (let p = 0; p * per < agents; p++) feeders.push(startWorker(`floor-clients-${p}`, 'floor-clients'));
  await Promise.all(feeders.map((w) => w.ready));
  const floorStartedAt = performance.now();
  await Promise.all(feeders.map((w, p) => w.call('open', { endpoint: `127.0.0.1:${port}`, tls, count: Math.min(per, agents - p * per), heartbeatMs })));
  await waitFor('floor streams', async () => (await floor.call<number>('streams')) >= agents, connectTimeoutMs);
  const floorConnectMs = performance.now() - floorStartedAt;
  await sleep(Math.min(2000, windowMs / 2));
  await floor.call('mark');
  const floorHeld: WindowSample[] = [];
  for (let i = 0; i < count; i++) {
    await sleep(windowMs);
    floorHeld.push(await floor.call('mark'));
  }
  const floorMem = await floor.call<Memory>('memory');
  log(`floor hold: ${floorHeld.map((s) => `${round(s.cpuPct, 1)}%`).join(' ')}`);
  await Promise.all(feeders.map((w) => w.stop()));
  await floor.stop();

  const beatsPerS = (s: readonly WindowSample[]) => round(summarize(s.map((w) => (w.heartbeats / w.elapsedMs) * 1000)).median, 1);
  const floorName = 'bare grpc-js server, same mTLS streams and heartbeats, decode and drop';
  emit({
    bench: 'cell', name: 'hold-cpu', params, unit: '% of one core',
    samples: held.map((s) => s.cpuPct),
    floor: { name: floorName, samples: floorHeld.map((s) => s.cpuPct) },
    ...(agents === 1000 && heartbeatMs === 10_000 ? { target: { max: 15 } } : {}),
    extra: {
      windowMs, heartbeatsPerS: beatsPerS(held), floorHeartbeatsPerS: beatsPerS(floorHeld),
      connectedAtEnd: held.at(-1)?.connected ?? 0,
      // Wake-ups of the controller's work queue during the hold: heartbeats that changed nothing must cause none.
      queueWakeups: held.reduce((n, s) => n + s.enqueued, 0),
    },
  });
  emit({
    bench: 'cell', name: 'heartbeat-p99', params, unit: 'ms',
    samples: held.map((s) => s.p99Ms),
    floor: { name: `${floorName} (decoder to handler)`, samples: floorHeld.map((s) => s.p99Ms) },
    extra: {
      p50Ms: round(summarize(held.map((s) => s.p50Ms)).median, 3), maxMs: round(Math.max(...held.map((s) => s.maxMs)), 2),
      heartbeats: held.reduce((n, s) => n + s.heartbeats, 0), floorP50Ms: round(summarize(floorHeld.map((s) => s.p50Ms)).median, 3),
    },
  });
  emit({
    bench: 'cell', name: 'rss', params, unit: 'MB', samples: [cellMem.rssMb],
    floor: { name: floorName, samples: [floorMem.rssMb] },
    extra: { idleRssMb: cellIdle.rssMb, floorIdleRssMb: floorIdle.rssMb, note: 'cell process includes the parent sim API server' },
  });
  emit({
    bench: 'cell', name: 'heap', params, unit: 'MB', samples: [cellMem.heapUsedMb],
    floor: { name: floorName, samples: [floorMem.heapUsedMb] },
    extra: { idleHeapUsedMb: cellIdle.heapUsedMb, heapTotalMb: cellMem.heapTotalMb, floorIdleHeapUsedMb: floorIdle.heapUsedMb },
  });
  const floorConnect = { name: 'bare grpc-js server: every mTLS stream opened from raw clients (no bootstrap, no Hello)', samples: [floorConnectMs] };
  emit({
    bench: 'cell', name: 'all-connected', params, unit: 'ms', samples: [allConnectedMs], floor: floorConnect,
    extra: {
      connectP50Ms: round(percentile(connectMs, 50)), connectP95Ms: round(percentile(connectMs, 95)), connectMaxMs: round(Math.max(...connectMs)),
      // The cell's share of the bootstrap: signing N CSRs, N token exchanges, N handshakes.
      cellCpuMs: round(bootstrapCell.cpuMs), cellCpuPct: round(bootstrapCell.cpuPct, 1),
    },
  });
  emit({
    bench: 'cell', name: 'reconnect-stored-identities', params, unit: 'ms', samples: [reconnectMs], floor: floorConnect,
    // Stopping the old agents (their streams closed) and connecting the new ones.
    extra: { cellCpuMs: round(reconnectCell.cpuMs), cellCpuPct: round(reconnectCell.cpuPct, 1) },
  });
}

async function run(): Promise<void> {
  switch (role) {
    case 'cell': return cellRole();
    case 'agents': return agentsRole();
    case 'floor-server': return floorServerRole();
    case 'floor-clients': return floorClientsRole();
    default: break;
  }
  const deadlineMs = num('deadline-ms', 360_000);
  const deadline = setTimeout(() => {
    process.stderr.write(`bench cell: gave up after ${deadlineMs} ms\n`);
    killAll();
    process.exit(2);
  }, deadlineMs);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
  process.on('exit', killAll);
  try {
    await main();
  } catch (e) {
    process.stderr.write(`bench cell: failed: ${e instanceof Error ? e.message : String(e)}\n`);
    killAll();
    process.exitCode = 1;
  } finally {
    clearTimeout(deadline);
    await Promise.all(workers.map((w) => w.stop(5000).catch(() => undefined)));
  }
}

await run();
