/**
 * `lattice demo` as `npm start` runs it (issue M11), in CI mode: the built CLI as a child process, no TTY,
 * no stdin, on the simulators' compressed timings (a Cluster API step per pass, not minutes). Every example cluster must reach Ready through the pivot,
 * the committed change must be applied in its cluster, the removed cluster must be torn down, and the
 * rendered manifests of the last commit must be where the summary says.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, REPO, SHARED, exampleClusters } from './support/repo.js';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), LATTICE_UPSTREAM_CRDS: join(SHARED, 'upstream-crds') } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('lattice demo', () => {
  it('takes every example cluster to Ready through the pivot, applies a committed change, and tears a removed cluster down', async () => {
    const out = mkdtempSync(join(tmpdir(), 'lattice-demo-test-'));
    try {
      // WHEN the demo runs the way CI runs it
      const { code, stdout, stderr } = await run(['demo', '--no-progress', '--out-dir', out, '--timeout', '400']);
      // THEN it succeeds, says so, and prints nothing on stdout
      expect(stderr).toContain('lattice demo: every cluster reached its end state');
      expect(code).toBe(0);
      expect(stdout).toBe('');
      // AND every cluster went through the pivot to Ready; dev applied its change; lab is gone
      const names = exampleClusters().map((c) => c.metadata.name).sort();
      for (const name of names.filter((n) => n !== 'lab')) expect(stderr).toMatch(new RegExp(`${name}: Pivoted → Ready \\(Ready\\)`));
      expect(stderr).toMatch(/ {2}dev {12}Ready \(generation 2 applied in the cluster\)/);
      expect(stderr).toMatch(/lab: Unpivoting → Deleting/);
      expect(stderr).toMatch(/lab: Deleting → Deleted/);
      expect(stderr).toMatch(/ {2}lab {12}deleted/);
      // AND the manifests of the last commit are in the named directory: the app-of-apps and one file per remaining cluster
      expect(stderr).toContain(`rendered manifests of the last commit: ${out}`);
      expect(readdirSync(out).sort()).toEqual(['app-of-apps.yaml', ...names.filter((n) => n !== 'lab').map((n) => `${n}.yaml`)].sort());
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 480_000);

  it('runs the same lifecycle on the Flux path: the sidecar\'s ExternalArtifacts applied by Kustomizations', async () => {
    const out = mkdtempSync(join(tmpdir(), 'lattice-demo-flux-test-'));
    try {
      const { code, stdout, stderr } = await run(['demo', '--flavor', 'flux', '--no-progress', '--out-dir', out, '--timeout', '400']);
      expect(stderr).toContain('lattice demo: every cluster reached its end state');
      expect([code, stdout]).toEqual([0, '']);
      expect(stderr).toMatch(/ {2}dev {12}Ready \(generation 2 applied in the cluster\)/);
      expect(stderr).toMatch(/lab: Unpivoting → Deleting/);
      expect(stderr).toMatch(/ {2}lab {12}deleted/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 480_000);

  it('refuses a flavor it cannot run and a missing CRD directory, before starting anything', async () => {
    const flux = await run(['demo', '--flavor', 'nope']);
    expect([flux.code, flux.stderr.trim()]).toEqual([2, 'lattice demo: --flavor: expected argocd or flux, found "nope"']);
    const crds = await run(['demo', '--upstream-crds', join(tmpdir(), 'does-not-exist')]);
    expect(crds.code).toBe(2);
    expect(crds.stderr).toContain('the upstream Cluster API CRDs are not at');
  }, 30_000);
});
