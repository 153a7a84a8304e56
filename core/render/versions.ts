/**
 * templates/versions.yaml: every pinned API version, image, chart and provider, in one data file. The
 * adapter reads and parses it; this module checks its shape once and gives it a type.
 */
import { isRecord } from '../data.js';
import { parseAddonCatalog, parseCapiProviders, type AddonSpec, type CapiProviders } from '../plan/addons.js';

/** What the renderer needs from versions.yaml. */
export interface Versions {
  /** apiVersion to render, by kind. */
  readonly apiVersions: Readonly<Record<string, string>>;
  readonly images: {
    /** kube-vip image for Proxmox control-plane VIPs, unless the spec names one. */
    readonly kubeVip: string;
    /** The Lattice image (agent, sidecars, controller), unless a spec's latticeImage names one. */
    readonly lattice: string;
  };
  /** The addon catalog, in install order. */
  readonly addons: readonly AddonSpec[];
  readonly capiProviders: CapiProviders;
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
  const obj = isRecord(data) ? data : {};
  const api = isRecord(obj.apiVersions) ? obj.apiVersions : {};
  for (const kind of REQUIRED_KINDS) {
    const v = api[kind];
    if (typeof v !== 'string' || !/^([a-z0-9.-]+\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(v)) {
      errors.push(`apiVersions.${kind}: expected an apiVersion such as cluster.x-k8s.io/v1beta2, found ${JSON.stringify(v)}`);
    }
  }
  const images = isRecord(obj.images) ? obj.images : {};
  for (const image of ['kubeVip', 'lattice']) {
    if (typeof images[image] !== 'string' || images[image] === '') errors.push(`images.${image}: expected an image reference`);
  }
  const addons = parseAddonCatalog(obj.addons, errors);
  const capiProviders = parseCapiProviders(obj.capiProviders, errors);
  if (errors.length > 0 || !capiProviders) return { ok: false, errors };
  return { ok: true, value: { apiVersions: api as Record<string, string>, images: images as unknown as Versions['images'], addons, capiProviders } };
}

/** The API group of an apiVersion (`cluster.x-k8s.io/v1beta2` → `cluster.x-k8s.io`; core → ''). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}
