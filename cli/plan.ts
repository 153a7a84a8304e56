/** `lattice plan`: the bootstrap order per cluster, as a table for people or JSON for tools. */
import { argocdObjects } from '../core/flavor/flavors.js';
import { summarizeStages, type StageSummary } from '../core/plan/summary.js';
import { configuredProviders } from '../core/spec/rules.js';
import type { Renderer } from '../core/render/render.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { DEFAULT_PLUGIN_NAME } from '../plugin/plugin-name.js';

export interface ClusterPlanSummary {
  readonly cluster: string;
  readonly provider: string;
  readonly bootstrap: string;
  readonly kubernetesVersion: string;
  readonly stages: readonly StageSummary[];
}

/** The Argo CD flavor's objects, grouped by stage: the agent Application's source is only named. */
export function planSummaries(renderer: Renderer, clusters: readonly LatticeCluster[]): ClusterPlanSummary[] {
  const source = { repoURL: '(this repository)', path: '(this path)', targetRevision: '(this revision)' };
  return clusters.map((cluster) => ({
    cluster: cluster.metadata.name,
    provider: configuredProviders(cluster.spec)[0] ?? '',
    bootstrap: cluster.spec.provider.kubernetes.bootstrap,
    kubernetesVersion: cluster.spec.provider.kubernetes.version,
    stages: summarizeStages(cluster, argocdObjects(renderer, cluster, { namespace: 'argocd', project: 'default', plugin: DEFAULT_PLUGIN_NAME, source }), renderer.versions.addons),
  }));
}

/** A readable table: one block per cluster, one row per stage, objects indented beneath. */
export function formatPlans(plans: readonly ClusterPlanSummary[]): string {
  const out: string[] = [];
  for (const p of plans) {
    out.push(`${p.cluster}  (${p.provider}, ${p.bootstrap}, Kubernetes ${p.kubernetesVersion})`);
    out.push(`  WAVE  STAGE           WAITS FOR`);
    for (const s of p.stages) {
      const waits = s.skipped ? `skipped (${s.skipped})` : s.waitsFor;
      out.push(`  ${String(s.wave).padEnd(4)}  ${s.stage.padEnd(14)}  ${waits}`);
      for (const o of s.objects) {
        const id = `${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}`;
        out.push(`                        ${id}${o.detail ? `  (${o.detail})` : ''}`);
      }
    }
    out.push('');
  }
  return `${out.join('\n')}`;
}
