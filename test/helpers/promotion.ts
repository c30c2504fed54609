// How much of what passed through a long-lived collection V8 promoted to its old generation: the
// measure behind test/net/roster.test.ts and test/protocol/boxed-map.test.ts.
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
// No pretenuring: once a measurement has promoted every item (the Map or Set side does), V8 may
// decide, depending on the heap the test process already holds, to allocate `item()`'s objects
// straight in the old generation from then on, and every later measurement would count them
// whatever the collection does.
setFlagsFromString('--no-allocation-site-pretenuring');
const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;

const oldSpaceUsed = () =>
  getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_used_size ?? 0;

/** An item of about 300 bytes, with a slot for the collections that keep one. */
export interface Item {
  slot: number;
  readonly id: number;
  readonly payload: number[];
}

export const item = (id: number): Item => ({ slot: -1, id, payload: new Array(64).fill(id) });

/**
 * Old-space growth (bytes) after 20,000 items pass through a collection made before two full
 * collections (so it is old, as a server's is), 16 at a time, then two young collections.
 */
export function promotedBy<C>(
  make: () => C,
  add: (c: C, m: Item) => void,
  remove: (c: C, m: Item) => void,
): number {
  const c = make();
  gc();
  gc();
  const before = oldSpaceUsed();
  const live: Item[] = [];
  for (let i = 0; i < 20_000; i++) {
    const m = item(i);
    add(c, m);
    live.push(m);
    if (live.length > 16) remove(c, live.shift() as Item);
  }
  for (const m of live) remove(c, m);
  live.length = 0;
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  return oldSpaceUsed() - before;
}

/**
 * The least of three {@link promotedBy} measurements: a collection that keeps what passed
 * through it shows in every one, while a full collection that V8 happened to be in the middle of
 * (its incremental marking) can inflate one.
 */
export function leastPromotedBy<C>(
  make: () => C,
  add: (c: C, m: Item) => void,
  remove: (c: C, m: Item) => void,
): number {
  return Math.min(
    promotedBy(make, add, remove),
    promotedBy(make, add, remove),
    promotedBy(make, add, remove),
  );
}
