/**
 * Per-provider facts, one table: which kinds and templates make up a cluster, what the kubelet and the
 * bootstrap need on that infrastructure, and the context each infrastructure template receives.
 * Sources: ../shared/research/capi.md Part B (provider object sets, v1beta2 rules).
 */
import type { InstanceType, LatticeCluster, RootVolume } from '../spec/model.js';
import type { ProviderType } from '../spec/rules.js';
import type { Versions } from './versions.js';

/** kubeadm v1beta2 list form of an argument. */
export interface Arg {
  readonly name: string;
  readonly value: string;
}

/** One machine shape: the control plane or a worker pool. */
export interface MachineSpec {
  readonly role: 'control-plane' | 'worker';
  readonly instanceType?: InstanceType;
  readonly rootVolume?: RootVolume;
}

export interface ProviderInfo {
  readonly infraClusterKind: string;
  readonly machineTemplateKind: string;
  /** Extra kubelet arguments on every node (kubeadm list form; RKE2 gets `name=value`). */
  readonly kubeletArgs: readonly Arg[];
  /** kubeadm nodeRegistration.name: a cloud-init expression resolved on the machine. */
  readonly nodeName?: string;
  /** The cloud controller runs out of tree (CCM installed as an addon). */
  readonly externalCloudProvider: boolean;
  /** The control plane VIP is served by kube-vip from a static pod (no cloud load balancer). */
  readonly kubeVip: boolean;
  /** Context of templates/capi/<provider>/cluster.yaml.njk. */
  infraCluster(cluster: LatticeCluster, names: { providerRef: string; credentials: string; namespace: string; rke2: boolean }): Record<string, unknown>;
  /** Context of templates/capi/<provider>/machine-template.yaml.njk. */
  machineTemplate(cluster: LatticeCluster, machine: MachineSpec): Record<string, unknown>;
}

/** Sizes for Proxmox machines whose spec gives none. */
export const PROXMOX_DEFAULT_SIZE = { cores: 2, memoryGib: 4, diskGib: 40, sockets: 1 } as const;

/** RKE2's supervisor port: joining nodes register through it, so a cloud load balancer must forward it. */
export const RKE2_SUPERVISOR_PORT = 9345;

/** Docker's self-management needs the Docker socket in every node (CAPI's self-hosted e2e does this). */
const DOCKER_SOCKET = { containerPath: '/var/run/docker.sock', hostPath: '/var/run/docker.sock' };

function config<K extends ProviderType>(cluster: LatticeCluster, key: K): NonNullable<LatticeCluster['spec']['provider']['config'][K]> {
  const c = cluster.spec.provider.config[key];
  if (!c) throw new Error(`provider.config.${key} is missing: validate before planning`);
  return c as NonNullable<LatticeCluster['spec']['provider']['config'][K]>;
}

export const PROVIDERS: Readonly<Record<ProviderType, ProviderInfo>> = {
  docker: {
    infraClusterKind: 'DevCluster',
    machineTemplateKind: 'DevMachineTemplate',
    kubeletArgs: [],
    externalCloudProvider: false,
    kubeVip: false,
    infraCluster: () => ({}),
    machineTemplate: (cluster) => ({ customImage: config(cluster, 'docker').customImage, extraMounts: [DOCKER_SOCKET] }),
  },
  aws: {
    infraClusterKind: 'AWSCluster',
    machineTemplateKind: 'AWSMachineTemplate',
    kubeletArgs: [{ name: 'cloud-provider', value: 'external' }],
    nodeName: '{{ ds.meta_data.local_hostname }}',
    externalCloudProvider: true,
    kubeVip: false,
    infraCluster: (cluster, names) => {
      const aws = config(cluster, 'aws');
      return {
        region: aws.region,
        // CAPA reads an omitted sshKeyName as "use the key named default"; "" means no key.
        sshKeyName: aws.sshKeyName ?? '',
        additionalListeners: names.rke2 ? [{ port: RKE2_SUPERVISOR_PORT, protocol: 'TCP' }] : undefined,
        loadBalancerType: aws.loadBalancerType,
        scheme: aws.internalLoadBalancer ? 'internal' : 'internet-facing',
        vpcId: aws.vpcId,
        subnetIds: aws.subnetIds,
        // The controller creates this identity from the InfraProvider; its Secret lives with CAPA.
        identityName: names.providerRef,
      };
    },
    machineTemplate: (cluster, machine) => {
      const aws = config(cluster, 'aws');
      return {
        instanceType: machine.instanceType?.name,
        iamInstanceProfile: machine.role === 'control-plane' ? aws.controlPlaneIamInstanceProfile : aws.workerIamInstanceProfile,
        sshKeyName: aws.sshKeyName ?? '',
        amiId: aws.amiId,
        rootVolume: machine.rootVolume ? { size: machine.rootVolume.sizeGib, type: machine.rootVolume.type } : undefined,
      };
    },
  },
  proxmox: {
    infraClusterKind: 'ProxmoxCluster',
    machineTemplateKind: 'ProxmoxMachineTemplate',
    kubeletArgs: [{ name: 'provider-id', value: "proxmox://'{{ ds.meta_data.instance_id }}'" }],
    externalCloudProvider: false,
    kubeVip: true,
    infraCluster: (cluster, names) => {
      const pve = config(cluster, 'proxmox');
      return {
        host: pve.controlPlaneEndpoint,
        addresses: pve.ipv4Pool.addresses,
        prefix: pve.ipv4Pool.prefix,
        gateway: pve.ipv4Pool.gateway,
        dnsServers: pve.dnsServers,
        allowedNodes: pve.allowedNodes,
        credentials: { name: names.credentials, namespace: names.namespace },
      };
    },
    machineTemplate: (cluster, machine) => {
      const pve = config(cluster, 'proxmox');
      const size = machine.instanceType?.cores !== undefined ? machine.instanceType : PROXMOX_DEFAULT_SIZE;
      return {
        sourceNode: pve.sourceNode,
        templateId: pve.templateId,
        targetNode: pve.targetNode,
        pool: pve.pool,
        storage: pve.storage,
        allowedNodes: pve.allowedNodes,
        numSockets: size.sockets ?? 1,
        numCores: size.cores,
        memoryMiB: (size.memoryGib ?? PROXMOX_DEFAULT_SIZE.memoryGib) * 1024,
        diskGb: machine.rootVolume?.sizeGib ?? size.diskGib,
        bridge: pve.bridge,
        model: pve.networkModel,
        vlan: pve.vlan,
      };
    },
  },
  openstack: {
    infraClusterKind: 'OpenStackCluster',
    machineTemplateKind: 'OpenStackMachineTemplate',
    kubeletArgs: [
      { name: 'cloud-provider', value: 'external' },
      { name: 'provider-id', value: "openstack:///'{{ instance_id }}'" },
    ],
    nodeName: '{{ local_hostname }}',
    externalCloudProvider: true,
    kubeVip: false,
    infraCluster: (cluster, names) => {
      const os = config(cluster, 'openstack');
      return {
        credentials: names.credentials,
        cloudName: os.cloudName,
        externalNetworkId: os.externalNetworkId,
        nodeCidr: os.nodeCidr,
        dnsNameservers: os.dnsNameservers,
        apiServerLoadBalancer: os.apiServerLoadBalancer,
        additionalPorts: names.rke2 && os.apiServerLoadBalancer ? [RKE2_SUPERVISOR_PORT] : undefined,
      };
    },
    machineTemplate: (cluster, machine) => {
      const os = config(cluster, 'openstack');
      return {
        flavor: machine.instanceType?.name,
        imageName: os.imageName,
        sshKeyName: os.sshKeyName,
        rootVolume: machine.rootVolume ? { sizeGiB: machine.rootVolume.sizeGib, type: machine.rootVolume.type } : undefined,
      };
    },
  },
};

/** The kube-vip static pod's image for a cluster. */
export function kubeVipImage(cluster: LatticeCluster, versions: Versions): string {
  return cluster.spec.provider.config.proxmox?.kubeVipImage ?? versions.images.kubeVip;
}
