/**
 * The Flux sidecar (M10): how long a commit takes to reach its ExternalArtifact, and how fast the sidecar
 * serves an artifact compared with a static file server serving the same bytes.
 *
 * Run: npx tsx bench/sidecar.ts [--quick] [--clusters=1000] [--runs=5] [--skip-get]
 *
 * Two lines (bench/lib.ts):
 *  - `commit-to-artifact`: a real git repository of N generated cluster specs (the examples renamed, all
 *    providers mixed), the real sidecar (startSidecar: git source, render, store, HTTP, ExternalArtifact
 *    writer behind its Lease) publishing into a sim API server. After the initial render settles, each run
 *    commits a change to ONE cluster (its first worker pool's replicas) and times from the moment the
 *    commit exists, through the authenticated push webhook (`POST /hooks/git`, what a git server sends),
 *    the fetch, the render and the status write, to that cluster's ExternalArtifact showing the new digest
 *    on a watch of the API server. Floor, measured on the same commit: the git work no design avoids
 *    (shallow fetch, rev-parse, checkout of the tree into a scratch clone) plus one status write of a
 *    scratch ExternalArtifact seen on the same watch.
 *  - `artifact-get`: wrk (one thread, C connections, D seconds per run, keep-alive) against one cluster
 *    artifact of the sidecar vs the same bytes from nginx (one worker process, as the sidecar is one
 *    process; sendfile, access log off) or, when nginx cannot be installed, node's own static serving.
 *    Runs alternate between the two so both see the same machine noise. wrk and nginx come from Debian
 *    packages, installed here when missing and running as root.
 *
 * Everything started here (sim, sidecar, nginx) is stopped at the end, on failure too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Watch } from '@kubernetes/client-node';
import { pino } from 'pino';
import { simpleGit } from 'simple-git';
import { specRenderer } from '../cli/load.js';
import { clusterArtifactName } from '../core/flavor/flux.js';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { parseSidecarConfig } from '../sidecar/config.js';
import { startSidecar, type SidecarHandle } from '../sidecar/runtime.js';
import { createSpecRepo, freePort } from '../sidecar/testing.js';
import { args, emit, percentile, quick, repoRoot, round, summarize } from './lib.js';

const flags = args().flags;
const CLUSTERS = Number(flags.get('clusters') ?? (quick ? 100 : 1000));
const RUNS = Number(flags.get('runs') ?? (quick ? 2 : 5));
const WRK_RUNS = quick ? 1 : 3;
const WRK_SECONDS = quick ? 2 : 5;
const CONNECTIONS = 128;
/** Longest wait for one run's artifact, and for the initial render; a stuck sidecar fails the bench. */
const RUN_TIMEOUT_MS = 30_000;
const INITIAL_TIMEOUT_MS = 120_000;
const NS = 'flux-system';
const GROUP = { group: 'source.toolkit.fluxcd.io', version: 'v1', namespace: NS, plural: 'externalartifacts' };
const TOKEN = 'bench-hook-token-0123456789abcdef';

// Objects read from the API server are inspected field by field.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const cleanups: (() => Promise<void> | void)[] = [];
const log = (msg: string) => process.stderr.write(`bench sidecar: ${msg}\n`);
const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;

/** N specs from the examples, renamed (as bench/cmp-generate.ts does), plus the InfraProviders. */
function generatedSpecs(count: number): Record<string, string> {
  const examples = join(repoRoot, 'examples', 'clusters');
  const templates = readdirSync(examples).filter((f) => f.endsWith('.yaml') && f !== 'infraproviders.yaml').sort().map((f) => readFileSync(join(examples, f), 'utf8'));
  const files: Record<string, string> = { 'clusters/infraproviders.yaml': readFileSync(join(examples, 'infraproviders.yaml'), 'utf8') };
  for (let i = 0; i < count; i++) files[`clusters/c${i}.yaml`] = (templates[i % templates.length] ?? '').replace(/^ {2}name: .*$/m, `  name: ${clusterName(i)}`);
  return files;
}
const clusterName = (i: number) => `c${String(i).padStart(4, '0')}`;

/** The spec with its first worker pool's replicas changed (the second `replicas:` of every example). */
function scaled(spec: string, run: number): string {
  let seen = 0;
  return spec.replace(/replicas: (\d+)/g, (all, n: string) => (++seen === 2 ? `replicas: ${Number(n) === 4 + (run % 3) ? 7 : 4 + (run % 3)}` : all));
}

/** A watch of the ExternalArtifacts that resolves waiters when an object's digest matches. */
class ArtifactWatch {
  private readonly digests = new Map<string, string>();
  private waiters: { name: string; test: (digest: string) => boolean; resolve: () => void }[] = [];
  private request?: { abort(): void };
  private stopped = false;
  restarts = 0;

  constructor(private readonly sim: SimClients) {}

  async start(): Promise<void> {
    const req = await new Watch(this.sim.kc).watch(`/apis/${GROUP.group}/${GROUP.version}/namespaces/${NS}/${GROUP.plural}`, {}, (_type: string, obj: Obj) => {
      const digest = String(obj.status?.artifact?.digest ?? '');
      const name = String(obj.metadata?.name);
      this.digests.set(name, digest);
      this.waiters = this.waiters.filter((w) => (w.name === name && w.test(digest) ? (w.resolve(), false) : true));
    }, () => {
      // The watch ended (server timeout): start another, so no event is missed for long.
      if (this.stopped) return;
      this.restarts++;
      void this.start();
    });
    this.request = req;
  }

  digest(name: string): string | undefined {
    return this.digests.get(name);
  }

  /** Resolves when `name` has a digest passing `test` (now or later); rejects after `timeoutMs`. */
  until(name: string, test: (digest: string) => boolean, timeoutMs: number): Promise<void> {
    const now = this.digests.get(name);
    if (now !== undefined && test(now)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no matching digest within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ name, test, resolve: () => { clearTimeout(timer); resolve(); } });
    });
  }

  stop(): void {
    this.stopped = true;
    this.request?.abort();
  }
}

/** Installs Debian packages when a tool is missing and we may (root); false when it stays missing. */
let aptUpdated = false;
function ensureTool(binary: string, pkg: string): boolean {
  const found = () => spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
  if (found()) return true;
  if (process.getuid?.() !== 0) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    log(`installing ${pkg} (apt-get update)`);
    spawnSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: 120_000 });
    aptUpdated = true;
  }
  spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: 'ignore', env, timeout: 180_000 });
  return found();
}

interface WrkResult {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly errors: number;
}

const toMs = (v: string, unit: string) => Number(v) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 1);

async function wrk(url: string, seconds: number): Promise<WrkResult> {
  const child = spawn('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (code !== 0 || !rps?.[1]) throw new Error(`wrk failed (${code}): ${out.slice(0, 500)}`);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m?.[1] && m[2] ? round(toMs(m[1], m[2]), 3) : Number.NaN;
  };
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((a, n) => a + Number(n), 0) : 0;
  return {
    rps: Number(rps[1]), p50Ms: pct('50'), p99Ms: pct('99'),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0), errors: Number(non2xx?.[1] ?? 0) + socketErrors,
  };
}

async function waitFor200(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** nginx on a loopback port serving `root`, from a temporary prefix; undefined when nginx is unavailable. */
async function startNginx(root: string, dir: string): Promise<{ url: string; child: ChildProcess } | undefined> {
  if (!ensureTool('nginx', 'nginx')) return undefined;
  const port = await freePort();
  for (const d of ['logs', 'tmp']) mkdirSync(join(dir, d), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${join(dir, 'tmp', t)};`).join(' ');
  // One worker: the sidecar is one process too. Keep-alive as long as node keeps it (no request limit).
  writeFileSync(conf, `worker_processes 1;
error_log ${join(dir, 'logs', 'error.log')} warn;
pid ${join(dir, 'nginx.pid')};
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  ${temp}
  types { application/gzip gz; }
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location /artifacts/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
  }
}
`);
  const check = spawnSync('nginx', ['-t', '-q', '-p', dir, '-c', conf], { encoding: 'utf8' });
  if (check.status !== 0) {
    log(`nginx config refused: ${check.stderr.trim().split('\n')[0] ?? ''}`);
    return undefined;
  }
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: 'ignore' });
  cleanups.push(async () => {
    if (child.exitCode !== null) return;
    const closed = new Promise((r) => child.once('close', r));
    child.kill('SIGTERM');
    await closed;
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

/** Node's own static serving of one cached file: the floor when nginx cannot be had. */
async function startNodeStatic(path: string, bytes: Buffer): Promise<string> {
  const etag = `"sha256:${createHash('sha256').update(bytes).digest('hex')}"`;
  const server: Server = createServer((req, res) => {
    if (req.url !== path) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/gzip', 'Content-Length': bytes.length, ETag: etag, 'Cache-Control': 'public, max-age=31536000, immutable' });
    res.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * `--profile=PREFIX`: a CPU profile of one phase (PREFIX-commits.cpuprofile, PREFIX-get.cpuprofile) of this
 * process, where the sidecar runs; the initial render is left out, it would drown the rest.
 */
async function profile(phase: string): Promise<() => Promise<void>> {
  const prefix = flags.get('profile');
  if (!prefix) return async () => undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile: data } = await session.post('Profiler.stop');
    writeFileSync(`${prefix}-${phase}.cpuprofile`, JSON.stringify(data));
    session.disconnect();
  };
}

/** The sidecar's own log lines about each commit, read back for the breakdown in `extra`. */
const sidecarLog: Obj[] = [];
function logCapture() {
  const lines = sidecarLog;
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Obj) });
  return { logger, lines };
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'lattice-bench-sidecar-'));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));

  // GIVEN a repository of N clusters, a sim API server and the sidecar following the repository
  const repo = await createSpecRepo(join(tmp, 'repo'));
  const specs = generatedSpecs(CLUSTERS);
  await repo.commit(specs, `${CLUSTERS} clusters`);
  const sim = await startSim({ crds: [join(repoRoot, '..', 'shared', 'upstream-crds', 'flux')], namespaces: ['default', NS] });
  cleanups.push(() => sim.server.close());
  const kubeconfig = join(tmp, 'kubeconfig');
  writeFileSync(kubeconfig, sim.server.kubeconfigYaml());
  writeFileSync(join(tmp, 'hook-token'), `${TOKEN}\n`);
  const port = await freePort();
  const renderer = specRenderer();
  const config = parseSidecarConfig({
    gitUrl: repo.url, path: 'clusters', storageDir: join(tmp, 'data'), cacheDir: join(tmp, 'cache'), listen: `127.0.0.1:${port}`,
    advertiseUrl: `http://127.0.0.1:${port}`, namespace: NS, kubeconfig, pollInterval: '1h', identity: 'bench', hookTokenFile: join(tmp, 'hook-token'),
  }, renderer.versions.addons, { env: {}, hostname: 'bench', readable: () => true, readFile: (p) => readFileSync(p, 'utf8') });
  if (!config.ok) throw new Error(config.errors.join('; '));
  const watch = new ArtifactWatch(sim);
  cleanups.push(() => watch.stop());
  await watch.start();

  const capture = logCapture();
  const startedAt = process.hrtime.bigint();
  const sidecar: SidecarHandle = await startSidecar(config.value, { log: capture.logger, processMetrics: false });
  cleanups.push(() => sidecar.stop());
  await Promise.all(Array.from({ length: CLUSTERS }, (_, i) => watch.until(clusterArtifactName(clusterName(i)), (d) => d !== '', INITIAL_TIMEOUT_MS)));
  const initialMs = ms(startedAt);
  log(`initial render of ${CLUSTERS} clusters published in ${Math.round(initialMs)} ms`);

  // The floor's scratch clone and ExternalArtifact.
  const scratch = join(tmp, 'scratch');
  mkdirSync(scratch);
  const git = simpleGit({ baseDir: scratch });
  await git.init();
  await sim.custom.createNamespacedCustomObject({ ...GROUP, body: { apiVersion: `${GROUP.group}/${GROUP.version}`, kind: 'ExternalArtifact', metadata: { name: 'bench-floor', namespace: NS }, spec: {} } });

  const stopProfile = await profile('commits');

  // WHEN one cluster changes per commit
  const samples: number[] = [];
  const floors: number[] = [];
  const phases: Record<string, number[]> = {};
  let incrementalMisses = 0;
  const changedCounts: number[] = [];
  const statusWrites: number[] = [];
  for (let run = -1; run < RUNS; run++) {
    const i = ((run + 2) * 137) % CLUSTERS;
    const name = clusterArtifactName(clusterName(i));
    const before = watch.digest(name);
    const path = `clusters/c${i}.yaml`;
    specs[path] = scaled(specs[path] ?? '', run);
    const mark = capture.lines.length;
    await repo.commit({ [path]: specs[path] ?? '' }, `scale ${clusterName(i)}`);
    const t0 = process.hrtime.bigint();
    const hook = await fetch(`${sidecar.url}/hooks/git`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
    if (hook.status !== 202) throw new Error(`hook answered ${hook.status}`);
    await watch.until(name, (d) => d !== before && d !== '', RUN_TIMEOUT_MS);
    const sample = ms(t0);

    // The floor on the same commit: fetch, rev-parse and check out the tree, write one status, see it.
    const f0 = process.hrtime.bigint();
    await git.fetch(['--no-tags', '--depth=1', repo.url, '+refs/heads/main:refs/remotes/origin/main']);
    const commit = (await git.revparse(['refs/remotes/origin/main^{commit}'])).trim();
    await git.checkout(['--force', '--detach', commit]);
    const digest = `sha256:${createHash('sha256').update(commit).digest('hex')}`;
    const current = (await sim.custom.getNamespacedCustomObject({ ...GROUP, name: 'bench-floor' })) as Obj;
    await sim.custom.replaceNamespacedCustomObjectStatus({ ...GROUP, name: 'bench-floor', body: { ...current, status: { artifact: { digest, url: 'http://floor/', path: 'floor', revision: `main@${digest}`, lastUpdateTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') } } } });
    await watch.until('bench-floor', (d) => d === digest, RUN_TIMEOUT_MS);
    const floor = ms(f0);

    // The sidecar's own account of the cycle (it logs after its status write returns, so wait for it).
    const line = (msg: string) => capture.lines.slice(mark).find((l) => l.msg === msg && (msg !== 'cycle finished' || l.built === true));
    for (const until = Date.now() + 5000; !line('cycle finished') && Date.now() < until;) await new Promise((r) => setTimeout(r, 5));
    const rendered = line('commit rendered');
    const written = line('external artifacts written');
    const cycle = line('cycle finished');
    log(`run ${run}: ${clusterName(i)} ${Math.round(sample)} ms (floor ${Math.round(floor)} ms; sidecar sync ${cycle?.syncMs} ms, build ${cycle?.buildMs} ms, publish ${cycle?.publishMs} ms; ${rendered?.validation} validation, rendered ${rendered?.renderedClusters}, changed ${JSON.stringify(rendered?.changed ?? [])})`);
    if (run < 0) continue; // warm-up: the first incremental commit after start
    samples.push(sample);
    floors.push(floor);
    for (const [k, v] of Object.entries({ sync: cycle?.syncMs, build: cycle?.buildMs, publish: cycle?.publishMs })) (phases[k] ??= []).push(Number(v ?? Number.NaN));
    changedCounts.push((rendered?.changed as unknown[] | undefined)?.length ?? Number.NaN);
    statusWrites.push(Number(written?.statusWrites ?? Number.NaN));
    if (rendered?.validation !== 'incremental') incrementalMisses++;
  }
  await stopProfile();
  emit({
    bench: 'sidecar', name: 'commit-to-artifact', params: { clusters: CLUSTERS, changed: 1 }, unit: 'ms', samples,
    floor: { name: 'git fetch+rev-parse+checkout into a scratch clone, one status write, seen on the watch', samples: floors },
    target: { max: 500 },
    extra: {
      interval: 'git commit created -> POST /hooks/git (authenticated push webhook) -> fetch, render, store, ExternalArtifact status write -> the new digest seen on a watch of the API server',
      setup: 'file:// repository; sidecar, sim API server and watch in this one process',
      initial_full_render_ms: Math.round(initialMs),
      sidecar_sync_ms_median: summarize(phases.sync ?? []).median,
      sidecar_build_ms_median: summarize(phases.build ?? []).median,
      sidecar_publish_ms_median: summarize(phases.publish ?? []).median,
      full_validations: incrementalMisses,
      changed_artifacts_median: summarize(changedCounts).median,
      status_writes_median: summarize(statusWrites).median,
      watch_restarts: watch.restarts,
    },
  });

  // THEN the artifact is served: the sidecar vs a static server with the same bytes
  const target = clusterArtifactName(clusterName(1));
  const ea = (await sim.custom.getNamespacedCustomObject({ ...GROUP, name: target })) as Obj;
  const artifactUrl = String(ea.status.artifact.url);
  const path = new URL(artifactUrl).pathname;
  const bytes = Buffer.from(await (await fetch(artifactUrl)).arrayBuffer());
  const www = join(tmp, 'www');
  mkdirSync(join(www, ...path.split('/').slice(1, -1)), { recursive: true });
  writeFileSync(join(www, ...path.split('/').slice(1)), bytes);
  // nginx's workers run as nobody: the served tree must be readable by others.
  for (let p = join(www, ...path.split('/').slice(1, -1)); p.startsWith(tmp); p = join(p, '..')) chmodSync(p, 0o755);
  chmodSync(join(www, ...path.split('/').slice(1)), 0o644);

  if (flags.has('skip-get')) return;
  if (!ensureTool('wrk', 'wrk')) {
    log('wrk is not installed and cannot be installed: no throughput measurement');
    return;
  }
  const nginx = await startNginx(www, join(tmp, 'nginx'));
  const floorName = nginx ? 'nginx' : 'node-static';
  // Node's own static serving of a cached buffer, in this process (where the sidecar runs): what node can
  // do at best here. The floor when nginx is missing; otherwise a further comparison.
  const nodeUrl = `${await startNodeStatic(path, bytes)}${path}`;
  const floorUrl = nginx ? `${nginx.url}${path}` : nodeUrl;
  for (const u of [floorUrl, nodeUrl]) {
    await waitFor200(u, 10_000);
    if (!Buffer.from(await (await fetch(u)).arrayBuffer()).equals(bytes)) throw new Error(`${u} does not serve the same bytes`);
  }

  // A short unmeasured run of each first (JIT, connection set-up).
  for (const u of new Set([artifactUrl, floorUrl, nodeUrl])) await wrk(u, 1);
  const stopGetProfile = await profile('get');
  const ours: WrkResult[] = [];
  const theirs: WrkResult[] = [];
  const nodes: WrkResult[] = [];
  for (let run = 0; run < WRK_RUNS; run++) {
    // Interleaved, so a burst of load from elsewhere on the machine hits all of them alike.
    ours.push(await wrk(artifactUrl, WRK_SECONDS));
    theirs.push(await wrk(floorUrl, WRK_SECONDS));
    if (nginx) nodes.push(await wrk(nodeUrl, WRK_SECONDS));
    log(`get run ${run}: sidecar ${Math.round(ours[run]?.rps ?? 0)} req/s, ${floorName} ${Math.round(theirs[run]?.rps ?? 0)} req/s${nginx ? `, node-static ${Math.round(nodes[run]?.rps ?? 0)} req/s` : ''}`);
  }
  await stopGetProfile();
  const floorMedian = summarize(theirs.map((r) => r.rps)).median;
  emit({
    bench: 'sidecar', name: 'artifact-get', params: { connections: CONNECTIONS, seconds: WRK_SECONDS, bytes: bytes.length, loadgen: 'wrk -t1' }, unit: 'req/s',
    samples: ours.map((r) => r.rps),
    floor: { name: nginx ? 'nginx (1 worker, sendfile)' : 'node-static (cached buffer)', samples: theirs.map((r) => r.rps) },
    target: { min: round(floorMedian / 2) },
    extra: {
      floor_kind: floorName,
      p99_ms_median: summarize(ours.map((r) => r.p99Ms)).median,
      p50_ms_median: summarize(ours.map((r) => r.p50Ms)).median,
      floor_p99_ms_median: summarize(theirs.map((r) => r.p99Ms)).median,
      floor_p50_ms_median: summarize(theirs.map((r) => r.p50Ms)).median,
      p99_ms_worst: percentile(ours.map((r) => r.p99Ms), 100),
      ...(nginx ? {
        node_static_rps_median: round(summarize(nodes.map((r) => r.rps)).median),
        ratio_to_node_static: round(summarize(ours.map((r) => r.rps)).median / summarize(nodes.map((r) => r.rps)).median, 2),
        node_static_p99_ms_median: summarize(nodes.map((r) => r.p99Ms)).median,
      } : {}),
      errors: ours.reduce((a, r) => a + r.errors, 0),
      floor_errors: theirs.reduce((a, r) => a + r.errors, 0),
    },
  });
}

async function cleanup(): Promise<void> {
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch (e) {
      log(`cleanup failed: ${(e as Error).message}`);
    }
  }
  cleanups.length = 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanup().finally(() => process.exit(130)));
}
// Bounded: a hung run ends the script rather than the machine's patience.
const deadline = setTimeout(() => {
  log('took longer than 10 minutes: giving up');
  void cleanup().finally(() => process.exit(1));
}, 600_000);
deadline.unref();

let failed = false;
try {
  if (!existsSync(join(repoRoot, '..', 'shared', 'upstream-crds', 'flux'))) throw new Error('the Flux CRDs (../shared/upstream-crds/flux) are missing');
  await main();
} catch (e) {
  failed = true;
  log(`failed: ${(e as Error).stack ?? String(e)}`);
  for (const l of sidecarLog.filter((x) => Number(x.level) >= 40).slice(-5)) log(`sidecar said: ${JSON.stringify(l).slice(0, 1000)}`);
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
