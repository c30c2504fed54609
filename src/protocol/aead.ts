/**
 * The protocol's AEAD (docs/protocol.md, "Primitives" and "Records"; docs/protocol-udp.md, "DATA"):
 * the one place where the cipher is named, and the implicit-sequence nonce both records and
 * datagrams use.
 *
 *   nonce = iv XOR (0 (4) || sequence (u64, big-endian))            12 bytes
 *   seal(key, iv, sequence, aad, plaintext) = ciphertext || tag (16)
 *
 * Rules:
 * - The nonce is the direction's IV XOR a 64-bit sequence number, as in TLS 1.3 (RFC 8446 section
 *   5.3). The caller owns the sequence and never uses one twice under a key: records count
 *   implicitly from 0, datagrams carry an explicit counter from 1.
 * - Sequence numbers are whole numbers below 2^53, so the high half is exact as a double.
 * - One cipher object per sealed or opened unit, and one `update` call for the whole plaintext:
 *   each call into the cipher costs more than copying a record's payload (measured; see
 *   docs/performance.md), so callers lay the plaintext out where the ciphertext goes.
 * - The nonce is built in one scratch buffer shared by every key: createCipheriv and setAAD copy
 *   their arguments, and sealing and opening are synchronous, so nothing can observe it later.
 * - Opening never throws for bad input: a forgery is `undefined`, and the caller names the error.
 */

import { createCipheriv, createDecipheriv } from 'node:crypto';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from './constants.js';

/**
 * The AEAD of records and datagrams: AES-256-GCM, chosen by measurement on Node 20 / OpenSSL 3
 * with AES-NI (docs/protocol.md): keys of `AEAD_KEY_BYTES`, nonces of `AEAD_NONCE_BYTES` and tags of
 * `AEAD_TAG_BYTES` bytes.
 */
export const AEAD_ALGORITHM = 'aes-256-gcm';

const TWO_32 = 2 ** 32;
const OPTIONS = { authTagLength: AEAD_TAG_BYTES };
const NONCE = Buffer.alloc(AEAD_NONCE_BYTES);

/** iv XOR the big-endian 64-bit `sequence`, in the shared scratch (valid until the next call). */
function nonceFor(iv: Buffer, sequence: number): Buffer {
  const n = NONCE;
  iv.copy(n, 0, 0, AEAD_NONCE_BYTES);
  n.writeUInt32BE((n.readUInt32BE(4) ^ Math.floor(sequence / TWO_32)) >>> 0, 4);
  n.writeUInt32BE((n.readUInt32BE(8) ^ sequence) >>> 0, 8);
  return n;
}

/**
 * Seal `buffer[from, to)` in place under `key` and the nonce of `sequence`, authenticating `aad`
 * too, and write the tag at `buffer[to, to + AEAD_TAG_BYTES)`.
 */
export function sealInPlace(
  key: Buffer,
  iv: Buffer,
  sequence: number,
  aad: Buffer,
  buffer: Buffer,
  from: number,
  to: number,
): void {
  const cipher = createCipheriv(AEAD_ALGORITHM, key, nonceFor(iv, sequence), OPTIONS);
  cipher.setAAD(aad);
  cipher.update(buffer.subarray(from, to)).copy(buffer, from);
  cipher.final(); // GCM is a stream mode: update() has returned every byte
  cipher.getAuthTag().copy(buffer, to);
}

/**
 * Open `sealed` (ciphertext || tag, at least AEAD_TAG_BYTES long) under `key` and the nonce of
 * `sequence`, with `aad`.
 * @returns the plaintext, or undefined when authentication fails: tampered, replayed, reordered,
 *   truncated, or sealed under another key or sequence.
 */
export function open(
  key: Buffer,
  iv: Buffer,
  sequence: number,
  aad: Buffer,
  sealed: Buffer,
): Buffer | undefined {
  const tagAt = sealed.length - AEAD_TAG_BYTES;
  const decipher = createDecipheriv(AEAD_ALGORITHM, key, nonceFor(iv, sequence), OPTIONS);
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(tagAt));
  const plain = decipher.update(sealed.subarray(0, tagAt));
  let tail: Buffer;
  try {
    tail = decipher.final(); // verifies the tag; empty for GCM
  } catch {
    return undefined;
  }
  return tail.length === 0 ? plain : Buffer.concat([plain, tail]);
}
