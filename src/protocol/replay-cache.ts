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
  private readonly seen = new Map<string, number>();

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
    for (const [key, until] of this.seen) {
      if (until > nowMs) yield [Buffer.from(key, 'latin1'), until];
    }
  }

  /** Entries held. */
  get size(): number {
    return this.seen.size;
  }

  private store(key: string, expiresAtMs: number): void {
    // Re-inserting moves the entry to the back, keeping insertion order close to expiry order.
    this.seen.delete(key);
    if (this.seen.size >= this.maxEntries) {
      const oldest = this.seen.keys().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    this.seen.set(key, expiresAtMs);
  }

  // Insertion order is close to expiry order (expiry = client time + constant), so expired
  // entries are found from the front; stop at the first live one.
  private prune(nowMs: number): void {
    for (const [key, until] of this.seen) {
      if (until > nowMs) break;
      this.seen.delete(key);
    }
  }
}

function keyOf(nonce: Uint8Array): string {
  return Buffer.from(nonce.buffer, nonce.byteOffset, nonce.length).toString('latin1');
}
