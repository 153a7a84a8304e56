/**
 * `lattice cmp generate` and `lattice cmp parameters`, run by argocd-cmp-server in the Application's
 * source path (research/argocd-cmp.md §2). stdout carries only manifests, in one write after everything
 * rendered; on any error stdout stays empty and the exit code is non-zero, because an empty successful
 * output makes Argo CD prune the app's resources.
 */
import { agentObjects, argocdObjects, passthroughObject } from '../core/flavor/flavors.js';
import { checkOverrides } from '../core/plan/addons.js';
import { stageInfo, Stage } from '../core/plan/stages.js';
import { toYamlStream, type Renderer } from '../core/render/render.js';
import type { PlannedObject } from '../core/render/plan.js';
import type { SpecSet } from '../core/spec/validate.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { DEFAULT_PLUGIN_NAME } from './plugin-name.js';
import { Component } from '../core/flavor/argocd.js';
import type { CmpOptions } from './options.js';

export type Selection = { ok: true; objects: PlannedObject[]; clusters: string[] } | { ok: false; errors: string[] };

/** The clusters the options select, with unknown names reported (a typo must not drop a cluster silently). */
function selectedNames(specs: SpecSet, options: CmpOptions): { names: string[]; errors: string[] } {
  const all = specs.clusters.map((c) => c.object.metadata.name);
  const known = new Set(all);
  const errors: string[] = [];
  for (const [what, names] of [['include', options.include], ['exclude', options.exclude]] as const) {
    for (const n of names) if (!known.has(n)) errors.push(`parameter ${what}: no LatticeCluster named ${JSON.stringify(n)} in this directory (found: ${all.join(', ') || 'none'})`);
  }
  const included = options.include.length > 0 ? new Set(options.include) : known;
  const excluded = new Set(options.exclude);
  return { names: all.filter((n) => included.has(n) && !excluded.has(n)).sort(), errors };
}

/**
 * What `generate` prints for the clusters component, before rendering: the InfraProviders, the selected
 * clusters (each rendered on its own, in this order), and the other objects of the directory.
 */
export interface ClustersSelection {
  readonly head: PlannedObject[];
  readonly clusters: string[];
  /** The Argo CD objects of one selected cluster. */
  objectsOf(cluster: LatticeCluster): PlannedObject[];
  readonly tail: PlannedObject[];
}

/** The clusters component's selection, or why it prints nothing (component=agent is not handled here). */
export function selectClusters(renderer: Renderer, specs: SpecSet, options: CmpOptions): { ok: true; value: ClustersSelection } | { ok: false; errors: string[] } {
  const errors = checkOverrides(renderer.versions.addons, options.overrides);
  const selection = selectedNames(specs, options);
  errors.push(...selection.errors);
  if (!options.source) {
    errors.push('ARGOCD_APP_SOURCE_REPO_URL, ARGOCD_APP_SOURCE_PATH and ARGOCD_APP_SOURCE_TARGET_REVISION must be set (argocd-cmp-server sets them); the agent Applications point back at this source');
  }
  if (selection.names.length === 0 && !options.allowEmpty && selection.errors.length === 0) {
    errors.push('no LatticeCluster selected: refusing to print nothing, which would make Argo CD prune every resource of this app (set the parameter allow-empty=true to mean it)');
  }
  if (errors.length > 0) return { ok: false, errors };

  const clusterWave = stageInfo(Stage.cluster).wave;
  return {
    ok: true,
    value: {
      // InfraProviders first: the controller reads them before it accepts a cluster.
      head: specs.infraProviders.map((p) => passthroughObject(p.object as unknown as Record<string, unknown>, { wave: clusterWave })),
      clusters: selection.names,
      objectsOf: clusterObjects(renderer, options),
      tail: specs.others.map((o) => passthroughObject(o.object)),
    },
  };
}

/** The Argo CD objects of one cluster under these options (what `selectClusters`' `objectsOf` gives). */
export function clusterObjects(renderer: Renderer, options: CmpOptions): (cluster: LatticeCluster) => PlannedObject[] {
  const argo = { namespace: options.argocdNamespace, project: options.project, plugin: DEFAULT_PLUGIN_NAME, overrides: options.overrides, ...(options.source ? { source: options.source } : {}) };
  return (cluster) => argocdObjects(renderer, cluster, argo);
}

/** Everything `generate` prints for these specs and options, or why it prints nothing. */
export function selectArgoCdObjects(renderer: Renderer, specs: SpecSet, options: CmpOptions): Selection {
  const byName = new Map(specs.clusters.map((c) => [c.object.metadata.name, c.object]));

  if (options.component === Component.agent) {
    const errors = checkOverrides(renderer.versions.addons, options.overrides);
    const cluster = options.cluster !== undefined ? byName.get(options.cluster) : undefined;
    if (!cluster) errors.push(`parameter cluster: no LatticeCluster named ${JSON.stringify(options.cluster)} in this directory`);
    if (errors.length > 0 || !cluster) return { ok: false, errors };
    return { ok: true, objects: agentObjects(renderer, cluster, 'argocd'), clusters: [cluster.metadata.name] };
  }

  const selection = selectClusters(renderer, specs, options);
  if (!selection.ok) return selection;
  const { head, clusters, objectsOf, tail } = selection.value;
  const objects: PlannedObject[] = [
    ...head,
    ...clusters.flatMap((n) => {
      const cluster = byName.get(n);
      return cluster ? objectsOf(cluster) : [];
    }),
    ...tail,
  ];
  return { ok: true, objects, clusters };
}

/** The YAML stream `generate` prints. */
export function generateText(renderer: Renderer, objects: readonly PlannedObject[]): string {
  return toYamlStream(renderer.renderObjects(objects));
}

/**
 * The same stream as `generateText`, as UTF-8 chunks of `per` documents: the output of a large directory
 * is held as bytes, never as one string plus its encoding (10,000 clusters on one thread: 1.2 GB -> see
 * BENCHMARKS.md).
 */
export function generateChunks(renderer: Renderer, objects: readonly PlannedObject[], per = 2048): Uint8Array[] {
  const utf8 = new TextEncoder();
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < objects.length; i += per) chunks.push(utf8.encode(generateText(renderer, objects.slice(i, i + per))));
  return chunks;
}
