/**
 * `cmp generate` on several threads (parallel.ts), run as a child process as argocd-cmp-server runs it:
 * whatever the number of threads, the same directory gives the same bytes on stdout, the same report on
 * stderr and the same exit code as one thread.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { CLI, REPO } from '../test/support/repo.js';
import { blockSizeFor, parallelSettings } from './parallel.js';

const EXAMPLES = join(REPO, 'examples', 'clusters');

/** A directory of `count` clusters made from the examples (renamed), plus the InfraProviders. */
function bigApp(count: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'lattice-parallel-'));
  const bases = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml') && f !== 'infraproviders.yaml').sort()
    .map((f) => parse(readFileSync(join(EXAMPLES, f), 'utf8')) as { metadata: { name: string } });
  writeFileSync(join(dir, 'infraproviders.yaml'), readFileSync(join(EXAMPLES, 'infraproviders.yaml')));
  for (let i = 0; i < count; i++) {
    const base = bases[i % bases.length];
    if (!base) throw new Error('no examples');
    // Names sort differently from file order, so the output order is the selection's, not the blocks'.
    writeFileSync(join(dir, `f${String(i).padStart(3, '0')}.yaml`), stringify({ ...base, metadata: { ...base.metadata, name: `c${String((i * 37) % count).padStart(3, '0')}` } }));
  }
  return dir;
}

const generate = (cwd: string, threads: number, extra: Record<string, string> = {}) => spawnSync(process.execPath, [CLI, 'cmp', 'generate'], {
  cwd,
  env: {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: tmpdir(),
    ARGOCD_APP_SOURCE_REPO_URL: 'https://git.example.com/platform/clusters.git',
    ARGOCD_APP_SOURCE_PATH: '.',
    ARGOCD_APP_SOURCE_TARGET_REVISION: 'main',
    LATTICE_CMP_THREADS: String(threads),
    LATTICE_CMP_PARALLEL_MIN_FILES: '1',
    ...extra,
  },
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'pipe'],
  maxBuffer: 256 << 20,
});

describe('lattice cmp generate on several threads', () => {
  const app = bigApp(60);
  const one = generate(app, 1);

  it('prints the same bytes as one thread, with two and with three', () => {
    // GIVEN 60 clusters whose names do not sort in file order
    expect(one.status).toBe(0);
    expect(one.stderr).toContain('60 cluster(s)');
    // WHEN the plugin runs with workers
    for (const threads of [2, 3]) {
      const many = generate(app, threads);
      // THEN stdout is byte-identical and the summary the same
      expect(many.status).toBe(0);
      expect(many.stdout).toBe(one.stdout);
      expect(many.stderr).toBe(one.stderr.replace('(component clusters)', `(component clusters, ${threads} threads)`));
    }
  });

  it('reports an invalid file exactly as one thread does, and prints nothing', () => {
    // GIVEN one broken spec among the others, and a duplicate of a cluster in another file
    const broken = bigApp(60);
    writeFileSync(join(broken, 'f031.yaml'), `${readFileSync(join(broken, 'f031.yaml'), 'utf8')}  replicaz: 3\n`);
    writeFileSync(join(broken, 'zz-dup.yaml'), readFileSync(join(broken, 'f005.yaml')));
    // WHEN both generate
    const single = generate(broken, 1);
    const multi = generate(broken, 2);
    // THEN the same located errors, the same exit code, and nothing on stdout
    expect(single.status).toBe(1);
    expect(single.stderr).toMatch(/f031\.yaml:\d+:\d+: error/);
    expect(single.stderr).toMatch(/DUPLICATE_OBJECT/);
    expect(multi.status).toBe(single.status);
    expect(multi.stderr).toBe(single.stderr);
    expect(multi.stdout).toBe('');
  });

  it('refuses a selection the same way (a typo in include)', () => {
    const env = { ARGOCD_ENV_INCLUDE: 'c001,no-such-cluster' };
    const single = generate(app, 1, env);
    const multi = generate(app, 2, env);
    expect(single.status).toBe(1);
    expect(single.stderr).toContain('no-such-cluster');
    expect(multi.status).toBe(1);
    expect(multi.stderr).toBe(single.stderr);
    expect(multi.stdout).toBe('');
  });

  it('reads its settings from the environment, bounded', () => {
    expect(parallelSettings({ LATTICE_CMP_THREADS: '1' }).threads).toBe(1);
    expect(parallelSettings({ LATTICE_CMP_THREADS: '64' }).threads).toBe(4);
    expect(parallelSettings({ LATTICE_CMP_THREADS: 'many' }).threads).toBeGreaterThanOrEqual(1);
    expect(parallelSettings({}).minFiles).toBe(1000);
    expect(parallelSettings({ LATTICE_CMP_PARALLEL_MIN_FILES: '0' }).minFiles).toBe(0);
    // blocks: at least 4 items, at most 64, about 8 per thread otherwise
    expect(blockSizeFor(10, 2)).toBe(4);
    expect(blockSizeFor(1000, 2)).toBe(63);
    expect(blockSizeFor(100_000, 2)).toBe(64);
  });
});
