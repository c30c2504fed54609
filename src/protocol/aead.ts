/**
 * The protocol's AEAD (docs/protocol.md, "Primitives" and "Records"; docs/protocol-udp.md, "DATA"):
 * the one place where the cipher is named, and the implicit-sequence nonce both records and
 * datagrams use.
 *
 *   nonce = iv XOR (0 (4) || sequence (u64, big-endian))            12 bytes
 *   seal(key, iv, sequence, aad, plaintext) = ciphertext || tag (16)
 *
 * Rules:
 * - The cipher is ChaCha20-Poly1305 as RFC 8439 section 2.8 defines it (the "IETF" variant:
 *   96-bit nonce, 32-bit block counter starting at 1 for the payload), run by the current
 *   backend (backend.ts): libsodium when it loads, node:crypto otherwise, byte for byte the same.
 * - The nonce is the direction's IV XOR a 64-bit sequence number, as in TLS 1.3 (RFC 8446 section
 *   5.3). The caller owns the sequence and never uses one twice under a key: records count
 *   implicitly from 0, datagrams carry an explicit counter from 1.
 * - Sequence numbers are whole numbers below 2^53, so the high half is exact as a double.
 * - Sealing is in place and detached: callers lay the plaintext out where the ciphertext goes,
 *   leaving room for the tag after it, so a record costs one buffer and one cipher call.
 * - The nonce is built in one scratch buffer shared by every key: backends read it synchronously,
 *   so nothing can observe it later.
 * - Opening never throws for bad input and never modifies its input: a forgery is `undefined`,
 *   and the caller names the error.
 */

import { cryptoBackend } from './backend.js';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from './constants.js';

/**
 * The AEAD of records and datagrams since protocol version 2: ChaCha20-Poly1305 (RFC 8439), keys
 * of `AEAD_KEY_BYTES`, nonces of `AEAD_NONCE_BYTES` and tags of `AEAD_TAG_BYTES` bytes. Its
 * node:crypto name; libsodium calls it crypto_aead_chacha20poly1305_ietf.
 */
export const AEAD_ALGORITHM = 'chacha20-poly1305';

const TWO_32 = 2 ** 32;
const NONCE = Buffer.alloc(AEAD_NONCE_BYTES);

/**
 * iv XOR the big-endian 64-bit `sequence`, in the shared scratch (valid until the next call); the
 * iv is the 12 bytes of `iv` from `at`.
 */
function nonceFor(iv: Uint8Array, at: number, sequence: number): Buffer {
  // Byte by byte: a copy into the scratch and u32 reads and writes each cross into Node's
  // buffer code, which costs more than these twelve assignments on every record.
  const n = NONCE;
  const hi = Math.floor(sequence / TWO_32);
  const lo = sequence >>> 0;
  n[0] = iv[at + 0] as number;
  n[1] = iv[at + 1] as number;
  n[2] = iv[at + 2] as number;
  n[3] = iv[at + 3] as number;
  n[4] = (iv[at + 4] as number) ^ (hi >>> 24);
  n[5] = (iv[at + 5] as number) ^ ((hi >>> 16) & 0xff);
  n[6] = (iv[at + 6] as number) ^ ((hi >>> 8) & 0xff);
  n[7] = (iv[at + 7] as number) ^ (hi & 0xff);
  n[8] = (iv[at + 8] as number) ^ (lo >>> 24);
  n[9] = (iv[at + 9] as number) ^ ((lo >>> 16) & 0xff);
  n[10] = (iv[at + 10] as number) ^ ((lo >>> 8) & 0xff);
  n[11] = (iv[at + 11] as number) ^ (lo & 0xff);
  return n;
}

/**
 * Seal `buffer[from, to)` in place under `key` and the nonce of `sequence` (the iv is the 12
 * bytes of `iv` from `ivAt`), authenticating `aad` too, and write the tag at
 * `buffer[to, to + AEAD_TAG_BYTES)`.
 */
export function sealInPlace(
  key: Buffer,
  iv: Buffer,
  sequence: number,
  aad: Buffer,
  buffer: Buffer,
  from: number,
  to: number,
  ivAt = 0,
): void {
  cryptoBackend().sealInPlace(key, nonceFor(iv, ivAt, sequence), aad, buffer, from, to);
}

/**
 * Open `sealed` (ciphertext || tag, at least AEAD_TAG_BYTES long) under `key` and the nonce of
 * `sequence`, with `aad`. `sealed` is left as it is.
 * @returns the plaintext in a new buffer, or undefined when authentication fails: tampered,
 *   replayed, reordered, truncated, or sealed under another key or sequence.
 */
export function open(
  key: Buffer,
  iv: Buffer,
  sequence: number,
  aad: Buffer,
  sealed: Buffer,
): Buffer | undefined {
  const tagAt = sealed.length - AEAD_TAG_BYTES;
  return cryptoBackend().open(
    key,
    nonceFor(iv, 0, sequence),
    aad,
    sealed.subarray(0, tagAt),
    sealed.subarray(tagAt),
  );
}

/**
 * Open a unit given as `aad`, `ciphertext` and `tag` apart (the iv is the 12 bytes of `iv` from
 * `ivAt`); nothing given is modified.
 * @returns the plaintext in a new buffer, or undefined when authentication fails.
 */
export function openParts(
  key: Buffer,
  iv: Buffer,
  sequence: number,
  aad: Buffer,
  ciphertext: Buffer,
  tag: Buffer,
  ivAt = 0,
): Buffer | undefined {
  return cryptoBackend().open(key, nonceFor(iv, ivAt, sequence), aad, ciphertext, tag);
}
