/**
 * The record layer (docs/protocol.md, "Records"): one direction's AEAD state.
 *
 *   record = length (u16, big-endian) || AEAD-Seal(key, nonce, aad = length, type (u8) || payload)
 *
 * Rules:
 * - The nonce is the direction's IV XOR the implicit 64-bit record sequence number, as in TLS 1.3
 *   (RFC 8446 section 5.3). Sequence numbers are never sent: a dropped, duplicated, reordered or
 *   spliced-in record fails authentication at the receiver.
 * - The length field is checked against MIN/MAX_RECORD_BODY_BYTES before the body is buffered.
 * - After a key update the sequence number restarts at 0 under the next traffic secret.
 * - Every sealed record is one contiguous buffer, so several can be queued and written together.
 */

import { createCipheriv, createDecipheriv } from 'node:crypto';
import { sesameError } from '../errors.js';
import {
  AEAD_ALGORITHM,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  MAX_RECORD_BODY_BYTES,
  MIN_RECORD_BODY_BYTES,
  RECORD_HEADER_BYTES,
} from './constants.js';
import { nextTrafficSecret, trafficKeys } from './key-schedule.js';

const TWO_32 = 2 ** 32;

/** One direction's traffic secret, keys and sequence number. */
class Direction {
  protected secret: Buffer;
  protected key: Buffer;
  protected iv: Buffer;
  /** Sequence number of the next record under the current key. */
  seq = 0;
  private readonly nonce = Buffer.alloc(AEAD_NONCE_BYTES);

  constructor(secret: Buffer) {
    this.secret = secret;
    const k = trafficKeys(secret);
    this.key = k.key;
    this.iv = k.iv;
  }

  /** Move to the next traffic secret (key update); the sequence restarts at 0. */
  update(): void {
    this.secret = nextTrafficSecret(this.secret);
    const k = trafficKeys(this.secret);
    this.key = k.key;
    this.iv = k.iv;
    this.seq = 0;
  }

  /** iv XOR big-endian 64-bit seq, into a buffer reused per record (createCipheriv copies it). */
  protected nextNonce(): Buffer {
    const seq = this.seq++;
    const n = this.nonce;
    this.iv.copy(n);
    const hi = Math.floor(seq / TWO_32);
    const lo = seq >>> 0;
    n.writeUInt32BE((n.readUInt32BE(4) ^ hi) >>> 0, 4);
    n.writeUInt32BE((n.readUInt32BE(8) ^ lo) >>> 0, 8);
    return n;
  }
}

/** Seals records for one direction. */
export class RecordSealer extends Direction {
  /**
   * Seal one record of `type` carrying `payload` (at most MAX_RECORD_PAYLOAD_BYTES).
   * @returns the whole record: header and body, ready to write.
   */
  seal(type: number, payload: Uint8Array): Buffer {
    const bodyLength = 1 + payload.length + AEAD_TAG_BYTES;
    const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLength);
    out.writeUInt16BE(bodyLength, 0);
    const cipher = createCipheriv(AEAD_ALGORITHM, this.key, this.nextNonce(), {
      authTagLength: AEAD_TAG_BYTES,
    });
    cipher.setAAD(out.subarray(0, RECORD_HEADER_BYTES));
    let at = RECORD_HEADER_BYTES;
    at += cipher.update(Buffer.of(type)).copy(out, at);
    if (payload.length > 0) at += cipher.update(payload).copy(out, at);
    at += cipher.final().copy(out, at);
    cipher.getAuthTag().copy(out, at);
    return out;
  }
}

/** Opens records for one direction. */
export class RecordOpener extends Direction {
  /**
   * Decrypt one record body (the bytes after the length field).
   * @throws PeerError ERR_RECORD_DECRYPT when authentication fails: tampered, replayed,
   *   reordered, truncated, or sealed under another key.
   */
  open(header: Buffer, body: Buffer): { type: number; payload: Buffer } {
    const tagAt = body.length - AEAD_TAG_BYTES;
    const decipher = createDecipheriv(AEAD_ALGORITHM, this.key, this.nextNonce(), {
      authTagLength: AEAD_TAG_BYTES,
    });
    decipher.setAAD(header);
    decipher.setAuthTag(body.subarray(tagAt));
    const head = decipher.update(body.subarray(0, tagAt));
    try {
      const tail = decipher.final();
      const plain = tail.length === 0 ? head : Buffer.concat([head, tail]);
      return { type: plain[0] as number, payload: plain.subarray(1) };
    } catch (cause) {
      throw sesameError('ERR_RECORD_DECRYPT', 'record failed authentication', { cause });
    }
  }
}

/**
 * Check a record length field before anything of the body is buffered.
 * @throws PeerError ERR_RECORD_LENGTH when it is outside [MIN_RECORD_BODY_BYTES, MAX_RECORD_BODY_BYTES].
 */
export function checkRecordLength(bodyLength: number): void {
  if (bodyLength < MIN_RECORD_BODY_BYTES || bodyLength > MAX_RECORD_BODY_BYTES) {
    throw sesameError(
      'ERR_RECORD_LENGTH',
      `record length ${bodyLength} outside ${MIN_RECORD_BODY_BYTES}..${MAX_RECORD_BODY_BYTES}`,
    );
  }
}
