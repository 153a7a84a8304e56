import { describe, expect, it } from 'vitest';
import type { ClusterView, DemoSnapshot } from './lifecycle.js';
import { progressLines, progressTable, summary } from './progress.js';

const cluster = (name: string, phase: string, extra: Partial<ClusterView> = {}): ClusterView => ({
  name, phase, stages: [{ type: 'InfrastructureReady', status: 'True' }, { type: 'CNI', status: 'False' }, { type: 'Pivoted', status: 'Unknown' }],
  ready: false, message: 'CNI: cilium is Progressing', generation: 1, appliedGeneration: 0, gone: false, ...extra,
});
const snap = (step: DemoSnapshot['step'], clusters: ClusterView[], elapsedMs = 1500): DemoSnapshot => ({ step, detail: 'what happens now', elapsedMs, clusters });

describe('demo progress', () => {
  it('draws one row per cluster with its phase, a mark per stage and what it waits for, clipped to the terminal', () => {
    const table = progressTable(snap('provisioning', [cluster('dev', 'Provisioning'), cluster('lab', 'Ready', { ready: true, stages: [{ type: 'CNI', status: 'True' }] })]), 80);
    expect(table.split('\n')).toEqual([
      'lattice demo · provisioning and pivoting · 1.5s',
      'what happens now',
      '',
      '         phase        stages (✓ ✗ ·)',
      'dev      Provisioning ✓✗·              CNI: cilium is Progressing',
      'lab      Ready        ✓                ready; manages itself',
    ]);
    expect(progressTable(snap('provisioning', [cluster('dev', 'Provisioning', { message: 'x'.repeat(200) })]), 60).split('\n').every((l) => l.length <= 60)).toBe(true);
  });

  it('prints plain lines only for what changed: the step, and each phase transition', () => {
    const first = snap('provisioning', [cluster('dev', 'Pending')]);
    expect(progressLines(undefined, first)).toEqual(['   1.5s  provisioning and pivoting: what happens now', '   1.5s  dev: Pending']);
    expect(progressLines(first, snap('provisioning', [cluster('dev', 'Pending')], 2000))).toEqual([]);
    expect(progressLines(first, snap('provisioning', [cluster('dev', 'Ready', { ready: true })], 9000))).toEqual(['   9.0s  dev: Pending → Ready (Ready)']);
  });

  it('sums up the run, naming the manifests directory only on success', () => {
    const ok = summary({ ok: true, elapsedMs: 61_000, outDir: '/tmp/out', steps: { provisioning: 40_000 }, clusters: [cluster('dev', 'Ready', { ready: true, appliedGeneration: 2, generation: 2 }), cluster('lab', 'Deleted', { gone: true })], proxied: { dev: 40, lab: 2 } });
    expect(ok.split('\n')).toEqual([
      'lattice demo: every cluster reached its end state in 61.0s',
      '  steps finished at: provisioning 40.0s',
      '  dev            Ready (generation 2 applied in the cluster)',
      '  lab            deleted',
      '  API proxy: 42 requests from the GitOps engine to 2 pivoted clusters',
      '  rendered manifests of the last commit: /tmp/out',
    ]);
    expect(summary({ ok: false, reason: 'lab torn down did not happen within 300 s', elapsedMs: 300_000, outDir: '/tmp/out', steps: {}, clusters: [] })).toBe('lattice demo: FAILED after 300.0s: lab torn down did not happen within 300 s');
  });
});
