/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does it, for
 * every long-running part with more than one replica (the controller; the Flux sidecar's status writer).
 *
 * - Expiry is judged by when *this* process last saw the record change, not by the record's renewTime,
 *   so clock skew between replicas cannot steal a live lease (client-go `observedTime`).
 * - Writes are optimistic (resourceVersion): two candidates racing for an expired lease cannot both win.
 * - A leader that cannot renew within `renewDeadlineMs` stops leading before its lease can expire
 *   elsewhere, so two leaders never act at once.
 * - `stop()` releases the lease (empty holder, 1 s duration), so a rolling update hands over at once.
 */
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface LeaderElectorOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  /** Unique per replica: the pod name, plus something random for safety across restarts. */
  readonly identity: string;
  /** How long a lease holds without renewal. @default 15 */
  readonly leaseDurationSeconds?: number;
  /** A leader that cannot renew for this long steps down. @default 10000 */
  readonly renewDeadlineMs?: number;
  /** Time between attempts. @default 2000 */
  readonly retryPeriodMs?: number;
  readonly now?: () => number;
  readonly log?: Logger;
  /** Called on winning; `signal` aborts when leadership ends. */
  readonly onStartedLeading: (signal: AbortSignal) => void;
  readonly onStoppedLeading?: () => void;
}

const statusCode = (e: unknown): number | undefined => (typeof e === 'object' && e !== null && 'code' in e ? Number((e as { code: unknown }).code) : undefined);

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly now: () => number;
  private timer?: NodeJS.Timeout;
  private leading?: AbortController;
  private lastRenew = 0;
  private observed?: { record: string; at: number };
  private stopped = false;
  private running?: Promise<void>;
  private tries = 0;

  constructor(private readonly options: LeaderElectorOptions) {
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.now = options.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.leading !== undefined;
  }

  /** Attempts to acquire or renew made so far. */
  get attempts(): number {
    return this.tries;
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.running = this.attempt().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.options.retryPeriodMs ?? 2000);
      });
    };
    tick();
  }

  /** Stops trying; a leader releases the lease so another replica takes over at once. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    if (this.leading && options.release !== false) await this.release().catch((e: unknown) => this.options.log?.warn({ err: (e as Error).message }, 'lease release failed'));
    this.stepDown();
  }

  private async attempt(): Promise<void> {
    this.tries++;
    try {
      const won = await this.tryAcquireOrRenew();
      if (won) {
        this.lastRenew = this.now();
        if (!this.leading) {
          this.leading = new AbortController();
          this.options.log?.info({ lease: this.options.name, identity: this.options.identity }, 'became leader');
          this.options.onStartedLeading(this.leading.signal);
        }
        return;
      }
    } catch (e) {
      this.options.log?.warn({ lease: this.options.name, err: (e as Error).message }, 'lease attempt failed');
    }
    if (this.leading && this.now() - this.lastRenew > (this.options.renewDeadlineMs ?? 10_000)) this.stepDown();
  }

  private stepDown(): void {
    if (!this.leading) return;
    this.leading.abort();
    this.leading = undefined;
    this.options.log?.info({ lease: this.options.name, identity: this.options.identity }, 'stopped leading');
    this.options.onStoppedLeading?.();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const duration = this.options.leaseDurationSeconds ?? 15;
    const now = this.now();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
      await this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: duration, acquireTime: new V1MicroTime(now), renewTime: new V1MicroTime(now), leaseTransitions: 0 } } });
      return true;
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseDurationSeconds]);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    const holder = spec.holderIdentity ?? '';
    const expired = this.observed.at + (spec.leaseDurationSeconds ?? duration) * 1000 <= now;
    if (holder !== '' && holder !== identity && !expired) return false;
    const changedHands = holder !== identity;
    try {
      await this.api.replaceNamespacedLease({
        name, namespace,
        body: {
          metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: duration,
            acquireTime: changedHands ? new V1MicroTime(now) : spec.acquireTime,
            renewTime: new V1MicroTime(now),
            leaseTransitions: (spec.leaseTransitions ?? 0) + (changedHands ? 1 : 0),
          },
        },
      });
    } catch (e) {
      if (statusCode(e) === 409) return false;
      throw e;
    }
    return true;
  }

  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    const lease = await this.api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== identity) return;
    await this.api.replaceNamespacedLease({
      name, namespace,
      body: { metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion }, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } },
    });
  }
}
