/**
 * Flavors put a cluster's plan into a GitOps engine's terms. Both start from the same ClusterPlan and
 * addon plan, so Argo CD and Flux users get the same objects in the same order.
 */
import type { AddonOverrides } from '../plan/addons.js';
import { Stage, stageIndex } from '../plan/stages.js';
import type { ObjectMeta, PlannedObject } from '../render/plan.js';
import type { Renderer } from '../render/render.js';
import type { LatticeCluster } from '../spec/model.js';
import { planAgent } from './agent.js';
import { argocdAddonApplications, argocdAgentApplication, argocdClusterObjects, ARGOCD, type ArgoCdOptions } from './argocd.js';

export interface ArgoCdRenderOptions extends ArgoCdOptions {
  readonly overrides?: AddonOverrides;
}

/** Stable sort by stage: plan order within a stage is deliberate. */
export function byStage(objects: readonly PlannedObject[]): PlannedObject[] {
  return objects.map((o, i) => ({ o, i })).sort((a, b) => stageIndex(a.o.stage) - stageIndex(b.o.stage) || a.i - b.i).map((x) => x.o);
}

/** Everything the Argo CD app-of-apps gets for one cluster, in wave order. */
export function argocdObjects(renderer: Renderer, cluster: LatticeCluster, options: ArgoCdRenderOptions): PlannedObject[] {
  const name = cluster.metadata.name;
  const plan = renderer.plan(cluster);
  const addons = renderer.addons(cluster, options.overrides);
  return byStage([
    ...argocdClusterObjects(plan.objects),
    ...argocdAddonApplications(name, addons, (a) => renderer.renderValues(a), renderer.versions, options),
    ...(options.source ? [argocdAgentApplication(name, renderer.versions, { ...options, source: options.source })] : []),
  ]);
}

/** The agent component of one cluster; for Argo CD every object carries the agent stage's wave. */
export function agentObjects(renderer: Renderer, cluster: LatticeCluster, flavor: 'argocd' | 'plain'): PlannedObject[] {
  const objects = planAgent(cluster, renderer.versions);
  return flavor === 'argocd' ? argocdClusterObjects(objects) : objects;
}

/**
 * An object from the app directory passed through unchanged (InfraProviders; the user's own
 * manifests). `wave` adds an Argo CD sync wave (InfraProviders must exist before their clusters).
 */
export function passthroughObject(object: Record<string, unknown>, options: { wave?: number } = {}): PlannedObject {
  const meta = (object.metadata ?? {}) as ObjectMeta & Record<string, unknown>;
  const annotated = options.wave === undefined ? object : { ...object, metadata: { ...meta, annotations: { ...meta.annotations, [ARGOCD.syncWave]: String(options.wave) } } };
  return {
    stage: Stage.cluster, template: 'passthrough.yaml.njk',
    apiVersion: String(object.apiVersion), kind: String(object.kind), name: String(meta.name),
    ...(typeof meta.namespace === 'string' ? { namespace: meta.namespace } : {}),
    context: { object: annotated },
  };
}
