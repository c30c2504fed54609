/**
 * Message framing for the baselines (raw `net` and TLS-PSK), which have no messages of their own:
 * a u32 big-endian length, then the payload. It reuses the protocol's ByteQueue, so the baselines
 * reassemble messages exactly as cheaply as Sesame does and the comparison isolates the cost of
 * authentication and record protection.
 */

import type { Duplex } from 'node:stream';
import { ByteQueue } from '../../src/protocol/byte-queue.js';
import { FLIGHT_HELLO_BYTES } from './systems.js';

export const FRAME_HEADER_BYTES = 4;
/** Largest frame accepted (same as Sesame's default largest message). */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** The 4-byte header of a frame carrying `length` bytes. */
export function frameHeader(length: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h.writeUInt32BE(length, 0);
  return h;
}

/** One contiguous frame: header and a copy of `payload`. */
export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Splits a byte stream into frames. */
export class FrameReader {
  private readonly queue = new ByteQueue();
  private need = -1;

  /**
   * Add received bytes and call `onFrame` for every frame they complete.
   * @throws Error for a frame over MAX_FRAME_BYTES.
   */
  push(chunk: Buffer, onFrame: (payload: Buffer) => void): void {
    const q = this.queue;
    q.push(chunk);
    for (;;) {
      if (this.need < 0) {
        if (q.length < FRAME_HEADER_BYTES) return;
        const n = q.take(FRAME_HEADER_BYTES).readUInt32BE(0);
        if (n > MAX_FRAME_BYTES) throw new Error(`frame of ${n} bytes is over the limit`);
        this.need = n;
      }
      if (q.length < this.need) return;
      const payload = this.need === 0 ? Buffer.alloc(0) : q.take(this.need);
      this.need = -1;
      onFrame(payload);
    }
  }
}

/** Read frames from `stream` and answer each with `reply(payload)` (nothing when it returns undefined). */
export function serveFrames(stream: Duplex, reply: (payload: Buffer) => Uint8Array | undefined): void {
  const reader = new FrameReader();
  stream.on('data', (chunk: Buffer) => {
    try {
      reader.push(chunk, (payload) => {
        const r = reply(payload);
        if (r !== undefined) stream.write(frame(r));
      });
    } catch {
      stream.destroy();
    }
  });
}

/**
 * Serve `raw-flights`: answer the first frame (the "ClientHello") with a ServerHello-sized frame,
 * take the second (the "ClientFinished") silently, answer every later frame with `reply`, and
 * answer an empty frame (the "close") with an empty frame and the end of the stream.
 */
export function serveFlights(stream: Duplex, reply: (payload: Buffer) => Uint8Array | undefined): void {
  let seen = 0;
  const hello = Buffer.alloc(FLIGHT_HELLO_BYTES, 0x53);
  serveFrames(stream, (payload) => {
    seen++;
    if (seen === 1) return hello;
    if (payload.length === 0) {
      stream.end(frameHeader(0));
      return undefined;
    }
    return seen > 2 ? reply(payload) : undefined;
  });
}
