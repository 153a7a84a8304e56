/** `lattice plan` run as a process (built by `npm test` first). */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { CLI, REPO } from '../test/support/repo.js';
import { STAGES } from '../core/plan/stages.js';
import type { ClusterPlanSummary } from './plan.js';

const lattice = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8' });

describe('lattice plan', () => {
  it('shows every cluster\'s stages in order with wave, objects and what each waits for', () => {
    const r = lattice(['plan', 'examples/clusters']);
    expect(r.status).toBe(0);
    const dev = r.stdout.slice(r.stdout.indexOf('dev  ('), r.stdout.indexOf('\n\n', r.stdout.indexOf('dev  (')));
    const rows = dev.split('\n').filter((l) => /^ {2}\d/.test(l));
    expect(rows.map((l) => l.trim().split(/\s+/).slice(0, 2))).toEqual(STAGES.map((s) => [String(s.wave), s.stage]));
    expect(dev).toContain('skipped (services: false)');
    expect(dev).toContain('MachineDeployment capi-dev/dev-pool-general');
    expect(dev).toMatch(/Application argocd\/dev-cilium {2}\(cilium \S+ from https:\/\/helm\.cilium\.io\/ into kube-system\)/);
    expect(dev).toContain('control plane initialized (API reachable)');
  });

  it('prints the same plan as JSON with --output json', () => {
    const r = lattice(['plan', '-o', 'json', 'examples/clusters']);
    expect(r.status).toBe(0);
    const { clusters } = JSON.parse(r.stdout) as { clusters: ClusterPlanSummary[] };
    expect(clusters.map((c) => c.cluster)).toEqual(['dev', 'edge-dc1', 'lab', 'mgmt', 'ml-inference', 'prod-eu', 'secure']);
    const ml = clusters.find((c) => c.cluster === 'ml-inference');
    const features = ml?.stages.find((s) => s.stage === 'features');
    expect(features?.objects.map((o) => o.name)).toEqual(expect.arrayContaining(['ml-inference-node-feature-discovery', 'ml-inference-nvidia-device-plugin', 'ml-inference-hami']));
    expect(ml?.stages.find((s) => s.stage === 'infrastructure')?.conditions).toEqual(['InfrastructureReady', 'ControlPlaneInitialized']);
  });

  it('reports spec errors instead of a plan', () => {
    const r = lattice(['plan', 'core/spec/testdata/invalid/cp-replicas-even.yaml']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('cp-replicas-even.yaml:');
  });
});
