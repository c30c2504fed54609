import { describe, expect, it } from 'vitest';
import { FailureThrottle } from '../../src/net/throttle.js';

describe('per-source failure throttle', () => {
  it('lets the first failures through, then blocks with a doubling delay up to the maximum', () => {
    let now = 0;
    const t = new FailureThrottle({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 350 }, () => now);
    expect([t.failure('a'), t.failure('a')]).toEqual([0, 0]);
    expect(t.blockedFor('a')).toBe(0);
    expect(t.failure('a')).toBe(100);
    expect(t.blockedFor('a')).toBe(100);
    now = 60;
    expect(t.blockedFor('a')).toBe(40);
    expect(t.failure('a')).toBe(200);
    expect(t.failure('a')).toBe(350); // capped
    expect(t.blockedFor('b')).toBe(0); // other sources are unaffected
  });

  it('forgets a source after a success or after forgetAfterMs without failures', () => {
    let now = 0;
    const t = new FailureThrottle({ freeFailures: 0, baseDelayMs: 10, forgetAfterMs: 1000 }, () => now);
    t.failure('a');
    t.success('a');
    expect(t.blockedFor('a')).toBe(0);
    expect(t.failure('a')).toBe(10); // counting starts again
    now = 1000;
    expect(t.blockedFor('a')).toBe(0);
    expect(t.size).toBe(0);
    expect(t.failure('a')).toBe(10);
  });

  it('keeps the table bounded, dropping the oldest source', () => {
    const t = new FailureThrottle({ maxSources: 3, freeFailures: 0 }, () => 0);
    for (const s of ['a', 'b', 'c', 'd']) t.failure(s);
    expect(t.size).toBe(3);
    expect(t.blockedFor('a')).toBe(0);
    expect(t.blockedFor('d')).toBeGreaterThan(0);
  });
});
