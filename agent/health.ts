/**
 * Heartbeat health, read from the child's own API server with the agent's least-privilege identity:
 *
 * - nodes: Ready condition True / all Nodes;
 * - control plane: the same for Nodes labelled `node-role.kubernetes.io/control-plane`;
 * - pools: Nodes by their `lattice.dev/pool` label (the kubelet gets it from the pool's bootstrap config);
 * - addons: per addon namespace, its Deployments, DaemonSets and StatefulSets and which are not ready.
 *   The namespaces come from config.json `addonNamespaces` and, once the cell has sent a spec sync, from
 *   the addon catalog for that spec (core's `addons()`), so the agent reports the same addons the
 *   parent rendered;
 * - CAPI providers: Deployments labelled `cluster.x-k8s.io/provider` (clusterctl and the cluster-api
 *   operator label every provider component so), plus Deployments in namespaces named `capi-system` or
 *   `capi-*-system`, grouped by provider.
 *
 * Four list calls per heartbeat (Nodes, and the three workload kinds cluster-wide, filtered here),
 * whatever the number of addons. A list that fails is reported in `errors`, never as a silent zero.
 */
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1DaemonSet, type V1Deployment, type V1Node, type V1StatefulSet } from '@kubernetes/client-node';
import type { Count, Health, NamespaceHealth, PoolHealth, ProviderHealth, WorkloadHealth } from '../controller/cell/protocol.js';

export const NODE_LABELS = {
  controlPlane: 'node-role.kubernetes.io/control-plane',
  pool: 'lattice.dev/pool',
} as const;
export const PROVIDER_LABEL = 'cluster.x-k8s.io/provider';
const PROVIDER_NAMESPACE = /^capi-([a-z0-9-]+-)?system$/;

export interface HealthSource {
  collect(): Promise<Health>;
}

/** The workloads health is computed from, whatever their source. */
export interface WorkloadSnapshot {
  readonly nodes: readonly V1Node[];
  readonly deployments: readonly V1Deployment[];
  readonly daemonSets: readonly V1DaemonSet[];
  readonly statefulSets: readonly V1StatefulSet[];
}

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function nodeReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function count(nodes: readonly V1Node[]): Count {
  return { ready: nodes.filter(nodeReady).length, total: nodes.length };
}

interface Workload {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly ready: number;
  readonly desired: number;
  readonly labels: Readonly<Record<string, string>>;
}

function workloads(s: WorkloadSnapshot): Workload[] {
  const out: Workload[] = [];
  for (const d of s.deployments) {
    out.push({ kind: 'Deployment', namespace: d.metadata?.namespace ?? '', name: d.metadata?.name ?? '', desired: d.spec?.replicas ?? 1, ready: d.status?.readyReplicas ?? 0, labels: d.metadata?.labels ?? {} });
  }
  for (const ds of s.daemonSets) {
    out.push({ kind: 'DaemonSet', namespace: ds.metadata?.namespace ?? '', name: ds.metadata?.name ?? '', desired: ds.status?.desiredNumberScheduled ?? 0, ready: ds.status?.numberReady ?? 0, labels: ds.metadata?.labels ?? {} });
  }
  for (const st of s.statefulSets) {
    out.push({ kind: 'StatefulSet', namespace: st.metadata?.namespace ?? '', name: st.metadata?.name ?? '', desired: st.spec?.replicas ?? 1, ready: st.status?.readyReplicas ?? 0, labels: st.metadata?.labels ?? {} });
  }
  return out;
}

const isReady = (w: Workload): boolean => w.ready >= w.desired;

/** Health from a snapshot: pure, so every counting rule is unit-tested without a server. */
export function summarizeHealth(s: WorkloadSnapshot, addonNamespaces: readonly string[], errors: readonly string[] = []): Health {
  const pools = new Map<string, V1Node[]>();
  for (const n of s.nodes) {
    const pool = n.metadata?.labels?.[NODE_LABELS.pool];
    if (pool !== undefined && pool !== '') pools.set(pool, [...(pools.get(pool) ?? []), n]);
  }
  const poolHealth: PoolHealth[] = [...pools].map(([name, nodes]) => ({ name, ...count(nodes) })).sort(byName);

  const all = workloads(s);
  const addons: NamespaceHealth[] = [...new Set(addonNamespaces)].sort().map((namespace) => {
    const inNs = all.filter((w) => w.namespace === namespace);
    const notReady: WorkloadHealth[] = inNs.filter((w) => !isReady(w))
      .map((w) => ({ kind: w.kind, name: w.name, ready: w.ready, desired: w.desired }))
      .sort((a, b) => (a.kind === b.kind ? byName(a, b) : a.kind < b.kind ? -1 : 1));
    return { namespace, ready: inNs.length - notReady.length, total: inNs.length, notReady };
  });

  const providers = new Map<string, { name: string; namespace: string; ready: number; total: number }>();
  for (const w of all) {
    if (w.kind !== 'Deployment') continue;
    const label = w.labels[PROVIDER_LABEL];
    if (!label && !PROVIDER_NAMESPACE.test(w.namespace)) continue;
    const name = label || w.namespace;
    const key = `${w.namespace}/${name}`;
    const p = providers.get(key) ?? { name, namespace: w.namespace, ready: 0, total: 0 };
    p.total += 1;
    if (isReady(w)) p.ready += 1;
    providers.set(key, p);
  }
  const providerHealth: ProviderHealth[] = [...providers.values()].sort((a, b) => (a.name === b.name ? (a.namespace < b.namespace ? -1 : 1) : byName(a, b)));

  const controlPlane = s.nodes.filter((n) => n.metadata?.labels?.[NODE_LABELS.controlPlane] !== undefined);
  return { nodes: count(s.nodes), controlPlane: count(controlPlane), pools: poolHealth, addons, providers: providerHealth, errors: [...errors] };
}

const httpCode = (e: unknown): string => (typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : 'error');

/** Health from the child's API server. `addonNamespaces` is read on every collection (spec syncs change it). */
export function kubeHealthSource(kubeConfig: KubeConfig, addonNamespaces: () => readonly string[]): HealthSource {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  return {
    async collect() {
      const errors: string[] = [];
      const guard = async <T>(what: string, call: () => Promise<{ items: T[] }>): Promise<T[]> => {
        try {
          return (await call()).items;
        } catch (e) {
          errors.push(`${what}: ${httpCode(e)}`);
          return [];
        }
      };
      const [nodes, deployments, daemonSets, statefulSets] = await Promise.all([
        guard('nodes', () => core.listNode()),
        guard('deployments', () => apps.listDeploymentForAllNamespaces()),
        guard('daemonsets', () => apps.listDaemonSetForAllNamespaces()),
        guard('statefulsets', () => apps.listStatefulSetForAllNamespaces()),
      ]);
      return summarizeHealth({ nodes, deployments, daemonSets, statefulSets }, addonNamespaces(), errors);
    },
  };
}
