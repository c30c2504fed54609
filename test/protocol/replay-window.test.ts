/** The RFC 6479 sliding replay window: edges, jumps, limits, and agreement with a plain model. */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSesameError } from '../../src/errors.js';
import {
  DEFAULT_REPLAY_WINDOW_BITS,
  MAX_WINDOW_COUNTER,
  ReplayWindow,
  type WindowVerdict,
} from '../../src/protocol/replay-window.js';

/** The obvious (slow) window: every counter ever accepted, and the highest. */
class ModelWindow {
  private readonly seen = new Set<number>();
  private top = 0;
  constructor(readonly size: number) {}
  check(c: number): WindowVerdict {
    if (!Number.isSafeInteger(c) || c < 1) return 'invalid';
    if (c > this.top) return 'fresh';
    if (this.top - c >= this.size) return 'too-old';
    return this.seen.has(c) ? 'duplicate' : 'fresh';
  }
  accept(c: number): WindowVerdict {
    const v = this.check(c);
    if (v === 'fresh') {
      this.seen.add(c);
      this.top = Math.max(this.top, c);
    }
    return v;
  }
}

describe('ReplayWindow', () => {
  it('covers bits - 32 counters and defaults to 2048 bits', () => {
    expect(new ReplayWindow().size).toBe(DEFAULT_REPLAY_WINDOW_BITS - 32);
    expect(new ReplayWindow(64).size).toBe(32);
    expect(new ReplayWindow(65536).size).toBe(65504);
  });

  it('refuses sizes that are not powers of two from 64 to 65536', () => {
    for (const bits of [0, 32, 63, 96, 100, 131072, 1.5, Number.NaN]) {
      expect(() => new ReplayWindow(bits), String(bits)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
      );
    }
  });

  it('accepts counters in order, once each', () => {
    const w = new ReplayWindow(64);
    for (let c = 1; c <= 500; c++) {
      expect(w.check(c)).toBe('fresh');
      w.update(c);
      expect(w.check(c)).toBe('duplicate');
      expect(w.highest).toBe(c);
    }
  });

  it('accepts out-of-order counters within the window, each once', () => {
    const w = new ReplayWindow(128); // 96 counters
    expect(w.accept(100)).toBe('fresh');
    for (const c of [99, 5, 50, 98, 97]) expect(w.accept(c), String(c)).toBe('fresh');
    for (const c of [99, 5, 50, 98, 97, 100]) expect(w.accept(c), String(c)).toBe('duplicate');
    expect(w.highest).toBe(100);
    expect(w.accept(101)).toBe('fresh');
  });

  it('is exact at the window edge', () => {
    const w = new ReplayWindow(64); // size 32
    w.update(1000);
    expect(w.check(1000 - 31)).toBe('fresh'); // the oldest counter still inside
    expect(w.check(1000 - 32)).toBe('too-old'); // the first one outside
    w.update(1000 - 31);
    expect(w.check(1000 - 31)).toBe('duplicate');
    w.update(1001); // the window moves by one: 969 is now outside
    expect(w.check(969)).toBe('too-old');
    expect(w.check(970)).toBe('fresh');
  });

  it('keeps every counter inside the window across block boundaries', () => {
    // Accept every other counter, then check that each accepted one inside the window is a
    // duplicate and each skipped one is fresh: clearing blocks must never forget one.
    const w = new ReplayWindow(128);
    const wrong: string[] = [];
    for (let top = 2; top <= 1000; top += 2) {
      w.update(top);
      for (let c = Math.max(1, top - w.size + 1); c <= top; c++) {
        if (w.check(c) !== (c % 2 === 0 ? 'duplicate' : 'fresh')) wrong.push(`top ${top}: ${c}`);
      }
      if (w.check(top - w.size) !== (top - w.size >= 1 ? 'too-old' : 'invalid')) wrong.push(`edge ${top}`);
    }
    expect(wrong).toEqual([]);
  });

  it('handles huge jumps: everything before the jump is too old, nothing stale is remembered', () => {
    const w = new ReplayWindow(256);
    for (let c = 1; c <= 200; c++) w.update(c);
    w.update(1_000_000_000);
    expect(w.check(200)).toBe('too-old');
    expect(w.check(1_000_000_000)).toBe('duplicate');
    // The counters just below the new top map to the blocks that held 1..200: they must be clear.
    for (let c = 1_000_000_000 - w.size + 1; c < 1_000_000_000; c++) expect(w.check(c)).toBe('fresh');
    // A jump of exactly one ring, and of one ring plus one block.
    const v = new ReplayWindow(64);
    v.update(33);
    v.update(33 + 64);
    expect(v.check(33)).toBe('too-old');
    expect(v.check(33 + 64 - 1)).toBe('fresh');
    v.update(33 + 64 + 32 + 1);
    expect(v.check(33 + 64)).toBe('too-old');
  });

  it('works at the counter limit and refuses counters outside 1..2^53-1', () => {
    const w = new ReplayWindow(64);
    expect(w.check(0)).toBe('invalid');
    expect(w.check(-1)).toBe('invalid');
    expect(w.check(1.5)).toBe('invalid');
    expect(w.check(MAX_WINDOW_COUNTER + 1)).toBe('invalid');
    expect(w.check(Number.POSITIVE_INFINITY)).toBe('invalid');
    expect(w.check(Number.NaN)).toBe('invalid');
    const near = MAX_WINDOW_COUNTER - 40;
    for (let c = near; c <= MAX_WINDOW_COUNTER; c++) expect(w.accept(c)).toBe('fresh');
    for (let c = MAX_WINDOW_COUNTER - 31; c <= MAX_WINDOW_COUNTER; c++) expect(w.check(c)).toBe('duplicate');
    expect(w.check(MAX_WINDOW_COUNTER - 32)).toBe('too-old');
    expect(w.highest).toBe(MAX_WINDOW_COUNTER);
    // Nothing can follow the last counter: a sender must stop before it.
    expect(w.check(MAX_WINDOW_COUNTER + 2)).toBe('invalid');
  });

  it('refuses to update with a counter that is not fresh', () => {
    const w = new ReplayWindow(64);
    w.update(100);
    for (const c of [100, 10, 0]) {
      let err: unknown;
      try {
        w.update(c);
      } catch (e) {
        err = e;
      }
      expect(isSesameError(err, 'ERR_INVALID_ARGUMENT'), String(c)).toBe(true);
    }
    expect(w.highest).toBe(100);
  });

  it('check() changes nothing (a forged datagram cannot move the window)', () => {
    const w = new ReplayWindow(64);
    w.update(10);
    expect(w.check(1_000_000)).toBe('fresh');
    expect(w.highest).toBe(10);
    expect(w.check(5)).toBe('fresh');
    expect(w.check(10)).toBe('duplicate');
  });

  it('agrees with a plain model on random sequences', () => {
    const counter = fc.oneof(
      fc.integer({ min: 1, max: 300 }),
      fc.integer({ min: 1, max: 5000 }),
      fc.constantFrom(0, -3, MAX_WINDOW_COUNTER, MAX_WINDOW_COUNTER + 1),
    );
    fc.assert(
      fc.property(fc.constantFrom(64, 128, 256), fc.array(counter, { maxLength: 400 }), (bits, seq) => {
        const w = new ReplayWindow(bits);
        const m = new ModelWindow(w.size);
        for (const c of seq) {
          if (w.accept(c) !== m.accept(c)) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with the model on a sliding, jittered stream (reordering and duplicates)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -80, max: 8 }), { minLength: 50, maxLength: 600 }), (jitter) => {
        const w = new ReplayWindow(64);
        const m = new ModelWindow(w.size);
        let base = 100;
        for (const j of jitter) {
          base += 3;
          const c = base + j;
          if (w.accept(c) !== m.accept(c)) return false;
        }
        return true;
      }),
      { numRuns: 200 },
    );
  });
});
