/**
 * The addon catalog (templates/versions.yaml `addons`) and the addons one cluster gets. What is
 * installed, from where, at which version and in which stage is decided here, once, for every flavor:
 * Argo CD turns each planned addon into an Application, Flux into a HelmRelease.
 */
import { isRecord } from '../data.js';
import type { LatticeCluster } from '../spec/model.js';
import { configuredProviders, PROVIDER_TYPES } from '../spec/rules.js';
import { isStage, stageIndex, StageCondition, type Stage } from './stages.js';

/** Spec flags that switch addons on (DESIGN §3: all booleans with defaults). */
export const ADDON_FLAGS = ['services', 'gpu', 'monitoring', 'backups'] as const;
export type AddonFlag = (typeof ADDON_FLAGS)[number];

/** One catalog entry. */
export interface AddonSpec {
  readonly id: string;
  readonly stage: Stage;
  readonly condition: StageCondition;
  readonly when?: AddonFlag;
  /** Helm repository: `https://…` (Helm index) or `oci://…` (OCI registry). */
  readonly repository: string;
  readonly chart: string;
  readonly version: string;
  readonly namespace: string;
  /** Helm release name; the chart name when absent. */
  readonly release?: string;
  /** Values template path under templates/. */
  readonly values?: string;
}

export interface ProviderRef {
  readonly name: string;
  readonly version: string;
}

/** Cluster API providers by role, for the cluster-api operator in the providers stage. */
export interface CapiProviders {
  readonly core: ProviderRef;
  readonly bootstrap: Readonly<Record<string, ProviderRef>>;
  readonly controlPlane: Readonly<Record<string, ProviderRef>>;
  readonly infrastructure: Readonly<Record<string, ProviderRef>>;
  readonly ipam?: Readonly<Record<string, ProviderRef>>;
}

/** Air-gapped mirrors and pinned versions, by addon id (render options, not spec fields). */
export interface AddonOverrides {
  readonly repositories?: Readonly<Record<string, string>>;
  readonly versions?: Readonly<Record<string, string>>;
}

/** An addon as one cluster gets it: catalog entry with overrides applied, plus its values context. */
export interface PlannedAddon extends AddonSpec {
  readonly release: string;
  /** `<cluster>-<id>`: the Application or HelmRelease name. */
  readonly objectName: string;
  readonly valuesContext: Readonly<Record<string, unknown>>;
}

const ID = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const REPOSITORY = /^(https?|oci):\/\/[^\s"'\\]+$/;
// Chart versions are SemVer, often with a leading v; nothing that could change meaning in a URL or YAML.
const VERSION = /^v?[0-9]+(\.[0-9]+){0,2}([-+][0-9A-Za-z.-]+)?$/;
const CONDITIONS = new Set<string>(Object.values(StageCondition));

/** Checks a repository URL given as an override or in the catalog. */
export const isRepository = (value: string): boolean => REPOSITORY.test(value) && value.length <= 512;
/** Checks a chart version given as an override or in the catalog. */
export const isChartVersion = (value: string): boolean => VERSION.test(value) && value.length <= 64;

/** Checks the `addons` list of versions.yaml. */
export function parseAddonCatalog(data: unknown, errors: string[]): AddonSpec[] {
  if (!Array.isArray(data)) {
    errors.push('addons: expected a list of addons');
    return [];
  }
  const seen = new Set<string>();
  const out: AddonSpec[] = [];
  data.forEach((entry: unknown, i) => {
    const at = `addons[${i}]`;
    const before = errors.length;
    if (!isRecord(entry)) return void errors.push(`${at}: expected a mapping`);
    const str = (key: string, check: (v: string) => boolean, optional = false): string | undefined => {
      const v = entry[key];
      if (v === undefined && optional) return undefined;
      if (typeof v !== 'string' || !check(v)) errors.push(`${at}.${key}: invalid value ${JSON.stringify(v)}`);
      return typeof v === 'string' ? v : undefined;
    };
    const id = str('id', (v) => ID.test(v) && v.length <= 40);
    const stage = str('stage', isStage);
    const condition = str('condition', (v) => CONDITIONS.has(v));
    const when = str('when', (v) => (ADDON_FLAGS as readonly string[]).includes(v), true);
    const repository = str('repository', isRepository);
    const chart = str('chart', (v) => ID.test(v));
    const version = str('version', isChartVersion);
    const namespace = str('namespace', (v) => ID.test(v) && v.length <= 63);
    const release = str('release', (v) => ID.test(v) && v.length <= 53, true);
    const values = str('values', (v) => /^addons\/[a-z0-9.-]+\.njk$/.test(v), true);
    if (id !== undefined && seen.has(id)) errors.push(`${at}.id: duplicate addon ${id}`);
    if (id !== undefined) seen.add(id);
    if (errors.length === before && id && stage && condition && repository && chart && version && namespace) {
      out.push({
        id, stage: stage as Stage, condition: condition as StageCondition, repository, chart, version, namespace,
        ...(when ? { when: when as AddonFlag } : {}), ...(release ? { release } : {}), ...(values ? { values } : {}),
      });
    }
  });
  // Within a stage the catalog order is the install order; across stages the stage table decides.
  for (let i = 1; i < out.length; i++) {
    const prev = out[i - 1];
    const cur = out[i];
    if (prev && cur && stageIndex(cur.stage) < stageIndex(prev.stage)) errors.push(`addons: ${cur.id} (${cur.stage}) is listed after ${prev.id} (${prev.stage}); list addons in stage order`);
  }
  return out;
}

/** Checks overrides against the catalog: unknown ids and malformed values are errors, not ignored. */
export function checkOverrides(catalog: readonly AddonSpec[], overrides: AddonOverrides): string[] {
  const ids = new Set(catalog.map((a) => a.id));
  const errors: string[] = [];
  const check = (what: string, map: Readonly<Record<string, string>> | undefined, valid: (v: string) => boolean, expected: string) => {
    for (const [id, value] of Object.entries(map ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!ids.has(id)) errors.push(`${what}: unknown addon "${id}" (expected one of ${[...ids].join(', ')})`);
      else if (!valid(value)) errors.push(`${what}.${id}: expected ${expected}, found ${JSON.stringify(value)}`);
    }
  };
  check('chart-repositories', overrides.repositories, isRepository, 'an https:// or oci:// repository URL');
  check('chart-versions', overrides.versions, isChartVersion, 'a chart version such as 1.2.3');
  return errors;
}

/** True when the spec flag that gates an addon is on. */
function enabled(cluster: LatticeCluster, flag: AddonFlag | undefined): boolean {
  return flag === undefined || cluster.spec[flag] === true;
}

/** The addons of one validated, defaulted cluster, in install order (stage, then catalog order). */
export function planAddons(cluster: LatticeCluster, catalog: readonly AddonSpec[], providers: CapiProviders, overrides: AddonOverrides = {}): PlannedAddon[] {
  const name = cluster.metadata.name;
  const providerType = configuredProviders(cluster.spec)[0] ?? 'docker';
  const bootstrap = cluster.spec.provider.kubernetes.bootstrap;
  const pick = (map: Readonly<Record<string, ProviderRef>> | undefined, key: string): ProviderRef | undefined => map?.[key];
  const ipam = pick(providers.ipam, providerType);
  const context = {
    cluster: name,
    provider: providerType,
    bootstrap,
    kubernetesVersion: cluster.spec.provider.kubernetes.version.replace(/^v?/, 'v'),
    podCidrs: cluster.spec.networking.podCidrBlocks,
    serviceCidrs: cluster.spec.networking.serviceCidrBlocks,
    services: cluster.spec.services,
    gpu: cluster.spec.gpu,
    monitoring: cluster.spec.monitoring,
    backups: cluster.spec.backups,
    // Docker (kind-style) nodes have no volume provisioner.
    persistentStorage: providerType !== 'docker',
    capi: {
      core: providers.core,
      bootstrap: pick(providers.bootstrap, bootstrap),
      controlPlane: pick(providers.controlPlane, bootstrap),
      infrastructure: pick(providers.infrastructure, providerType),
      ...(ipam ? { ipam } : {}),
    },
  };
  return catalog
    .filter((a) => enabled(cluster, a.when))
    .map((a) => ({
      ...a,
      repository: overrides.repositories?.[a.id] ?? a.repository,
      version: overrides.versions?.[a.id] ?? a.version,
      release: a.release ?? a.chart,
      objectName: `${name}-${a.id}`,
      valuesContext: context,
    }))
    .sort((a, b) => stageIndex(a.stage) - stageIndex(b.stage));
}

/** Checks the `capiProviders` block of versions.yaml. */
export function parseCapiProviders(data: unknown, errors: string[]): CapiProviders | undefined {
  const ref = (v: unknown, at: string): ProviderRef | undefined => {
    if (isRecord(v) && typeof v.name === 'string' && ID.test(v.name) && typeof v.version === 'string' && isChartVersion(v.version)) return { name: v.name, version: v.version };
    errors.push(`${at}: expected {name, version}, found ${JSON.stringify(v)}`);
    return undefined;
  };
  const refs = (v: unknown, at: string, keys: readonly string[]): Record<string, ProviderRef> => {
    const out: Record<string, ProviderRef> = {};
    if (!isRecord(v)) {
      errors.push(`${at}: expected a mapping`);
      return out;
    }
    for (const key of keys) {
      const r = ref(v[key], `${at}.${key}`);
      if (r) out[key] = r;
    }
    return out;
  };
  if (!isRecord(data)) {
    errors.push('capiProviders: expected a mapping');
    return undefined;
  }
  const core = ref(data.core, 'capiProviders.core');
  const bootstraps = ['kubeadm', 'rke2'];
  const result = {
    bootstrap: refs(data.bootstrap, 'capiProviders.bootstrap', bootstraps),
    controlPlane: refs(data.controlPlane, 'capiProviders.controlPlane', bootstraps),
    infrastructure: refs(data.infrastructure, 'capiProviders.infrastructure', PROVIDER_TYPES),
    ...(data.ipam !== undefined ? { ipam: refs(data.ipam, 'capiProviders.ipam', Object.keys(isRecord(data.ipam) ? data.ipam : {})) } : {}),
  };
  return core ? { core, ...result } : undefined;
}
