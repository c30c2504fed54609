// The per-connection collections of a server (Roster, FixedDeadlines): membership rules, and that
// what left them is not kept alive through the young-generation collections that follow.
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { FixedDeadlines } from '../../src/net/deadlines.js';
import { Roster } from '../../src/net/roster.js';

interface Member {
  slot: number;
  readonly id: number;
  readonly payload: number[];
}

const member = (id: number): Member => ({ slot: -1, id, payload: new Array(64).fill(id) });

describe('Roster', () => {
  it('adds, finds and removes members in any order, and keeps each slot right', () => {
    const r = new Roster<Member>();
    const all = Array.from({ length: 50 }, (_, i) => member(i));
    for (const m of all) r.add(m);
    r.add(all[3] as Member); // already here: nothing changes
    expect(r.size).toBe(50);
    const removed = new Set<number>();
    for (const i of [0, 49, 17, 3, 3, 25, 48, 1]) {
      r.delete(all[i] as Member);
      removed.add(i);
    }
    expect(r.size).toBe(50 - removed.size);
    for (const m of all) {
      expect(r.has(m)).toBe(!removed.has(m.id));
      if (removed.has(m.id)) expect(m.slot).toBe(-1);
    }
    expect([...r].map((m) => m.id).sort((a, b) => a - b)).toEqual(
      all.map((m) => m.id).filter((id) => !removed.has(id)),
    );
    // A member that left can come back; one from another roster is not taken for this one's.
    r.add(all[0] as Member);
    expect(r.has(all[0] as Member)).toBe(true);
    const other = new Roster<Member>();
    const stranger = member(99);
    other.add(stranger);
    r.delete(stranger);
    expect(other.has(stranger)).toBe(true);
    expect(r.has(stranger)).toBe(false);
  });

  it('snapshot() is a copy: removing while iterating over it visits every member', () => {
    const r = new Roster<Member>();
    for (let i = 0; i < 10; i++) r.add(member(i));
    const seen: number[] = [];
    for (const m of r.snapshot()) {
      seen.push(m.id);
      r.delete(m);
    }
    expect(seen.sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect(r.size).toBe(0);
  });
});

describe('what leaves a long-lived collection dies young', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;
  const oldSpaceUsed = () =>
    getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_used_size ?? 0;

  /**
   * Old-space growth (bytes) after 20,000 members pass through a collection made before two full
   * collections (so it is old, as a server's is), 16 at a time, then two young collections.
   */
  function promotedBy<C>(make: () => C, add: (c: C, m: Member) => void, remove: (c: C, m: Member) => void) {
    const c = make();
    gc();
    gc();
    const before = oldSpaceUsed();
    const live: Member[] = [];
    for (let i = 0; i < 20_000; i++) {
      const m = member(i);
      add(c, m);
      live.push(m);
      if (live.length > 16) remove(c, live.shift() as Member);
    }
    for (const m of live) remove(c, m);
    live.length = 0;
    gc({ type: 'minor' });
    gc({ type: 'minor' });
    return oldSpaceUsed() - before;
  }

  it('a Set with the same traffic promotes megabytes (the measurement sees the problem)', () => {
    const grown = promotedBy(
      () => new Set<Member>(),
      (s, m) => s.add(m),
      (s, m) => s.delete(m),
    );
    expect(grown).toBeGreaterThan(4_000_000);
  });

  it('a Roster promotes none of its former members', () => {
    const grown = promotedBy(
      () => new Roster<Member>(),
      (r, m) => r.add(m),
      (r, m) => r.delete(m),
    );
    expect(grown).toBeLessThan(500_000);
  });

  it('FixedDeadlines promotes none of its former items', () => {
    const grown = promotedBy(
      () => new FixedDeadlines<Member>(60_000, () => {}),
      (d, m) => {
        m.slot = d.add(m);
      },
      (d, m) => d.delete(m.slot),
    );
    expect(grown).toBeLessThan(500_000);
  });
});
