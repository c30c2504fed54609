/**
 * Remembers the nonces of recent authentic ClientHellos so that a replayed one is refused at
 * once (ERR_REPLAYED_HELLO) instead of costing a ServerHello.
 *
 * Rules:
 * - Only hellos that passed mac1 and the freshness check are recorded, so forged bytes cannot
 *   fill the cache.
 * - An entry is needed only while its hello is fresh: a hello older than the skew window is
 *   refused as stale anyway. Entries expire at timestamp + skew.
 * - The cache is bounded; when full, the oldest entry goes. A replay that outlives its entry is
 *   still refused later: the server's fresh nonce is in every key, so the replayer cannot finish
 *   the handshake (ERR_AUTH_FAILED at ClientFinished).
 * - Several caches can act as one (the processes of `serve --workers`): each tells its
 *   `onRecord` listener of every nonce it records itself, and `learn()` takes a nonce recorded
 *   elsewhere. Learned nonces are never reported again, so relaying cannot loop. Moving them
 *   between caches is the caller's I/O; this file does none.
 */
export class ReplayCache {
  /** Each recorded nonce (as a latin1 string) and its expiry, for lookups only. */
  private readonly seen = new Map<string, number>();
  /**
   * The same entries in the order they were recorded, oldest at `head`: where pruning and
   * eviction look. A JavaScript Map cannot be used for that: deleting from its front leaves
   * holes that every later iteration from the front walks over, until the table is rebuilt, so a
   * full or steadily expiring cache cost tens of microseconds per check. A slot whose entry was
   * recorded again later (with another expiry) is stale and skipped.
   */
  private order: string[] = [];
  private orderExpiry: number[] = [];
  private head = 0;

  /**
   * Told of each nonce that `check()` records (not of those given to `learn()`), with its expiry;
   * the nonce's bytes are a copy the listener may keep.
   */
  onRecord: ((nonce: Uint8Array, expiresAtMs: number) => void) | undefined;

  constructor(private readonly maxEntries: number) {}

  /**
   * Record `nonce` (valid until `expiresAtMs`); false when it was already recorded and unexpired.
   */
  check(nonce: Uint8Array, nowMs: number, expiresAtMs: number): boolean {
    this.prune(nowMs);
    const key = keyOf(nonce);
    const until = this.seen.get(key);
    if (until !== undefined && until > nowMs) return false;
    this.store(key, expiresAtMs);
    this.onRecord?.(Buffer.from(key, 'latin1'), expiresAtMs);
    return true;
  }

  /**
   * Take a nonce recorded by another cache: a later `check()` of it before `expiresAtMs` is
   * refused. An entry already held keeps the later of the two expiries. Not reported to
   * `onRecord`.
   */
  learn(nonce: Uint8Array, expiresAtMs: number): void {
    const key = keyOf(nonce);
    const until = this.seen.get(key);
    if (until !== undefined && until >= expiresAtMs) return;
    this.store(key, expiresAtMs);
  }

  /** The unexpired entries at `nowMs`, oldest first: what a newly started peer cache learns. */
  *entries(nowMs: number): IterableIterator<[nonce: Uint8Array, expiresAtMs: number]> {
    for (let i = this.head; i < this.order.length; i++) {
      const key = this.order[i] as string;
      const until = this.orderExpiry[i] as number;
      // A key's expiries only grow from one recording to the next, so one slot matches the map.
      if (until > nowMs && this.seen.get(key) === until) {
        yield [Buffer.from(key, 'latin1'), until];
      }
    }
  }

  /** Entries held. */
  get size(): number {
    return this.seen.size;
  }

  private store(key: string, expiresAtMs: number): void {
    // Recording a key again leaves its older slot stale: the map's expiry no longer matches it.
    if (!this.seen.has(key) && this.seen.size >= this.maxEntries) this.evictOldest();
    this.seen.set(key, expiresAtMs);
    this.order.push(key);
    this.orderExpiry.push(expiresAtMs);
  }

  /** Drop the oldest live entry (stale slots on the way are skipped). */
  private evictOldest(): void {
    while (this.head < this.order.length) if (this.dropFront()) return;
  }

  // Recording order is close to expiry order (expiry = client time + constant), so expired
  // entries are found from the front; stop at the first live one.
  private prune(nowMs: number): void {
    while (this.head < this.order.length && (this.orderExpiry[this.head] as number) <= nowMs)
      this.dropFront();
  }

  /**
   * Consume the front slot, and its entry with it unless the slot is stale.
   * @returns whether an entry was dropped.
   */
  private dropFront(): boolean {
    const key = this.order[this.head] as string;
    const until = this.orderExpiry[this.head] as number;
    this.advance();
    if (this.seen.get(key) !== until) return false;
    this.seen.delete(key);
    return true;
  }

  /** Move past the front slot; the consumed front is cut off once it is half the queue. */
  private advance(): void {
    this.head++;
    if (this.head >= 1024 && this.head * 2 >= this.order.length) {
      this.order = this.order.slice(this.head);
      this.orderExpiry = this.orderExpiry.slice(this.head);
      this.head = 0;
    }
  }
}

function keyOf(nonce: Uint8Array): string {
  return Buffer.from(nonce.buffer, nonce.byteOffset, nonce.length).toString('latin1');
}
