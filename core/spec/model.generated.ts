// Generated from crds/ by scripts/gen-model-types.ts (npm run gen:types). Do not edit.

export interface InfraProvider {
  apiVersion: "lattice.dev/v1alpha1";
  kind: "InfraProvider";
  metadata: {
    name: string;
    namespace?: string;
    labels?: {[k: string]: string};
    annotations?: {[k: string]: string};
    [k: string]: unknown;
  };
  spec: InfraProviderSpec;
  status?: InfraProviderStatus;
}
export interface InfraProviderSpec {
  type: "docker" | "aws" | "proxmox" | "openstack";
  credentialsSecretRef?: SecretReference;
  region?: string;
}
export interface SecretReference {
  name: string;
}
export interface InfraProviderStatus {
  observedGeneration?: number;
  conditions?: Condition[];
}
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface LatticeCluster {
  apiVersion: "lattice.dev/v1alpha1";
  kind: "LatticeCluster";
  metadata: {
    name: string;
    namespace?: string;
    labels?: {[k: string]: string};
    annotations?: {[k: string]: string};
    [k: string]: unknown;
  };
  spec: LatticeClusterSpec;
  status?: LatticeClusterStatus;
}
export interface LatticeClusterSpec {
  providerRef: string;
  provider: ProviderSpec;
  nodes: NodesSpec;
  networking: NetworkingSpec;
  parentConfig?: ParentConfig;
  services: boolean;
  gpu: boolean;
  monitoring: boolean;
  backups: boolean;
  latticeImage?: string;
}
export interface ProviderSpec {
  kubernetes: KubernetesSpec;
  config: ProviderConfig;
}
export interface KubernetesSpec {
  version: string;
  bootstrap: "kubeadm" | "rke2";
  /**
   * @maxItems 32
   */
  certSANs?: string[];
}
export interface ProviderConfig {
  docker?: DockerConfig;
  aws?: AwsConfig;
  proxmox?: ProxmoxConfig;
  openstack?: OpenStackConfig;
}
export interface DockerConfig {
  customImage?: string;
}
export interface AwsConfig {
  region: string;
  sshKeyName?: string;
  amiId?: string;
  vpcId?: string;
  /**
   * @maxItems 32
   */
  subnetIds?: string[];
  loadBalancerType: "nlb" | "alb" | "classic" | "elb" | "disabled";
  internalLoadBalancer: boolean;
  controlPlaneIamInstanceProfile: string;
  workerIamInstanceProfile: string;
}
export interface ProxmoxConfig {
  controlPlaneEndpoint: string;
  ipv4Pool: Ipv4Pool;
  /**
   * @minItems 1
   * @maxItems 8
   */
  dnsServers:
    | [string]
    | [string, string]
    | [string, string, string]
    | [string, string, string, string]
    | [string, string, string, string, string]
    | [string, string, string, string, string, string]
    | [string, string, string, string, string, string, string]
    | [string, string, string, string, string, string, string, string];
  sourceNode: string;
  templateId: number;
  targetNode?: string;
  /**
   * @maxItems 64
   */
  allowedNodes?: string[];
  pool?: string;
  storage?: string;
  bridge: string;
  vlan?: number;
  networkModel: "virtio" | "e1000" | "rtl8139" | "vmxnet3";
  virtualIpNetworkInterface: string;
  kubeVipImage?: string;
  /**
   * @maxItems 32
   */
  sshAuthorizedKeys?: string[];
}
export interface Ipv4Pool {
  /**
   * @minItems 1
   * @maxItems 32
   */
  addresses: [string, ...string[]];
  prefix: number;
  gateway: string;
}
export interface OpenStackConfig {
  cloudName: string;
  imageName: string;
  externalNetworkId?: string;
  sshKeyName?: string;
  nodeCidr: string;
  /**
   * @maxItems 8
   */
  dnsNameservers?:
    | []
    | [string]
    | [string, string]
    | [string, string, string]
    | [string, string, string, string]
    | [string, string, string, string, string]
    | [string, string, string, string, string, string]
    | [string, string, string, string, string, string, string]
    | [string, string, string, string, string, string, string, string];
  apiServerLoadBalancer: boolean;
}
export interface NodesSpec {
  controlPlane: ControlPlaneSpec;
  workerPools?: {
    [k: string]: WorkerPoolSpec | undefined;
  };
}
export interface ControlPlaneSpec {
  replicas: number;
  instanceType?: InstanceType;
  rootVolume?: RootVolume;
}
export interface InstanceType {
  name?: string;
  cores?: number;
  memoryGib?: number;
  diskGib?: number;
  sockets?: number;
}
export interface RootVolume {
  sizeGib: number;
  type?: string;
}
export interface WorkerPoolSpec {
  replicas?: number;
  displayName?: string;
  instanceType?: InstanceType;
  rootVolume?: RootVolume;
  min?: number;
  max?: number;
  labels?: {
    [k: string]: string | undefined;
  };
  /**
   * @maxItems 32
   */
  taints?: Taint[];
}
export interface Taint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}
export interface NetworkingSpec {
  /**
   * @minItems 1
   * @maxItems 2
   */
  podCidrBlocks: [string] | [string, string];
  /**
   * @minItems 1
   * @maxItems 2
   */
  serviceCidrBlocks: [string] | [string, string];
  loadBalancerPool?: string;
}
export interface ParentConfig {
  host?: string;
  grpcPort: number;
  bootstrapPort: number;
  proxyPort: number;
  service: {
    type: "ClusterIP" | "NodePort" | "LoadBalancer";
  };
}
export interface LatticeClusterStatus {
  observedGeneration?: number;
  phase?: "Pending" | "Provisioning" | "Pivoting" | "Pivoted" | "Ready" | "Deleting" | "Unpivoting" | "Failed";
  message?: string;
  conditions?: Condition[];
  readyControlPlane?: number;
  readyWorkers?: number;
  workerPools?: {
    [k: string]: WorkerPoolStatus | undefined;
  };
  endpoint?: string;
  pivotComplete?: boolean;
  appliedGeneration?: number;
  bootstrapComplete?: boolean;
  unpivotImportComplete?: boolean;
  bootstrapToken?: BootstrapTokenStatus;
  childrenHealth?: ChildHealth[];
  lastHeartbeat?: string;
}
export interface WorkerPoolStatus {
  desired?: number;
  current?: number;
  ready?: number;
  autoscaling?: boolean;
  message?: string;
}
export interface BootstrapTokenStatus {
  state?: "Issued" | "Consumed" | "Expired";
  issuedAt?: string;
  expiresAt?: string;
}
export interface ChildHealth {
  name: string;
  agentState?: "Connected" | "Disconnected" | "Unknown";
  readyNodes?: number;
  totalNodes?: number;
  readyControlPlane?: number;
  totalControlPlane?: number;
  lastHeartbeat?: string;
}
