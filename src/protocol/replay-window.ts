/**
 * Sliding-window replay detection for datagram counters, as in RFC 6479 ("IPsec Anti-Replay
 * Algorithm without Bit Shifting").
 *
 * The window remembers which of the most recent counters were received in a ring of 32-bit
 * blocks. Moving the window forward clears whole blocks instead of shifting the bitmap, so a
 * jump of any size costs at most one pass over the ring (RFC 6479 section 2).
 *
 * Rules:
 * - Counters are whole numbers from 1 to {@link MAX_WINDOW_COUNTER}; anything else is `invalid`.
 * - With `bits` bits of bitmap the window covers `bits - 32` counters: the highest counter
 *   received (`top`) and the `bits - 33` below it. A counter at or below `top - size` is
 *   `too-old`; the one extra block is the slack RFC 6479 keeps so that clearing a block never
 *   forgets a counter inside the window.
 * - `check()` changes nothing and is called before the datagram is authenticated; `update()` is
 *   called only after the datagram authenticated (RFC 6479 section 2, and RFC 4303 section
 *   3.4.3), so forged datagrams can neither mark counters as seen nor move the window.
 */

import { sesameError } from '../errors.js';

/** Default bitmap size: 2048 bits, a window of 2016 counters. */
export const DEFAULT_REPLAY_WINDOW_BITS = 2048;
/** Largest counter the window can represent exactly (2^53 - 1). */
export const MAX_WINDOW_COUNTER = Number.MAX_SAFE_INTEGER;

const BLOCK_BITS = 32;
/** Smallest bitmap: two blocks, the window and the slack block. */
export const MIN_REPLAY_WINDOW_BITS = 64;
/** Largest bitmap (8 KiB). */
export const MAX_REPLAY_WINDOW_BITS = 65536;

/** Whether `bits` is a bitmap size the window takes: a power of two from 64 to 65536. */
export function isReplayWindowSize(bits: number): boolean {
  return (
    Number.isInteger(bits) &&
    bits >= MIN_REPLAY_WINDOW_BITS &&
    bits <= MAX_REPLAY_WINDOW_BITS &&
    (bits & (bits - 1)) === 0
  );
}

/** What `check()` says about a counter. */
export type WindowVerdict = 'fresh' | 'duplicate' | 'too-old' | 'invalid';

/** The counters one receiver has accepted, as a sliding window (RFC 6479). */
export class ReplayWindow {
  /** How many counters the window covers (bits - 32). */
  readonly size: number;
  private readonly blocks: Uint32Array;
  private readonly blockCount: number;
  private top = 0;

  /**
   * @param bits bitmap size: a power of two from 64 to 65536.
   * @throws LocalError ERR_INVALID_ARGUMENT for any other size.
   */
  constructor(bits: number = DEFAULT_REPLAY_WINDOW_BITS) {
    if (!isReplayWindowSize(bits)) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        `replay window of ${bits} bits: expected a power of two from ${MIN_REPLAY_WINDOW_BITS} to ${MAX_REPLAY_WINDOW_BITS}`,
      );
    }
    this.blockCount = bits / BLOCK_BITS;
    this.blocks = new Uint32Array(this.blockCount);
    this.size = bits - BLOCK_BITS;
  }

  /** The highest counter accepted so far (0 before the first). */
  get highest(): number {
    return this.top;
  }

  /** Whether `counter` may be accepted. Changes nothing. */
  check(counter: number): WindowVerdict {
    if (!Number.isSafeInteger(counter) || counter < 1) return 'invalid';
    if (counter > this.top) return 'fresh';
    if (this.top - counter >= this.size) return 'too-old';
    const block = this.blocks[Math.floor(counter / BLOCK_BITS) % this.blockCount] as number;
    return ((block >>> (counter % BLOCK_BITS)) & 1) === 1 ? 'duplicate' : 'fresh';
  }

  /**
   * Mark `counter` as received, moving the window forward when it is the new highest. Call it
   * only for a counter that `check()` found fresh, once its datagram authenticated.
   * @throws LocalError ERR_INVALID_ARGUMENT for a counter `check()` would not call fresh.
   */
  update(counter: number): void {
    if (this.check(counter) !== 'fresh') {
      throw sesameError('ERR_INVALID_ARGUMENT', `counter ${counter} is not fresh for this window`);
    }
    const index = Math.floor(counter / BLOCK_BITS);
    if (counter > this.top) {
      const current = Math.floor(this.top / BLOCK_BITS);
      // Clear the blocks the window moves into; a jump past the whole ring clears it all.
      const clear = Math.min(index - current, this.blockCount);
      for (let i = 1; i <= clear; i++) this.blocks[(current + i) % this.blockCount] = 0;
      this.top = counter;
    }
    const at = index % this.blockCount;
    this.blocks[at] = ((this.blocks[at] as number) | (1 << (counter % BLOCK_BITS))) >>> 0;
  }

  /** `check()`, then `update()` when fresh: for callers that authenticated already. */
  accept(counter: number): WindowVerdict {
    const verdict = this.check(counter);
    if (verdict === 'fresh') this.update(counter);
    return verdict;
  }
}
