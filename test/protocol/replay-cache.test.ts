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

  it('a nonce recorded again counts once: its older slot neither evicts it nor lists it twice', () => {
    const cache = new ReplayCache(3);
    expect(cache.check(nonce(1), 0, 100)).toBe(true);
    expect(cache.check(nonce(2), 0, 100)).toBe(true);
    expect(cache.check(nonce(3), 0, 100)).toBe(true);
    cache.learn(nonce(1), 300); // nonce(1) again, later: its first slot is stale
    expect(cache.check(nonce(4), 0, 100)).toBe(true); // full: the oldest live entry goes, nonce(2)
    expect(cache.size).toBe(3);
    expect(cache.check(nonce(1), 50, 999)).toBe(false);
    expect(cache.check(nonce(2), 50, 999)).toBe(true);
    // nonce(3) was evicted by nonce(2); what is left, oldest recording first, each once:
    expect([...cache.entries(60)].map(([n, until]) => [n[0], until])).toEqual([
      [1, 300],
      [4, 100],
      [2, 999],
    ]);
    // nonce(4) expired at 100: accepted again, and its first slot becomes stale in turn.
    expect(cache.check(nonce(4), 200, 999)).toBe(true);
    expect(cache.size).toBe(3);
    expect([...cache.entries(250)].map(([n, until]) => [n[0], until])).toEqual([
      [1, 300],
      [2, 999],
      [4, 999],
    ]);
  });

  it('stays bounded and exact through many evictions and expiries', () => {
    const cache = new ReplayCache(1_000);
    const key = (i: number) => {
      const b = Buffer.alloc(16);
      b.writeUInt32BE(i, 0);
      return b;
    };
    for (let i = 0; i < 50_000; i++) expect(cache.check(key(i), i, i + 2_000)).toBe(true);
    expect(cache.size).toBe(1_000);
    // The newest 1,000 are still refused; an older one was evicted and is accepted again.
    expect(cache.check(key(49_999), 50_000, 60_000)).toBe(false);
    expect(cache.check(key(49_000), 50_000, 60_000)).toBe(false);
    expect(cache.check(key(48_000), 50_000, 60_000)).toBe(true);
    // Time passes beyond every expiry but the last: all the rest are pruned at the next check.
    expect(cache.check(key(1_000_000), 59_999, 70_000)).toBe(true);
    expect(cache.size).toBe(2);
  });
});
