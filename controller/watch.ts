/**
 * A supervised watch: client-node's ListWatch (list, then watch from the list's resourceVersion; 410
 * re-lists; a clean close reconnects), restarted by us when it reports an error, because on any other
 * error (a connection reset, a failed list) ListWatch calls its error callbacks and stops for good
 * (kubernetes-client/javascript issues #596, #795, #1598). Restarts back off exponentially with jitter up
 * to a cap and resume from the last resourceVersion, so nothing is replayed that was already seen.
 *
 * Events only feed `onChange`, which should enqueue a key: the reconcile reads current state.
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { toObject, type KObject, type Kube, type ListOptions } from './kube.js';
import type { Resource } from './resources.js';

export type ChangeType = 'add' | 'update' | 'delete';

export interface WatchSpec {
  /** For logs, metrics and readiness: unique per controller. */
  readonly name: string;
  readonly resource: Resource;
  readonly options?: ListOptions;
  /**
   * An optional watch does not gate readiness: used for kinds that may not be installed (RKE2's control plane
   * when only kubeadm is used). It keeps retrying at the capped backoff.
   */
  readonly optional?: boolean;
  readonly onChange: (obj: KObject, type: ChangeType) => void;
}

export interface WatchDeps {
  readonly kube: Kube;
  readonly kubeConfig: KubeConfig;
  readonly log: Logger;
  /** Uniform in [0, 1). */
  readonly random: () => number;
  /** Restart backoff: base × 2^failures, capped, then scaled into [50 %, 100 %] (jitter). */
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  readonly onRestart?: (name: string) => void;
  /** @default setTimeout-based sleep */
  readonly sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => {
  setTimeout(resolve, ms).unref();
});

export class WatchSupervisor {
  private informer?: ListWatch<KubernetesObject>;
  private failures = 0;
  private listed = false;
  private failing = false;
  private stopped = true;
  private restartTimer?: NodeJS.Timeout;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(readonly spec: WatchSpec, private readonly deps: WatchDeps) {
    this.sleep = deps.sleep ?? defaultSleep;
  }

  /** Listed at least once and not failing now. */
  get healthy(): boolean {
    return this.listed && !this.failing;
  }

  get optional(): boolean {
    return this.spec.optional === true;
  }

  /** What the watch has seen (its cache, as the informer holds it: never to be modified). */
  items(): KObject[] {
    return (this.informer?.list() ?? []).map((o) => o as unknown as KObject);
  }

  /** One object of the cache, as the informer holds it (never to be modified; typed clients' objects carry Dates). */
  cached(name: string, namespace?: string): KubernetesObject | undefined {
    return this.informer?.get(name, namespace);
  }

  /** The cache's objects, of one namespace or all, as the informer holds them. */
  cachedList(namespace?: string): readonly KubernetesObject[] {
    return this.informer?.list(namespace) ?? [];
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const { path, list } = this.deps.kube.lister(this.spec.resource, this.spec.options);
    const watch = new Watch(this.deps.kubeConfig);
    // ListWatch's own reconnect delay after clean closes doubles up to 30 s when no event arrives between
    // closes; the cap keeps quiet resources watched.
    const delayFn = (ms: number) => this.sleep(Math.min(ms, this.deps.backoff.maxMs));
    const informer = new ListWatch<KubernetesObject>(path, watch, list, false, this.spec.options?.labelSelector, undefined, { delayFn });
    const emit = (type: ChangeType) => (obj: KubernetesObject) => {
      this.failing = false;
      this.failures = 0;
      let o: KObject;
      try {
        o = toObject(obj);
      } catch {
        return;
      }
      this.spec.onChange(o, type);
    };
    informer.on('add', emit('add'));
    informer.on('update', emit('update'));
    informer.on('delete', emit('delete'));
    informer.on('error', (err: unknown) => this.onError(err));
    this.informer = informer;
    this.run();
  }

  private run(): void {
    const informer = this.informer;
    if (!informer || this.stopped) return;
    const failuresBefore = this.failures;
    const failingBefore = this.failing;
    this.failing = false;
    void informer.start().then(() => {
      // start() resolves after the list and once the watch request is answered; an error in between
      // has already been reported through onError. ListWatch cannot abort a watch whose response has
      // not arrived yet, so one that arrives after stop() is aborted here.
      if (this.stopped) return void informer.stop();
      if (this.failing) return;
      this.listed = true;
      this.failures = 0;
      if (failingBefore || failuresBefore > 0) this.deps.log.info({ watch: this.spec.name }, 'watch recovered');
    }, (err: unknown) => this.onError(err));
  }

  private onError(err: unknown): void {
    if (this.stopped) return;
    this.failing = true;
    this.failures++;
    const raw = Math.min(this.deps.backoff.maxMs, this.deps.backoff.baseMs * 2 ** Math.min(this.failures - 1, 30));
    const delay = Math.round(raw * (0.5 + 0.5 * this.deps.random()));
    const level = this.spec.optional && this.failures > 1 ? 'debug' : 'warn';
    this.deps.log[level]({ watch: this.spec.name, failures: this.failures, delayMs: delay, err: errorSummary(err) }, 'watch failed; restarting');
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.deps.onRestart?.(this.spec.name);
      this.run();
    }, delay);
    this.restartTimer.unref();
  }

  /** Stops watching. Does not wait for a watch request still in flight: it is aborted when it answers. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.informer?.stop();
    this.listed = false;
    this.failing = false;
  }
}

/** An error for logs: a name and an HTTP code at most (no bodies, no URLs with credentials). */
export function errorSummary(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const e = err as { name?: unknown; code?: unknown; statusCode?: unknown; message?: unknown };
  const code = typeof e.statusCode === 'number' ? e.statusCode : typeof e.code === 'number' || typeof e.code === 'string' ? e.code : undefined;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  // client-node's own errors and undici's network errors carry short messages; ApiException's does not.
  const message = typeof e.message === 'string' && name !== 'ApiException' && !e.message.includes('://') ? e.message.slice(0, 200) : '';
  return [name, code, message].filter((x) => x !== undefined && x !== '').join(' ');
}
