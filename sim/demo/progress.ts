/**
 * The demo's progress on a terminal (pure: snapshots in, text out). On a TTY, a table redrawn in place: per
 * cluster its phase, one mark per stage condition (✓ True, ✗ False, · Unknown) and what it waits for; plain
 * lines otherwise (CI logs, pipes, --no-progress): one line per change of step or phase.
 */
import type { ClusterView, DemoResult, DemoSnapshot } from './lifecycle.js';

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
const mark = (status: string): string => (status === 'True' ? '✓' : status === 'False' ? '✗' : '·');
const clip = (s: string, width: number): string => (s.length <= width ? s : `${s.slice(0, Math.max(0, width - 1))}…`);

const STEP_TEXT: Readonly<Record<DemoSnapshot['step'], string>> = {
  starting: 'starting',
  provisioning: 'provisioning and pivoting',
  changing: 'spec change',
  removing: 'removal',
  done: 'done',
  failed: 'failed',
};

/** The table for a TTY `width` columns wide (no trailing newline). */
export function progressTable(s: DemoSnapshot, width: number): string {
  const name = Math.max(7, ...s.clusters.map((c) => c.name.length));
  const header = `${clip(`lattice demo · ${STEP_TEXT[s.step]} · ${seconds(s.elapsedMs)}`, width)}\n${clip(s.detail, width)}`;
  const rows = s.clusters.map((c) => {
    const stages = c.stages.map((x) => mark(x.status)).join('');
    const left = `${c.name.padEnd(name)}  ${c.phase.padEnd(12)} ${stages.padEnd(16)} `;
    const note = c.gone ? 'deleted from git; unpivoted and torn down' : c.ready ? (c.appliedGeneration > 1 ? `ready; generation ${c.appliedGeneration} applied in the cluster` : 'ready; manages itself') : c.message;
    return clip(`${left}${note}`, width);
  });
  const legend = clip(`${''.padEnd(name)}  ${'phase'.padEnd(12)} stages (✓ ✗ ·)`, width);
  return [header, '', legend, ...rows].join('\n');
}

/** Plain lines for what changed since `previous` (empty when nothing worth a line did). */
export function progressLines(previous: DemoSnapshot | undefined, s: DemoSnapshot): string[] {
  const at = seconds(s.elapsedMs).padStart(7);
  const out: string[] = [];
  if (!previous || previous.step !== s.step) out.push(`${at}  ${STEP_TEXT[s.step]}: ${s.detail}`);
  const before = new Map((previous?.clusters ?? []).map((c) => [c.name, c]));
  for (const c of s.clusters) {
    const was: ClusterView | undefined = before.get(c.name);
    if (was?.phase === c.phase && was.ready === c.ready) continue;
    out.push(`${at}  ${c.name}: ${was ? `${was.phase} → ` : ''}${c.phase}${c.ready ? ' (Ready)' : ''}`);
  }
  return out;
}

/** The closing summary. */
export function summary(r: DemoResult): string {
  const lines = [r.ok ? `lattice demo: every cluster reached its end state in ${seconds(r.elapsedMs)}` : `lattice demo: FAILED after ${seconds(r.elapsedMs)}: ${r.reason ?? 'unknown reason'}`];
  const steps = Object.entries(r.steps).map(([k, v]) => `${k} ${seconds(v)}`).join(', ');
  if (steps) lines.push(`  steps finished at: ${steps}`);
  for (const c of r.clusters) lines.push(`  ${c.name.padEnd(14)} ${c.gone ? 'deleted' : c.phase}${c.appliedGeneration > 1 ? ` (generation ${c.appliedGeneration} applied in the cluster)` : ''}`);
  const proxied = Object.values(r.proxied ?? {}).reduce((a, b) => a + b, 0);
  if (proxied > 0) lines.push(`  API proxy: ${proxied} requests from the GitOps engine to ${Object.keys(r.proxied ?? {}).length} pivoted clusters`);
  if (r.ok) lines.push(`  rendered manifests of the last commit: ${r.outDir}`);
  return lines.join('\n');
}
