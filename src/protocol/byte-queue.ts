/**
 * A FIFO of received byte chunks. Bytes are copied only when a read spans chunks, so a record
 * that arrives whole in one chunk is opened from a view of that chunk.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // offset into chunks[0]
  /** Bytes buffered. */
  length = 0;

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.chunks.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
    this.length += data.length;
  }

  /** The first `n` bytes without consuming them (n <= length). */
  peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    return this.gather(n, false);
  }

  /** Remove and return the first `n` bytes (n <= length). */
  take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    const avail = first.length - this.head;
    if (avail > n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      this.length -= n;
      return out;
    }
    if (avail === n) {
      const out = this.head === 0 ? first : first.subarray(this.head);
      this.chunks.shift();
      this.head = 0;
      this.length -= n;
      return out;
    }
    return this.gather(n, true);
  }

  /** Drop everything buffered. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
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
      this.chunks.splice(0, i);
      this.head = head;
      this.length -= n;
    }
    return out;
  }
}
