// One timer for many fixed-length deadlines: each item expires at its own deadline, in order, never
// before it; a removed item never expires; clear() drops everything.
import { describe, expect, it } from 'vitest';
import { FixedDeadlines } from '../../src/net/deadlines.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FixedDeadlines', () => {
  it('expires each item at its own deadline, oldest first, and never a removed one', async () => {
    const expired: [string, number][] = [];
    const added = new Map<string, number>();
    const d = new FixedDeadlines<string>(80, (item) =>
      expired.push([item, performance.now() - (added.get(item) ?? 0)]),
    );
    const add = (item: string) => {
      added.set(item, performance.now());
      return d.add(item);
    };
    add('a');
    const gone = add('gone');
    await sleep(40);
    add('b');
    d.delete(gone);
    d.delete(gone); // a second removal, or one of a ticket no longer held, does nothing
    expect(d.size).toBe(2);
    expect(d.size).toBe(2);
    for (let i = 0; i < 100 && expired.length < 2; i++) await sleep(10);
    expect(expired.map(([item]) => item)).toEqual(['a', 'b']);
    // Never before the deadline (the timer's clock is whole milliseconds: at most 1 ms early).
    for (const [, after] of expired) expect(after).toBeGreaterThanOrEqual(79);
    expect(d.size).toBe(0);
    // Added again after the list emptied: the timer is armed again.
    add('c');
    for (let i = 0; i < 100 && expired.length < 3; i++) await sleep(10);
    expect(expired.map(([item]) => item)).toEqual(['a', 'b', 'c']);
  });

  it('keeps every item through ring growth, with removals in any order, and expires them in order', async () => {
    const expired: number[] = [];
    const d = new FixedDeadlines<number>(40, (item) => expired.push(item));
    const tickets: number[] = [];
    // 1,000 items grow the ring from 64 slots several times; every third is removed, some from
    // the front, some from the middle, some before and some after a growth.
    for (let i = 0; i < 1000; i++) {
      tickets.push(d.add(i));
      if (i % 3 === 0 && i >= 30) d.delete(tickets[i - 30] as number);
    }
    d.delete(tickets[999] as number);
    d.delete(tickets[0] as number);
    const kept = [...Array(1000).keys()].filter((i) => !(i % 3 === 0 && i < 970) && i !== 999 && i !== 0);
    expect(d.size).toBe(kept.length);
    for (let i = 0; i < 100 && expired.length < kept.length; i++) await sleep(10);
    expect(expired).toEqual(kept);
    expect(d.size).toBe(0);
  });

  it('clear() drops every item and the timer', async () => {
    const expired: string[] = [];
    const d = new FixedDeadlines<string>(30, (item) => expired.push(item));
    d.add('a');
    d.add('b');
    d.clear();
    expect(d.size).toBe(0);
    await sleep(80);
    expect(expired).toEqual([]);
  });
});
