/**
 * ChaCha20-Poly1305 (RFC 8439) in JavaScript, for the node:crypto backend's small records: on
 * Node 20 every node:crypto AEAD call builds a new OpenSSL cipher context (about 2.3 µs before a
 * byte is processed, 5.4 µs to seal 64 bytes), where this code seals 64 bytes in about 1.5 µs.
 * Large units still go to OpenSSL, whose vectorised code is faster per byte (backend.ts holds the
 * threshold). Both give the same bytes: the tests compare them over every length up to several
 * blocks and check the RFC's own vectors.
 *
 * Rules and invariants:
 * - ChaCha20 is RFC 8439 section 2.3 (20 rounds, 32-bit block counter, 96-bit nonce), keystream
 *   from block counter 1 for the payload; the Poly1305 key is the first 32 bytes of block 0
 *   (section 2.6). Words are read and written little-endian by hand: no typed-array view of the
 *   data, so the platform's byte order does not matter.
 * - Poly1305 (section 2.5) keeps the accumulator and r in ten 13-bit limbs held as doubles: every
 *   product and sum stays far below 2^53, so the arithmetic is exact, and no step branches on
 *   secret data (the final reduction selects with a mask).
 * - The MAC input is the section 2.8 layout: aad, zero padding to 16, ciphertext, zero padding,
 *   then both lengths as u64 little-endian. A padded partial block is hashed as a full block,
 *   which is exactly what the zero padding means.
 * - Opening checks the tag in constant time (`timingSafeEqual`) before any plaintext is produced,
 *   and never writes its input.
 * - The scratch state is module-level and every call finishes synchronously, so no call can see
 *   another's state; it is wiped of key material after each call.
 */

import { timingSafeEqual } from 'node:crypto';

const BLOCK = 64;
/** ChaCha20's state words (key, counter, nonce) and one keystream block's output words. */
const STATE = new Uint32Array(16);
const OUT = new Uint32Array(16);
/** Poly1305: r, the accumulator h and the product, ten 13-bit limbs each; s as 8 u16 words. */
const R = new Float64Array(10);
const H = new Float64Array(10);
const D = new Float64Array(10);
const PAD = new Uint16Array(8);
/** A zero-padded partial block of MAC input, and the lengths block. */
const LAST = Buffer.alloc(16);
const TAG = Buffer.alloc(16);

function u32le(b: Uint8Array, at: number): number {
  return (
    ((b[at] as number) |
      ((b[at + 1] as number) << 8) |
      ((b[at + 2] as number) << 16) |
      ((b[at + 3] as number) << 24)) >>>
    0
  );
}

function setUp(key: Uint8Array, nonce: Uint8Array): void {
  const s = STATE;
  s[0] = 0x61707865;
  s[1] = 0x3320646e;
  s[2] = 0x79622d32;
  s[3] = 0x6b206574;
  for (let i = 0; i < 8; i++) s[4 + i] = u32le(key, 4 * i);
  s[12] = 0;
  s[13] = u32le(nonce, 0);
  s[14] = u32le(nonce, 4);
  s[15] = u32le(nonce, 8);
}

/** One ChaCha20 block (section 2.3) of STATE with block counter `counter`, into OUT. */
function chachaBlock(counter: number): void {
  const s = STATE;
  s[12] = counter;
  let x0 = s[0] as number;
  let x1 = s[1] as number;
  let x2 = s[2] as number;
  let x3 = s[3] as number;
  let x4 = s[4] as number;
  let x5 = s[5] as number;
  let x6 = s[6] as number;
  let x7 = s[7] as number;
  let x8 = s[8] as number;
  let x9 = s[9] as number;
  let x10 = s[10] as number;
  let x11 = s[11] as number;
  let x12 = s[12] as number;
  let x13 = s[13] as number;
  let x14 = s[14] as number;
  let x15 = s[15] as number;
  for (let i = 0; i < 10; i++) {
    // Column rounds: QUARTERROUND(0,4,8,12), (1,5,9,13), (2,6,10,14), (3,7,11,15).
    x0 = (x0 + x4) | 0;
    x12 ^= x0;
    x12 = (x12 << 16) | (x12 >>> 16);
    x8 = (x8 + x12) | 0;
    x4 ^= x8;
    x4 = (x4 << 12) | (x4 >>> 20);
    x0 = (x0 + x4) | 0;
    x12 ^= x0;
    x12 = (x12 << 8) | (x12 >>> 24);
    x8 = (x8 + x12) | 0;
    x4 ^= x8;
    x4 = (x4 << 7) | (x4 >>> 25);
    x1 = (x1 + x5) | 0;
    x13 ^= x1;
    x13 = (x13 << 16) | (x13 >>> 16);
    x9 = (x9 + x13) | 0;
    x5 ^= x9;
    x5 = (x5 << 12) | (x5 >>> 20);
    x1 = (x1 + x5) | 0;
    x13 ^= x1;
    x13 = (x13 << 8) | (x13 >>> 24);
    x9 = (x9 + x13) | 0;
    x5 ^= x9;
    x5 = (x5 << 7) | (x5 >>> 25);
    x2 = (x2 + x6) | 0;
    x14 ^= x2;
    x14 = (x14 << 16) | (x14 >>> 16);
    x10 = (x10 + x14) | 0;
    x6 ^= x10;
    x6 = (x6 << 12) | (x6 >>> 20);
    x2 = (x2 + x6) | 0;
    x14 ^= x2;
    x14 = (x14 << 8) | (x14 >>> 24);
    x10 = (x10 + x14) | 0;
    x6 ^= x10;
    x6 = (x6 << 7) | (x6 >>> 25);
    x3 = (x3 + x7) | 0;
    x15 ^= x3;
    x15 = (x15 << 16) | (x15 >>> 16);
    x11 = (x11 + x15) | 0;
    x7 ^= x11;
    x7 = (x7 << 12) | (x7 >>> 20);
    x3 = (x3 + x7) | 0;
    x15 ^= x3;
    x15 = (x15 << 8) | (x15 >>> 24);
    x11 = (x11 + x15) | 0;
    x7 ^= x11;
    x7 = (x7 << 7) | (x7 >>> 25);
    // Diagonal rounds: QUARTERROUND(0,5,10,15), (1,6,11,12), (2,7,8,13), (3,4,9,14).
    x0 = (x0 + x5) | 0;
    x15 ^= x0;
    x15 = (x15 << 16) | (x15 >>> 16);
    x10 = (x10 + x15) | 0;
    x5 ^= x10;
    x5 = (x5 << 12) | (x5 >>> 20);
    x0 = (x0 + x5) | 0;
    x15 ^= x0;
    x15 = (x15 << 8) | (x15 >>> 24);
    x10 = (x10 + x15) | 0;
    x5 ^= x10;
    x5 = (x5 << 7) | (x5 >>> 25);
    x1 = (x1 + x6) | 0;
    x12 ^= x1;
    x12 = (x12 << 16) | (x12 >>> 16);
    x11 = (x11 + x12) | 0;
    x6 ^= x11;
    x6 = (x6 << 12) | (x6 >>> 20);
    x1 = (x1 + x6) | 0;
    x12 ^= x1;
    x12 = (x12 << 8) | (x12 >>> 24);
    x11 = (x11 + x12) | 0;
    x6 ^= x11;
    x6 = (x6 << 7) | (x6 >>> 25);
    x2 = (x2 + x7) | 0;
    x13 ^= x2;
    x13 = (x13 << 16) | (x13 >>> 16);
    x8 = (x8 + x13) | 0;
    x7 ^= x8;
    x7 = (x7 << 12) | (x7 >>> 20);
    x2 = (x2 + x7) | 0;
    x13 ^= x2;
    x13 = (x13 << 8) | (x13 >>> 24);
    x8 = (x8 + x13) | 0;
    x7 ^= x8;
    x7 = (x7 << 7) | (x7 >>> 25);
    x3 = (x3 + x4) | 0;
    x14 ^= x3;
    x14 = (x14 << 16) | (x14 >>> 16);
    x9 = (x9 + x14) | 0;
    x4 ^= x9;
    x4 = (x4 << 12) | (x4 >>> 20);
    x3 = (x3 + x4) | 0;
    x14 ^= x3;
    x14 = (x14 << 8) | (x14 >>> 24);
    x9 = (x9 + x14) | 0;
    x4 ^= x9;
    x4 = (x4 << 7) | (x4 >>> 25);
  }
  const o = OUT;
  o[0] = x0 + (s[0] as number);
  o[1] = x1 + (s[1] as number);
  o[2] = x2 + (s[2] as number);
  o[3] = x3 + (s[3] as number);
  o[4] = x4 + (s[4] as number);
  o[5] = x5 + (s[5] as number);
  o[6] = x6 + (s[6] as number);
  o[7] = x7 + (s[7] as number);
  o[8] = x8 + (s[8] as number);
  o[9] = x9 + (s[9] as number);
  o[10] = x10 + (s[10] as number);
  o[11] = x11 + (s[11] as number);
  o[12] = x12 + (s[12] as number);
  o[13] = x13 + (s[13] as number);
  o[14] = x14 + (s[14] as number);
  o[15] = x15 + (s[15] as number);
}

/** XOR the keystream from block 1 into src[from, to), writing dst[at, at + to - from). */
function xorKeystream(src: Uint8Array, from: number, to: number, dst: Uint8Array, at: number): void {
  const o = OUT;
  for (let counter = 1; from < to; counter++) {
    chachaBlock(counter);
    const n = Math.min(BLOCK, to - from);
    for (let t = 0; t < n; t++) {
      dst[at + t] = (src[from + t] as number) ^ (((o[t >>> 2] as number) >>> ((t & 3) << 3)) & 0xff);
    }
    from += n;
    at += n;
  }
}

/** Poly1305's one-time key from block 0 (section 2.6): r (clamped) into R, s into PAD. */
function polyKey(): void {
  chachaBlock(0);
  const o = OUT;
  // r = the first 16 bytes with the section 2.5 clamp, as 8 u16 words, then ten 13-bit limbs.
  const r0 = o[0] as number;
  const r1 = (o[1] as number) & 0x0ffffffc;
  const r2 = (o[2] as number) & 0x0ffffffc;
  const r3 = (o[3] as number) & 0x0ffffffc;
  limbs(
    R,
    r0 & 0x0fffffff & 0xffff,
    (r0 & 0x0fffffff) >>> 16,
    r1 & 0xffff,
    r1 >>> 16,
    r2 & 0xffff,
    r2 >>> 16,
    r3 & 0xffff,
    r3 >>> 16,
    0,
  );
  for (let i = 0; i < 4; i++) {
    const w = o[4 + i] as number;
    PAD[2 * i] = w & 0xffff;
    PAD[2 * i + 1] = w >>> 16;
  }
  H.fill(0);
}

/** Set `into` to the 129-bit number t0..t7 (u16 words, little-endian) + hibit * 2^128, in 13-bit limbs. */
function limbs(
  into: Float64Array,
  t0: number,
  t1: number,
  t2: number,
  t3: number,
  t4: number,
  t5: number,
  t6: number,
  t7: number,
  hibit: number,
): void {
  into[0] = t0 & 0x1fff;
  into[1] = ((t0 >>> 13) | (t1 << 3)) & 0x1fff;
  into[2] = ((t1 >>> 10) | (t2 << 6)) & 0x1fff;
  into[3] = ((t2 >>> 7) | (t3 << 9)) & 0x1fff;
  into[4] = ((t3 >>> 4) | (t4 << 12)) & 0x1fff;
  into[5] = (t4 >>> 1) & 0x1fff;
  into[6] = ((t4 >>> 14) | (t5 << 2)) & 0x1fff;
  into[7] = ((t5 >>> 11) | (t6 << 5)) & 0x1fff;
  into[8] = ((t6 >>> 8) | (t7 << 8)) & 0x1fff;
  into[9] = (t7 >>> 5) | (hibit << 11);
}

function u16le(b: Uint8Array, at: number): number {
  return (b[at] as number) | ((b[at + 1] as number) << 8);
}

/** h = (h + block + 2^128) * r mod 2^130 - 5, for the full 16-byte block b[at, at + 16). */
function polyBlock(b: Uint8Array, at: number): void {
  polyWords(
    u16le(b, at),
    u16le(b, at + 2),
    u16le(b, at + 4),
    u16le(b, at + 6),
    u16le(b, at + 8),
    u16le(b, at + 10),
    u16le(b, at + 12),
    u16le(b, at + 14),
  );
}

/** h = (h + block + 2^128) * r mod 2^130 - 5, for the block given as 8 u16 words, little-endian. */
function polyWords(
  t0: number,
  t1: number,
  t2: number,
  t3: number,
  t4: number,
  t5: number,
  t6: number,
  t7: number,
): void {
  const h = H;
  const r = R;
  // h += the block with its 2^128 bit, limb by limb (the same split as limbs()).
  const h0 = (h[0] as number) + (t0 & 0x1fff);
  const h1 = (h[1] as number) + (((t0 >>> 13) | (t1 << 3)) & 0x1fff);
  const h2 = (h[2] as number) + (((t1 >>> 10) | (t2 << 6)) & 0x1fff);
  const h3 = (h[3] as number) + (((t2 >>> 7) | (t3 << 9)) & 0x1fff);
  const h4 = (h[4] as number) + (((t3 >>> 4) | (t4 << 12)) & 0x1fff);
  const h5 = (h[5] as number) + ((t4 >>> 1) & 0x1fff);
  const h6 = (h[6] as number) + (((t4 >>> 14) | (t5 << 2)) & 0x1fff);
  const h7 = (h[7] as number) + (((t5 >>> 11) | (t6 << 5)) & 0x1fff);
  const h8 = (h[8] as number) + (((t6 >>> 8) | (t7 << 8)) & 0x1fff);
  const h9 = (h[9] as number) + ((t7 >>> 5) | 0x800);
  const r0 = r[0] as number;
  const r1 = r[1] as number;
  const r2 = r[2] as number;
  const r3 = r[3] as number;
  const r4 = r[4] as number;
  const r5 = r[5] as number;
  const r6 = r[6] as number;
  const r7 = r[7] as number;
  const r8 = r[8] as number;
  const r9 = r[9] as number;
  // A limb past 2^130 wraps around times 5 (2^130 = 5 mod p): s_i = 5 r_i.
  const s1 = 5 * r1;
  const s2 = 5 * r2;
  const s3 = 5 * r3;
  const s4 = 5 * r4;
  const s5 = 5 * r5;
  const s6 = 5 * r6;
  const s7 = 5 * r7;
  const s8 = 5 * r8;
  const s9 = 5 * r9;
  // d_i = sum over j of h_j * r_(i-j), the wrapped terms with s; then carry into 13-bit limbs.
  let c = 0;
  let v = 0;
  v = c + h0 * r0 + h1 * s9 + h2 * s8 + h3 * s7 + h4 * s6 + h5 * s5 + h6 * s4 + h7 * s3 + h8 * s2 + h9 * s1;
  c = Math.floor(v / 8192);
  const d0 = v - c * 8192;
  v = c + h0 * r1 + h1 * r0 + h2 * s9 + h3 * s8 + h4 * s7 + h5 * s6 + h6 * s5 + h7 * s4 + h8 * s3 + h9 * s2;
  c = Math.floor(v / 8192);
  const d1 = v - c * 8192;
  v = c + h0 * r2 + h1 * r1 + h2 * r0 + h3 * s9 + h4 * s8 + h5 * s7 + h6 * s6 + h7 * s5 + h8 * s4 + h9 * s3;
  c = Math.floor(v / 8192);
  const d2 = v - c * 8192;
  v = c + h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s9 + h5 * s8 + h6 * s7 + h7 * s6 + h8 * s5 + h9 * s4;
  c = Math.floor(v / 8192);
  const d3 = v - c * 8192;
  v = c + h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0 + h5 * s9 + h6 * s8 + h7 * s7 + h8 * s6 + h9 * s5;
  c = Math.floor(v / 8192);
  const d4 = v - c * 8192;
  v = c + h0 * r5 + h1 * r4 + h2 * r3 + h3 * r2 + h4 * r1 + h5 * r0 + h6 * s9 + h7 * s8 + h8 * s7 + h9 * s6;
  c = Math.floor(v / 8192);
  const d5 = v - c * 8192;
  v = c + h0 * r6 + h1 * r5 + h2 * r4 + h3 * r3 + h4 * r2 + h5 * r1 + h6 * r0 + h7 * s9 + h8 * s8 + h9 * s7;
  c = Math.floor(v / 8192);
  const d6 = v - c * 8192;
  v = c + h0 * r7 + h1 * r6 + h2 * r5 + h3 * r4 + h4 * r3 + h5 * r2 + h6 * r1 + h7 * r0 + h8 * s9 + h9 * s8;
  c = Math.floor(v / 8192);
  const d7 = v - c * 8192;
  v = c + h0 * r8 + h1 * r7 + h2 * r6 + h3 * r5 + h4 * r4 + h5 * r3 + h6 * r2 + h7 * r1 + h8 * r0 + h9 * s9;
  c = Math.floor(v / 8192);
  const d8 = v - c * 8192;
  v = c + h0 * r9 + h1 * r8 + h2 * r7 + h3 * r6 + h4 * r5 + h5 * r4 + h6 * r3 + h7 * r2 + h8 * r1 + h9 * r0;
  c = Math.floor(v / 8192);
  const d9 = v - c * 8192;
  v = d0 + c * 5;
  c = Math.floor(v / 8192);
  h[0] = v - c * 8192;
  h[1] = d1 + c;
  h[2] = d2;
  h[3] = d3;
  h[4] = d4;
  h[5] = d5;
  h[6] = d6;
  h[7] = d7;
  h[8] = d8;
  h[9] = d9;
}

/** The MAC input `b[from, to)` zero-padded to 16 bytes (section 2.8's pad16). */
function polyPadded(b: Uint8Array, from: number, to: number): void {
  let at = from;
  for (; at + 16 <= to; at += 16) polyBlock(b, at);
  if (at < to) {
    LAST.fill(0);
    for (let i = 0; at + i < to; i++) LAST[i] = b[at + i] as number;
    polyBlock(LAST, 0);
  }
}

/** The lengths block, then the tag (h + s mod 2^128) into TAG. */
function polyFinish(aadLength: number, textLength: number): void {
  // le64(aad length) || le64(text length); lengths here are below 2^48 (whole numbers).
  const aadHigh = Math.floor(aadLength / 2 ** 32);
  const textHigh = Math.floor(textLength / 2 ** 32);
  polyWords(
    aadLength & 0xffff,
    aadLength >>> 16,
    aadHigh & 0xffff,
    aadHigh >>> 16,
    textLength & 0xffff,
    textLength >>> 16,
    textHigh & 0xffff,
    textHigh >>> 16,
  );
  const h = H;
  // Carry fully: every limb under 2^13, h < 2^130.
  for (let pass = 0; pass < 3; pass++) {
    let c = 0;
    for (let i = 0; i < 10; i++) {
      const v = (h[i] as number) + c;
      c = v >>> 13;
      h[i] = v & 0x1fff;
    }
    h[0] = (h[0] as number) + c * 5;
  }
  // g = h + 5 - 2^130: take it when it is not negative (h >= p), else h, with a mask.
  const g = D;
  let c = 5;
  for (let i = 0; i < 10; i++) {
    const v = (h[i] as number) + c;
    c = v >>> 13;
    g[i] = v & 0x1fff;
  }
  const mask = -c | 0; // all ones when h + 5 reached 2^130
  for (let i = 0; i < 10; i++) h[i] = ((g[i] as number) & mask) | ((h[i] as number) & ~mask);
  const w0 = ((h[0] as number) | ((h[1] as number) << 13)) & 0xffff;
  const w1 = (((h[1] as number) >>> 3) | ((h[2] as number) << 10)) & 0xffff;
  const w2 = (((h[2] as number) >>> 6) | ((h[3] as number) << 7)) & 0xffff;
  const w3 = (((h[3] as number) >>> 9) | ((h[4] as number) << 4)) & 0xffff;
  const w4 = (((h[4] as number) >>> 12) | ((h[5] as number) << 1) | ((h[6] as number) << 14)) & 0xffff;
  const w5 = (((h[6] as number) >>> 2) | ((h[7] as number) << 11)) & 0xffff;
  const w6 = (((h[7] as number) >>> 5) | ((h[8] as number) << 8)) & 0xffff;
  const w7 = (((h[8] as number) >>> 8) | ((h[9] as number) << 5)) & 0xffff;
  let carry = tagWord(0, w0, 0);
  carry = tagWord(1, w1, carry);
  carry = tagWord(2, w2, carry);
  carry = tagWord(3, w3, carry);
  carry = tagWord(4, w4, carry);
  carry = tagWord(5, w5, carry);
  carry = tagWord(6, w6, carry);
  tagWord(7, w7, carry);
}

/** TAG word i = (w + s_i + carry) mod 2^16, little-endian; returns the carry out. */
function tagWord(i: number, w: number, carry: number): number {
  const f = w + (PAD[i] as number) + carry;
  TAG[2 * i] = f & 0xff;
  TAG[2 * i + 1] = (f >>> 8) & 0xff;
  return f >>> 16;
}

function wipe(): void {
  STATE.fill(0);
  OUT.fill(0);
  R.fill(0);
  H.fill(0);
  D.fill(0);
  PAD.fill(0);
  LAST.fill(0);
}

/**
 * Seal `buffer[from, to)` in place under `key` (32 bytes) and `nonce` (12 bytes), authenticating
 * `aad`, and write the 16-byte tag at `buffer[to, to + 16)` (RFC 8439 section 2.8).
 */
export function chacha20Poly1305Seal(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  buffer: Uint8Array,
  from: number,
  to: number,
): void {
  setUp(key, nonce);
  polyKey();
  xorKeystream(buffer, from, to, buffer, from);
  polyPadded(aad, 0, aad.length);
  polyPadded(buffer, from, to);
  polyFinish(aad.length, to - from);
  buffer.set(TAG, to);
  TAG.fill(0);
  wipe();
}

/**
 * Verify `tag` over `aad` and `ciphertext`, then decrypt into a new buffer (RFC 8439 section
 * 2.8); the inputs are left as they are.
 * @returns the plaintext, or undefined when authentication fails.
 */
export function chacha20Poly1305Open(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
): Buffer | undefined {
  setUp(key, nonce);
  polyKey();
  polyPadded(aad, 0, aad.length);
  polyPadded(ciphertext, 0, ciphertext.length);
  polyFinish(aad.length, ciphertext.length);
  const ok = tag.length === 16 && timingSafeEqual(TAG, tag);
  TAG.fill(0);
  if (!ok) {
    wipe();
    return undefined;
  }
  const plain = Buffer.allocUnsafe(ciphertext.length);
  xorKeystream(ciphertext, 0, ciphertext.length, plain, 0);
  wipe();
  return plain;
}
