/**
 * Rendering as Argo CD runs it: the built `lattice cmp generate` as a child process in an app directory of N
 * generated clusters (bench/specs.ts: every provider and bootstrap of the examples, three worker pools
 * each), timed from spawn to exit, with the child's peak RSS. Argo CD gives the whole request 60 s
 * (research/argocd-cmp.md §2.6), and a timeout is cached as an error.
 *
 * Floors, measured in the same run:
 * - render: bare `node -e 0` start-up plus `JSON.stringify` of an equivalent object set already in memory
 *   (the objects the plugin printed for one cluster of each example, parsed once and cloned N times under
 *   new names): the cost of start-up and of producing that many bytes from ready objects;
 * - cold start (one cluster): `node -e 0`.
 *
 * Run: npm run build && npx tsx bench/render.ts [--clusters=1,100,1000,10000] [--runs=N] [--quick]
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { args, emit, quick, repeat, repoRoot, runNode, type ProcessRun } from './lib.js';
import { writeGeneratedRepo } from './specs.js';

const { flags } = args();
const sizes = (flags.get('clusters') ?? (quick ? '1,100' : '1,100,1000,10000')).split(',').map(Number);
const runsFor = (n: number): number => Number(flags.get('runs') ?? (quick ? 2 : n >= 10_000 ? 3 : 5));
const cli = join(repoRoot, 'dist', 'cli', 'main.js');
const env = {
  PATH: process.env.PATH ?? '',
  HOME: '/tmp',
  ARGOCD_APP_SOURCE_REPO_URL: 'https://git.example.com/clusters.git',
  ARGOCD_APP_SOURCE_PATH: '.',
  ARGOCD_APP_SOURCE_TARGET_REVISION: 'main',
};

/** Targets of issue M10 by cluster count: wall time (ms) and, for 1,000, the ratio to the floor. */
const TARGETS: Readonly<Record<number, { maxMs: number; maxRatio?: number }>> = {
  1000: { maxMs: 1000, maxRatio: 5 },
  10000: { maxMs: 8000 },
};

const generate = async (dir: string, keepStdout = false): Promise<ProcessRun> => {
  const run = await runNode([cli, 'cmp', 'generate'], { cwd: dir, env, keepStdout });
  if (run.code !== 0) throw new Error(`cmp generate failed (exit ${run.code}): ${run.stderr.slice(0, 2000)}`);
  return run;
};

// The equivalent object set: one rendered cluster of each example, parsed once, cloned under N names.
const sampleDir = writeGeneratedRepo(7);
const sample = await generate(sampleDir, true);
rmSync(sampleDir, { recursive: true, force: true });
const sampleObjects = parseAllDocuments(sample.stdout ?? '').map((d) => d.toJS() as unknown).filter((o) => o !== null);
const equivalentObjects = (clusters: number): unknown[] => {
  const out: unknown[] = [];
  const perCluster = Math.ceil(sampleObjects.length / 7);
  for (let i = 0; out.length < clusters * perCluster; i++) {
    const o = structuredClone(sampleObjects[i % sampleObjects.length]) as { metadata?: { name?: string } };
    if (o.metadata?.name) o.metadata.name = `${o.metadata.name}-${i}`;
    out.push(o);
  }
  return out;
};
/** Bytes the floor's last run produced: reported, so the serialisation is used (and comparable to ours). */
let floorBytes = 0;
const stringifyMs = (objects: unknown[]): number => {
  const started = performance.now();
  let bytes = 0;
  for (const o of objects) bytes += JSON.stringify(o).length + 1;
  floorBytes = bytes;
  return performance.now() - started;
};

for (const clusters of sizes) {
  const dir = writeGeneratedRepo(clusters);
  try {
    const runs = await repeat(runsFor(clusters), () => generate(dir), 1);
    const objects = equivalentObjects(clusters);
    const startup = await repeat(runsFor(clusters), () => runNode(['-e', '0']), 1);
    const floor = startup.map((s) => s.wallMs + stringifyMs(objects));
    const target = TARGETS[clusters];
    emit({
      bench: 'render',
      name: 'cmp-generate',
      params: { clusters, pools: 3 },
      unit: 'ms',
      samples: runs.map((r) => r.wallMs),
      floor: { name: 'node-startup+JSON.stringify', samples: floor },
      ...(target ? { target: { max: target.maxMs } } : {}),
      extra: {
        max_rss_mb: Math.max(...runs.map((r) => r.maxRssMb)),
        floor_rss_mb: Math.max(...startup.map((r) => r.maxRssMb)),
        output_mb: Math.round((runs[0]?.stdoutBytes ?? 0) / 1e5) / 10,
        floor_output_mb: Math.round(floorBytes / 1e5) / 10,
        ...(target?.maxRatio ? { max_floor_ratio: target.maxRatio } : {}),
      },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Cold start: one cluster, the whole process, against bare node start-up.
const one = writeGeneratedRepo(1);
try {
  const runs = quick ? 3 : 10;
  const cold = await repeat(runs, () => generate(one), 1);
  const bare = await repeat(runs, () => runNode(['-e', '0']), 1);
  emit({
    bench: 'render',
    name: 'cold-start',
    params: { clusters: 1 },
    unit: 'ms',
    samples: cold.map((r) => r.wallMs),
    floor: { name: 'node -e 0', samples: bare.map((r) => r.wallMs) },
    target: { max: 250 },
    extra: { max_rss_mb: Math.max(...cold.map((r) => r.maxRssMb)) },
  });
} finally {
  rmSync(one, { recursive: true, force: true });
}
