/**
 * The JavaScript ChaCha20-Poly1305 (src/protocol/chacha20-poly1305.ts) against the RFC 8439
 * section 2.8.2 vector and against OpenSSL's implementation through node:crypto: every length
 * from 0 to several ChaCha20 blocks, keys and data of extreme bytes (Poly1305's carries and final
 * reduction), random inputs, byte for byte; forgeries refused without touching the input.
 */

import { createCipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chacha20Poly1305Open, chacha20Poly1305Seal } from '../../src/protocol/chacha20-poly1305.js';

const hex = (s: string) => Buffer.from(s, 'hex');

function opensslSeal(key: Buffer, nonce: Buffer, aad: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function jsSeal(key: Buffer, nonce: Buffer, aad: Buffer, plain: Buffer): Buffer {
  const out = Buffer.alloc(plain.length + 16);
  plain.copy(out);
  chacha20Poly1305Seal(key, nonce, aad, out, 0, plain.length);
  return out;
}

describe('ChaCha20-Poly1305 in JavaScript', () => {
  it('reproduces RFC 8439 section 2.8.2', () => {
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('070000004041424344454647');
    const aad = hex('50515253c0c1c2c3c4c5c6c7');
    const plain = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
      'latin1',
    );
    const sealed = jsSeal(key, nonce, aad, plain);
    expect(sealed.subarray(0, plain.length).toString('hex')).toBe(
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
        '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
        '3ff4def08e4b7a9de576d26586cec64b6116',
    );
    expect(sealed.subarray(plain.length).toString('hex')).toBe('1ae10b594f09e26a7e902ecbd0600691');
    const ct = Buffer.from(sealed.subarray(0, plain.length));
    const tag = Buffer.from(sealed.subarray(plain.length));
    expect(chacha20Poly1305Open(key, nonce, aad, ct, tag)?.equals(plain)).toBe(true);
  });

  it('matches OpenSSL for every length from 0 to 300 bytes and AADs of 0 to 40 bytes', () => {
    for (let n = 0; n <= 300; n++) {
      const key = randomBytes(32);
      const nonce = randomBytes(12);
      const aad = randomBytes(n % 41);
      const plain = randomBytes(n);
      const want = opensslSeal(key, nonce, aad, plain);
      const got = jsSeal(key, nonce, aad, plain);
      expect(got.toString('hex')).toBe(want.toString('hex'));
      const ct = Buffer.from(want.subarray(0, n));
      const tag = Buffer.from(want.subarray(n));
      expect(chacha20Poly1305Open(key, nonce, aad, ct, tag)?.toString('hex')).toBe(plain.toString('hex'));
    }
  });

  it('matches OpenSSL on keys and data of extreme bytes (Poly1305 carries and the final reduction)', () => {
    for (const fill of [0x00, 0xff, 0xfe, 0x01, 0x80, 0x7f]) {
      for (const n of [0, 1, 15, 16, 17, 63, 64, 65, 128, 1000]) {
        const key = Buffer.alloc(32, fill);
        const nonce = Buffer.alloc(12, fill);
        const aad = Buffer.alloc(n % 20, fill);
        const plain = Buffer.alloc(n, fill);
        expect(jsSeal(key, nonce, aad, plain).toString('hex')).toBe(
          opensslSeal(key, nonce, aad, plain).toString('hex'),
        );
      }
    }
  });

  it('agrees with OpenSSL on random inputs (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 2048 }),
        (k, n, a, p) => {
          const [key, nonce, aad, plain] = [k, n, a, p].map((x) => Buffer.from(x)) as [
            Buffer,
            Buffer,
            Buffer,
            Buffer,
          ];
          expect(jsSeal(key, nonce, aad, plain).equals(opensslSeal(key, nonce, aad, plain))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses every single-bit change of ciphertext, tag or AAD and leaves the input as it was', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const aad = randomBytes(2);
    const sealed = opensslSeal(key, nonce, aad, randomBytes(40));
    const copy = Buffer.from(sealed);
    for (let bit = 0; bit < (sealed.length + aad.length) * 8; bit++) {
      const s = Buffer.from(sealed);
      const a = Buffer.from(aad);
      const byte = bit >>> 3;
      if (byte < s.length) s[byte] = (s[byte] as number) ^ (1 << (bit & 7));
      else a[byte - s.length] = (a[byte - s.length] as number) ^ (1 << (bit & 7));
      const ct = s.subarray(0, 40);
      const tag = s.subarray(40);
      const before = Buffer.from(s);
      expect(chacha20Poly1305Open(key, nonce, a, ct, tag)).toBeUndefined();
      expect(s.equals(before)).toBe(true);
    }
    expect(chacha20Poly1305Open(key, nonce, aad, sealed.subarray(0, 40), sealed.subarray(40))).toBeDefined();
    expect(sealed.equals(copy)).toBe(true);
    expect(
      chacha20Poly1305Open(key, nonce, aad, sealed.subarray(0, 40), sealed.subarray(40, 55)),
    ).toBeUndefined();
  });
});
