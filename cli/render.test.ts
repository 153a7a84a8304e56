/** `lattice render` run as a process (built by `npm test` first). */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CLI, REPO } from '../test/support/repo.js';

const lattice = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8' });

describe('lattice render', () => {
  it('prints every example cluster\'s objects as one YAML stream, verified against the plan', () => {
    const r = lattice(['render', '--verify', 'examples/clusters']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const docs = parseAllDocuments(r.stdout);
    const list = Array.isArray(docs) ? docs : [docs];
    expect(list.filter((d) => d.errors.length > 0)).toEqual([]);
    const kinds = list.map((d) => (d.toJS() as { kind: string }).kind);
    expect(kinds.filter((k) => k === 'LatticeCluster')).toHaveLength(7);
    expect(kinds).toEqual(expect.arrayContaining(['DevCluster', 'AWSCluster', 'ProxmoxCluster', 'OpenStackCluster', 'KubeadmControlPlane', 'RKE2ControlPlane']));
  });

  it('prints a JSON v1 List with --format json', () => {
    const r = lattice(['render', '--format', 'json', 'examples/clusters/dev-docker.yaml']);
    expect(r.status).toBe(0);
    const list = JSON.parse(r.stdout) as { kind: string; items: { kind: string; metadata: { name: string } }[] };
    expect(list.kind).toBe('List');
    expect(list.items.map((i) => i.kind)).toEqual(['Namespace', 'LatticeCluster', 'Cluster', 'DevCluster', 'DevMachineTemplate', 'KubeadmControlPlane', 'KubeadmConfigTemplate', 'DevMachineTemplate', 'MachineDeployment', 'MachineHealthCheck']);
  });

  it('writes one file per cluster with --out-dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-render-'));
    const r = lattice(['render', '--out-dir', dir, 'examples/clusters']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('rendered 7 clusters');
    expect(readdirSync(dir).sort()).toEqual(['dev.yaml', 'edge-dc1.yaml', 'lab.yaml', 'mgmt.yaml', 'ml-inference.yaml', 'prod-eu.yaml', 'secure.yaml']);
    expect(readFileSync(join(dir, 'dev.yaml'), 'utf8')).toBe(lattice(['render', 'examples/clusters/dev-docker.yaml']).stdout);
  });

  it('renders nothing when any input is invalid, exactly like validate', () => {
    const args = ['examples/clusters', 'core/spec/testdata/invalid/taint-key-invalid.yaml'];
    const render = lattice(['render', ...args]);
    const validate = lattice(['validate', ...args]);
    expect(render.status).toBe(1);
    expect(render.stdout).toBe('');
    expect(render.stderr).toBe(validate.stderr);
  });
});
