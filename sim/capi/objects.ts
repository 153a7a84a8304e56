/**
 * The objects the simulated controllers create, built as data: Machines, MachineSets, bootstrap configs,
 * infrastructure machines, the per-cluster Secrets with CAPI's names, types, labels and owners, the
 * kubeconfig, and child-cluster Nodes. Names are deterministic (a hash where CAPI uses a random suffix)
 * so a pass that is retried, or a second simulator, never creates duplicates.
 */
import { createHash } from 'node:crypto';
import type { V1Node } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { isJson, list, rec, str, type Json, type KObject, type OwnerReference, type SecretObject } from './kube.js';

/** CAPI's well-known labels and annotations (cluster-api api/core/v1beta2). */
export const LABEL = {
  clusterName: 'cluster.x-k8s.io/cluster-name',
  controlPlane: 'cluster.x-k8s.io/control-plane',
  controlPlaneName: 'cluster.x-k8s.io/control-plane-name',
  deploymentName: 'cluster.x-k8s.io/deployment-name',
  setName: 'cluster.x-k8s.io/set-name',
  templateHash: 'machine-template-hash',
} as const;

export const ANNOTATION = {
  paused: 'cluster.x-k8s.io/paused',
  pivotedTo: 'lattice.dev/pivoted-to',
  clonedFromName: 'cluster.x-k8s.io/cloned-from-name',
  clonedFromGroupKind: 'cluster.x-k8s.io/cloned-from-groupkind',
  autoscalerMin: 'cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size',
} as const;

/** The finalizer the Cluster controller adds (api/core/v1beta2 ClusterFinalizer). */
export const CLUSTER_FINALIZER = 'cluster.cluster.x-k8s.io';
/** Secret type of every CAPI-generated Secret (ClusterSecretType). */
export const CLUSTER_SECRET_TYPE = 'cluster.x-k8s.io/secret';
export const CORE_API_VERSION = 'cluster.x-k8s.io/v1beta2';

/** What differs between control-plane providers for the objects the simulator creates. */
export interface ControlPlaneProvider {
  /** The bootstrap config kind of its Machines (same API group as the templates: bootstrap.cluster.x-k8s.io). */
  readonly bootstrapKind: string;
  /** `<cluster>-<purpose>` certificate Secrets, owned by the control plane (controller). */
  readonly certificates: readonly string[];
  /** `<cluster>-<purpose>` Secrets owned by the Cluster. */
  readonly clusterSecrets: readonly string[];
  /** Node role labels the distribution puts on control-plane nodes. */
  readonly nodeRoles: Readonly<Record<string, string>>;
}

/**
 * One table for the control planes Lattice renders. KCP: `-ca`, `-etcd`, `-proxy` (front proxy), `-sa`
 * (capi.md B.8); CAPRKE2: `-ca` (server CA) and `-cca` (client CA) from NewCertificatesForInitialControlPlane,
 * plus `-token` owned by the Cluster (capi.md B.3). Both own `<cluster>-kubeconfig`.
 */
export const CONTROL_PLANES: Readonly<Record<string, ControlPlaneProvider>> = {
  KubeadmControlPlane: {
    bootstrapKind: 'KubeadmConfig',
    certificates: ['ca', 'etcd', 'proxy', 'sa'],
    clusterSecrets: [],
    nodeRoles: { 'node-role.kubernetes.io/control-plane': '' },
  },
  RKE2ControlPlane: {
    bootstrapKind: 'RKE2Config',
    certificates: ['ca', 'cca'],
    clusterSecrets: ['token'],
    nodeRoles: { 'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/etcd': 'true', 'node-role.kubernetes.io/master': 'true' },
  },
};

// ---- names -----------------------------------------------------------------------------------------

/** utilrand's alphabet (no vowels, no look-alike digits), which CAPI's generated names use. */
const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

const digest = (text: string) => createHash('sha256').update(text).digest();

/** A 5-character suffix in CAPI's style, derived from `seed` instead of random. */
export function suffix(seed: string): string {
  const bytes = digest(seed);
  let out = '';
  for (let i = 0; i < 5; i++) out += NAME_ALPHABET.charAt((bytes[i] ?? 0) % NAME_ALPHABET.length);
  return out;
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (!isJson(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
}

/** The `machine-template-hash` of a MachineDeployment template: a uint32 in decimal, as CAPI writes it. */
export function templateHash(template: unknown): string {
  return String(digest(JSON.stringify(canonical(template))).readUInt32BE(0));
}

/** A label value for a name; longer than 63 characters becomes a hash (CAPI's format.MustFormatValue). */
export function labelValue(name: string): string {
  if (name.length <= 63) return name;
  return `hash_${digest(name).subarray(0, 6).toString('base64url')}_z`;
}

/** `XMachineTemplate` → `XMachine`, `KubeadmConfigTemplate` → `KubeadmConfig`. */
export function instanceKind(templateKind: string): string {
  return templateKind.endsWith('Template') ? templateKind.slice(0, -'Template'.length) : templateKind;
}

/** A stable private address for a machine (10.0.0.0/8, never .0, .1 or .255). */
export function machineAddress(name: string): string {
  const b = digest(`address/${name}`);
  return `10.${b[0] ?? 0}.${b[1] ?? 0}.${2 + ((b[2] ?? 0) % 253)}`;
}

// ---- owner references --------------------------------------------------------------------------

/** An owner reference to `owner`; `controller` also sets blockOwnerDeletion, as metav1.NewControllerRef does. */
export function ownerRef(owner: KObject, controller: boolean): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid ?? '',
    ...(controller ? { controller: true, blockOwnerDeletion: true } : {}),
  };
}

/** Whether `obj` has an owner reference to the object with this uid (controller only, if asked). */
export function ownedBy(obj: { metadata: { ownerReferences?: OwnerReference[] } }, uid: string | undefined, controller = false): boolean {
  return (obj.metadata.ownerReferences ?? []).some((o) => o.uid === uid && (!controller || o.controller === true));
}

/** The references with `ref` added, or undefined when one to the same uid is already there. */
export function withOwner(refs: readonly OwnerReference[] | undefined, ref: OwnerReference): OwnerReference[] | undefined {
  const current = refs ?? [];
  if (current.some((o) => o.uid === ref.uid)) return undefined;
  // util.EnsureOwnerRef: an owner of the same kind and name (the object recreated, new uid) is replaced.
  return [...current.filter((o) => !(o.kind === ref.kind && o.name === ref.name)), ref];
}

// ---- objects ------------------------------------------------------------------------------------

export interface Ref {
  readonly apiGroup: string;
  readonly kind: string;
  readonly name: string;
}

export function toRef(v: unknown): Ref | undefined {
  const r = rec(v);
  const apiGroup = str(r.apiGroup);
  const kind = str(r.kind);
  const name = str(r.name);
  return apiGroup && kind && name ? { apiGroup, kind, name } : undefined;
}

export interface MachineInput {
  readonly name: string;
  readonly namespace: string;
  readonly clusterName: string;
  readonly owner: KObject;
  readonly labels: Readonly<Record<string, string>>;
  /** The machine spec fields to carry over (version, deletion, readinessGates, failureDomain...). */
  readonly spec: Json;
  readonly bootstrap: { readonly apiGroup: string; readonly kind: string } | undefined;
  readonly infrastructure: Ref;
}

/**
 * A Machine as KCP or a MachineSet creates it: controlled by its owner, its bootstrap config and infra
 * machine named after it, and `bootstrap.dataSecretName` already set (the Machine controller copies it
 * from the config's status once the data Secret exists; the simulator writes both in the same pass).
 */
export function machine(m: MachineInput): KObject {
  const { bootstrap: _b, infrastructureRef: _i, ...rest } = m.spec;
  return {
    apiVersion: CORE_API_VERSION,
    kind: 'Machine',
    metadata: { name: m.name, namespace: m.namespace, labels: { ...m.labels }, ownerReferences: [ownerRef(m.owner, true)] },
    spec: {
      ...rest,
      clusterName: m.clusterName,
      bootstrap: m.bootstrap
        ? { configRef: { apiGroup: m.bootstrap.apiGroup, kind: m.bootstrap.kind, name: m.name }, dataSecretName: m.name }
        : { dataSecretName: str(rec(m.spec.bootstrap).dataSecretName) ?? m.name },
      infrastructureRef: { apiGroup: m.infrastructure.apiGroup, kind: instanceKind(m.infrastructure.kind), name: m.name },
    },
  };
}

/** A config or infra machine cloned from a template for a Machine (controller: the Machine). */
export function cloned(input: {
  apiVersion: string; kind: string; machine: KObject; labels: Readonly<Record<string, string>>; spec: Json | undefined; template?: KObject;
}): KObject {
  const annotations = input.template ? {
    [ANNOTATION.clonedFromName]: input.template.metadata.name,
    [ANNOTATION.clonedFromGroupKind]: `${input.template.kind}.${input.template.apiVersion.split('/')[0] ?? ''}`,
  } : undefined;
  return {
    apiVersion: input.apiVersion,
    kind: input.kind,
    metadata: {
      name: input.machine.metadata.name,
      namespace: input.machine.metadata.namespace ?? '',
      labels: { ...input.labels },
      ...(annotations ? { annotations } : {}),
      ownerReferences: [ownerRef(input.machine, true)],
    },
    ...(input.spec && Object.keys(input.spec).length > 0 ? { spec: input.spec } : {}),
  };
}

/**
 * The KubeadmConfig spec of a control-plane Machine, as KCP derives it (InitialControlPlaneConfig /
 * JoinControlPlaneConfig): the first machine gets the init configuration, the others join as control
 * plane (`joinConfiguration.controlPlane: {}`).
 */
export function kubeadmControlPlaneConfig(kubeadmConfigSpec: Json, init: boolean): Json {
  const { initConfiguration, joinConfiguration, ...common } = kubeadmConfigSpec;
  if (init) return { ...common, ...(initConfiguration !== undefined ? { initConfiguration } : {}) };
  return { ...common, joinConfiguration: { ...rec(joinConfiguration), controlPlane: rec(rec(joinConfiguration).controlPlane) } };
}

/** The node labels a bootstrap config asks the kubelet for (kubeadm `node-labels`, RKE2 `agentConfig.nodeLabels`). */
export function bootstrapNodeLabels(configSpec: Json): Record<string, string> {
  const pairs: string[] = [];
  for (const section of ['initConfiguration', 'joinConfiguration']) {
    for (const arg of list(rec(rec(configSpec[section]).nodeRegistration).kubeletExtraArgs).map(rec)) {
      if (arg.name === 'node-labels' && typeof arg.value === 'string') pairs.push(...arg.value.split(','));
    }
  }
  for (const l of list(rec(configSpec.agentConfig).nodeLabels)) if (typeof l === 'string') pairs.push(l);
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq > 0) out[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  return out;
}

/** Machine labels CAPI keeps in sync on the Node (util/labels.GetManagedLabels, capi.md B.6). */
export function syncedNodeLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  const managed = (domain: string) => domain === 'node-role.kubernetes.io' || domain === 'node-restriction.kubernetes.io'
    || domain.endsWith('.node-restriction.kubernetes.io') || domain === 'node.cluster.x-k8s.io' || domain.endsWith('.node.cluster.x-k8s.io');
  return Object.fromEntries(Object.entries(labels).filter(([k]) => k.includes('/') && managed(k.slice(0, k.indexOf('/')))));
}

// ---- secrets --------------------------------------------------------------------------------------

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** PEM-shaped placeholder material: the simulator makes no real keys (nothing ever verifies them). */
export function fakePem(label: string, subject: string): string {
  const body = b64(`lattice capi sim ${label.toLowerCase()} for ${subject}; placeholder, not real key material`);
  return `-----BEGIN ${label}-----\n${(body.match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;
}

export function secret(input: { name: string; namespace: string; clusterName: string; owner: KObject; controller: boolean; data: Record<string, string> }): SecretObject {
  return {
    metadata: {
      name: input.name,
      namespace: input.namespace,
      labels: { [LABEL.clusterName]: input.clusterName },
      ownerReferences: [ownerRef(input.owner, input.controller)],
    },
    type: CLUSTER_SECRET_TYPE,
    data: Object.fromEntries(Object.entries(input.data).map(([k, v]) => [k, b64(v)])),
  };
}

/** Data of a `<cluster>-<purpose>` certificate Secret (`-sa` holds a key pair, the rest a CA). */
export function certificateData(clusterName: string, purpose: string): Record<string, string> {
  const subject = `${clusterName}-${purpose}`;
  if (purpose === 'sa') return { 'tls.crt': fakePem('PUBLIC KEY', subject), 'tls.key': fakePem('RSA PRIVATE KEY', subject) };
  if (purpose === 'token') return { value: suffix(`token/${subject}`) + suffix(`token2/${subject}`) };
  return { 'tls.crt': fakePem('CERTIFICATE', subject), 'tls.key': fakePem('RSA PRIVATE KEY', subject) };
}

/**
 * The kubeconfig CAPI writes (capi.md B.8): cluster `<name>`, user `<name>-admin` with a client
 * certificate, context `<name>-admin@<name>`. A plain-http server (a simulated child) gets
 * insecure-skip-tls-verify instead of a CA, since client-node would refuse http otherwise.
 */
export function kubeconfigYaml(clusterName: string, server: string): string {
  const user = `${clusterName}-admin`;
  const context = `${user}@${clusterName}`;
  const tls = server.startsWith('http://')
    ? { 'insecure-skip-tls-verify': true }
    : { 'certificate-authority-data': b64(fakePem('CERTIFICATE', `${clusterName}-ca`)) };
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: clusterName, cluster: { server, ...tls } }],
    contexts: [{ name: context, context: { cluster: clusterName, user } }],
    'current-context': context,
    preferences: {},
    users: [{
      name: user,
      user: {
        'client-certificate-data': b64(fakePem('CERTIFICATE', user)),
        'client-key-data': b64(fakePem('RSA PRIVATE KEY', user)),
      },
    }],
  });
}

/** The bootstrap data Secret a bootstrap provider writes for a config (named after it, owned by it). */
export function bootstrapDataSecret(config: KObject, clusterName: string): SecretObject {
  return secret({
    name: config.metadata.name,
    namespace: config.metadata.namespace ?? '',
    clusterName,
    owner: config,
    controller: true,
    data: { format: 'cloud-config', value: `#cloud-config\n# lattice capi sim: bootstrap data of ${config.kind} ${config.metadata.name}, never run\n` },
  });
}

// ---- child nodes ---------------------------------------------------------------------------------

/** A Ready Node for a Machine, with the annotations the Machine controller puts on it. */
export function node(input: {
  machine: KObject; clusterName: string; labels: Readonly<Record<string, string>>; version: string | undefined; now: Date;
}): V1Node {
  const m = input.machine;
  const owner = (m.metadata.ownerReferences ?? []).find((o) => o.controller === true);
  const name = m.metadata.name;
  const kubelet = input.version ?? 'v0.0.0';
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...input.labels },
      annotations: {
        'cluster.x-k8s.io/cluster-name': input.clusterName,
        'cluster.x-k8s.io/cluster-namespace': m.metadata.namespace ?? '',
        'cluster.x-k8s.io/machine': name,
        ...(owner ? { 'cluster.x-k8s.io/owner-kind': owner.kind, 'cluster.x-k8s.io/owner-name': owner.name } : {}),
      },
    },
    spec: {},
    status: {
      conditions: [{
        type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status',
        lastHeartbeatTime: input.now, lastTransitionTime: input.now,
      }],
      addresses: [{ type: 'InternalIP', address: machineAddress(name) }, { type: 'Hostname', address: name }],
      capacity: { cpu: '2', memory: '4Gi', pods: '110' },
      allocatable: { cpu: '2', memory: '4Gi', pods: '110' },
      nodeInfo: {
        architecture: 'amd64', bootID: suffix(`boot/${name}`), containerRuntimeVersion: 'containerd://2.1.0', kernelVersion: '6.8.0',
        kubeProxyVersion: '', kubeletVersion: kubelet, machineID: suffix(`machine/${name}`), operatingSystem: 'linux',
        osImage: 'Lattice simulated node', systemUUID: suffix(`uuid/${name}`),
      },
    },
  };
}
