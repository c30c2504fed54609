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
      d.add(item);
    };
    add('a');
    add('gone');
    await sleep(40);
    add('b');
    d.delete('gone');
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
