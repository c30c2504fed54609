/**
 * A `Map` for long-lived tables whose values come and go (a datagram server's sessions and
 * handshakes): each value sits in a box, and deleting an entry empties its box first.
 *
 * Why: V8 replaces a `Map`'s hash table as deleted entries fill it, and the table it replaces
 * keeps its entries until the next full collection. A long-lived map's tables are in the old
 * generation, so without the box every value that passed through the map stayed reachable from
 * them and was promoted out of the young generation with everything it refers to. With it, a
 * replaced table keeps only keys and emptied boxes. (Stream servers avoid maps for their
 * connections altogether: src/net/roster.ts.)
 *
 * Rules:
 * - The same operations and insertion order as a `Map`; `touch()` moves an entry to the end
 *   (a recency list) without emptying its box.
 * - Iterating while deleting is as safe as with a `Map`.
 */
export class BoxedMap<K, V> implements Iterable<[K, V]> {
  private readonly map = new Map<K, Box<V>>();

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): this {
    const box = this.map.get(key);
    if (box !== undefined) box.value = value;
    else this.map.set(key, { value });
    return this;
  }

  /** Move the entry of `key` to the end of the iteration order (nothing happens without one). */
  touch(key: K): void {
    const box = this.map.get(key);
    if (box === undefined) return;
    this.map.delete(key);
    this.map.set(key, box);
  }

  delete(key: K): boolean {
    const box = this.map.get(key);
    if (box === undefined) return false;
    box.value = undefined;
    return this.map.delete(key);
  }

  clear(): void {
    for (const box of this.map.values()) box.value = undefined;
    this.map.clear();
  }

  keys(): IterableIterator<K> {
    return this.map.keys();
  }

  *[Symbol.iterator](): IterableIterator<[K, V]> {
    for (const [key, box] of this.map) yield [key, box.value as V];
  }
}

interface Box<V> {
  value: V | undefined;
}
