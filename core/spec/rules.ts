/**
 * Cross-field rules that a JSON schema cannot express. Each one is mirrored, with the same code, by an
 * `x-kubernetes-validations` CEL rule in crds/, so a spec applied by hand is rejected by the API server
 * for the same reason; tests evaluate the CEL against the same fixtures to keep the two in step.
 * Rules run on the defaulted object (the API server defaults before it validates) and guard their own
 * types, because they also run when the schema found problems: all issues are reported at once.
 */
import { IssueCode } from './issues.js';
import type { Path } from './path.js';
import { isRecord } from '../data.js';
import { LABEL_KEY_SYNTAX, LABEL_VALUE_SYNTAX, MAX_CLUSTER_NAME, isDnsLabel, isLabelKey, isLabelValue, isRestrictedNodeLabel } from './syntax.js';

/** A rule's finding, before it is given a file position. */
export interface Violation {
  readonly code: IssueCode;
  readonly path: Path;
  readonly message: string;
  readonly expected?: string;
  readonly found?: string;
  /** Point at the key rather than the value (map keys are what is wrong). */
  readonly atKey?: boolean;
}

type Obj = Record<string, unknown>;
const isObj = isRecord;
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));
const entries = (v: unknown): [string, unknown][] => (isObj(v) ? Object.entries(v) : []);

export const PROVIDER_TYPES = ['docker', 'aws', 'proxmox', 'openstack'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/** The provider types set in `spec.provider.config`, in table order. */
export function configuredProviders(spec: unknown): ProviderType[] {
  const config = isObj(spec) && isObj(spec.provider) ? spec.provider.config : undefined;
  return PROVIDER_TYPES.filter((p) => isObj(config) && config[p] !== undefined);
}

function clusterName(obj: Obj): Violation[] {
  const name = isObj(obj.metadata) ? obj.metadata.name : undefined;
  if (typeof name !== 'string' || isDnsLabel(name, MAX_CLUSTER_NAME)) return [];
  return [{
    code: IssueCode.CLUSTER_NAME_INVALID, path: ['metadata', 'name'],
    message: `cluster name must be a DNS label of at most ${MAX_CLUSTER_NAME} characters, so that the namespace capi-<name> is valid`,
    expected: `lowercase letters, digits and '-', at most ${MAX_CLUSTER_NAME} characters`, found: show(name),
  }];
}

function providerConfig(spec: Obj): Violation[] {
  const provider = isObj(spec.provider) ? spec.provider : undefined;
  if (!provider || !isObj(provider.config)) return [];
  const set = configuredProviders(spec);
  const out: Violation[] = [];
  if (set.length !== 1) {
    out.push({
      code: IssueCode.PROVIDER_CONFIG_NOT_ONE, path: ['spec', 'provider', 'config'],
      message: 'set exactly one provider configuration', expected: `exactly one of ${PROVIDER_TYPES.join(', ')}`,
      found: set.length === 0 ? 'none' : set.join(' and '),
    });
  }
  const kubernetes = isObj(provider.kubernetes) ? provider.kubernetes : {};
  if (set.includes('docker') && kubernetes.bootstrap === 'rke2') {
    out.push({
      code: IssueCode.BOOTSTRAP_NOT_SUPPORTED, path: ['spec', 'provider', 'kubernetes', 'bootstrap'],
      message: 'rke2 on the docker provider is not supported (its load balancer does not forward the RKE2 supervisor port)',
      expected: 'kubeadm', found: show(kubernetes.bootstrap),
    });
  }
  const aws = provider.config.aws;
  const subnets = isObj(aws) && Array.isArray(aws.subnetIds) && aws.subnetIds.length > 0;
  if (isObj(aws) && (aws.vpcId !== undefined) !== subnets) {
    out.push({
      code: IssueCode.AWS_VPC_NEEDS_SUBNETS, path: ['spec', 'provider', 'config', 'aws', 'subnetIds'],
      message: 'vpcId and subnetIds go together: an existing VPC needs the subnets to place machines in, and subnets need their VPC',
      expected: 'both vpcId and subnetIds, or neither', found: subnets ? 'subnetIds without vpcId' : 'vpcId without subnetIds',
    });
  }
  return out;
}

function instanceTypes(spec: Obj): Violation[] {
  const nodes = isObj(spec.nodes) ? spec.nodes : {};
  const machines: [Path, unknown][] = [];
  if (isObj(nodes.controlPlane)) machines.push([['spec', 'nodes', 'controlPlane'], nodes.controlPlane]);
  for (const [id, pool] of entries(nodes.workerPools)) machines.push([['spec', 'nodes', 'workerPools', id], pool]);

  const providers = configuredProviders(spec);
  const provider = providers.length === 1 ? providers[0] : undefined;
  const out: Violation[] = [];
  for (const [path, machine] of machines) {
    if (!isObj(machine)) continue;
    const it = machine.instanceType;
    const itPath = [...path, 'instanceType'];
    const named = isObj(it) && it.name !== undefined;
    const sized = isObj(it) && (['cores', 'memoryGib', 'diskGib', 'sockets'] as const).some((k) => it[k] !== undefined);
    if (isObj(it)) {
      const complete = it.cores !== undefined && it.memoryGib !== undefined && it.diskGib !== undefined;
      if (named ? sized : !complete) {
        out.push({
          code: IssueCode.INSTANCE_TYPE_FORM, path: itPath,
          message: 'instanceType is either {name} or {cores, memoryGib, diskGib[, sockets]}, not a mix',
          expected: named ? 'only name' : 'cores, memoryGib and diskGib', found: Object.keys(it).join(', ') || 'nothing',
        });
      }
    }
    if (provider === 'proxmox' && it !== undefined && isObj(it) && it.cores === undefined) {
      out.push({
        code: IssueCode.INSTANCE_TYPE_PROVIDER_MISMATCH, path: itPath,
        message: 'proxmox machines are sized explicitly', expected: '{cores, memoryGib, diskGib}', found: show(it),
      });
    }
    if ((provider === 'aws' || provider === 'openstack') && !named) {
      out.push({
        code: IssueCode.INSTANCE_TYPE_PROVIDER_MISMATCH, path: it === undefined ? path : itPath,
        message: `${provider} machines need a named instanceType (${provider === 'aws' ? 'an EC2 instance type' : 'a flavor'})`,
        expected: 'instanceType: {name: ...}', found: show(it),
      });
    }
  }
  return out;
}

function controlPlane(spec: Obj): Violation[] {
  const cp = isObj(spec.nodes) && isObj(spec.nodes.controlPlane) ? spec.nodes.controlPlane : undefined;
  if (!cp || !isInt(cp.replicas) || (cp.replicas > 0 && cp.replicas % 2 === 1)) return [];
  return [{
    code: IssueCode.CONTROL_PLANE_REPLICAS_NOT_ODD, path: ['spec', 'nodes', 'controlPlane', 'replicas'],
    message: 'control plane replicas must be a positive odd number so etcd keeps quorum',
    expected: 'an odd number >= 1 (1, 3, 5, ...)', found: show(cp.replicas),
  }];
}

function workerPools(spec: Obj): Violation[] {
  const pools = isObj(spec.nodes) ? spec.nodes.workerPools : undefined;
  const out: Violation[] = [];
  for (const [id, pool] of entries(pools)) {
    const path: Path = ['spec', 'nodes', 'workerPools', id];
    if (!isDnsLabel(id)) {
      out.push({
        code: IssueCode.POOL_ID_INVALID, path, atKey: true, message: 'worker pool ids must be DNS labels',
        expected: "lowercase letters, digits and '-', at most 63 characters", found: show(id),
      });
    }
    if (!isObj(pool)) continue;
    const hasMin = pool.min !== undefined;
    const hasMax = pool.max !== undefined;
    if (hasMin !== hasMax) {
      out.push({
        code: IssueCode.AUTOSCALING_BOUNDS_INCOMPLETE, path, message: 'set both min and max to autoscale a pool, or neither',
        expected: 'min and max', found: hasMin ? 'only min' : 'only max',
      });
    }
    if (isInt(pool.min) && isInt(pool.max) && pool.min > pool.max) {
      out.push({
        code: IssueCode.AUTOSCALING_MIN_ABOVE_MAX, path: [...path, 'min'], message: 'min must not be greater than max',
        expected: `at most ${pool.max}`, found: show(pool.min),
      });
    }
    if (!hasMin && !hasMax && pool.replicas === undefined) {
      out.push({
        code: IssueCode.POOL_REPLICAS_REQUIRED, path: [...path, 'replicas'], message: 'a pool that does not autoscale needs replicas',
        expected: 'replicas, or min and max', found: 'nothing',
      });
    }
    for (const [key, value] of entries(pool.labels)) {
      if (!isLabelKey(key)) {
        out.push({
          code: IssueCode.NODE_LABEL_KEY_INVALID, path: [...path, 'labels', key], atKey: true,
          message: 'node label keys must be qualified names', expected: LABEL_KEY_SYNTAX, found: show(key),
        });
      }
      if (isLabelKey(key) && isRestrictedNodeLabel(key)) {
        out.push({
          code: IssueCode.NODE_LABEL_RESTRICTED, path: [...path, 'labels', key], atKey: true,
          message: 'labels under kubernetes.io and k8s.io are reserved: kubelets may set only kubelet.kubernetes.io and node.kubernetes.io ones (node-role.kubernetes.io labels are applied through Cluster API)',
          expected: 'a label outside kubernetes.io and k8s.io, or an allowed one', found: show(key),
        });
      }
      if (typeof value === 'string' && !isLabelValue(value)) {
        out.push({
          code: IssueCode.NODE_LABEL_VALUE_INVALID, path: [...path, 'labels', key], message: 'node label values must be valid label values',
          expected: LABEL_VALUE_SYNTAX, found: show(value),
        });
      }
    }
    const taints = Array.isArray(pool.taints) ? pool.taints : [];
    taints.forEach((taint: unknown, i) => {
      if (!isObj(taint)) return;
      if (typeof taint.key === 'string' && !isLabelKey(taint.key)) {
        out.push({
          code: IssueCode.TAINT_KEY_INVALID, path: [...path, 'taints', i, 'key'], message: 'taint keys follow label key syntax',
          expected: LABEL_KEY_SYNTAX, found: show(taint.key),
        });
      }
      if (typeof taint.value === 'string' && !isLabelValue(taint.value)) {
        out.push({
          code: IssueCode.TAINT_VALUE_INVALID, path: [...path, 'taints', i, 'value'], message: 'taint values follow label value syntax',
          expected: LABEL_VALUE_SYNTAX, found: show(taint.value),
        });
      }
    });
  }
  return out;
}

function parentPorts(spec: Obj): Violation[] {
  const pc = spec.parentConfig;
  if (!isObj(pc)) return [];
  const names = ['grpcPort', 'bootstrapPort', 'proxyPort'] as const;
  const out: Violation[] = [];
  names.forEach((name, i) => {
    const clash = names.slice(0, i).find((other) => pc[other] !== undefined && pc[other] === pc[name]);
    if (clash) {
      out.push({
        code: IssueCode.PARENT_PORTS_NOT_DISTINCT, path: ['spec', 'parentConfig', name],
        message: 'grpcPort, bootstrapPort and proxyPort must all differ', expected: `a port other than ${clash}'s`, found: show(pc[name]),
      });
    }
  });
  return out;
}

/**
 * metadata.labels and metadata.annotations as the API server's ObjectMeta validation checks them;
 * the CRD schema cannot (metadata is the API server's own), so core mirrors it.
 */
function objectMeta(obj: Obj): Violation[] {
  const meta = isObj(obj.metadata) ? obj.metadata : {};
  const out: Violation[] = [];
  for (const field of ['labels', 'annotations'] as const) {
    const map = meta[field];
    if (map === undefined) continue;
    const code = field === 'labels' ? IssueCode.METADATA_LABELS_INVALID : IssueCode.METADATA_ANNOTATIONS_INVALID;
    if (!isObj(map)) {
      out.push({ code, path: ['metadata', field], message: `metadata.${field} must be a map of strings`, expected: 'a mapping', found: show(map) });
      continue;
    }
    for (const [key, value] of Object.entries(map)) {
      if (!isLabelKey(key)) {
        out.push({ code, path: ['metadata', field, key], atKey: true, message: `${field} keys must be qualified names`, expected: LABEL_KEY_SYNTAX, found: show(key) });
      }
      if (typeof value !== 'string') {
        out.push({ code, path: ['metadata', field, key], message: `${field} values must be strings; quote the value`, expected: 'a string', found: show(value) });
      } else if (field === 'labels' && !isLabelValue(value)) {
        out.push({ code, path: ['metadata', field, key], message: 'label values must be valid label values', expected: LABEL_VALUE_SYNTAX, found: show(value) });
      }
    }
  }
  return out;
}

function infraProviderCredentials(obj: Obj): Violation[] {
  const spec = isObj(obj.spec) ? obj.spec : undefined;
  if (!spec || typeof spec.type !== 'string' || spec.type === 'docker' || spec.credentialsSecretRef !== undefined) return [];
  return [{
    code: IssueCode.INFRA_PROVIDER_CREDENTIALS_REQUIRED, path: ['spec', 'credentialsSecretRef'],
    message: `a ${spec.type} provider needs the Secret holding its credentials`, expected: 'credentialsSecretRef: {name: ...}', found: 'nothing',
  }];
}

/** The rules per kind of ours, in the order their findings are reported. */
export const RULES: Readonly<Record<string, readonly ((obj: Obj) => Violation[])[]>> = {
  LatticeCluster: [
    clusterName,
    objectMeta,
    (o) => (isObj(o.spec) ? providerConfig(o.spec) : []),
    (o) => (isObj(o.spec) ? controlPlane(o.spec) : []),
    (o) => (isObj(o.spec) ? workerPools(o.spec) : []),
    (o) => (isObj(o.spec) ? instanceTypes(o.spec) : []),
    (o) => (isObj(o.spec) ? parentPorts(o.spec) : []),
  ],
  InfraProvider: [objectMeta, infraProviderCredentials],
};

/** Runs every rule for the object's kind. */
export function checkRules(kind: string, obj: unknown): Violation[] {
  if (!isObj(obj)) return [];
  return (RULES[kind] ?? []).flatMap((rule) => rule(obj));
}
