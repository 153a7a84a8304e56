/**
 * `createCapiSim(options)`: a simulated Cluster API (core, KCP/CAPRKE2, bootstrap and infrastructure
 * providers) for tests and demos. It polls any Kubernetes API server through client-node and moves each
 * `Cluster` through four steps, one step per pass at most: infrastructure provisioned, control plane
 * initialized, workers created, nodes ready. Level-based: a pass reads the current state and converges
 * to it, so it can be stopped, restarted or run twice against the same server.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { Conflict, describeError, Kube, type Json, type KObject } from './kube.js';
import { newMemory, Pass, type ClusterKey, type ClusterReport, type Fault } from './reconcile.js';
import { CAPI_STEPS, type CapiStep } from './status.js';

export interface CapiSimOptions {
  /** The management cluster holding the CAPI objects. */
  readonly kubeConfig: KubeConfig;
  /** @default a silent logger */
  readonly logger?: Logger;
  /** The clock for condition timestamps and step delays. @default () => new Date() */
  readonly now?: () => Date;
  /** Pause between passes once `start()`ed. @default 50 */
  readonly intervalMs?: number;
  /** How long each step takes, counted from when the previous one completed. @default 0 for every step */
  readonly stepDelayMs?: Partial<Readonly<Record<CapiStep, number>>>;
  /** How long after a Cluster's deletionTimestamp its finalizer is removed. @default 0 */
  readonly deletionDelayMs?: number;
  /** Faults at start, by Cluster: `name` or `namespace/name`. */
  readonly faults?: Readonly<Record<string, Fault>>;
  /**
   * apiVersion by kind, for resolving v1beta2 `{apiGroup, kind}` references: pass templates/versions.yaml's
   * `apiVersions` (`specRenderer().versions.apiVersions`). CAPI reads the version from CRD contract labels and
   * converts through webhooks; the pinned CRDs have no labels and the simulated server converts nothing, so
   * without this a kind resolves to its group's preferred version (wrong for CAPMOX v1alpha1, for instance).
   */
  readonly apiVersions?: Readonly<Record<string, string>>;
  /** Only Clusters for which this is true are reconciled (several simulators can share one server). @default all */
  readonly clusters?: (cluster: ClusterKey) => boolean;
  /** The control plane endpoint an infra provider assigns when the infra cluster has none. @default `<name>.<namespace>.capi-sim.test:6443` */
  readonly endpoint?: (cluster: ClusterKey) => { host: string; port: number };
  /** The server URL written into `<cluster>-kubeconfig` (e.g. a child sim API server). @default `https://<endpoint host>:<port>` */
  readonly childServer?: (cluster: ClusterKey) => string | undefined;
  /** Where to create the cluster's Nodes once they are ready (a child sim API server); none if undefined. */
  readonly childKubeConfig?: (cluster: ClusterKey) => KubeConfig | undefined;
}

/** What one pass did. */
export interface ReconcileReport {
  readonly clusters: readonly ClusterReport[];
  /** Write requests sent (creates, updates, status updates, deletes); 0 when nothing had to change. */
  readonly writes: number;
}

export interface CapiSim {
  /** Starts polling every `intervalMs`; errors are logged and the next pass retries. Idempotent. */
  start(): void;
  /** Stops polling and waits for a pass in flight. Idempotent. */
  stop(): Promise<void>;
  /** One pass over every selected Cluster (serialized with the polling loop). Rejects if a Cluster's pass failed. */
  reconcileOnce(): Promise<ReconcileReport>;
  /** Injects a fault into a Cluster (`name` or `namespace/name`), replacing any it had. */
  setFault(cluster: string | ClusterKey, fault: Fault): void;
  clearFault(cluster: string | ClusterKey): void;
}

const faultKey = (c: string | ClusterKey) => (typeof c === 'string' ? c : `${c.namespace}/${c.name}`);

class Simulator implements CapiSim {
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly faults: Map<string, Fault>;
  private readonly memory = newMemory();
  private readonly schemas = new Map<string, Promise<Json | undefined>>();
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly options: CapiSimOptions) {
    this.log = options.logger ?? pino({ level: 'silent' });
    this.now = options.now ?? (() => new Date());
    this.faults = new Map(Object.entries(options.faults ?? {}));
  }

  setFault(cluster: string | ClusterKey, fault: Fault): void {
    this.faults.set(faultKey(cluster), fault);
    this.log.info({ cluster: faultKey(cluster), step: fault.step, mode: fault.mode }, 'fault set');
  }

  clearFault(cluster: string | ClusterKey): void {
    if (this.faults.delete(faultKey(cluster))) this.log.info({ cluster: faultKey(cluster) }, 'fault cleared');
  }

  reconcileOnce(): Promise<ReconcileReport> {
    const pass = this.chain.then(() => this.pass());
    this.chain = pass.catch(() => undefined);
    return pass;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = async () => {
      try {
        await this.reconcileOnce();
      } catch (e) {
        this.log.warn({ err: describeError(e) }, 'reconcile pass failed');
      }
      if (this.running) this.timer = setTimeout(() => void tick(), this.options.intervalMs ?? 50);
    };
    void tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.chain;
  }

  private fault(cluster: ClusterKey): Fault | undefined {
    return this.faults.get(`${cluster.namespace}/${cluster.name}`) ?? this.faults.get(cluster.name);
  }

  private async pass(): Promise<ReconcileReport> {
    const o = this.options;
    const kube = new Kube(o.kubeConfig, this.schemas);
    const pass = new Pass(kube, {
      log: this.log,
      stepDelayMs: Object.fromEntries(CAPI_STEPS.map((s) => [s, o.stepDelayMs?.[s] ?? 0])) as Record<CapiStep, number>,
      deletionDelayMs: o.deletionDelayMs ?? 0,
      apiVersions: o.apiVersions ?? {},
      endpoint: o.endpoint ?? ((c) => ({ host: `${c.name}.${c.namespace}.capi-sim.test`, port: 6443 })),
      childServer: o.childServer,
      childKubeConfig: o.childKubeConfig,
      fault: (c) => this.fault(c),
    }, this.memory, this.now());
    const clusterInfo = await pass.core('Cluster');
    const clusters = (await kube.list(clusterInfo, undefined))
      .filter((c) => o.clusters?.({ namespace: c.metadata.namespace ?? '', name: c.metadata.name }) ?? true);
    const reports: ClusterReport[] = [];
    const failures: string[] = [];
    for (const cluster of clusters) {
      try {
        reports.push(await pass.reconcile(cluster));
      } catch (e) {
        const id = `${cluster.metadata.namespace ?? ''}/${cluster.metadata.name}`;
        if (e instanceof Conflict) {
          // Someone wrote first: the next pass starts from their version (optimistic concurrency).
          this.log.debug({ cluster: id, err: e.message }, 'write conflict, retrying next pass');
          continue;
        }
        const message = describeError(e);
        this.log.warn({ cluster: id, err: message }, 'cluster reconcile failed');
        failures.push(`${id}: ${message}`);
      }
    }
    this.forget(clusters);
    if (failures.length > 0) throw new Error(`reconcile failed for ${failures.length} cluster(s): ${failures.join('; ')}`);
    return { clusters: reports, writes: kube.writes };
  }

  /** Drops what the simulator remembers of Clusters that are gone. */
  private forget(present: readonly KObject[]): void {
    const uids = new Set(present.map((c) => c.metadata.uid));
    for (const map of [this.memory.levels, this.memory.waits, this.memory.deleting, this.memory.logged]) {
      for (const uid of map.keys()) if (!uids.has(uid)) map.delete(uid);
    }
  }
}

/** Builds a simulator (not started: call `start()`, or drive it with `reconcileOnce()`). */
export function createCapiSim(options: CapiSimOptions): CapiSim {
  return new Simulator(options);
}
