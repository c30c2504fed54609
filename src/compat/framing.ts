/**
 * The message framings of the compatibility profiles, after authentication.
 *
 * - chunk: whatever one read returns is one message, as with Python's `sock.recv(bufsize)`; a
 *   chunk longer than `maxChunkBytes` is split, as `recv(bufsize)` would split it. Messages are
 *   written as they are. There are no message boundaries on the wire: a peer that sends two
 *   messages back to back may see them arrive as one chunk (the seed's programs have the same
 *   limit; they work in lockstep, one reply per request).
 * - line: one message per line, as `StreamRequestHandler.rfile.readline()` reads it: the bytes up
 *   to and including `\n` (a final line without `\n` is delivered at end of input). Sending
 *   appends `\n` unless the message already ends with it.
 * - length-prefixed (python-mp): CPython `multiprocessing.connection` framing, a 4-byte signed
 *   big-endian length, or -1 followed by an 8-byte unsigned length for messages over 2^31-1 bytes.
 *   Lengths are checked against the limit at the header, before any body byte is buffered.
 */

import { type SesameError, sesameError } from '../errors.js';
import { ByteQueue } from '../protocol/byte-queue.js';
import type { ConnectionEvent } from '../protocol/channel.js';
import type { Framing } from './common.js';

const NEWLINE = 0x0a;
const NEWLINE_BYTES = Buffer.of(NEWLINE);

function tooLarge(length: number | bigint, max: number): SesameError {
  return sesameError('ERR_MESSAGE_TOO_LARGE', `message of ${length} bytes is over the ${max}-byte limit`);
}

/** Each read is a message (split at `maxChunkBytes`); messages are written unframed. */
export class ChunkFraming implements Framing {
  private readonly maxChunk: number;

  constructor(maxChunkBytes: number) {
    this.maxChunk = maxChunkBytes;
  }

  push(data: Buffer, events: ConnectionEvent[]): void {
    for (let at = 0; at < data.length; at += this.maxChunk) {
      events.push({ type: 'message', data: data.subarray(at, at + this.maxChunk) });
    }
  }

  /** A chunk is a message at once: nothing is ever held. */
  get bufferedBytes(): number {
    return 0;
  }

  end(): void {}

  encode(message: Uint8Array): Buffer[] {
    return message.length === 0 ? [] : [Buffer.from(message)];
  }
}

/** One message per `\n`-terminated line, terminator included. */
export class LineFraming implements Framing {
  private readonly max: number;
  /** The line not yet terminated; a ByteQueue copies small reads together (one byte per read costs one byte). */
  private readonly partial = new ByteQueue();

  constructor(maxMessageBytes: number) {
    this.max = maxMessageBytes;
  }

  push(data: Buffer, events: ConnectionEvent[]): void {
    let at = 0;
    while (at < data.length) {
      const nl = data.indexOf(NEWLINE, at);
      const stop = nl < 0 ? data.length : nl + 1;
      const total = this.partial.length + (stop - at);
      if (total > this.max) {
        throw sesameError('ERR_MESSAGE_TOO_LARGE', `line over the ${this.max}-byte limit`);
      }
      const piece = data.subarray(at, stop);
      at = stop;
      if (nl < 0) {
        this.partial.push(piece);
      } else if (this.partial.length === 0) {
        events.push({ type: 'message', data: piece });
      } else {
        this.partial.push(piece);
        events.push({ type: 'message', data: this.partial.take(total) });
      }
    }
  }

  /** The bytes of the line not yet terminated. */
  get bufferedBytes(): number {
    return this.partial.length;
  }

  end(events: ConnectionEvent[]): void {
    if (this.partial.length === 0) return;
    events.push({ type: 'message', data: this.partial.take(this.partial.length) });
  }

  encode(message: Uint8Array): Buffer[] {
    const m = Buffer.from(message);
    const nl = m.indexOf(NEWLINE);
    if (nl >= 0 && nl !== m.length - 1) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        'a line-framed message cannot contain a newline before its end',
      );
    }
    return nl < 0 ? [Buffer.concat([m, NEWLINE_BYTES])] : [m];
  }
}

/** Largest length of the 4-byte header; longer messages use -1 and an 8-byte length. */
export const MP_SHORT_LENGTH_MAX = 0x7fffffff;

/** The length header CPython's `send_bytes` writes for a message of `length` bytes. */
export function mpHeader(length: number): Buffer {
  if (length <= MP_SHORT_LENGTH_MAX) {
    const h = Buffer.alloc(4);
    h.writeInt32BE(length);
    return h;
  }
  const h = Buffer.alloc(12);
  h.writeInt32BE(-1);
  h.writeBigUInt64BE(BigInt(length), 4);
  return h;
}

/**
 * Take one length-prefixed frame from `input` if it is complete; undefined when more bytes are
 * needed.
 * @throws PeerError ERR_MESSAGE_TOO_LARGE when the header announces more than `max` bytes,
 *   ERR_MALFORMED_MESSAGE for a negative length other than -1.
 * @internal It reads the protocol's internal input queue; use {@link MpFraming} instead.
 */
export function takeMpFrame(input: ByteQueue, max: number): Buffer | undefined {
  if (input.length < 4) return undefined;
  let length = input.peek(4).readInt32BE(0);
  let headerBytes = 4;
  if (length === -1) {
    if (input.length < 12) return undefined;
    const long = input.peek(12).readBigUInt64BE(4);
    if (long > BigInt(max)) throw tooLarge(long, max);
    length = Number(long);
    headerBytes = 12;
  } else if (length < 0) {
    throw sesameError('ERR_MALFORMED_MESSAGE', `negative message length ${length}`);
  }
  if (length > max) throw tooLarge(length, max);
  if (input.length < headerBytes + length) return undefined;
  return input.take(headerBytes + length).subarray(headerBytes);
}

/** CPython `multiprocessing.connection` framing (`send_bytes` / `recv_bytes`). */
export class MpFraming implements Framing {
  private readonly max: number;
  private readonly input = new ByteQueue();

  constructor(maxMessageBytes: number) {
    this.max = maxMessageBytes;
  }

  push(data: Buffer, events: ConnectionEvent[]): void {
    this.input.push(data);
    for (;;) {
      const frame = takeMpFrame(this.input, this.max);
      if (frame === undefined) return;
      events.push({ type: 'message', data: frame });
    }
  }

  /** The bytes of the frame not yet complete. */
  get bufferedBytes(): number {
    return this.input.length;
  }

  end(): void {
    if (this.input.length > 0) {
      throw sesameError(
        'ERR_TRUNCATED',
        `connection ended inside a message (${this.input.length} bytes of it)`,
      );
    }
  }

  encode(message: Uint8Array): Buffer[] {
    const header = mpHeader(message.length);
    // Small messages go out as one buffer (one segment); large ones are not concatenated.
    if (message.length <= 16384) return [Buffer.concat([header, message])];
    return [header, Buffer.from(message)];
  }
}
