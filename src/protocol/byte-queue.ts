/**
 * A FIFO of received byte chunks. Bytes are copied only when a read spans chunks, so a record
 * that arrives whole in one chunk is opened from a view of that chunk.
 *
 * Small chunks that arrive while bytes are waiting are the exception: each one is copied into a buffer the queue owns, appended to
 * the last one, so that a peer trickling one byte per read costs about one byte per byte held
 * (a Buffer per read costs a few hundred bytes of objects around a one-byte store).
 *
 * Invariant: bytes are only ever written into the owned buffer past every view of it handed out
 * or queued, so a view returned by `take()`/`peek()` never changes afterwards.
 */

/** Chunks up to this size are copied into the queue's own buffer rather than kept. */
export const COALESCE_MAX_CHUNK_BYTES = 256;
/** Size of each buffer small chunks are copied into. */
export const COALESCE_BUFFER_BYTES = 1024;

export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // offset into chunks[0]
  /** The owned buffer small chunks are appended to. */
  private tail: Buffer | undefined;
  /** The view of `tail` that is the last chunk, while it is (take() may have consumed it). */
  private tailView: Buffer | undefined;
  /** Where `tailView` starts in `tail`, and how much of `tail` is written. */
  private tailStart = 0;
  private tailUsed = 0;
  /** Bytes buffered. */
  length = 0;

  push(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    this.length += n;
    // A chunk into an empty queue is kept as it is: it is usually consumed at once (a whole
    // record), and copying it would cost every small read. Only bytes that wait are coalesced.
    if (n <= COALESCE_MAX_CHUNK_BYTES && this.chunks.length > 0) {
      const last = this.chunks.length - 1;
      const tail = this.tail;
      if (tail !== undefined && this.tailUsed + n <= tail.length && this.chunks[last] === this.tailView) {
        tail.set(data, this.tailUsed);
        this.tailUsed += n;
        this.tailView = tail.subarray(this.tailStart, this.tailUsed);
        this.chunks[last] = this.tailView;
        return;
      }
      const fresh = Buffer.allocUnsafeSlow(COALESCE_BUFFER_BYTES);
      fresh.set(data, 0);
      this.tail = fresh;
      this.tailStart = 0;
      this.tailUsed = n;
      this.tailView = fresh.subarray(0, n);
      this.chunks.push(this.tailView);
      return;
    }
    this.tailView = undefined;
    this.chunks.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
  }

  /** How many chunks are held (what the queue costs beyond its bytes). */
  get chunkCount(): number {
    return this.chunks.length;
  }

  /** The first `n` bytes without consuming them (n <= length). */
  peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    return this.gather(n, false);
  }

  /**
   * The first two bytes as a big-endian u16 without consuming them (length >= 2); no view is
   * made, so reading a record's length field allocates nothing.
   */
  peekUint16BE(): number {
    const first = this.chunks[0] as Buffer;
    const h = this.head;
    if (first.length - h >= 2) return ((first[h] as number) << 8) | (first[h + 1] as number);
    return ((first[h] as number) << 8) | ((this.chunks[1] as Buffer)[0] as number);
  }

  /** Remove and return the first `n` bytes (n <= length). */
  take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    const avail = first.length - this.head;
    if (avail > n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      this.length -= n;
      this.trimTail();
      return out;
    }
    if (avail === n) {
      const out = this.head === 0 ? first : first.subarray(this.head);
      this.dropChunks(1);
      this.head = 0;
      this.length -= n;
      return out;
    }
    return this.gather(n, true);
  }

  /** Drop everything buffered. */
  clear(): void {
    this.chunks = [];
    this.tail = undefined;
    this.tailView = undefined;
    this.head = 0;
    this.length = 0;
  }

  /**
   * Remove the first `k` chunks. Emptied, the array gives its element store back (V8 keeps the
   * capacity of an array emptied by shift() or splice(), about 150 bytes per idle connection).
   */
  private dropChunks(k: number): void {
    if (k === this.chunks.length) this.chunks.length = 0;
    else if (k === 1) this.chunks.shift();
    else this.chunks.splice(0, k);
  }

  private gather(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let i = 0;
    let head = this.head;
    while (copied < n) {
      const c = this.chunks[i] as Buffer;
      const k = Math.min(c.length - head, n - copied);
      c.copy(out, copied, head, head + k);
      copied += k;
      if (head + k === c.length) {
        i++;
        head = 0;
      } else {
        head += k;
      }
    }
    if (consume) {
      this.dropChunks(i);
      this.head = head;
      this.length -= n;
      this.trimTail();
    }
    return out;
  }

  /**
   * When the first chunk is the coalescing view and partly read, start the view at the first
   * unread byte: a view of many small reads must not keep read bytes counted as held (a chunk
   * the queue did not make is released whole once read, as before).
   */
  private trimTail(): void {
    if (this.head === 0 || this.chunks[0] !== this.tailView || this.tail === undefined) return;
    this.tailStart += this.head;
    this.head = 0;
    this.tailView = this.tail.subarray(this.tailStart, this.tailUsed);
    this.chunks[0] = this.tailView;
  }
}
