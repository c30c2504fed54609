// The per-connection collections of a server (Roster, FixedDeadlines): membership rules, and that
// what left them is not kept alive through the young-generation collections that follow.
import { describe, expect, it } from 'vitest';
import { FixedDeadlines } from '../../src/net/deadlines.js';
import { Roster } from '../../src/net/roster.js';
import { type Item, item, leastPromotedBy, promotedBy } from '../helpers/promotion.js';

describe('Roster', () => {
  it('adds, finds and removes members in any order, and keeps each slot right', () => {
    const r = new Roster<Item>();
    const all = Array.from({ length: 50 }, (_, i) => item(i));
    for (const m of all) r.add(m);
    r.add(all[3] as Item); // already here: nothing changes
    expect(r.size).toBe(50);
    const removed = new Set<number>();
    for (const i of [0, 49, 17, 3, 3, 25, 48, 1]) {
      r.delete(all[i] as Item);
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
    r.add(all[0] as Item);
    expect(r.has(all[0] as Item)).toBe(true);
    const other = new Roster<Item>();
    const stranger = item(99);
    other.add(stranger);
    r.delete(stranger);
    expect(other.has(stranger)).toBe(true);
    expect(r.has(stranger)).toBe(false);
  });

  it('snapshot() is a copy: removing while iterating over it visits every member', () => {
    const r = new Roster<Item>();
    for (let i = 0; i < 10; i++) r.add(item(i));
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
  it('a Set with the same traffic promotes megabytes (the measurement sees the problem)', () => {
    const grown = promotedBy(
      () => new Set<Item>(),
      (s, m) => s.add(m),
      (s, m) => s.delete(m),
    );
    expect(grown).toBeGreaterThan(4_000_000);
  });

  it('a Roster promotes none of its former members', () => {
    const grown = leastPromotedBy(
      () => new Roster<Item>(),
      (r, m) => r.add(m),
      (r, m) => r.delete(m),
    );
    expect(grown).toBeLessThan(500_000);
  });

  it('FixedDeadlines promotes none of its former items', () => {
    const grown = leastPromotedBy(
      () => new FixedDeadlines<Item>(60_000, () => {}),
      (d, m) => {
        m.slot = d.add(m);
      },
      (d, m) => d.delete(m.slot),
    );
    expect(grown).toBeLessThan(500_000);
  });
});
