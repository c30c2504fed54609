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
 * - A batch record (type 7) carries whole messages as `length (u16) || message` entries filling
 *   its payload exactly; the sealer lays them out in the record itself, so each message is copied
 *   once, as a lone message is.
 */

import { sesameError } from '../errors.js';
import { openParts, sealInPlace } from './aead.js';
import {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  BATCH_ENTRY_HEADER_BYTES,
  HASH_BYTES,
  MAX_RECORD_BODY_BYTES,
  MIN_RECORD_BODY_BYTES,
  RECORD_BATCH,
  RECORD_HEADER_BYTES,
} from './constants.js';
import { nextTrafficSecret, trafficKeysInto } from './key-schedule.js';

// A direction's state is key || iv || traffic secret, in memory of its own (never a pool slab).
// A connection keeps its two directions and its exporter secret in one allocation
// (recordStateMemory()): an idle connection's cost is mostly objects like these.
const IV_AT = AEAD_KEY_BYTES;
const SECRET_AT = IV_AT + AEAD_NONCE_BYTES;
const STATE_BYTES = SECRET_AT + HASH_BYTES;

/** Where the sealer's state, the opener's and the exporter secret lie in recordStateMemory(). */
export const SEALER_STATE_AT = 0;
export const OPENER_STATE_AT = STATE_BYTES;
export const EXPORTER_AT = 2 * STATE_BYTES;

/**
 * Memory for one connection's record state and exporter secret, in one allocation of its own:
 * the sealer's state at SEALER_STATE_AT, the opener's at OPENER_STATE_AT and the exporter secret
 * (HASH_BYTES) at EXPORTER_AT.
 */
export function recordStateMemory(): Buffer {
  return Buffer.allocUnsafeSlow(EXPORTER_AT + HASH_BYTES);
}

// Scratch for the AAD (the length field) of the record being sealed or opened, shared by every
// direction: backends read it synchronously, and no view of the record is made for it.
const AAD = Buffer.alloc(RECORD_HEADER_BYTES);

/** One direction's traffic secret, keys and sequence number. */
class Direction {
  /** The key, a view of the state (the cipher takes exactly the key's bytes). */
  protected readonly key: Buffer;
  /**
   * Memory holding this direction's state, key || iv || traffic secret, from `at`: the iv and the
   * secret are read from it in place (a view each would cost an object per direction).
   */
  protected readonly memory: Buffer;
  protected readonly ivAt: number;
  private readonly at: number;
  /** Sequence number of the next record under the current key (the nonce's implicit part). */
  seq = 0;

  /**
   * `memory[at, at + STATE_BYTES)` is this direction's alone (default: an allocation of its
   * own); the rest of `memory` may belong to others.
   */
  constructor(secret: Uint8Array, memory: Buffer = Buffer.allocUnsafeSlow(STATE_BYTES), at = 0) {
    this.memory = memory;
    this.at = at;
    this.ivAt = at + IV_AT;
    this.key = memory.subarray(at, at + AEAD_KEY_BYTES);
    this.install(secret);
  }

  /** The whole state, key || iv || traffic secret. */
  private state(): Buffer {
    return this.memory.subarray(this.at, this.at + STATE_BYTES);
  }

  /** Move to the next traffic secret (key update); the sequence restarts at 0. */
  update(): void {
    const next = nextTrafficSecret(this.state().subarray(SECRET_AT));
    this.install(next);
    next.fill(0);
    this.seq = 0;
  }

  private install(secret: Uint8Array): void {
    const state = this.state();
    trafficKeysInto(secret, state, 0);
    state.set(secret, SECRET_AT);
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
    // The plaintext (type || payload) is laid out in the record and sealed in place, so the
    // cipher sees it in one call.
    const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLength);
    out[0] = bodyLength >>> 8;
    out[1] = bodyLength & 0xff;
    out[2] = type;
    out.set(payload, RECORD_HEADER_BYTES + 1);
    AAD[0] = out[0];
    AAD[1] = out[1];
    sealInPlace(
      this.key,
      this.memory,
      this.seq++,
      AAD,
      out,
      RECORD_HEADER_BYTES,
      RECORD_HEADER_BYTES + 1 + n,
      this.ivAt,
    );
    return out;
  }

  /**
   * Seal one batch record carrying `messages[from, to)`, each at most MAX_BATCH_MESSAGE_BYTES,
   * whose entries (`length (u16) || message`) total `payloadBytes`, at most
   * MAX_RECORD_PAYLOAD_BYTES.
   * @returns the whole record: header and body, ready to write.
   */
  sealBatch(messages: readonly Uint8Array[], from: number, to: number, payloadBytes: number): Buffer {
    const bodyLength = 1 + payloadBytes + AEAD_TAG_BYTES;
    const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + bodyLength);
    out[0] = bodyLength >>> 8;
    out[1] = bodyLength & 0xff;
    out[2] = RECORD_BATCH;
    let at = RECORD_HEADER_BYTES + 1;
    for (let i = from; i < to; i++) {
      const m = messages[i] as Uint8Array;
      out[at] = m.length >>> 8;
      out[at + 1] = m.length & 0xff;
      out.set(m, at + BATCH_ENTRY_HEADER_BYTES);
      at += BATCH_ENTRY_HEADER_BYTES + m.length;
    }
    AAD[0] = out[0];
    AAD[1] = out[1];
    sealInPlace(this.key, this.memory, this.seq++, AAD, out, RECORD_HEADER_BYTES, at, this.ivAt);
    return out;
  }
}

/** Opens records for one direction. */
export class RecordOpener extends Direction {
  /**
   * Decrypt one whole record (length field and body); the record is left as it is.
   * @returns the plaintext, type (u8) || payload, in a buffer of its own.
   * @throws PeerError ERR_RECORD_DECRYPT when authentication fails: tampered, replayed,
   *   reordered, truncated, or sealed under another key.
   */
  open(record: Buffer): Buffer {
    const tagAt = record.length - AEAD_TAG_BYTES;
    AAD[0] = record[0] as number;
    AAD[1] = record[1] as number;
    const plain = openParts(
      this.key,
      this.memory,
      this.seq++,
      AAD,
      record.subarray(RECORD_HEADER_BYTES, tagAt),
      record.subarray(tagAt),
      this.ivAt,
    );
    if (plain === undefined) throw sesameError('ERR_RECORD_DECRYPT', 'record failed authentication');
    return plain;
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
