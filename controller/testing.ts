/**
 * Test support for the controller against the simulated API server (like sim/apiserver/testing.ts: no test
 * framework imported, failures are thrown Errors). A harness starts a real Controller through client-node
 * with fast intervals; a recorder keeps every LatticeCluster status the server ever held, so the kstatus
 * invariants are checked on all of them after each test, not just on the last.
 */
import type { AgentIntegration } from './agents.js';
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { specRenderer, specValidator } from '../cli/load.js';
import { eventually as poll, type EventuallyOptions, type SimClients } from '../sim/apiserver/testing.js';
import { isRecord } from '../core/data.js';
import { findCondition, kstatusViolations } from './conditions.js';
import { defaultConfig, type ControllerConfig } from './config.js';
import { Controller } from './controller.js';
import { createKube, toObject, type KObject } from './kube.js';
import type { ReconcileResult } from './reconcile.js';
import { LATTICE_CLUSTER } from './resources.js';

/**
 * sim/apiserver's `eventually` with defaults for controller tests: several simulators, a controller and the
 * test share two cores, and a loaded machine can slow all of them down several times.
 */
export function eventually<T>(check: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<T> {
  return poll(check, { intervalMs: 20, timeoutMs: 15_000, ...options });
}

/** Intervals for tests: fast leases and backoffs, long periodic resyncs (tests rely on watches). */
export const TEST_CONFIG: Partial<ControllerConfig> = {
  // Generous against event-loop lag on a loaded 2-core machine: a leader must not step down by accident.
  leaseDurationMs: 3000,
  renewDeadlineMs: 2000,
  retryPeriodMs: 50,
  concurrency: 2,
  resyncIntervalMs: 60_000,
  progressIntervalMs: 60_000,
  waitIntervalMs: 100,
  retryBaseMs: 20,
  retryMaxMs: 500,
  watchBackoffBaseMs: 20,
  watchBackoffMaxMs: 200,
  provisioningTimeoutMs: 0,
};

export interface HarnessOptions {
  readonly sim: SimClients;
  /** How the controller reaches the server. @default the sim's own kubeconfig */
  readonly kubeConfig?: KubeConfig;
  readonly config?: Partial<ControllerConfig>;
  readonly now?: () => Date;
  readonly log?: Logger;
  /** A cell wired in (bootstrap tokens, agent connections). */
  readonly agents?: AgentIntegration;
  /** Runs while the controller leads (the cell). */
  readonly whileLeading?: { start(): Promise<void>; stop(): Promise<void> };
  /** Called at every pivot/unpivot boundary (crash tests). */
  readonly checkpoint?: (point: string, cluster: string) => void | Promise<void>;
}

export interface Harness {
  readonly controller: Controller;
  /** Reconciles completed per cluster. */
  reconciles(cluster: string): number;
  readonly results: { cluster: string; result: ReconcileResult }[];
  stop(): Promise<void>;
}

/** Starts a controller against a simulated API server (it leads at once if no one else holds the Lease). */
export function startHarness(options: HarnessOptions): Harness {
  const counts = new Map<string, number>();
  const results: { cluster: string; result: ReconcileResult }[] = [];
  const config = defaultConfig({ ...TEST_CONFIG, identity: `test-${Math.random().toString(16).slice(2, 8)}`, ...options.config });
  const controller = new Controller({
    kubeConfig: options.kubeConfig ?? options.sim.kc,
    config,
    log: options.log ?? pino({ level: 'silent' }),
    validator: specValidator(),
    renderer: specRenderer(),
    ...(options.now ? { now: options.now } : {}),
    ...(options.agents ? { agents: options.agents } : {}),
    ...(options.whileLeading ? { whileLeading: options.whileLeading } : {}),
    ...(options.checkpoint ? { checkpoint: options.checkpoint } : {}),
    onReconciled: (cluster, result) => {
      counts.set(cluster, (counts.get(cluster) ?? 0) + 1);
      results.push({ cluster, result });
    },
  });
  controller.start();
  return { controller, reconciles: (c) => counts.get(c) ?? 0, results, stop: () => controller.stop() };
}

/**
 * Every version of every LatticeCluster the server held while recording (a watch sees each write), for
 * histories ("Unknown, then False, then True") and for invariant checks over all of them.
 */
export class StatusRecorder {
  readonly seen: KObject[] = [];
  private informer?: ListWatch<KubernetesObject>;
  private stopped = false;

  constructor(private readonly kc: KubeConfig) {}

  async start(): Promise<void> {
    const kube = createKube(this.kc, { fieldManager: 'test' });
    const { path, list } = kube.lister(LATTICE_CLUSTER);
    const informer = new ListWatch<KubernetesObject>(path, new Watch(this.kc), list, false);
    const keep = (o: KubernetesObject) => this.seen.push(toObject(o));
    informer.on('add', keep);
    informer.on('update', keep);
    // A dropped connection (tests cut them on purpose): resume from the last resourceVersion.
    informer.on('error', () => {
      if (!this.stopped) setTimeout(() => void informer.start(), 20);
    });
    this.informer = informer;
    await informer.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer?.stop();
  }

  /** The recorded versions of one cluster. */
  of(name: string): KObject[] {
    return this.seen.filter((o) => o.metadata.name === name);
  }

  /** The successive distinct statuses of a condition of one cluster ("Unknown", "False", "True"). */
  history(name: string, type: string): string[] {
    const out: string[] = [];
    for (const o of this.of(name)) {
      const status = findCondition(o.status, type)?.status;
      if (typeof status === 'string' && out[out.length - 1] !== status) out.push(status);
    }
    return out;
  }

  /** The message a condition had the first time it had `status`. */
  firstMessage(name: string, type: string, status: string): string | undefined {
    for (const o of this.of(name)) {
      const c = findCondition(o.status, type);
      if (c?.status === status) return String(c.message);
    }
    return undefined;
  }

  /** Throws listing every kstatus violation in any recorded status. */
  assertKstatus(): void {
    const problems = [...new Set(this.seen.flatMap((o) => kstatusViolations(o).map((v) => `${v} (resourceVersion ${o.metadata.resourceVersion ?? '?'})`)))];
    if (problems.length > 0) throw new Error(`kstatus invariants broken:\n${problems.join('\n')}`);
    if (this.seen.length === 0) throw new Error('the recorder saw no LatticeCluster: the invariant check would prove nothing');
  }
}

/** A condition of a LatticeCluster read from the server, or undefined. */
export function conditionOf(obj: unknown, type: string): { status: string; reason: string; message: string } | undefined {
  const c = findCondition(isRecord(obj) ? obj.status : undefined, type);
  return c ? { status: String(c.status), reason: String(c.reason), message: String(c.message) } : undefined;
}
