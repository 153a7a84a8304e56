/**
 * The Flux flavor (DESIGN §4.2). Flux has no plugins: the sidecar serves each cluster's objects as an
 * ExternalArtifact (a tar.gz of directories), and one index artifact holds the Flux `Kustomization`s that
 * apply those directories in bootstrap order. This module decides what goes in every artifact, file by
 * file; the sidecar only packs and serves it. Pure: data in, data out.
 *
 * Per cluster X, the artifact `lattice-cluster-X` holds:
 *  - `infrastructure/manifests.yaml`: Namespace capi-X, the LatticeCluster, the Cluster API objects
 *    (everything but the LatticeCluster with `kustomize.toolkit.fluxcd.io/prune: disabled`: only the
 *    controller deletes infrastructure, DESIGN §4);
 *  - `addons/manifests.yaml`: HelmRepository per https:// repository (OCIRepository per oci:// chart) and
 *    one HelmRelease per addon, installed into the child through its kubeconfig Secret, chained with
 *    `dependsOn` in stage order;
 *  - `agent/manifests.yaml`: the agent component's raw manifests, applied into the child.
 * The artifact `lattice-index` holds `clusters/X.yaml` (the Kustomizations X-infrastructure, X-addons,
 * X-agent) plus the InfraProviders and any other object found beside the specs.
 */
import { createHash } from 'node:crypto';
import type { AddonOverrides, PlannedAddon } from '../plan/addons.js';
import { Stage, stageIndex } from '../plan/stages.js';
import { LABEL, withAnnotations, type ObjectMeta, type PlannedObject } from '../render/plan.js';
import type { RenderedDocument, Renderer } from '../render/render.js';
import { toYamlStream } from '../render/render.js';
import type { RenderedYaml } from '../render/scalar.js';
import type { KubernetesObject } from '../spec/validate.js';
import type { InfraProvider, LatticeCluster } from '../spec/model.js';
import { agentObjects, passthroughObject } from './flavors.js';

/** Flux API versions and the annotations we write (https://fluxcd.io/flux/components/). */
export const FLUX = {
  apiVersions: {
    Kustomization: 'kustomize.toolkit.fluxcd.io/v1',
    HelmRelease: 'helm.toolkit.fluxcd.io/v2',
    HelmRepository: 'source.toolkit.fluxcd.io/v1',
    OCIRepository: 'source.toolkit.fluxcd.io/v1',
    ExternalArtifact: 'source.toolkit.fluxcd.io/v1',
  },
  /** kustomize-controller skips garbage collection of objects carrying this with value `disabled`. */
  prune: 'kustomize.toolkit.fluxcd.io/prune',
  disabled: 'disabled',
  /** Where Flux is installed; the default namespace of everything the index creates. */
  namespace: 'flux-system',
  stageLabel: 'lattice.dev/stage',
} as const;

/** The directories of a cluster artifact, each applied by one Kustomization. */
export const FluxDir = { infrastructure: 'infrastructure', addons: 'addons', agent: 'agent' } as const;
export type FluxDir = (typeof FluxDir)[keyof typeof FluxDir];

/** The index artifact's name (and its ExternalArtifact's). */
export const INDEX_ARTIFACT = 'lattice-index';

/**
 * A cluster artifact's name (and its ExternalArtifact's). The `cluster-` infix keeps it distinct from the
 * index whatever the cluster is called.
 */
export const clusterArtifactName = (cluster: string): string => `lattice-cluster-${cluster}`;

/**
 * The Secret holding the child's kubeconfig, which every HelmRelease and the agent Kustomization use.
 * It lives in the Flux objects' namespace (Flux reads `kubeConfig.secretRef` from the referring object's
 * namespace); the controller writes it there (a copy of CAPI's `capi-X/X-kubeconfig` before pivot, the
 * cell's API proxy after). Key `value`, as in CAPI's own Secret (`util/secret/consts.go`).
 */
export const kubeconfigSecretRef = (cluster: string): { readonly name: string; readonly key: string } => ({ name: `${cluster}-kubeconfig`, key: 'value' });

/** Longest name Flux can use: kustomize- and helm-controller copy it into label values (at most 63). */
const MAX_FLUX_NAME = 63;

/**
 * `<prefix>-<suffix>`, shortened with a hash when longer than a label value may be: Flux labels
 * everything a Kustomization or HelmRelease applies with its name (`kustomize.toolkit.fluxcd.io/name`,
 * `helm.toolkit.fluxcd.io/name`). Cluster names go up to 58 characters, so `X-infrastructure` can overflow.
 */
export function fluxName(prefix: string, suffix: string): string {
  const full = `${prefix}-${suffix}`;
  if (full.length <= MAX_FLUX_NAME) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8);
  const head = prefix.slice(0, MAX_FLUX_NAME - suffix.length - hash.length - 2).replace(/-+$/, '');
  return `${head}-${hash}-${suffix}`;
}

export interface FluxOptions {
  /** Namespace of the Kustomizations, chart sources and HelmReleases (and of the kubeconfig Secrets). */
  readonly namespace: string;
  /** Namespace of the ExternalArtifacts the sidecar writes. @default namespace */
  readonly artifactNamespace?: string;
  /** Air-gapped mirrors and pinned chart versions (checked by the caller with checkOverrides). */
  readonly overrides?: AddonOverrides;
}

/** One file of an artifact: a YAML stream of objects, in apply order. */
export interface FluxFile {
  /** Relative path inside the artifact, `/`-separated. */
  readonly path: string;
  readonly objects: readonly PlannedObject[];
}

/** One artifact (one ExternalArtifact): the index, or one cluster's. */
export interface FluxArtifactPlan {
  readonly name: string;
  /** The cluster, for cluster artifacts. */
  readonly cluster?: string;
  readonly files: readonly FluxFile[];
}

/** What the flavor reads: a validated spec set's objects. */
export interface FluxInputs {
  readonly clusters: readonly LatticeCluster[];
  readonly infraProviders?: readonly InfraProvider[];
  readonly others?: readonly KubernetesObject[];
}

/**
 * Timing of the generated objects. Kustomizations get new revisions pushed (the EA status changes), so the
 * interval only bounds drift repair. retryInterval is short because the kubeconfig Secret appearing does
 * not trigger a reconcile (it lacks `reconcile.fluxcd.io/watch: Enabled`, kustomizations.md "KubeConfig").
 */
const TIMING = {
  interval: '10m',
  retryInterval: '1m',
  /** Creating cloud infrastructure and a first control plane takes minutes. */
  infrastructureTimeout: '30m',
  /** The whole addon chain installs within this Kustomization's health wait. */
  addonsTimeout: '30m',
  agentTimeout: '10m',
  /** Per Helm action: a CNI or mesh on fresh nodes needs more than Helm's 5m default. */
  helmTimeout: '10m',
  /** Chart indexes and OCI tags are pinned; checking hourly is enough. */
  sourceInterval: '1h',
} as const;

/** OCI charts: pull the Helm chart layer as is (helmreleases.md "Chart reference", OCIRepository). */
const HELM_CHART_LAYER = { mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', operation: 'copy' } as const;

/**
 * HelmRelease install and upgrade policy: retried forever (a release created with its cluster must keep
 * trying until the API server answers: helmreleases.md "Remote Cluster API clusters"), CRDs created and
 * kept current (the upgrade default, Skip, would leave CRDs at the first installed version).
 */
const INSTALL = { createNamespace: true, crds: 'CreateReplace', remediation: { retries: -1 } } as const;
const UPGRADE = { crds: 'CreateReplace', remediation: { retries: -1 } } as const;

const PIVOTED_TO = 'lattice.dev/pivoted-to';

/** `has()` guards so an absent field is false, not an evaluation error (research/flux.md §5). */
const pivotedShadow = `(has(metadata.annotations) && '${PIVOTED_TO}' in metadata.annotations)`;
const controlPlaneInitializedField = '(has(status.initialization) && has(status.initialization.controlPlaneInitialized) && status.initialization.controlPlaneInitialized == true)';

/**
 * Health of the infrastructure Kustomization's objects, where kstatus would get them wrong (RFC-0009;
 * research/flux.md §5 "kstatus fallback"): matched by API group and kind, version ignored.
 *  - Cluster: current once the control plane is initialized (the gate of DESIGN §4), not Available:
 *    nodes cannot turn Ready before the CNI of the addons stage. A v1beta2 Cluster has no Ready condition,
 *    so without this kstatus calls a provisioning Cluster current. A pivoted shadow is current (DESIGN §7).
 *  - The control plane: the same gate (v1beta2 `status.initialization`, v1beta1-style `status.initialized`).
 *  - MachineDeployment: always current here; its workers wait for the CNI (stage cni), and waiting for
 *    them in this Kustomization would deadlock the chain.
 *  - LatticeCluster: accepted by the controller (the cluster stage's gate), mirroring the Argo CD health
 *    check; failed when the controller reports Failed or Stalled.
 * No `failed` on CAPI kinds: v1beta1-style Ready=False is normal while provisioning and would fail fast.
 */
function infrastructureHealthChecks(clusterApiVersion: string, controlPlane: { apiVersion: string; kind: string } | undefined, machineDeploymentApiVersion: string, latticeApiVersion: string): Record<string, string>[] {
  return [
    {
      apiVersion: clusterApiVersion, kind: 'Cluster',
      current: `${pivotedShadow} || ${controlPlaneInitializedField} || (has(status.conditions) && status.conditions.exists(c, c.type == 'ControlPlaneInitialized' && c.status == 'True'))`,
    },
    ...(controlPlane ? [{
      apiVersion: controlPlane.apiVersion, kind: controlPlane.kind,
      current: `${pivotedShadow} || ${controlPlaneInitializedField} || (has(status.initialized) && status.initialized == true)`,
    }] : []),
    { apiVersion: machineDeploymentApiVersion, kind: 'MachineDeployment', current: 'true' },
    {
      apiVersion: latticeApiVersion, kind: 'LatticeCluster',
      failed: "(has(status.phase) && status.phase == 'Failed') || (has(status.conditions) && status.conditions.exists(c, c.type == 'Stalled' && c.status == 'True'))",
      current: "has(status.observedGeneration) && has(status.phase) && status.phase in ['Pending', 'Provisioning', 'Pivoting', 'Pivoted', 'Ready']",
    },
  ];
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

function fluxMeta(cluster: string, name: string, namespace: string, stage?: Stage): ObjectMeta {
  return {
    name,
    namespace,
    labels: { [LABEL.managedBy]: 'lattice', [LABEL.cluster]: cluster, ...(stage ? { [FLUX.stageLabel]: stage } : {}) },
  };
}

function fluxObject(stage: Stage, template: string, kind: keyof typeof FLUX.apiVersions, meta: ObjectMeta, fields: Record<string, unknown>): PlannedObject {
  const apiVersion = FLUX.apiVersions[kind];
  return {
    stage, template, apiVersion, kind, name: meta.name, ...(meta.namespace !== undefined ? { namespace: meta.namespace } : {}),
    context: { apiVersion, kind, meta, ...fields },
  };
}

/** Cluster stage and Cluster API objects, protected from pruning except the LatticeCluster. */
export function fluxInfrastructureObjects(objects: readonly PlannedObject[]): PlannedObject[] {
  // The LatticeCluster stays prunable: deleting it from git is how a cluster is torn down (DESIGN §7).
  return objects.map((o) => (o.kind === 'LatticeCluster' ? o : withAnnotations(o, { [FLUX.prune]: FLUX.disabled })));
}

/** The chart sources and HelmReleases of one cluster, in stage order. */
export function fluxAddonObjects(cluster: string, addons: readonly PlannedAddon[], values: (addon: PlannedAddon) => RenderedYaml | undefined, options: FluxOptions): PlannedObject[] {
  const ns = options.namespace;
  const sources: PlannedObject[] = [];
  const releases: PlannedObject[] = [];
  const helmRepositories = new Map<string, string>();
  // Each release waits for every release of the stage before it (the nearest stage that has addons).
  const stages = [...new Set(addons.map((a) => a.stage))].sort((a, b) => stageIndex(a) - stageIndex(b));
  const releaseName = (a: PlannedAddon) => fluxName(cluster, a.id);
  const previous = new Map(stages.map((s, i) => [s, i > 0 ? addons.filter((a) => a.stage === stages[i - 1]).map(releaseName) : []]));

  for (const a of addons) {
    const name = releaseName(a);
    let chartSource: Record<string, unknown>;
    if (a.repository.startsWith('oci://')) {
      sources.push(fluxObject(a.stage, 'flux/oci-repository.yaml.njk', 'OCIRepository', fluxMeta(cluster, name, ns, a.stage), {
        interval: TIMING.sourceInterval,
        url: `${a.repository.replace(/\/+$/, '')}/${a.chart}`,
        // OCI tags cannot hold `+`; Helm pushes SemVer build metadata with `_` instead.
        tag: a.version.replace(/\+/g, '_'),
        layerSelector: HELM_CHART_LAYER,
      }));
      chartSource = { chartRef: { kind: 'OCIRepository', name } };
    } else {
      let repo = helmRepositories.get(a.repository);
      if (repo === undefined) {
        // Named by a hash of the URL: stable whichever addons use it and whatever the flags switch on.
        repo = fluxName(cluster, `helm-${sha(a.repository).slice(0, 10)}`);
        helmRepositories.set(a.repository, repo);
        sources.push(fluxObject(a.stage, 'flux/helm-repository.yaml.njk', 'HelmRepository', fluxMeta(cluster, repo, ns), { interval: TIMING.sourceInterval, url: a.repository }));
      }
      chartSource = { chart: { chart: a.chart, version: a.version, sourceRef: { kind: 'HelmRepository', name: repo } } };
    }
    const dependsOn = previous.get(a.stage) ?? [];
    const rendered = values(a);
    releases.push(fluxObject(a.stage, 'flux/helm-release.yaml.njk', 'HelmRelease', fluxMeta(cluster, name, ns, a.stage), {
      interval: TIMING.interval,
      timeout: TIMING.helmTimeout,
      releaseName: a.release,
      // Both explicit: Helm's storage lives in the child (helm-controller#320), and the HelmRelease's own
      // namespace does not exist there.
      targetNamespace: a.namespace,
      storageNamespace: a.namespace,
      kubeConfig: kubeconfigSecretRef(cluster),
      ...chartSource,
      ...(dependsOn.length > 0 ? { dependsOn: dependsOn.map((d) => ({ name: d })) } : {}),
      install: INSTALL,
      upgrade: UPGRADE,
      ...(rendered ? { values: rendered } : {}),
    }));
  }
  return [...sources, ...releases];
}

/** The three Kustomizations that apply one cluster's artifact, in dependsOn order. */
export function fluxClusterKustomizations(renderer: Renderer, cluster: LatticeCluster, options: FluxOptions): PlannedObject[] {
  const name = cluster.metadata.name;
  const ns = options.namespace;
  const artifactNamespace = options.artifactNamespace ?? ns;
  const sourceRef = { kind: 'ExternalArtifact', name: clusterArtifactName(name), ...(artifactNamespace !== ns ? { namespace: artifactNamespace } : {}) };
  const plan = renderer.plan(cluster);
  const apiVersionOf = (kind: string): string => {
    const v = plan.objects.find((o) => o.kind === kind)?.apiVersion ?? renderer.versions.apiVersions[kind];
    if (!v) throw new Error(`templates/versions.yaml has no apiVersion for ${kind}`);
    return v;
  };
  const controlPlane = plan.objects.find((o) => o.kind === 'KubeadmControlPlane' || o.kind === 'RKE2ControlPlane');
  const infra = fluxName(name, FluxDir.infrastructure);
  const addons = fluxName(name, FluxDir.addons);
  const agent = fluxName(name, FluxDir.agent);
  const common = { interval: TIMING.interval, retryInterval: TIMING.retryInterval, sourceRef, prune: true, wait: true };
  const template = 'flux/kustomization.yaml.njk';
  return [
    fluxObject(Stage.infrastructure, template, 'Kustomization', fluxMeta(name, infra, ns, Stage.infrastructure), {
      ...common, timeout: TIMING.infrastructureTimeout, path: `./${FluxDir.infrastructure}`,
      healthCheckExprs: infrastructureHealthChecks(apiVersionOf('Cluster'), controlPlane && { apiVersion: controlPlane.apiVersion, kind: controlPlane.kind }, apiVersionOf('MachineDeployment'), apiVersionOf('LatticeCluster')),
    }),
    fluxObject(Stage.cni, template, 'Kustomization', fluxMeta(name, addons, ns, Stage.cni), {
      ...common, timeout: TIMING.addonsTimeout, path: `./${FluxDir.addons}`, dependsOn: [{ name: infra }],
    }),
    // Applied into the child through its kubeconfig. Orphan: when the cluster goes, its API server goes
    // too, and a finalizer that needs it would never finish (research/flux.md §5 "Deletion trap"). No
    // targetNamespace: the agent's objects live in two namespaces (lattice-system and capi-X, where it
    // receives the pivoted objects), and a target namespace would move them all into one.
    fluxObject(Stage.agent, template, 'Kustomization', fluxMeta(name, agent, ns, Stage.agent), {
      ...common, timeout: TIMING.agentTimeout, path: `./${FluxDir.agent}`, dependsOn: [{ name: addons }],
      kubeConfig: kubeconfigSecretRef(name), deletionPolicy: 'Orphan',
    }),
  ];
}

/** One cluster's artifact: its three directories. */
export function fluxClusterArtifact(renderer: Renderer, cluster: LatticeCluster, options: FluxOptions): FluxArtifactPlan {
  const name = cluster.metadata.name;
  const addons = renderer.addons(cluster, options.overrides);
  return {
    name: clusterArtifactName(name),
    cluster: name,
    files: [
      { path: `${FluxDir.infrastructure}/manifests.yaml`, objects: fluxInfrastructureObjects(renderer.plan(cluster).objects) },
      { path: `${FluxDir.addons}/manifests.yaml`, objects: fluxAddonObjects(name, addons, (a) => renderer.renderValues(a), options) },
      { path: `${FluxDir.agent}/manifests.yaml`, objects: agentObjects(renderer, cluster, 'plain') },
    ],
  };
}

/**
 * The index artifact: the Kustomizations of every cluster (one file per cluster, so a cluster's entry
 * reads on its own), the InfraProviders (the controller reads them before it accepts a cluster), and any
 * other object found beside the specs, as given.
 */
export function fluxIndexArtifact(renderer: Renderer, inputs: FluxInputs, options: FluxOptions): FluxArtifactPlan {
  const clusters = [...inputs.clusters].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  const providers = (inputs.infraProviders ?? []).map((p) => passthroughObject(p as unknown as Record<string, unknown>));
  const others = (inputs.others ?? []).map((o) => passthroughObject(o as unknown as Record<string, unknown>));
  return {
    name: INDEX_ARTIFACT,
    files: [
      ...(providers.length > 0 ? [{ path: 'infraproviders.yaml', objects: providers }] : []),
      ...(others.length > 0 ? [{ path: 'objects.yaml', objects: others }] : []),
      ...clusters.map((c) => ({ path: `clusters/${c.metadata.name}.yaml`, objects: fluxClusterKustomizations(renderer, c, options) })),
    ],
  };
}

/** Every artifact for a spec set: the index first, then one per cluster by name. */
export function fluxArtifacts(renderer: Renderer, inputs: FluxInputs, options: FluxOptions): FluxArtifactPlan[] {
  const clusters = [...inputs.clusters].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  return [fluxIndexArtifact(renderer, inputs, options), ...clusters.map((c) => fluxClusterArtifact(renderer, c, options))];
}

/** A rendered file: its documents and the exact text that goes into the artifact. */
export interface RenderedFluxFile {
  readonly path: string;
  readonly docs: readonly RenderedDocument[];
  readonly text: string;
}

export interface RenderedFluxArtifact {
  readonly name: string;
  readonly cluster?: string;
  readonly files: readonly RenderedFluxFile[];
}

/** Paths inside an artifact: relative, `/`-separated, no `.`/`..` segments (Flux's untar rules, and ours). */
const SAFE_PATH = /^(?:[a-z0-9][a-z0-9._-]*\/)*[a-z0-9][a-z0-9._-]*\.yaml$/;

/** Renders every file of every artifact; file paths are checked, never trusted. */
export function renderFluxArtifacts(renderer: Renderer, plans: readonly FluxArtifactPlan[]): RenderedFluxArtifact[] {
  return plans.map((p) => ({
    name: p.name,
    ...(p.cluster !== undefined ? { cluster: p.cluster } : {}),
    files: p.files.map((f) => {
      if (!SAFE_PATH.test(f.path) || f.path.split('/').some((s) => s === '.' || s === '..')) throw new Error(`unsafe artifact path ${JSON.stringify(f.path)}`);
      const docs = renderer.renderObjects(f.objects);
      return { path: f.path, docs, text: toYamlStream(docs) };
    }),
  }));
}

/**
 * The flavor as one YAML stream (`lattice render --flavor flux`): every document preceded by a
 * `# file: <artifact>/<path>` comment naming the file it belongs to.
 */
export function fluxYamlStream(artifacts: readonly RenderedFluxArtifact[]): string {
  let out = '';
  for (const a of artifacts) for (const f of a.files) for (const d of f.docs) out += `---\n# file: ${a.name}/${f.path}\n${d.text}`;
  return out;
}
