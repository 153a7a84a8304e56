/**
 * What every benchmark shares: the one JSON line per measurement, sample statistics, the machine
 * description, and a child process timed with its peak RSS. Benchmarks are never tests: they run on
 * demand (`npm run bench`, or one script with `npx tsx bench/<name>.ts`) and print, never assert.
 *
 * A line: {"bench":"render","name":"cmp-generate","params":{"clusters":1000},"unit":"ms","runs":5,
 * "median":…,"min":…,"max":…,"spread":…,"floor":{"name":…,"median":…,"ratio":…},
 * "target":{"max":1000,"met":true},"extra":{…},"machine":{…}}.
 * `spread` is max - min over the runs; `ratio` is median / floor median; a target has `max` (at most)
 * or `min` (at least) and says whether the median met it.
 */
import { spawn } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** Median, extremes and spread (max - min) of a set of samples. */
export interface Summary {
  readonly runs: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly spread: number;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { runs: 0, median: Number.NaN, min: Number.NaN, max: Number.NaN, spread: Number.NaN };
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  const min = sorted[0] ?? 0;
  const max = sorted[n - 1] ?? 0;
  return { runs: n, median, min, max, spread: max - min };
}

/** The p-th percentile (0..100) of samples, nearest rank. */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** What the figures were measured on, printed with each line so a result is never read without it. */
export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memGiB: number;
  readonly node: string;
  readonly platform: string;
  readonly loadavg1: number;
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadavg1: round(loadavg()[0] ?? 0, 2),
  };
}

export interface Target {
  /** The median must be at most this. */
  readonly max?: number;
  /** The median must be at least this. */
  readonly min?: number;
}

export interface Measurement {
  readonly bench: string;
  readonly name: string;
  readonly params?: Readonly<Record<string, string | number | boolean>>;
  readonly unit: string;
  readonly samples: readonly number[];
  /** The floor measured in the same run: what the same work costs with nothing of ours in the way. */
  readonly floor?: { readonly name: string; readonly samples: readonly number[] };
  readonly target?: Target;
  /** Further figures of the same runs (peak RSS, requests, objects...). */
  readonly extra?: Readonly<Record<string, string | number | boolean>>;
}

/** The JSON object of one measurement (what `emit` prints), for scripts that collect before printing. */
export function measurementLine(m: Measurement): Record<string, unknown> {
  const s = summarize(m.samples);
  const line: Record<string, unknown> = {
    bench: m.bench,
    name: m.name,
    params: m.params ?? {},
    unit: m.unit,
    runs: s.runs,
    median: round(s.median, 2),
    min: round(s.min, 2),
    max: round(s.max, 2),
    spread: round(s.spread, 2),
  };
  if (m.floor) {
    const f = summarize(m.floor.samples);
    line.floor = { name: m.floor.name, median: round(f.median, 2), spread: round(f.spread, 2), ratio: round(s.median / f.median, 2) };
  }
  if (m.target) {
    const met = (m.target.max === undefined || s.median <= m.target.max) && (m.target.min === undefined || s.median >= m.target.min);
    line.target = { ...m.target, met };
  }
  if (m.extra) line.extra = m.extra;
  line.machine = machine();
  return line;
}

/** Prints one measurement as one JSON line on stdout. */
export function emit(m: Measurement): void {
  process.stdout.write(`${JSON.stringify(measurementLine(m))}\n`);
}

export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Runs `fn` `runs` times after `warmup` unmeasured runs and returns its results. */
export async function repeat<T>(runs: number, fn: (i: number) => Promise<T> | T, warmup = 0): Promise<T[]> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const out: T[] = [];
  for (let i = 0; i < runs; i++) out.push(await fn(i));
  return out;
}

export interface ProcessRun {
  readonly wallMs: number;
  /** Peak resident set of the child in MiB, from its own getrusage at exit. */
  readonly maxRssMb: number;
  readonly code: number | null;
  readonly stdoutBytes: number;
  readonly stdout?: string;
  readonly stderr: string;
}

const rssProbe = fileURLToPath(new URL('./rss-probe.cjs', import.meta.url));

/**
 * Runs a node script as a child process and times it from spawn to exit. Its peak RSS is read by a
 * preloaded probe (`--require bench/rss-probe.cjs`, a few lines) that writes `process.resourceUsage()
 * .maxRSS` to fd 3 at exit, so no `/usr/bin/time` is needed; floors run with the same probe.
 */
export function runNode(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; keepStdout?: boolean } = {}): Promise<ProcessRun> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, ['--require', rssProbe, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: options.env ?? { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    let stdoutBytes = 0;
    const chunks: Buffer[] = [];
    let stderr = '';
    let probe = '';
    child.stdout?.on('data', (b: Buffer) => {
      stdoutBytes += b.length;
      if (options.keepStdout) chunks.push(b);
    });
    child.stderr?.on('data', (b: Buffer) => { stderr += b.toString(); });
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => { probe += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      resolve({ wallMs, maxRssMb: round(Number(probe.trim() || Number.NaN) / 1024, 1), code, stdoutBytes, ...(options.keepStdout ? { stdout: Buffer.concat(chunks).toString() } : {}), stderr });
    });
  });
}

/** Argument parsing shared by the scripts: `--name=value` pairs and bare positionals. */
export function args(argv: readonly string[] = process.argv.slice(2)): { positional: string[]; flags: Map<string, string> } {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (m?.[1]) flags.set(m[1], m[2] ?? 'true');
    else positional.push(a);
  }
  return { positional, flags };
}

/** True when the scripts run quick (`--quick` or BENCH_QUICK=1): fewer runs and sizes, for a smoke run. */
export const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
