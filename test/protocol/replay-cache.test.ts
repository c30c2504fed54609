// The replay cache alone, and linked with another as `serve --workers` links them: what one
// records is reported, what it learns is refused, and learned nonces are never reported again.
import { describe, expect, it } from 'vitest';
import { ReplayCache } from '../../src/protocol/replay-cache.js';

const nonce = (n: number) => Buffer.alloc(32, n);

describe('ReplayCache', () => {
  it('refuses a nonce until it expires, and evicts the oldest when full', () => {
    const cache = new ReplayCache(2);
    expect(cache.check(nonce(1), 0, 100)).toBe(true);
    expect(cache.check(nonce(1), 50, 100)).toBe(false);
    expect(cache.check(nonce(1), 100, 200)).toBe(true);
    expect(cache.check(nonce(2), 100, 200)).toBe(true);
    expect(cache.check(nonce(3), 100, 200)).toBe(true);
    expect(cache.size).toBe(2);
    expect(cache.check(nonce(1), 100, 200)).toBe(true); // evicted: nonce(1) was the oldest
  });

  it('reports what it records to onRecord, and refuses what it learned without reporting it', () => {
    const a = new ReplayCache(10);
    const b = new ReplayCache(10);
    const reported: [string, number][] = [];
    a.onRecord = (n, until) => {
      reported.push([Buffer.from(n).toString('hex'), until]);
      b.learn(n, until);
    };
    b.onRecord = () => {
      throw new Error('b records nothing itself here');
    };
    expect(a.check(nonce(7), 0, 500)).toBe(true);
    expect(reported).toEqual([[nonce(7).toString('hex'), 500]]);
    expect(a.check(nonce(7), 1, 500)).toBe(false);
    expect(reported).toHaveLength(1);
    // b learned it: refused there until it expires, then accepted (and reported by b).
    expect(b.check(nonce(7), 10, 600)).toBe(false);
    b.onRecord = (n) => reported.push([Buffer.from(n).toString('hex'), -1]);
    expect(b.check(nonce(7), 500, 900)).toBe(true);
    expect(reported).toHaveLength(2);
  });

  it('learn keeps the later expiry, is bounded, and entries() lists the live ones oldest first', () => {
    const cache = new ReplayCache(3);
    cache.learn(nonce(1), 100);
    cache.learn(nonce(1), 50);
    cache.learn(nonce(2), 300);
    cache.learn(nonce(3), 400);
    cache.learn(nonce(4), 500);
    expect(cache.size).toBe(3);
    expect([...cache.entries(350)].map(([n, until]) => [n[0], until])).toEqual([
      [3, 400],
      [4, 500],
    ]);
    expect(cache.check(nonce(3), 350, 999)).toBe(false);
  });
});
