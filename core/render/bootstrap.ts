/**
 * Bootstrap configuration as data: kubeadm (v1beta2 list-form arguments) and RKE2, for the control plane
 * and for worker pools. Built here rather than in templates because nearly everything is optional and
 * CAPI v1beta2 rejects empty values: `compact` removes them in one place.
 */
import type { Taint } from '../spec/model.js';
import type { Arg, ProviderInfo } from './providers.js';
import { compact, yamlBlock } from './scalar.js';

export interface KubeVip {
  readonly image: string;
  readonly address: string;
  readonly interface: string;
  readonly port: number;
}

export interface ControlPlaneInput {
  readonly provider: ProviderInfo;
  readonly certSANs?: readonly string[];
  readonly kubeVip?: KubeVip;
  readonly sshAuthorizedKeys?: readonly string[];
}

const KUBE_VIP_MANIFEST = { kubeadm: '/etc/kubernetes/manifests/kube-vip.yaml', rke2: '/var/lib/rancher/rke2/agent/pod-manifests/kube-vip.yaml' };

/** kube-vip as a static pod announcing the control-plane VIP over ARP (kube-vip's documented static pod). */
function kubeVipPod(vip: KubeVip, kubeconfig: string): string {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'kube-vip', namespace: 'kube-system' },
    spec: {
      hostNetwork: true,
      hostAliases: [{ ip: '127.0.0.1', hostnames: ['kubernetes'] }],
      containers: [{
        name: 'kube-vip',
        image: vip.image,
        imagePullPolicy: 'IfNotPresent',
        args: ['manager'],
        env: [
          { name: 'vip_arp', value: 'true' },
          { name: 'port', value: String(vip.port) },
          { name: 'vip_interface', value: vip.interface },
          { name: 'vip_cidr', value: '32' },
          { name: 'cp_enable', value: 'true' },
          { name: 'cp_namespace', value: 'kube-system' },
          { name: 'vip_leaderelection', value: 'true' },
          { name: 'address', value: vip.address },
        ],
        securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } },
        volumeMounts: [{ mountPath: '/etc/kubernetes/admin.conf', name: 'kubeconfig' }],
      }],
      volumes: [{ name: 'kubeconfig', hostPath: { path: kubeconfig } }],
    },
  };
  return `${yamlBlock(pod, 0).slice(1)}\n`;
}

/** On the node that runs `kubeadm init` (the one with /run/kubeadm/kubeadm.yaml), points kube-vip at another kubeconfig. */
export function kubeVipSwap(from: string, to: string): string {
  return `if [ -f /run/kubeadm/kubeadm.yaml ]; then sed -i 's#path: "${from}"#path: "${to}"#' ${KUBE_VIP_MANIFEST.kubeadm}; fi`;
}

const kubeadmTaints = (taints: readonly Taint[]) => taints.map((t) => ({ key: t.key, value: t.value, effect: t.effect }));

/** KubeadmControlPlane.spec.kubeadmConfigSpec. */
export function kubeadmControlPlaneConfig(input: ControlPlaneInput): Record<string, unknown> | undefined {
  const { provider, kubeVip } = input;
  const nodeRegistration = { name: provider.nodeName, kubeletExtraArgs: [...provider.kubeletArgs] };
  const externalCloud: Arg[] = provider.externalCloudProvider ? [{ name: 'cloud-provider', value: 'external' }] : [];
  return compact({
    clusterConfiguration: {
      apiServer: { certSANs: input.certSANs ? [...input.certSANs] : undefined },
      controllerManager: { extraArgs: externalCloud },
    },
    // Cilium replaces kube-proxy (addon catalog), so kubeadm must not install it.
    initConfiguration: { nodeRegistration, skipPhases: ['addon/kube-proxy'] },
    joinConfiguration: { nodeRegistration },
    files: kubeVip ? [{ path: KUBE_VIP_MANIFEST.kubeadm, owner: 'root:root', permissions: '0644', content: kubeVipPod(kubeVip, '/etc/kubernetes/admin.conf') }] : undefined,
    // Kubernetes >= 1.29: admin.conf is not authorized until init finishes, so the first node's kube-vip
    // uses super-admin.conf during `kubeadm init` (kube-vip issue #684, the CAPI providers' workaround).
    // The manifest's values are quoted (see kubeVipPod), and only the hostPath line starts with `path:`.
    preKubeadmCommands: kubeVip ? [kubeVipSwap('/etc/kubernetes/admin.conf', '/etc/kubernetes/super-admin.conf')] : undefined,
    postKubeadmCommands: kubeVip ? [kubeVipSwap('/etc/kubernetes/super-admin.conf', '/etc/kubernetes/admin.conf')] : undefined,
    users: input.sshAuthorizedKeys?.length ? [{ name: 'root', sshAuthorizedKeys: [...input.sshAuthorizedKeys] }] : undefined,
  });
}

/** KubeadmConfigTemplate.spec.template.spec for a worker pool. */
export function kubeadmWorkerConfig(provider: ProviderInfo, nodeLabels: readonly string[], taints: readonly Taint[]): Record<string, unknown> | undefined {
  return compact({
    joinConfiguration: {
      nodeRegistration: {
        name: provider.nodeName,
        kubeletExtraArgs: [...provider.kubeletArgs, { name: 'node-labels', value: nodeLabels.join(',') }],
        taints: kubeadmTaints(taints),
      },
    },
  });
}

/** `key[=value]:Effect`, the taint syntax of RKE2's node-taint and of the cluster autoscaler's annotation. */
export const taintString = (t: Taint): string => `${t.key}${t.value !== undefined ? `=${t.value}` : ''}:${t.effect}`;
/**
 * RKE2 writes kubelet arguments into its config file as they are, while kubeadm's pass through a systemd
 * environment file that strips the single quotes protecting cloud-init expressions; so they go here.
 */
const rke2KubeletArgs = (provider: ProviderInfo) => provider.kubeletArgs.map((a) => `${a.name}=${a.value.replace(/'/g, '')}`);

/** RKE2ControlPlane spec fields: serverConfig, agentConfig, files. */
export function rke2ControlPlaneConfig(input: ControlPlaneInput): Record<string, unknown> {
  const { provider, kubeVip } = input;
  return compact({
    serverConfig: {
      // Cilium is the CNI and replaces kube-proxy; RKE2 would otherwise install canal and kube-proxy.
      cni: 'none',
      disableComponents: { kubernetesComponents: ['kubeProxy'] },
      cloudProviderName: provider.externalCloudProvider ? 'external' : undefined,
      tlsSan: input.certSANs ? [...input.certSANs] : undefined,
    },
    agentConfig: { kubelet: { extraArgs: rke2KubeletArgs(provider) } },
    files: kubeVip ? [{ path: KUBE_VIP_MANIFEST.rke2, owner: 'root:root', permissions: '0644', content: kubeVipPod(kubeVip, '/etc/rancher/rke2/rke2.yaml') }] : undefined,
  }) ?? {};
}

/** RKE2ConfigTemplate.spec.template.spec for a worker pool. */
export function rke2WorkerConfig(provider: ProviderInfo, nodeLabels: readonly string[], taints: readonly Taint[]): Record<string, unknown> | undefined {
  return compact({
    agentConfig: {
      nodeLabels: [...nodeLabels],
      nodeTaints: taints.map(taintString),
      kubelet: { extraArgs: rke2KubeletArgs(provider) },
    },
  });
}
