/**
 * What the controller reads and writes, in one place: the API resources (group, version, plural, scope),
 * the names it derives from a cluster's name, and the labels, annotations and finalizer it owns. When the
 * Flux flavor or an upstream project renames something, this is the one file to change.
 */
import { FluxDir, fluxName, kubeconfigSecretRef } from '../core/flavor/flux.js';
import { AGENT } from '../core/flavor/agent.js';
import { LABEL as RENDER_LABEL } from '../core/render/plan.js';

/** A REST resource: enough to build its paths without discovery. */
export interface Resource {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** `group/version`, or `v1` for the core group. */
export const apiVersionOf = (r: Resource): string => (r.group === '' ? r.version : `${r.group}/${r.version}`);

/** The plural a kind gets from controller-gen/kubebuilder (and kube's own rule): lowercased, English plural. */
export function pluralOf(kind: string): string {
  const k = kind.toLowerCase();
  if (/[^aeiou]y$/.test(k)) return `${k.slice(0, -1)}ies`;
  if (/(s|x|z|ch|sh)$/.test(k)) return `${k}es`;
  return `${k}s`;
}

/** The resource of a kind at an apiVersion. */
export function resourceOf(apiVersion: string, kind: string, namespaced: boolean): Resource {
  const slash = apiVersion.indexOf('/');
  return {
    group: slash < 0 ? '' : apiVersion.slice(0, slash),
    version: slash < 0 ? apiVersion : apiVersion.slice(slash + 1),
    plural: pluralOf(kind),
    kind,
    namespaced,
  };
}

export const LATTICE_CLUSTER = resourceOf('lattice.dev/v1alpha1', 'LatticeCluster', false);
export const INFRA_PROVIDER = resourceOf('lattice.dev/v1alpha1', 'InfraProvider', true);
export const SECRET = resourceOf('v1', 'Secret', true);
export const NAMESPACE = resourceOf('v1', 'Namespace', false);
export const EVENT = resourceOf('v1', 'Event', true);

/** Kinds whose apiVersion is not in templates/versions.yaml (nothing renders them). */
const FIXED_API_VERSIONS = {
  /** CAPA's cluster-scoped static identity (research/capi.md B.4.2). */
  AWSClusterStaticIdentity: 'infrastructure.cluster.x-k8s.io/v1beta2',
  /** Flux 2.7+ (research/flux.md). */
  HelmRelease: 'helm.toolkit.fluxcd.io/v2',
  Kustomization: 'kustomize.toolkit.fluxcd.io/v1',
} as const;

/** The resources whose version comes from the renderer's apiVersions table (templates/versions.yaml). */
export interface ClusterResources {
  readonly capiCluster: Resource;
  readonly machineDeployment: Resource;
  /** Control plane kinds by kind name (KubeadmControlPlane, RKE2ControlPlane). */
  readonly controlPlanes: Readonly<Record<string, Resource>>;
  readonly application: Resource;
  readonly helmRelease: Resource;
  readonly kustomization: Resource;
  readonly awsStaticIdentity: Resource;
}

/**
 * Resolves the resources at the versions Lattice renders, so the controller reads exactly what the
 * renderer wrote (one table: templates/versions.yaml).
 */
export function clusterResources(apiVersions: Readonly<Record<string, string>>): ClusterResources {
  const at = (kind: string): string => {
    const v = apiVersions[kind];
    if (!v) throw new Error(`templates/versions.yaml has no apiVersion for ${kind}`);
    return v;
  };
  return {
    capiCluster: resourceOf(at('Cluster'), 'Cluster', true),
    machineDeployment: resourceOf(at('MachineDeployment'), 'MachineDeployment', true),
    controlPlanes: {
      KubeadmControlPlane: resourceOf(at('KubeadmControlPlane'), 'KubeadmControlPlane', true),
      RKE2ControlPlane: resourceOf(at('RKE2ControlPlane'), 'RKE2ControlPlane', true),
    },
    application: resourceOf(at('Application'), 'Application', true),
    helmRelease: resourceOf(FIXED_API_VERSIONS.HelmRelease, 'HelmRelease', true),
    kustomization: resourceOf(FIXED_API_VERSIONS.Kustomization, 'Kustomization', true),
    awsStaticIdentity: resourceOf(FIXED_API_VERSIONS.AWSClusterStaticIdentity, 'AWSClusterStaticIdentity', false),
  };
}

/** Labels the controller reads or writes. */
export const LABEL = {
  /** On every object of a cluster, rendered or created by the controller (DESIGN §4). */
  cluster: RENDER_LABEL.cluster,
  /** On rendered worker-pool objects: the pool id. */
  pool: RENDER_LABEL.pool,
  /** CAPI's own cluster label (on generated Secrets such as the kubeconfig). */
  capiCluster: RENDER_LABEL.capiCluster,
  managedBy: RENDER_LABEL.managedBy,
  /** The InfraProvider a credentials copy came from. */
  infraProvider: 'lattice.dev/infra-provider',
  /** Argo CD's cluster Secret marker (research/argocd-cmp.md §7.1). */
  argocdSecretType: 'argocd.argoproj.io/secret-type',
  /** clusterctl moves Secrets carrying it (research/capi.md C.2, C.8 #5); M8's pivot honours it too. */
  clusterctlMove: 'clusterctl.cluster.x-k8s.io/move',
} as const;

/**
 * `app.kubernetes.io/managed-by` of objects the controller creates. Rendered objects say `lattice`; the
 * controller only updates or deletes objects that say this, so it never fights the GitOps engine or a user.
 */
export const CONTROLLER_MANAGER = 'lattice-controller';

export const ANNOTATION = {
  /** `"true"` blocks deletion of a LatticeCluster: the finalizer stays and nothing is torn down. */
  deletionProtection: 'lattice.dev/deletion-protection',
  /** Where a registration Secret's credentials come from (for people reading it; never secret). */
  kubeconfigSource: 'lattice.dev/kubeconfig-source',
  /** CAPI autoscaler bounds (research/capi.md B.5): both present means the pool autoscales. */
  autoscalerMin: 'cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size',
  autoscalerMax: 'cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size',
} as const;

/** DESIGN §7: removed only once the cluster is torn down (or unpivoted back and torn down). */
export const FINALIZER = 'lattice.dev/unpivot';

/** Names derived from a cluster's name `c`. */
export const NAMES = {
  /** Every namespaced CAPI object of the cluster lives here (DESIGN §4). */
  namespace: (c: string) => `capi-${c}`,
  capiCluster: (c: string) => c,
  /** Written by the control-plane provider, kubeconfig under key `value` (research/capi.md B.8). */
  kubeconfigSecret: (c: string) => `${c}-kubeconfig`,
  /** What rendered CAPI objects reference (core/render/providers.ts). */
  credentialsSecret: (providerRef: string) => `${providerRef}-credentials`,
  /** Rendered for AWS: AWSCluster.spec.identityRef names an AWSClusterStaticIdentity `<providerRef>`. */
  awsIdentity: (providerRef: string) => providerRef,
  /** DESIGN §5: durable per-cluster markers; not `<cluster>-<purpose>`, so clusterctl's soft ownership ignores it. */
  stateSecret: 'lattice-state',
  /** The Argo CD cluster Secret (argocd namespace); its data.name is the cluster's name. */
  argocdClusterSecret: (c: string) => `cluster-${c}`,
  /** An addon's Application (core/plan/addons.ts PlannedAddon.objectName, which the Argo CD flavor uses). */
  argocdApplication: (c: string, addonId: string) => `${c}-${addonId}`,
  /** An addon's HelmRelease: the Flux flavor's own naming (`<cluster>-<addon>`, hashed past 63 characters). */
  fluxHelmRelease: (c: string, addonId: string) => fluxName(c, addonId),
  /** The agent Application of the Argo CD flavor (core/flavor/argocd.ts). */
  argocdAgentApplication: (c: string) => `${c}-${AGENT.name}`,
  /** The kubeconfig Secret the Flux HelmReleases and the agent Kustomization reference (key `value`). */
  fluxKubeconfigSecret: (c: string) => kubeconfigSecretRef(c).name,
  /** The Flux flavor's per-cluster Kustomizations (DESIGN §4.2). */
  fluxKustomization: {
    infrastructure: (c: string) => fluxName(c, FluxDir.infrastructure),
    addons: (c: string) => fluxName(c, FluxDir.addons),
    agent: (c: string) => fluxName(c, FluxDir.agent),
  },
} as const;

/** The key of Secrets holding one kubeconfig: CAPI's and Flux's default (research/flux.md kubeConfig.secretRef). */
export const KUBECONFIG_KEY = 'value';
