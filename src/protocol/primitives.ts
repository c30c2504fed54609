/**
 * The cryptographic building blocks of the native protocol, over Node's `crypto` (OpenSSL).
 *
 * Rules:
 * - HKDF (RFC 5869) with SHA-256. Every output here is at most one hash long, so HKDF-Expand is a
 *   single HMAC: T(1) = HMAC(PRK, info || 0x01) (RFC 5869 section 2.3); a test checks this
 *   against `crypto.hkdfSync`.
 * - HMAC (RFC 2104) is computed as two one-shot SHA-256 calls (`crypto.hash`, Node >= 20.12) over
 *   (K ^ ipad) || message and (K ^ opad) || inner: on Node 20 that is 1.4x cheaper than a
 *   `createHmac` object on an idle machine (which fetches an OpenSSL MAC context per call) and
 *   more under load; a handshake makes 14 HMACs per side. Digests come back as
 *   latin1 strings and are written into pooled buffers, so no native buffer is made per hash;
 *   the inputs are laid out in one reused scratch buffer, wiped after each call.
 *   Keys over one block, and Node versions without `crypto.hash`, use `createHmac`.
 * - Values a connection keeps (see {@link retained}) are copied out of the shared buffer pool so
 *   that one live connection never pins a pool slab.
 * - Randomness is never drawn here directly by protocol code: it comes through an {@link Entropy}
 *   passed in, so tests and the published test vectors are deterministic. The system entropy
 *   draws from the OS CSPRNG 4 KiB at a time (one OpenSSL call serves many handshakes); every
 *   byte is handed out once and wiped from the reserve as it is taken.
 * - X25519 runs on raw scalars through the crypto backend (backend.ts): libsodium's
 *   crypto_scalarmult when it loads, node:crypto otherwise. Key pairs are never made with
 *   `generateKeyPairSync`: on Node 20, exporting a key it made can deadlock the process when a
 *   garbage collection during the export finalizes the key-generation job, whose destructor
 *   waits for the lock the export holds.
 * - Comparisons of secret-dependent values use `timingSafeEqual` on equal-length inputs.
 */

import * as nodeCrypto from 'node:crypto';
import { createHash, createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';
import { cryptoBackend } from './backend.js';

const ONE = Buffer.from([1]);
const SHA256_BYTES = 32;
const SHA256_BLOCK_BYTES = 64;
const BLOCK_WORDS = SHA256_BLOCK_BYTES / 4;
// ipad (0x36) in every byte of a 32-bit word, and ipad ^ opad (0x36 ^ 0x5c = 0x6a): XORing a
// key block with ipad and then with this gives the key XOR opad (RFC 2104).
const IPAD_WORD = 0x36363636;
const PAD_FLIP_WORD = 0x6a6a6a6a | 0;

type OneShotHash = (algorithm: string, data: Uint8Array, outputEncoding: 'latin1') => string;
// `crypto.hash` exists from Node 20.12; older versions take the createHash/createHmac path.
const oneShot = (nodeCrypto as { hash?: unknown }).hash as OneShotHash | undefined;

function totalLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/**
 * Copy a digest returned by `crypto.hash` as latin1 into `out` at `at`. A loop over 32 char
 * codes costs a fraction of `Buffer.write(s, 'latin1')`, whose argument checks dominate here.
 */
function putDigest(latin1: string, out: Uint8Array, at: number): void {
  for (let i = 0; i < SHA256_BYTES; i++) out[at + i] = latin1.charCodeAt(i);
}

/** A digest returned by `crypto.hash` as latin1, as a (pooled) Buffer. */
function digestBuffer(latin1: string): Buffer {
  const out = Buffer.allocUnsafe(SHA256_BYTES);
  putDigest(latin1, out, 0);
  return out;
}

// One scratch buffer for the hash inputs, reused by every call (they are synchronous) and wiped
// after each; inputs over SCRATCH_MAX_BYTES get a buffer of their own.
const SCRATCH_MAX_BYTES = 4096;
let scratchBuffer = Buffer.alloc(512);
// The views of the scratch buffer handed to `crypto.hash`, one per length, made once: a
// `subarray` per hash was a Buffer object per call (two per HMAC, about 30 per handshake).
let scratchViews: (Buffer | undefined)[] = [];
/** The HMAC key block of the scratch buffer as 32-bit words (its ArrayBuffer starts at offset 0). */
let scratchWords = new Int32Array(scratchBuffer.buffer, scratchBuffer.byteOffset, 16);

function scratch(n: number): Buffer {
  if (n <= scratchBuffer.length) return scratchBuffer;
  if (n > SCRATCH_MAX_BYTES) return Buffer.allocUnsafeSlow(n);
  scratchBuffer = Buffer.alloc(SCRATCH_MAX_BYTES);
  scratchViews = [];
  scratchWords = new Int32Array(scratchBuffer.buffer, scratchBuffer.byteOffset, 16);
  return scratchBuffer;
}

/** The first block of `buf` (the scratch buffer, or one of its own at offset 0) as 32-bit words. */
function blockWords(buf: Buffer): Int32Array {
  return buf === scratchBuffer ? scratchWords : new Int32Array(buf.buffer, buf.byteOffset, 16);
}

/** The first `n` bytes of `buf` (the scratch buffer's cached view, or a new one for another buffer). */
function head(buf: Buffer, n: number): Buffer {
  if (buf !== scratchBuffer) return n === buf.length ? buf : buf.subarray(0, n);
  let v = scratchViews[n];
  if (v === undefined) {
    v = buf.subarray(0, n);
    scratchViews[n] = v;
  }
  return v;
}

// The typed array's own fill: Buffer.prototype.fill checks and converts its arguments in
// JavaScript first, which costs more than wiping a hundred bytes.
const fillBytes = Uint8Array.prototype.fill;

/** Zero `buf[0, n)`. */
function wipe(buf: Buffer, n: number): void {
  fillBytes.call(buf, 0, 0, n);
}

/** HMAC-SHA256 over the concatenation of `parts`. */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  if (oneShot === undefined || key.length > SHA256_BLOCK_BYTES || parts.length > 3) {
    const h = createHmac('sha256', key);
    for (const p of parts) h.update(p);
    return h.digest();
  }
  return digestBuffer(hmacLatin1(key, parts[0], parts[1], parts[2]));
}

/**
 * HMAC-SHA256(key, a || b || c) as a latin1 string (`crypto.hash` must exist and the key be at
 * most one block). Parts are named, not a rest array: the key schedule calls this about 14 times
 * per handshake.
 */
function hmacLatin1(key: Uint8Array, a?: Uint8Array, b?: Uint8Array, c?: Uint8Array): string {
  const hash = oneShot as OneShotHash;
  const n = (a?.length ?? 0) + (b?.length ?? 0) + (c?.length ?? 0);
  const buf = scratch(SHA256_BLOCK_BYTES + Math.max(n, SHA256_BYTES));
  const words = blockWords(buf);
  const k = key.length;
  // inner = H((K ^ ipad) || message), K zero-padded to one block. The block is built as 32-bit
  // words (a quarter of the operations of a byte loop): K is copied in, the rest of the block
  // zeroed, then every word XORed with ipad.
  buf.set(key, 0);
  const whole = (k + 3) >> 2;
  for (let i = k; i < whole << 2; i++) buf[i] = 0;
  for (let i = whole; i < BLOCK_WORDS; i++) words[i] = 0;
  for (let i = 0; i < BLOCK_WORDS; i++) words[i] = (words[i] as number) ^ IPAD_WORD;
  let at = SHA256_BLOCK_BYTES;
  if (a !== undefined) {
    buf.set(a, at);
    at += a.length;
  }
  if (b !== undefined) {
    buf.set(b, at);
    at += b.length;
  }
  if (c !== undefined) {
    buf.set(c, at);
    at += c.length;
  }
  const inner = hash('sha256', head(buf, at), 'latin1');
  // HMAC = H((K ^ opad) || inner): the ipad block becomes the opad block in place.
  for (let i = 0; i < BLOCK_WORDS; i++) words[i] = (words[i] as number) ^ PAD_FLIP_WORD;
  putDigest(inner, buf, SHA256_BLOCK_BYTES);
  const mac = hash('sha256', head(buf, SHA256_BLOCK_BYTES + SHA256_BYTES), 'latin1');
  wipe(buf, Math.max(at, SHA256_BLOCK_BYTES + SHA256_BYTES)); // the padded key and the message may be secret
  return mac;
}

/** SHA-256 over the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): Buffer {
  if (oneShot === undefined) {
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    return h.digest();
  }
  if (parts.length === 1) return digestBuffer(oneShot('sha256', parts[0] as Uint8Array, 'latin1'));
  const length = totalLength(parts);
  const buf = scratch(length);
  let at = 0;
  for (let j = 0; j < parts.length; j++) {
    const p = parts[j] as Uint8Array;
    buf.set(p, at);
    at += p.length;
  }
  const digest = oneShot('sha256', head(buf, length), 'latin1');
  wipe(buf, length);
  return digestBuffer(digest);
}

/**
 * A copy of `bytes` in memory of its own, for values a connection or a key keeps for its
 * lifetime (a small pooled buffer would keep a whole 8 KiB pool slab alive).
 */
export function retained(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes.length);
  out.set(bytes);
  return out;
}

/** HKDF-Extract(salt, IKM) = HMAC-SHA256(salt, IKM) (RFC 5869 section 2.2). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Buffer {
  return hmacSha256(salt, ikm);
}

/**
 * HKDF-Expand(PRK, label || context, L) for L <= 32 (RFC 5869 section 2.3): the first `length`
 * bytes of HMAC-SHA256(PRK, label || context || 0x01).
 */
export function hkdfExpand(prk: Uint8Array, label: Uint8Array, context?: Uint8Array, length = 32): Buffer {
  let t1: Buffer;
  if (oneShot === undefined || prk.length > SHA256_BLOCK_BYTES) {
    t1 = context === undefined ? hmacSha256(prk, label, ONE) : hmacSha256(prk, label, context, ONE);
  } else {
    t1 = digestBuffer(
      context === undefined ? hmacLatin1(prk, label, ONE) : hmacLatin1(prk, label, context, ONE),
    );
  }
  return length === 32 ? t1 : t1.subarray(0, length);
}

/**
 * The first `length` (at most 32) bytes of HKDF-Expand(PRK, label), written into `out` at `at`:
 * the same bytes as {@link hkdfExpand}, with no buffer made for them.
 */
export function hkdfExpandInto(
  prk: Uint8Array,
  label: Uint8Array,
  out: Uint8Array,
  at: number,
  length = 32,
): void {
  if (oneShot === undefined || prk.length > SHA256_BLOCK_BYTES) {
    out.set(hkdfExpand(prk, label, undefined, length), at);
    return;
  }
  const mac = hmacLatin1(prk, label, ONE);
  for (let i = 0; i < length; i++) out[at + i] = mac.charCodeAt(i);
}

/** Constant-time equality of two byte strings (false at once when the lengths differ). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * An X25519 key pair as raw bytes (RFC 7748): the private scalar as drawn from the entropy (32
 * bytes, clamped by X25519 itself) and the public key. The holder wipes the scalar when done.
 */
export interface X25519KeyPair {
  /** The private scalar: 32 raw bytes, secret. */
  readonly privateKey: Buffer;
  /** The public key: 32 raw bytes, as sent in a key share. */
  readonly publicKey: Buffer;
}

/** Source of randomness and ephemeral keys for a connection. */
export interface Entropy {
  /** `n` uniformly random bytes. */
  bytes(n: number): Buffer;
  /** A fresh X25519 key pair. */
  x25519(): X25519KeyPair;
}

const RESERVE_BYTES = 4096;
let reserve = Buffer.alloc(0);
let reserveAt = 0;

/** `n` bytes from the OS CSPRNG, drawn 4 KiB at a time; each byte is handed out once. */
function randomBytesPooled(n: number): Buffer {
  const out = Buffer.allocUnsafeSlow(n);
  if (n > RESERVE_BYTES / 8) return randomFillSync(out);
  if (reserveAt + n > reserve.length) {
    reserve = randomFillSync(Buffer.allocUnsafeSlow(RESERVE_BYTES));
    reserveAt = 0;
  }
  reserve.copy(out, 0, reserveAt, reserveAt + n);
  reserve.fill(0, reserveAt, reserveAt + n);
  reserveAt += n;
  return out;
}

/** The operating system's CSPRNG, through OpenSSL. */
export const systemEntropy: Entropy = {
  bytes: randomBytesPooled,
  x25519: () => {
    const privateKey = randomBytesPooled(32); // memory of its own (allocUnsafeSlow)
    return { privateKey, publicKey: cryptoBackend().x25519Base(privateKey) };
  },
};

/**
 * The X25519 key pair whose private scalar is a copy of `secret` (32 bytes; X25519 clamps it
 * itself), computed by the current crypto backend (backend.ts).
 */
export function x25519FromSecret(secret: Uint8Array): X25519KeyPair {
  const privateKey = retained(secret);
  return { privateKey, publicKey: cryptoBackend().x25519Base(privateKey) };
}

/**
 * Deterministic entropy from a seed: SHA-256(seed || counter) blocks. Only for test vectors and
 * tests; never for real connections.
 */
export function deterministicEntropy(seed: string | Uint8Array): Entropy {
  const seedBytes = typeof seed === 'string' ? Buffer.from(seed, 'utf8') : Buffer.from(seed);
  let counter = 0;
  const block = (): Buffer => {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter++);
    return sha256(seedBytes, c);
  };
  const bytes = (n: number): Buffer => {
    const out: Buffer[] = [];
    for (let have = 0; have < n; have += 32) out.push(block());
    return Buffer.concat(out).subarray(0, n);
  };
  return { bytes, x25519: () => x25519FromSecret(bytes(32)) };
}

/**
 * X25519(private scalar, peer public). An all-zero result (a low-order peer key) throws, in every
 * backend; callers map that to a typed error.
 */
export function x25519(privateKey: Uint8Array, peerPublic: Uint8Array): Buffer {
  return cryptoBackend().x25519(privateKey, peerPublic);
}
