/**
 * templates/versions.yaml: every pinned API version, image and chart, in one data file. The adapter
 * reads and parses it; this module checks its shape once and gives it a type.
 */

/** What the renderer needs from versions.yaml. */
export interface Versions {
  /** apiVersion to render, by kind. */
  readonly apiVersions: Readonly<Record<string, string>>;
  readonly images: {
    /** kube-vip image for Proxmox control-plane VIPs, unless the spec names one. */
    readonly kubeVip: string;
  };
}

const REQUIRED_KINDS = [
  'Namespace', 'LatticeCluster', 'Cluster', 'MachineDeployment', 'MachineHealthCheck',
  'KubeadmControlPlane', 'KubeadmConfigTemplate', 'RKE2ControlPlane', 'RKE2ConfigTemplate',
  'DevCluster', 'DevMachineTemplate', 'AWSCluster', 'AWSMachineTemplate',
  'ProxmoxCluster', 'ProxmoxMachineTemplate', 'OpenStackCluster', 'OpenStackMachineTemplate',
] as const;

/** Checks versions.yaml; returns the typed value or the problems found. */
export function parseVersions(data: unknown): { ok: true; value: Versions } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const obj = (data ?? {}) as Record<string, unknown>;
  const api = (obj.apiVersions ?? {}) as Record<string, unknown>;
  for (const kind of REQUIRED_KINDS) {
    if (typeof api[kind] !== 'string' || !/^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(api[kind] as string)) {
      errors.push(`apiVersions.${kind}: expected an apiVersion such as cluster.x-k8s.io/v1beta2, found ${JSON.stringify(api[kind])}`);
    }
  }
  const images = (obj.images ?? {}) as Record<string, unknown>;
  if (typeof images.kubeVip !== 'string' || images.kubeVip === '') errors.push('images.kubeVip: expected an image reference');
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: data as Versions };
}

/** The API group of an apiVersion (`cluster.x-k8s.io/v1beta2` → `cluster.x-k8s.io`; core → ''). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}
