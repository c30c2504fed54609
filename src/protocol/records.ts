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
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  HASH_BYTES,
  MAX_RECORD_BODY_BYTES,
  MIN_RECORD_BODY_BYTES,
  RECORD_HEADER_BYTES,
} from './constants.js';
import { nextTrafficSecret, trafficKeysInto } from './key-schedule.js';

const TWO_32 = 2 ** 32;
const AEAD_OPTIONS = { authTagLength: AEAD_TAG_BYTES };

// A direction's state is one small buffer: key || iv || traffic secret.
const IV_AT = AEAD_KEY_BYTES;
const SECRET_AT = IV_AT + AEAD_NONCE_BYTES;
const STATE_BYTES = SECRET_AT + HASH_BYTES;

// Scratch for the per-record nonce and AAD, shared by every direction: createCipheriv and setAAD
// copy their arguments, and sealing and opening are synchronous.
const NONCE = Buffer.alloc(AEAD_NONCE_BYTES);
const AAD = Buffer.alloc(RECORD_HEADER_BYTES);

/** One direction's traffic secret, keys and sequence number. */
class Direction {
  /** key || iv || traffic secret, in memory of its own (one allocation per direction). */
  private readonly state = Buffer.allocUnsafeSlow(STATE_BYTES);
  protected readonly key = this.state.subarray(0, AEAD_KEY_BYTES);
  /** Sequence number of the next record under the current key. */
  seq = 0;

  constructor(secret: Uint8Array) {
    this.install(secret);
  }

  /** Move to the next traffic secret (key update); the sequence restarts at 0. */
  update(): void {
    const next = nextTrafficSecret(this.state.subarray(SECRET_AT));
    this.install(next);
    next.fill(0);
    this.seq = 0;
  }

  private install(secret: Uint8Array): void {
    trafficKeysInto(secret, this.state, 0);
    this.state.set(secret, SECRET_AT);
  }

  /** iv XOR big-endian 64-bit seq, in the shared scratch (createCipheriv copies it). */
  protected nextNonce(): Buffer {
    const seq = this.seq++;
    const n = NONCE;
    this.state.copy(n, 0, IV_AT, SECRET_AT);
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
    const n = payload.length;
    const bodyLength = 1 + n + AEAD_TAG_BYTES;
    // The plaintext (type || payload) is laid out in the record and encrypted with one update
    // call: each call into the cipher costs more than copying a record's payload.
    const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLength);
    out[0] = bodyLength >>> 8;
    out[1] = bodyLength & 0xff;
    out[2] = type;
    out.set(payload, RECORD_HEADER_BYTES + 1);
    AAD[0] = out[0];
    AAD[1] = out[1];
    const end = RECORD_HEADER_BYTES + 1 + n;
    const cipher = createCipheriv(AEAD_ALGORITHM, this.key, this.nextNonce(), AEAD_OPTIONS);
    cipher.setAAD(AAD);
    cipher.update(out.subarray(RECORD_HEADER_BYTES, end)).copy(out, RECORD_HEADER_BYTES);
    cipher.final(); // GCM is a stream mode: update() has returned every byte
    cipher.getAuthTag().copy(out, end);
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
    const decipher = createDecipheriv(AEAD_ALGORITHM, this.key, this.nextNonce(), AEAD_OPTIONS);
    decipher.setAAD(header);
    decipher.setAuthTag(body.subarray(tagAt));
    let plain = decipher.update(body.subarray(0, tagAt));
    try {
      const tail = decipher.final(); // verifies the tag; empty for GCM
      if (tail.length > 0) plain = Buffer.concat([plain, tail]);
    } catch (cause) {
      throw sesameError('ERR_RECORD_DECRYPT', 'record failed authentication', { cause });
    }
    return { type: plain[0] as number, payload: plain.subarray(1) };
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
