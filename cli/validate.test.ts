/** `lattice validate` run as a process, the way users and CI run it (built by `npm test` first). */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, REPO } from '../test/support/repo.js';

const lattice = (args: string[], cwd = REPO) => spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8' });

describe('lattice validate', () => {
  it('exits 0 on the bundled examples and writes nothing to stdout', () => {
    const r = lattice(['validate', 'examples/clusters']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('8 files valid: 7 LatticeCluster, 4 InfraProvider');
  });

  it('exits 1 and reports every error with file:line:col in human form', () => {
    const r = lattice(['validate', 'core/spec/testdata/invalid/cp-replicas-even.yaml', 'core/spec/testdata/invalid/bootstrap-enum.yaml']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('core/spec/testdata/invalid/cp-replicas-even.yaml:14:17: error CONTROL_PLANE_REPLICAS_NOT_ODD spec.nodes.controlPlane.replicas:');
    expect(r.stderr).toContain('core/spec/testdata/invalid/bootstrap-enum.yaml:11:18: error VALUE_NOT_ALLOWED spec.provider.kubernetes.bootstrap:');
    expect(r.stderr).toContain('2 errors in 2 files');
  });

  it('reports machine-readable JSON on stdout with --output json', () => {
    const r = lattice(['validate', '--output', 'json', 'examples/clusters', 'core/spec/testdata/invalid/pool-id-invalid.yaml']);
    expect(r.status).toBe(1);
    const report = JSON.parse(r.stdout) as { valid: boolean; issues: { code: string; line: number; path: string }[] };
    expect(report.valid).toBe(false);
    expect(report.issues).toEqual([expect.objectContaining({ code: 'POOL_ID_INVALID', line: 17, path: 'spec.nodes.workerPools.GPU_pool' })]);
  });

  it('reports a missing path and does not follow symlinks out of a directory', () => {
    // GIVEN a directory with a valid spec and a link to a file outside it
    const dir = mkdtempSync(join(tmpdir(), 'lattice-validate-'));
    mkdirSync(join(dir, 'specs'));
    writeFileSync(join(dir, 'secret.yaml'), 'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n');
    symlinkSync(join(dir, 'secret.yaml'), join(dir, 'specs', 'escape.yaml'));
    // WHEN it is validated together with a path that does not exist
    const r = lattice(['validate', 'specs', 'nope.yaml'], dir);
    // THEN both are reported and the link target is not read
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('nope.yaml:1:1: error FILE_UNREADABLE');
    expect(r.stderr).toContain('specs/escape.yaml:1:1: error PATH_ESCAPES_ROOT');
  });

  it('exits 2 on a usage error', () => {
    const r = lattice(['validate', '--output', 'xml', 'examples']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
  });
});

describe('lattice validate on awkward trees', () => {
  it('ends symlink loops, reads a file reached twice once, and refuses non-regular files', () => {
    // GIVEN a directory linking to itself and to a subdirectory holding a spec
    const dir = mkdtempSync(join(tmpdir(), 'lattice-loop-'));
    mkdirSync(join(dir, 'specs', 'sub'), { recursive: true });
    writeFileSync(join(dir, 'specs', 'sub', 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: once}\n');
    symlinkSync('.', join(dir, 'specs', 'again'));
    symlinkSync('sub', join(dir, 'specs', 'alias'));
    // WHEN it is validated, together with a device
    const ok = lattice(['validate', 'specs'], dir);
    const device = lattice(['validate', '/dev/null'], dir);
    // THEN the walk ends, the ConfigMap is not a duplicate of itself, and the device is refused
    expect(ok.stderr).toContain('1 file valid');
    expect(ok.status).toBe(0);
    expect(device.status).toBe(1);
    expect(device.stderr).toContain('/dev/null:1:1: error FILE_UNREADABLE not a regular file');
  });
});
