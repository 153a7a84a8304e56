/**
 * A whole simulated world for the lifecycle tests and the demo: a parent sim API server with the Lattice
 * and upstream CRDs, a simulated Cluster API and Argo CD on it, the real controller with its real cell
 * (gRPC and HTTPS on loopback), and per cluster a child sim API server with its own simulated Cluster API
 * (which only acts once the pivot unpauses objects there) and the real agent.
 *
 * The controller and each agent can be restarted: a restart is a new instance with nothing in memory,
 * against the same servers and the same cell ports (agents keep dialing the address in their bootstrap
 * Secret), which is what the crash tests need.
 */
import { join } from 'node:path';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { AppsV1Api } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { parseAllDocuments } from 'yaml';
import { specRenderer } from '../cli/load.js';
import { argocdObjects } from '../core/flavor/flavors.js';
import { toYamlStream } from '../core/render/render.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { createAgent, type Agent, type AgentOptions } from '../agent/agent.js';
import { leaderCell, stateSecretTokenStore } from '../controller/agents.js';
import { startCell, type Cell } from '../controller/cell/cell.js';
import { createKube } from '../controller/kube.js';
import type { ControllerConfig } from '../controller/config.js';
import { startHarness, type Harness } from '../controller/testing.js';
import { startSim, type SimClients } from './apiserver/testing.js';
import { createCapiSim, type CapiSim } from './capi/index.js';
import { ArgoCdSim } from './gitops/argocd.js';
import { FluxSim } from './gitops/flux.js';
import { withBuiltIns } from './gitops/health.js';
import { createHealthChecks, type HealthChecks } from './health/lua.js';

export interface WorldOptions {
  /** The project's root (crds/) and the shared upstream CRDs directory. */
  readonly repo: string;
  readonly upstreamCrds: string;
  readonly controllerConfig?: Partial<ControllerConfig>;
  /** How the controller reaches the parent (e.g. through a recording proxy). @default the parent's own kubeconfig */
  readonly controllerKubeConfig?: (parent: SimClients) => KubeConfig | Promise<KubeConfig>;
  /** Pause between simulated Cluster API passes. @default 50 */
  readonly capiIntervalMs?: number;
  /** The GitOps engine simulated (and the controller's --gitops). @default argocd */
  readonly gitops?: 'argocd' | 'flux';
  /** Namespaces the parent starts with besides default, argocd and lattice-system (e.g. capa-system). */
  readonly extraNamespaces?: readonly string[];
  /** How often the simulated Argo CD re-reads objects. @default 20 */
  readonly argoPollMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly log?: Logger;
  /**
   * See ReconcileDeps.checkpoint: called with the controller's incarnation (1, 2, ... one per start), so a
   * test can tell a stopped controller's late calls from the running one's.
   */
  readonly checkpoint?: (incarnation: number) => (point: string, cluster: string) => void | Promise<void>;
  /** Extra agent options (the crash tests pass handler checkpoints). */
  readonly agentOptions?: (cluster: string) => Partial<AgentOptions>;
}

export interface Child {
  readonly name: string;
  readonly sim: SimClients;
  /** The child's own Cluster API (acts on unpaused objects only). */
  readonly capi: CapiSim;
  agent?: Agent;
}

export interface World {
  readonly parent: SimClients;
  /** Requests the cell's API proxy answered, by cluster (every incarnation of the cell). */
  readonly proxied: ReadonlyMap<string, number>;
  readonly argo: ArgoCdSim;
  /** The simulated Flux (gitops: flux), applying ExternalArtifacts. */
  readonly flux: FluxSim | undefined;
  readonly capi: CapiSim;
  readonly children: ReadonlyMap<string, Child>;
  /** The running controller (replaced by restartController). */
  readonly controller: Harness;
  /** The cell of the running controller, once it leads. */
  readonly cell: Cell | undefined;
  /** A child API server for `cluster` (its CAPI kubeconfig points there), with CAPI providers running. */
  addChild(cluster: string): Promise<Child>;
  /** Starts (or restarts: a fresh instance) the agent of a child. */
  startAgent(cluster: string): Promise<Agent>;
  stopAgent(cluster: string): Promise<void>;
  /** Stops a child's agent and Cluster API and closes its API server. */
  removeChild(cluster: string): Promise<void>;
  /** Stops the controller and starts a fresh one (same cell ports, CA and state in the API server). Serialized. */
  restartController(): Promise<void>;
  stop(): Promise<void>;
}

/** The namespace and Deployment of the Cluster API providers the agent reports (what the operator addon installs). */
const PROVIDERS_NAMESPACE = 'capi-system';

async function runProviders(child: SimClients): Promise<void> {
  const apps = child.kc.makeApiClient(AppsV1Api);
  await child.core.createNamespace({ body: { metadata: { name: PROVIDERS_NAMESPACE } } }).catch(() => undefined);
  const labels = { 'cluster.x-k8s.io/provider': 'cluster-api', app: 'capi-controller-manager' };
  const created = await apps.createNamespacedDeployment({
    namespace: PROVIDERS_NAMESPACE,
    body: {
      metadata: { name: 'capi-controller-manager', labels },
      spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'manager', image: 'registry.k8s.io/cluster-api/cluster-api-controller:v1.11.0' }] } } },
    },
  });
  // Nothing runs pods in a sim: the status says what a running provider's would.
  await apps.replaceNamespacedDeploymentStatus({ namespace: PROVIDERS_NAMESPACE, name: 'capi-controller-manager', body: { ...created, status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } } });
}

/**
 * What the config-management plugin prints for one cluster (the Argo CD flavor, app-of-apps in `argocd`),
 * parsed: what the simulated Argo CD syncs in the lifecycle tests and the benchmark.
 */
export function argoCdObjectsOf(cluster: LatticeCluster): (KubernetesObject & Record<string, unknown>)[] {
  const renderer = specRenderer();
  const planned = argocdObjects(renderer, cluster, { namespace: 'argocd', project: 'default', plugin: 'lattice', source: { repoURL: 'https://git.example.com/c.git', path: 'clusters', targetRevision: 'main' } });
  return parseAllDocuments(toYamlStream(renderer.renderObjects(planned))).map((d) => d.toJS() as KubernetesObject & Record<string, unknown>);
}

export async function startWorld(options: WorldOptions): Promise<World> {
  const log = options.log ?? pino({ level: 'silent' });
  const renderer = specRenderer();
  const parent = await startSim({ crds: [join(options.repo, 'crds'), options.upstreamCrds], namespaces: ['default', 'argocd', 'lattice-system', ...(options.gitops === 'flux' ? ['flux-system'] : []), ...(options.extraNamespaces ?? [])] });
  const checks: HealthChecks = await createHealthChecks();
  const controllerKubeConfig = await options.controllerKubeConfig?.(parent);
  const children = new Map<string, Child>();
  const capi = createCapiSim({
    kubeConfig: parent.kc, intervalMs: options.capiIntervalMs ?? 50, apiVersions: renderer.versions.apiVersions,
    childServer: (c) => children.get(c.name)?.sim.url,
    childKubeConfig: (c) => children.get(c.name)?.sim.kc,
  });
  // Both engines install releases in the children with the registration's credentials: the child's API
  // before a pivot, the cell's API proxy after it. Re-checked every 5 s (self-heal), not every pass: a
  // world of many clusters would otherwise spend its CPU on the checks.
  const flux = options.gitops === 'flux' ? new FluxSim({ kubeConfig: parent.kc, applyArtifacts: true, installReleases: { resyncMs: 5000 }, pollMs: options.argoPollMs ?? 20, log }) : undefined;
  const argo = new ArgoCdSim({ kubeConfig: parent.kc, health: withBuiltIns(checks), installReleases: { resyncMs: 5000 }, pollMs: options.argoPollMs ?? 20 });
  const tokens = stateSecretTokenStore({ kube: createKube(parent.kc, { fieldManager: 'lattice-cell' }) });
  let cell: Cell | undefined;
  const proxied = new Map<string, number>();
  // Fixed after the first start: a restarted controller's cell listens where the agents already dial.
  let ports = { grpcPort: 0, bootstrapPort: 0, proxyPort: 0 };
  let incarnation = 0;
  const startController = (): Harness => {
    incarnation += 1;
    const leader = leaderCell({
      host: '127.0.0.1', tokens,
      start: async () => {
        cell = await startCell({
          core: parent.core, hosts: ['127.0.0.1'], tokens, ...ports, bindHost: '127.0.0.1', heartbeatIntervalMs: options.heartbeatIntervalMs ?? 300, log,
          proxyObserver: { request: ({ cluster }) => proxied.set(cluster, (proxied.get(cluster) ?? 0) + 1) },
        });
        ports = { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort, proxyPort: cell.proxyPort };
        return cell;
      },
    });
    return startHarness({
      sim: parent, log,
      ...(controllerKubeConfig ? { kubeConfig: controllerKubeConfig } : {}),
      config: { progressIntervalMs: 200, ...(flux ? { gitops: 'flux' as const, fluxNamespace: 'flux-system' } : {}), ...options.controllerConfig },
      agents: leader.integration, whileLeading: leader.service,
      ...(options.checkpoint ? { checkpoint: options.checkpoint(incarnation) } : {}),
    });
  };
  let controller = startController();
  let restarting: Promise<void> = Promise.resolve();
  capi.start();
  if (flux) flux.start();
  else argo.start();
  await parent.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);

  const world: World = {
    parent, proxied, argo, flux, capi, children,
    get controller() {
      return controller;
    },
    get cell() {
      return cell;
    },
    async addChild(cluster) {
      const sim = await startSim({ crds: [options.upstreamCrds], namespaces: ['default', 'kube-system'] });
      await runProviders(sim);
      const childCapi = createCapiSim({
        kubeConfig: sim.kc, intervalMs: options.capiIntervalMs ?? 50, apiVersions: renderer.versions.apiVersions,
        childServer: () => sim.url, childKubeConfig: () => sim.kc,
      });
      childCapi.start();
      const child: Child = { name: cluster, sim, capi: childCapi };
      children.set(cluster, child);
      return child;
    },
    async startAgent(cluster) {
      const child = children.get(cluster);
      if (!child) throw new Error(`no child ${cluster}`);
      await child.agent?.stop();
      const agent = createAgent({
        config: { cluster, heartbeatSeconds: 10, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity', addonNamespaces: [] },
        kubeConfig: child.sim.kc, namespace: 'lattice-system', log,
        backoff: { initialMs: 20, maxMs: 200, stableMs: 100 },
        ...options.agentOptions?.(cluster),
      });
      agent.start();
      child.agent = agent;
      return agent;
    },
    async stopAgent(cluster) {
      const child = children.get(cluster);
      await child?.agent?.stop();
      if (child) child.agent = undefined;
    },
    async removeChild(cluster) {
      const child = children.get(cluster);
      if (!child) return;
      children.delete(cluster);
      await child.agent?.stop();
      await child.capi.stop();
      await child.sim.server.close();
    },
    restartController() {
      restarting = restarting.then(async () => {
        await controller.stop();
        controller = startController();
      });
      return restarting;
    },
    async stop() {
      await restarting;
      argo.stop();
      flux?.stop();
      await Promise.all([...children.values()].map((c) => c.agent?.stop()));
      await controller.stop();
      await capi.stop();
      await Promise.all([...children.values()].map((c) => c.capi.stop()));
      checks.close();
      await Promise.all([parent.server.close(), ...[...children.values()].map((c) => c.sim.server.close())]);
    },
  };
  return world;
}
