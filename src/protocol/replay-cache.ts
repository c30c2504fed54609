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
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();

  constructor(private readonly maxEntries: number) {}

  /**
   * Record `nonce` (valid until `expiresAtMs`); false when it was already recorded and unexpired.
   */
  check(nonce: Uint8Array, nowMs: number, expiresAtMs: number): boolean {
    this.prune(nowMs);
    const key = Buffer.from(nonce.buffer, nonce.byteOffset, nonce.length).toString('latin1');
    const until = this.seen.get(key);
    if (until !== undefined && until > nowMs) return false;
    if (this.seen.size >= this.maxEntries) {
      const oldest = this.seen.keys().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    this.seen.set(key, expiresAtMs);
    return true;
  }

  /** Entries held. */
  get size(): number {
    return this.seen.size;
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
