/**
 * The controller's lifecycle: leader election on a Lease, and while leading, supervised watches that
 * enqueue cluster names into the work queue, and workers that reconcile them. Only the leader watches and
 * writes; a standby replica holds nothing but its election loop.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { isRecord } from '../core/data.js';
import type { Renderer } from '../core/render/render.js';
import type { SpecValidator } from '../core/spec/validate.js';
import { LeaderElector } from '../kube/leader.js';
import { createMover } from '../kube/mover.js';
import type { ControllerConfig } from './config.js';
import { createEventSink, type EventSink } from './events.js';
import { createKube, type KObject, type Kube } from './kube.js';
import { createMetrics, type ControllerMetrics } from './metrics.js';
import { jitter, WorkQueue } from './queue.js';
import { reconcile, type ReconcileDeps, type ReconcileResult } from './reconcile.js';
import {
  clusterResources, CONTROLLER_MANAGER, INFRA_PROVIDER, LABEL, LATTICE_CLUSTER, SECRET, type ClusterResources, type Resource,
} from './resources.js';
import { cachedKube, type CacheSource } from './cache.js';
import { errorSummary, WatchSupervisor, type WatchSpec } from './watch.js';

/** The field manager of every write (kept apart from the GitOps engine's appliers). */
export const FIELD_MANAGER = 'lattice-controller';

export interface ControllerDeps {
  readonly kubeConfig: KubeConfig;
  readonly config: ControllerConfig;
  readonly log: Logger;
  readonly validator: SpecValidator;
  readonly renderer: Renderer;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Uniform in [0, 1), for jitter. @default Math.random */
  readonly random?: () => number;
  /** @default a fresh registry */
  readonly metrics?: ControllerMetrics;
  /** The agent's connection state per cluster, when no cell is wired (tests). */
  readonly agent?: ReconcileDeps['agent'];
  /** The cell: bootstrap tokens, agent connections (DESIGN §6). */
  readonly agents?: ReconcileDeps['agents'];
  /** Events sink (tests may capture); @default core/v1 Events in `config.eventNamespace`. */
  readonly events?: EventSink;
  /** Called after every reconcile (tests count them; nothing else should need it). */
  readonly onReconciled?: (cluster: string, result: ReconcileResult) => void;
  /**
   * Runs while this replica leads, next to the work (the cell: agents must talk to the replica whose view
   * reaches status). Started after the watches, stopped before them; failures are logged and retried on
   * the next term.
   */
  readonly whileLeading?: { start(): Promise<void>; stop(): Promise<void> };
  /** See ReconcileDeps.checkpoint (crash tests). */
  readonly checkpoint?: ReconcileDeps['checkpoint'];
}

export interface ControllerHealth {
  readonly leader: boolean;
  /** A standby is ready; a leader is ready once every required watch has listed and none is failing. */
  readonly ready: boolean;
  readonly watches: Readonly<Record<string, boolean>>;
}

interface Work {
  readonly unsubscribe?: () => void;
  readonly queue: WorkQueue;
  readonly watches: readonly WatchSupervisor[];
  readonly workers: readonly Promise<void>[];
}

const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});

/** The Secrets the controller created (registrations, credentials copies, state Secrets). */
const OWNED_SELECTOR = `${LABEL.managedBy}=${CONTROLLER_MANAGER}`;

export class Controller {
  readonly metrics: ControllerMetrics;
  private readonly kube: Kube;
  private readonly resources: ClusterResources;
  private readonly elector: LeaderElector;
  private readonly reconcileDeps: ReconcileDeps;
  private readonly now: () => Date;
  private readonly random: () => number;
  private work?: Work;
  private stopping?: Promise<void>;
  private watchIndex = new Map<string, WatchSupervisor>();

  constructor(private readonly deps: ControllerDeps) {
    const { config, log } = deps;
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
    this.metrics = deps.metrics ?? createMetrics();
    this.kube = createKube(deps.kubeConfig, { fieldManager: FIELD_MANAGER });
    this.resources = clusterResources(deps.renderer.versions.apiVersions);
    this.reconcileDeps = {
      kube: this.kube,
      log,
      now: this.now,
      config,
      validator: deps.validator,
      renderer: deps.renderer,
      resources: this.resources,
      events: deps.events ?? createEventSink({ kube: this.kube, namespace: config.eventNamespace, component: FIELD_MANAGER, instance: config.identity, now: this.now, log }),
      metrics: this.metrics,
      ...(deps.agent ? { agent: deps.agent } : {}),
      ...(deps.agents ? { agents: deps.agents } : {}),
      clusters: () => this.watched('latticeclusters'),
      validations: new Map(),
      // Pivots need the cell (the agent receives them); without one there is nothing to move into.
      ...(deps.agents ? { mover: createMover({ kubeConfig: deps.kubeConfig, fieldManager: FIELD_MANAGER, log, apiVersions: deps.renderer.versions.apiVersions }), specSyncs: new Map<string, string>() } : {}),
      ...(deps.checkpoint ? { checkpoint: deps.checkpoint } : {}),
      isLeader: () => this.elector.isLeader,
      cachedKube: (attempt) => cachedKube(this.kube, (r) => this.cacheSources(r), attempt, { ownedSecrets: () => this.cacheSources(SECRET).find((s) => s.labelSelector === OWNED_SELECTOR) }),
    };
    this.elector = new LeaderElector({
      kubeConfig: deps.kubeConfig,
      namespace: config.namespace,
      name: config.leaseName,
      identity: config.identity,
      leaseDurationSeconds: Math.max(1, Math.round(config.leaseDurationMs / 1000)),
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
      // Real time on purpose: an injected clock (tests jump it forward) must not expire Leases.
      log,
      onStartedLeading: () => this.lead(),
      onStoppedLeading: () => void this.follow(),
    });
  }

  /** This replica's leader election identity. */
  get identity(): string {
    return this.deps.config.identity;
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  /** Starts campaigning for the Lease; work starts once it is won. */
  start(): void {
    this.elector.start();
  }

  /** Stops work first, then releases the Lease, so two leaders never write at once. */
  async stop(): Promise<void> {
    await this.follow();
    await this.elector.stop();
    await this.follow();
  }

  health(): ControllerHealth {
    const watches: Record<string, boolean> = {};
    for (const w of this.work?.watches ?? []) watches[w.spec.name] = w.healthy;
    const leader = this.work !== undefined;
    const ready = !leader || (this.work?.watches ?? []).every((w) => w.optional || w.healthy);
    return { leader, ready, watches };
  }

  /**
   * Queues every LatticeCluster the watch knows now, as the periodic resync does for each in turn (the
   * benchmark forces one to count what a resync of settled clusters costs). Returns how many were queued:
   * 0 on a replica that does not lead.
   */
  resync(): number {
    const work = this.work;
    if (!work) return 0;
    const names = this.watched('latticeclusters').map((c) => c.metadata.name);
    for (const name of names) work.queue.add(name);
    return names.length;
  }

  /** Refreshes the gauges that are read rather than counted (called before each scrape). */
  refreshMetrics(): void {
    const m = this.metrics;
    m.leader.set(this.work ? 1 : 0);
    m.queueDepth.set(this.work?.queue.depth ?? 0);
    m.watchHealthy.reset();
    for (const w of this.work?.watches ?? []) m.watchHealthy.set({ watch: w.spec.name }, w.healthy ? 1 : 0);
    m.clusters.reset();
    if (this.work) {
      const phases = new Map<string, number>();
      for (const c of this.watched('latticeclusters')) {
        const phase = rec(c.status).phase;
        const key = typeof phase === 'string' ? phase : 'None';
        phases.set(key, (phases.get(key) ?? 0) + 1);
      }
      for (const [phase, n] of phases) m.clusters.set({ phase }, n);
    }
  }

  private lead(): void {
    if (this.work) return;
    const { config, log } = this.deps;
    const queue = new WorkQueue({ baseDelayMs: config.retryBaseMs, maxDelayMs: config.retryMaxMs, now: () => this.now().getTime() });
    const watches = this.watchSpecs(queue).map((spec) => new WatchSupervisor(spec, {
      kube: this.kube,
      kubeConfig: this.deps.kubeConfig,
      log,
      random: this.random,
      backoff: { baseMs: config.watchBackoffBaseMs, maxMs: config.watchBackoffMaxMs },
      onRestart: (watch) => this.metrics.watchRestarts.inc({ watch }),
    }));
    this.watchIndex = new Map(watches.map((w) => [w.spec.name, w]));
    for (const w of watches) w.start();
    const workers = Array.from({ length: config.concurrency }, () => this.worker(queue));
    // An agent connecting or going silent changes AgentConnected: reconcile that cluster now.
    const unsubscribe = this.deps.agents?.subscribe((cluster) => queue.add(cluster));
    this.work = { queue, watches, workers, ...(unsubscribe ? { unsubscribe } : {}) };
    this.deps.whileLeading?.start().catch((e: unknown) => log.error({ err: errorSummary(e) }, 'leader-only service failed to start'));
    log.info({ identity: config.identity, gitops: config.gitops, concurrency: config.concurrency }, 'controller started');
  }

  /** Stops leading work (lost Lease or shutdown): watches stop, the queue drains, in-flight reconciles finish. */
  private follow(): Promise<void> {
    const work = this.work;
    if (!work) return this.stopping ?? Promise.resolve();
    this.work = undefined;
    const index = this.watchIndex;
    this.stopping = (async () => {
      await this.deps.whileLeading?.stop().catch((e: unknown) => this.deps.log.warn({ err: errorSummary(e) }, 'leader-only service failed to stop'));
      work.unsubscribe?.();
      work.queue.shutDown();
      await Promise.all(work.watches.map((w) => w.stop()));
      await Promise.all(work.workers);
      // Kept until in-flight reconciles are done (they read it); a new term may have replaced it already.
      if (this.watchIndex === index) this.watchIndex = new Map();
      this.deps.log.info({}, 'controller stopped');
    })();
    return this.stopping;
  }

  private async worker(queue: WorkQueue): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const started = process.hrtime.bigint();
      let result: ReconcileResult;
      try {
        result = await reconcile(this.reconcileDeps, key);
      } catch (e) {
        // reconcile() turns failures into results; this is a bug's last line of defence.
        this.deps.log.error({ cluster: key, err: errorSummary(e) }, 'reconcile crashed');
        result = { result: 'error', retry: true, statusWritten: false };
      } finally {
        queue.done(key);
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const label = result.result === 'gone' ? 'success' : result.result;
      this.metrics.reconciles.inc({ result: label });
      this.metrics.reconcileSeconds.observe({ result: label }, seconds);
      if (result.retry) {
        queue.addRateLimited(key);
      } else {
        queue.forget(key);
        if (result.requeueAfterMs !== undefined) queue.addAfter(key, jitter(result.requeueAfterMs, this.random));
      }
      this.deps.onReconciled?.(key, result);
    }
  }

  /** What a watch has seen (its cache). */
  private watched(name: string): KObject[] {
    return this.watchIndex.get(name)?.items() ?? [];
  }

  /** The caches of the watches of one resource, for the reconcile's read-only pass (cache.ts). */
  private cacheSources(r: Resource): CacheSource[] {
    const out: CacheSource[] = [];
    for (const w of this.watchIndex.values()) {
      const s = w.spec;
      if (s.resource.group !== r.group || s.resource.version !== r.version || s.resource.plural !== r.plural) continue;
      out.push({
        resource: s.resource,
        ...(s.options?.namespace !== undefined ? { namespace: s.options.namespace } : {}),
        ...(s.options?.labelSelector !== undefined ? { labelSelector: s.options.labelSelector } : {}),
        get synced() {
          return w.healthy;
        },
        get: (name, namespace) => w.cached(name, namespace),
        list: (namespace) => w.cachedList(namespace),
      });
    }
    return out;
  }

  /** Every watch: each event only enqueues the names of the clusters it concerns. */
  private watchSpecs(queue: WorkQueue): WatchSpec[] {
    const { config } = this.deps;
    const r = this.resources;
    const enqueue = (name: string | undefined) => {
      if (name) queue.add(name);
    };
    const clusters = () => this.watched('latticeclusters');
    const byLabel = (o: KObject) => enqueue(o.metadata.labels?.[LABEL.cluster]);
    /** A GitOps object of a cluster: its label, else the longest cluster name that prefixes its name. */
    const byLabelOrPrefix = (o: KObject) => {
      const label = o.metadata.labels?.[LABEL.cluster];
      if (label) return enqueue(label);
      const match = clusters().map((c) => c.metadata.name).filter((n) => o.metadata.name.startsWith(`${n}-`)).sort((a, b) => b.length - a.length)[0];
      enqueue(match);
    };
    const usingProvider = (provider: string) => {
      for (const c of clusters()) if (rec(c.spec).providerRef === provider) enqueue(c.metadata.name);
    };
    const specs: WatchSpec[] = [
      {
        name: 'latticeclusters', resource: LATTICE_CLUSTER,
        onChange: (o) => {
          enqueue(o.metadata.name);
          // The parent's childrenHealth summarizes every other cluster.
          if (config.self && o.metadata.name !== config.self) enqueue(config.self);
        },
      },
      { name: 'infraproviders', resource: INFRA_PROVIDER, options: { namespace: config.namespace }, onChange: (o) => usingProvider(o.metadata.name) },
      {
        // The credentials Secrets the InfraProviders name: a rotated credential is copied again at once.
        name: 'credentials', resource: SECRET, options: { namespace: config.namespace },
        onChange: (s) => {
          for (const p of this.watched('infraproviders')) if (rec(rec(p.spec).credentialsSecretRef).name === s.metadata.name) usingProvider(p.metadata.name);
        },
      },
      { name: 'clusters', resource: r.capiCluster, options: { labelSelector: LABEL.cluster }, onChange: byLabel },
      { name: 'machinedeployments', resource: r.machineDeployment, options: { labelSelector: LABEL.cluster }, onChange: byLabel },
      ...Object.entries(r.controlPlanes).map(([kind, resource]): WatchSpec => ({ name: kind.toLowerCase(), resource, options: { labelSelector: LABEL.cluster }, optional: true, onChange: byLabel })),
      {
        // CAPI's generated Secrets (selected by CAPI's label); only `<cluster>-kubeconfig` matters.
        name: 'kubeconfigs', resource: SECRET, options: { labelSelector: LABEL.capiCluster },
        onChange: (s) => {
          const cluster = s.metadata.labels?.[LABEL.capiCluster];
          if (cluster && s.metadata.name === `${cluster}-kubeconfig`) enqueue(cluster);
        },
      },
      // What the controller itself created: tampering with a registration or a copy is repaired at once.
      { name: 'owned-secrets', resource: SECRET, options: { labelSelector: OWNED_SELECTOR }, onChange: byLabel },
    ];
    if (config.gitops === 'argocd') {
      specs.push({ name: 'applications', resource: r.application, options: { namespace: config.argocdNamespace, labelSelector: LABEL.cluster }, onChange: byLabel });
    } else {
      specs.push(
        { name: 'helmreleases', resource: r.helmRelease, options: { namespace: config.fluxNamespace }, onChange: byLabelOrPrefix },
        { name: 'kustomizations', resource: r.kustomization, options: { namespace: config.fluxNamespace }, onChange: byLabelOrPrefix },
      );
    }
    return specs;
  }
}
