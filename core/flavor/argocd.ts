/**
 * The Argo CD flavor (DESIGN §4.1): the cluster's objects with their stage's sync wave, Cluster API
 * objects protected from pruning, addons as Helm Applications aimed at the child by name, and the agent
 * as an Application of this same plugin.
 */
import { stageInfo, Stage } from '../plan/stages.js';
import type { PlannedAddon } from '../plan/addons.js';
import type { ObjectMeta, PlannedObject } from '../render/plan.js';
import { LABEL, withAnnotations } from '../render/plan.js';
import type { RenderedYaml } from '../render/scalar.js';
import type { Versions } from '../render/versions.js';
import { AGENT } from './agent.js';

/** Argo CD annotations and values we write (https://argo-cd.readthedocs.io/en/stable/user-guide/sync-options/). */
export const ARGOCD = {
  syncWave: 'argocd.argoproj.io/sync-wave',
  syncOptions: 'argocd.argoproj.io/sync-options',
  /** Only the controller deletes infrastructure, and only when the LatticeCluster is deleted (DESIGN §4). */
  keep: 'Prune=false,Delete=false',
  stageLabel: 'lattice.dev/stage',
} as const;

/** The plugin parameter that selects what `generate` prints. */
export const Component = { clusters: 'clusters', agent: 'agent' } as const;
export type Component = (typeof Component)[keyof typeof Component];

/** Where the agent Application fetches the agent component: the app-of-apps' own source. */
export interface PluginSource {
  readonly repoURL: string;
  readonly path: string;
  readonly targetRevision: string;
}

export interface ArgoCdOptions {
  /** Namespace the Applications live in (Argo CD's own). */
  readonly namespace: string;
  readonly project: string;
  /** Plugin name the agent Application names (plugin.yaml metadata.name). */
  readonly plugin: string;
  /** Required to emit the agent Application. */
  readonly source?: PluginSource;
}

/**
 * Sync policy of every generated Application: automated (a child Application that never syncs keeps
 * the parent's wave waiting forever), retried without limit with capped backoff (the child may not be
 * registered yet), no resources finalizer (pruning must never block on a dead cluster).
 */
const SYNC_POLICY = deepFreeze({
  automated: { prune: true, selfHeal: true },
  syncOptions: ['CreateNamespace=true', 'ServerSideApply=true'],
  retry: { limit: -1, backoff: { duration: '10s', factor: 2, maxDuration: '5m' } },
});

function deepFreeze<T extends object>(value: T): T {
  for (const v of Object.values(value)) if (typeof v === 'object' && v !== null) deepFreeze(v as object);
  return Object.freeze(value);
}

/**
 * The annotations a cluster object gets, by stage and by whether it may be pruned: a few shared frozen
 * objects rather than one per object, which `block` then renders once each (scalar.ts).
 */
const clusterAnnotations = new Map<string, Readonly<Record<string, string>>>();

function annotationsFor(stage: Stage, prunable: boolean): Readonly<Record<string, string>> {
  const key = `${stage}/${prunable}`;
  let annotations = clusterAnnotations.get(key);
  if (!annotations) {
    annotations = Object.freeze({
      [ARGOCD.syncWave]: String(stageInfo(stage).wave),
      ...(prunable ? {} : { [ARGOCD.syncOptions]: ARGOCD.keep }),
    });
    clusterAnnotations.set(key, annotations);
  }
  return annotations;
}

/** Annotates a cluster's planned objects for Argo CD: waves everywhere, no pruning of infrastructure. */
export function argocdClusterObjects(objects: readonly PlannedObject[]): PlannedObject[] {
  // The LatticeCluster itself stays prunable: deleting it from git is how a cluster is torn down.
  return objects.map((o) => withAnnotations(o, annotationsFor(o.stage, o.kind === 'LatticeCluster')));
}

/** One Application per planned addon, carrying its already rendered values. */
export function argocdAddonApplications(cluster: string, addons: readonly PlannedAddon[], values: (addon: PlannedAddon) => RenderedYaml | undefined, versions: Versions, options: ArgoCdOptions): PlannedObject[] {
  const apiVersion = applicationVersion(versions);
  return addons.map((a) => {
    const meta = applicationMeta(cluster, a.objectName, a.stage, options);
    const rendered = values(a);
    return {
      stage: a.stage, template: 'argocd/application.yaml.njk', apiVersion, kind: 'Application', namespace: options.namespace, name: a.objectName,
      context: {
        apiVersion, kind: 'Application', meta, project: options.project,
        destination: { name: cluster, namespace: a.namespace },
        source: { repoURL: a.repository, chart: a.chart, targetRevision: a.version, releaseName: a.release },
        ...(rendered ? { values: rendered } : {}),
        syncPolicy: SYNC_POLICY,
      },
    };
  });
}

/** The agent stage: an Application of this plugin with `component=agent`, applied in the child. */
export function argocdAgentApplication(cluster: string, versions: Versions, options: ArgoCdOptions & { source: PluginSource }): PlannedObject {
  const apiVersion = applicationVersion(versions);
  const name = `${cluster}-${AGENT.name}`;
  return {
    stage: Stage.agent, template: 'argocd/agent-application.yaml.njk', apiVersion, kind: 'Application', namespace: options.namespace, name,
    context: {
      apiVersion, kind: 'Application', meta: applicationMeta(cluster, name, Stage.agent, options), project: options.project,
      destination: { name: cluster, namespace: AGENT.namespace },
      source: {
        ...options.source,
        plugin: options.plugin,
        parameters: [{ name: 'component', string: Component.agent }, { name: 'cluster', string: cluster }],
      },
      syncPolicy: SYNC_POLICY,
    },
  };
}

function applicationMeta(cluster: string, name: string, stage: Stage, options: ArgoCdOptions): ObjectMeta {
  return {
    name,
    namespace: options.namespace,
    labels: { [LABEL.managedBy]: 'lattice', [LABEL.cluster]: cluster, [ARGOCD.stageLabel]: stage },
    annotations: { [ARGOCD.syncWave]: String(stageInfo(stage).wave) },
  };
}

function applicationVersion(versions: Versions): string {
  const v = versions.apiVersions.Application;
  if (!v) throw new Error('templates/versions.yaml has no apiVersion for Application');
  return v;
}
