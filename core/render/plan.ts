/**
 * The ClusterPlan: every object a LatticeCluster expands into, in order, each with its stage, template,
 * apiVersion, kind, namespace, name and template context. Everything about an object except its YAML
 * text is decided here, so the renderer, the flavors and the controller never parse rendered text back.
 */
import { createHash } from 'node:crypto';
import { Stage, stageIndex } from '../plan/stages.js';
import type { LatticeCluster, Taint, WorkerPoolSpec } from '../spec/model.js';
import { configuredProviders } from '../spec/rules.js';
import { isCapiSyncedLabel } from '../spec/syntax.js';
import { kubeadmControlPlaneConfig, kubeadmWorkerConfig, rke2ControlPlaneConfig, rke2WorkerConfig, taintString } from './bootstrap.js';
import { PROVIDERS, kubeVipImage, type MachineSpec } from './providers.js';
import { canonicalJson } from './scalar.js';
import { groupOf, type Versions } from './versions.js';

/** Labels that mark every Cluster API object of a cluster (DESIGN §4). */
export const LABEL = {
  cluster: 'lattice.dev/cluster',
  pool: 'lattice.dev/pool',
  capiCluster: 'cluster.x-k8s.io/cluster-name',
  managedBy: 'app.kubernetes.io/managed-by',
} as const;

/** Cluster autoscaler annotations (clusterapi cloud provider), see research/capi.md B.5. */
export const AUTOSCALER = {
  min: 'cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size',
  max: 'cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size',
  cpu: 'capacity.cluster-autoscaler.kubernetes.io/cpu',
  memory: 'capacity.cluster-autoscaler.kubernetes.io/memory',
  disk: 'capacity.cluster-autoscaler.kubernetes.io/ephemeral-disk',
  labels: 'capacity.cluster-autoscaler.kubernetes.io/labels',
  taints: 'capacity.cluster-autoscaler.kubernetes.io/taints',
} as const;

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface PlannedObject {
  readonly stage: Stage;
  /** Template path under templates/. */
  readonly template: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  /** The template's input: `apiVersion`, `kind` and `meta` plus the template's own fields. */
  readonly context: Readonly<Record<string, unknown>>;
}

/**
 * The object with `annotations` added to its metadata (the flavors' waves and pruning rules). Without
 * annotations of its own, the object takes the given ones as they are, so flavors can share one frozen
 * object among many (which `block` renders once).
 */
export function withAnnotations(o: PlannedObject, annotations: Readonly<Record<string, string>>): PlannedObject {
  const meta = o.context.meta as ObjectMeta;
  return { ...o, context: { ...o.context, meta: { ...meta, annotations: meta.annotations ? { ...meta.annotations, ...annotations } : annotations } } };
}

export interface ClusterPlan {
  readonly cluster: string;
  readonly namespace: string;
  readonly objects: readonly PlannedObject[];
}

export interface PlanOptions {
  readonly versions: Versions;
  /** A digest of each template's source, so a template change renames the objects it renders. */
  readonly templateDigest: (template: string) => string;
}

const HASH_LENGTH = 10;

/** `v1.34.1` for kubeadm, `v1.34.1+rke2r1` for RKE2 (research/reference-lattice.md §1.2). */
export function kubernetesVersion(cluster: LatticeCluster): string {
  const v = cluster.spec.provider.kubernetes.version.replace(/^v?/, 'v');
  return cluster.spec.provider.kubernetes.bootstrap === 'rke2' ? `${v}+rke2r1` : v;
}

/** True when a pool is autoscaled (min and max set). */
export const isAutoscaled = (pool: WorkerPoolSpec): boolean => pool.min !== undefined && pool.max !== undefined;

/** Plans every object of one validated, defaulted cluster. */
export function planCluster(cluster: LatticeCluster, options: PlanOptions): ClusterPlan {
  const { versions } = options;
  const name = cluster.metadata.name;
  const namespace = `capi-${name}`;
  const providerType = configuredProviders(cluster.spec)[0];
  if (!providerType) throw new Error(`cluster ${name}: no provider configured: validate before planning`);
  const provider = PROVIDERS[providerType];
  const rke2 = cluster.spec.provider.kubernetes.bootstrap === 'rke2';
  const bootstrap = rke2 ? 'rke2' : 'kubeadm';
  const version = kubernetesVersion(cluster);
  // Frozen: shared by most of the cluster's objects, so `block` renders them once (scalar.ts).
  const baseLabels = Object.freeze({ [LABEL.managedBy]: 'lattice', [LABEL.capiCluster]: name, [LABEL.cluster]: name });
  const credentials = `${cluster.spec.providerRef}-credentials`;

  const apiVersion = (kind: string): string => {
    const v = versions.apiVersions[kind];
    if (!v) throw new Error(`templates/versions.yaml has no apiVersion for ${kind}`);
    return v;
  };
  const ref = (kind: string, refName: string) => ({ apiGroup: groupOf(apiVersion(kind)), kind, name: refName });
  const objects: PlannedObject[] = [];
  const add = (stage: Stage, template: string, kind: string, meta: ObjectMeta, fields: Record<string, unknown>) => {
    objects.push({
      stage, template, apiVersion: apiVersion(kind), kind, name: meta.name,
      ...(meta.namespace !== undefined ? { namespace: meta.namespace } : {}),
      context: { apiVersion: apiVersion(kind), kind, meta, ...fields },
    });
  };
  /** Immutable templates get a name derived from everything that shapes their content. */
  const hashedName = (base: string, template: string, kind: string, fields: Record<string, unknown>) => {
    const digest = createHash('sha256').update(options.templateDigest(template)).update('\n').update(apiVersion(kind)).update('\n').update(canonicalJson(fields)).digest('hex');
    return `${base}-${digest.slice(0, HASH_LENGTH)}`;
  };
  const addHashed = (stage: Stage, template: string, kind: string, base: string, labels: Record<string, string>, fields: Record<string, unknown>): string => {
    const objName = hashedName(base, template, kind, fields);
    add(stage, template, kind, { name: objName, namespace, labels }, fields);
    return objName;
  };

  // cluster stage: the namespace and the LatticeCluster itself
  add(Stage.cluster, 'cluster/namespace.yaml.njk', 'Namespace', { name: namespace, labels: baseLabels }, {});
  add(Stage.cluster, 'cluster/lattice-cluster.yaml.njk', 'LatticeCluster', {
    name,
    ...(cluster.metadata.labels ? { labels: cluster.metadata.labels } : {}),
    ...(cluster.metadata.annotations ? { annotations: cluster.metadata.annotations } : {}),
  }, { spec: cluster.spec });

  // infrastructure stage: Cluster, infra cluster, control plane and its machine template
  const controlPlaneKind = rke2 ? 'RKE2ControlPlane' : 'KubeadmControlPlane';
  const controlPlaneName = `${name}-control-plane`;
  add(Stage.infrastructure, 'capi/core/cluster.yaml.njk', 'Cluster', { name, namespace, labels: baseLabels }, {
    podCidrBlocks: cluster.spec.networking.podCidrBlocks,
    serviceCidrBlocks: cluster.spec.networking.serviceCidrBlocks,
    infrastructureRef: ref(provider.infraClusterKind, name),
    controlPlaneRef: ref(controlPlaneKind, controlPlaneName),
  });
  add(Stage.infrastructure, `capi/${providerType}/cluster.yaml.njk`, provider.infraClusterKind, { name, namespace, labels: baseLabels },
    provider.infraCluster(cluster, { providerRef: cluster.spec.providerRef, credentials, namespace, rke2 }));

  const cp: MachineSpec = { role: 'control-plane', ...cluster.spec.nodes.controlPlane };
  const machineTemplatePath = `capi/${providerType}/machine-template.yaml.njk`;
  const cpTemplate = addHashed(Stage.infrastructure, machineTemplatePath, provider.machineTemplateKind, controlPlaneName, baseLabels, provider.machineTemplate(cluster, cp));

  const proxmox = cluster.spec.provider.config.proxmox;
  const controlPlaneInput = {
    provider,
    ...(cluster.spec.provider.kubernetes.certSANs ? { certSANs: cluster.spec.provider.kubernetes.certSANs } : {}),
    ...(provider.kubeVip && proxmox ? { kubeVip: { image: kubeVipImage(cluster, versions), address: proxmox.controlPlaneEndpoint, interface: proxmox.virtualIpNetworkInterface, port: 6443 } } : {}),
    ...(proxmox?.sshAuthorizedKeys ? { sshAuthorizedKeys: proxmox.sshAuthorizedKeys } : {}),
  };
  add(Stage.infrastructure, `bootstrap/${bootstrap}/control-plane.yaml.njk`, controlPlaneKind, { name: controlPlaneName, namespace, labels: baseLabels }, {
    version,
    replicas: cluster.spec.nodes.controlPlane.replicas,
    machineTemplateRef: ref(provider.machineTemplateKind, cpTemplate),
    ...(rke2 ? rke2ControlPlaneConfig(controlPlaneInput) : { kubeadmConfigSpec: kubeadmControlPlaneConfig(controlPlaneInput) }),
  });

  // per pool: bootstrap config template and machine template (infrastructure), then the
  // MachineDeployment and its MachineHealthCheck (cni stage: workers need the CNI to turn Ready)
  const pools = Object.entries(cluster.spec.nodes.workerPools ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  const workloads: (() => void)[] = [];
  for (const [poolId, pool] of pools) {
    if (!pool) continue;
    const base = `${name}-pool-${poolId}`;
    const poolLabels = Object.freeze({ ...baseLabels, [LABEL.pool]: poolId });
    const nodeLabels: Record<string, string> = { [LABEL.pool]: poolId, ...(pool.labels as Record<string, string> | undefined) };
    const allNodeLabels = Object.keys(nodeLabels).sort().map((k) => `${k}=${nodeLabels[k]}`);
    // node-role and other Cluster API-synced labels cannot come from the kubelet; the Machine carries them.
    const nodeLabelList = allNodeLabels.filter((l) => !isCapiSyncedLabel(l.slice(0, l.indexOf('='))));
    const machineLabels = Object.fromEntries(Object.entries(nodeLabels).filter(([k]) => isCapiSyncedLabel(k)));
    const taints = pool.taints ?? [];
    const bootstrapKind = rke2 ? 'RKE2ConfigTemplate' : 'KubeadmConfigTemplate';
    const bootstrapFields = { config: rke2 ? rke2WorkerConfig(provider, nodeLabelList, taints) : kubeadmWorkerConfig(provider, nodeLabelList, taints) };
    const bootstrapName = addHashed(Stage.infrastructure, `bootstrap/${bootstrap}/config-template.yaml.njk`, bootstrapKind, `${base}-bootstrap`, poolLabels, bootstrapFields);
    const machine: MachineSpec = { role: 'worker', ...(pool.instanceType ? { instanceType: pool.instanceType } : {}), ...(pool.rootVolume ? { rootVolume: pool.rootVolume } : {}) };
    const machineName = addHashed(Stage.infrastructure, machineTemplatePath, provider.machineTemplateKind, base, poolLabels, provider.machineTemplate(cluster, machine));

    workloads.push(() => {
      const selector = { [LABEL.capiCluster]: name, [LABEL.pool]: poolId };
      add(Stage.cni, 'capi/core/machine-deployment.yaml.njk', 'MachineDeployment', { name: base, namespace, labels: poolLabels, ...autoscalerAnnotations(pool, allNodeLabels, taints) }, {
        clusterName: name,
        replicas: isAutoscaled(pool) ? undefined : pool.replicas,
        version,
        selector,
        machineLabels: { ...machineLabels, ...selector },
        bootstrapRef: ref(bootstrapKind, bootstrapName),
        infrastructureRef: ref(provider.machineTemplateKind, machineName),
      });
      add(Stage.cni, 'capi/core/machine-health-check.yaml.njk', 'MachineHealthCheck', { name: base, namespace, labels: poolLabels }, {
        clusterName: name,
        selector: { [LABEL.capiCluster]: name, [LABEL.pool]: poolId },
      });
    });
  }
  for (const w of workloads) w();

  // Plan order within a stage is deliberate; across stages the stage table decides.
  const ordered = objects.map((o, i) => ({ o, i })).sort((a, b) => stageIndex(a.o.stage) - stageIndex(b.o.stage) || a.i - b.i).map((x) => x.o);
  return { cluster: name, namespace, objects: ordered };
}

function autoscalerAnnotations(pool: WorkerPoolSpec, nodeLabels: readonly string[], taints: readonly Taint[]): { annotations?: Record<string, string> } {
  if (!isAutoscaled(pool)) return {};
  const a: Record<string, string> = { [AUTOSCALER.min]: String(pool.min), [AUTOSCALER.max]: String(pool.max) };
  // Scale from zero: the autoscaler must know a node's shape before one exists. Explicit sizes say it;
  // a named instance type is looked up by the provider from the machine template's status.
  const it = pool.instanceType;
  if (it?.cores !== undefined && it.memoryGib !== undefined && it.diskGib !== undefined) {
    a[AUTOSCALER.cpu] = String(it.cores * (it.sockets ?? 1));
    a[AUTOSCALER.memory] = `${it.memoryGib}Gi`;
    a[AUTOSCALER.disk] = `${pool.rootVolume?.sizeGib ?? it.diskGib}Gi`;
  }
  a[AUTOSCALER.labels] = nodeLabels.join(',');
  if (taints.length > 0) a[AUTOSCALER.taints] = taints.map(taintString).join(',');
  return { annotations: a };
}
