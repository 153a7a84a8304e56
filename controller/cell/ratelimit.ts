/**
 * Token buckets by key (source IP, cluster name) for the bootstrap endpoint: a burst of `capacity`
 * attempts, refilled at `refillPerSecond`. A 256-bit token cannot be guessed, so the limits are about
 * keeping a flood from costing CPU (every attempt hashes, and a good one signs) and log volume.
 *
 * Memory stays bounded: a key whose bucket has refilled holds no information and is forgotten, and
 * beyond `maxKeys` live keys new keys are refused (fail closed) until buckets refill.
 */
export interface RateLimitOptions {
  readonly capacity: number;
  readonly refillPerSecond: number;
  /** @default 10000 */
  readonly maxKeys?: number;
  readonly now: () => number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly options: RateLimitOptions) {}

  /** Takes one token for `key`; when none is left, says how long until one is. */
  take(key: string): RateDecision {
    const now = this.options.now();
    const { capacity, refillPerSecond } = this.options;
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * refillPerSecond);
      bucket.at = now;
    } else {
      if (this.buckets.size >= (this.options.maxKeys ?? 10_000)) this.prune(now);
      if (this.buckets.size >= (this.options.maxKeys ?? 10_000)) return { ok: false, retryAfterSeconds: Math.ceil(1 / refillPerSecond) };
      bucket = { tokens: capacity, at: now };
      this.buckets.set(key, bucket);
    }
    if (bucket.tokens < 1) return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerSecond)) };
    bucket.tokens -= 1;
    return { ok: true };
  }

  /** How many keys are tracked (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private prune(now: number): void {
    const { capacity, refillPerSecond } = this.options;
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * refillPerSecond >= capacity) this.buckets.delete(key);
    }
  }
}
