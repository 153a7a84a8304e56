import { describe, expect, it } from 'vitest';
import { RateLimiter } from './ratelimit.js';

describe('RateLimiter', () => {
  it('allows a burst, then one per refill period, per key', () => {
    let t = 0;
    const r = new RateLimiter({ capacity: 2, refillPerSecond: 0.5, now: () => t });
    expect([r.take('a'), r.take('a'), r.take('a')]).toEqual([{ ok: true }, { ok: true }, { ok: false, retryAfterSeconds: 2 }]);
    expect(r.take('b')).toEqual({ ok: true });
    t = 2000;
    expect(r.take('a')).toEqual({ ok: true });
    expect(r.take('a').ok).toBe(false);
  });

  it('forgets refilled keys and refuses new keys beyond maxKeys while all are busy', () => {
    let t = 0;
    const r = new RateLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 2, now: () => t });
    r.take('a');
    r.take('b');
    expect(r.take('c').ok).toBe(false);
    t = 5000;
    expect(r.take('c').ok).toBe(true);
    expect(r.size).toBeLessThanOrEqual(2);
  });
});
