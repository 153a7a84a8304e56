/**
 * The work queue, as client-go's workqueue behaves (the contract controller-runtime builds on):
 *
 * - De-duplicating: a key added many times before a worker takes it is processed once.
 * - Per-key serialization: a key being processed is never handed to a second worker; if it is added
 *   meanwhile it is marked dirty and queued again when the first worker calls `done`.
 * - Delayed adds (`addAfter`): the earliest pending time per key wins.
 * - Rate limiting per key (`addRateLimited`): exponential backoff per consecutive failure, reset by `forget`.
 *
 * Keys are opaque strings; the reconcile reads current state, so collapsing events loses nothing.
 */

export interface Timers {
  setTimeout(f: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_TIMERS: Timers = {
  setTimeout: (f, ms) => {
    const t = setTimeout(f, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface WorkQueueOptions {
  /** First retry delay after a failure. @default 1000 */
  readonly baseDelayMs?: number;
  /** Longest retry delay. @default 300000 */
  readonly maxDelayMs?: number;
  /** @default real timers (unref'd: a pending requeue never keeps the process alive) */
  readonly timers?: Timers;
  /** Clock for delayed adds. @default Date.now */
  readonly now?: () => number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; handle: unknown }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private readonly timers: Timers;
  private readonly now: () => number;

  constructor(private readonly options: WorkQueueOptions = {}) {
    this.timers = options.timers ?? REAL_TIMERS;
    this.now = options.now ?? Date.now;
  }

  /** Keys waiting for a worker (not counting delayed or in-flight keys). */
  get depth(): number {
    return this.queue.length;
  }

  /** Whether the key is being processed right now. */
  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  /** Queues a key now (no-op if it is already queued; deferred if it is being processed). */
  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
  }

  /** Queues a key after `ms`; an earlier pending add of the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = this.now() + ms;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.timers.clearTimeout(pending.handle);
    const handle = this.timers.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, handle });
  }

  /** The delay the next `addRateLimited` would use: base × 2^failures, capped. */
  backoff(key: string): number {
    const base = this.options.baseDelayMs ?? 1000;
    const max = this.options.maxDelayMs ?? 300_000;
    const n = this.failures.get(key) ?? 0;
    return Math.min(max, base * 2 ** Math.min(n, 30));
  }

  /** Queues a key after its backoff and counts one more failure. */
  addRateLimited(key: string): number {
    const delay = this.backoff(key);
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets a key's failure count (after a success). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The consecutive failures counted for a key. */
  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process, marked in flight; undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key processed; if it was added meanwhile it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  /** Stops handing out keys: waiting workers get undefined, pending delays are dropped. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { handle } of this.delayed.values()) this.timers.clearTimeout(handle);
    this.delayed.clear();
    this.queue.length = 0;
    this.dirty.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}

/**
 * A delay stretched by up to `fraction` (default 10 %), so periodic requeues of many keys spread out instead
 * of arriving together (controller-runtime and Flux jitter their requeues the same way).
 */
export function jitter(ms: number, random: () => number, fraction = 0.1): number {
  return Math.round(ms * (1 + fraction * random()));
}
