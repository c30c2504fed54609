import { createHmac, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nodeCryptoBackend } from '../../src/protocol/backend.js';
import {
  hkdfExpand,
  hkdfExpandInto,
  hkdfExtract,
  hmacSha256,
  systemEntropy,
  x25519,
} from '../../src/protocol/primitives.js';

describe('system entropy', () => {
  it('makes X25519 key pairs under garbage-collection pressure without hanging', () => {
    // Generating with a keygen job and exporting it while a collection runs could lock a Node 20
    // process; key pairs are made from random bytes instead. Bounded: 20,000 pairs.
    const seen = new Set<string>();
    let garbage: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      const pair = systemEntropy.x25519();
      if (i % 1000 === 0) seen.add(pair.publicKey.toString('hex'));
      expect(pair.publicKey).toHaveLength(32);
      garbage.push(Buffer.alloc(2048));
      if (garbage.length > 256) garbage = [];
    }
    expect(seen.size).toBe(20);
  }, 60_000);

  it('makes key pairs whose halves agree (each public key belongs to its private key)', () => {
    const a = systemEntropy.x25519();
    const b = systemEntropy.x25519();
    expect(x25519(a.privateKey, b.publicKey).equals(x25519(b.privateKey, a.publicKey))).toBe(true);
  });
});

describe('node:crypto X25519', () => {
  // RFC 7748 section 6.1: Alice's and Bob's private scalars, public keys and shared secret.
  const hex = (s: string) => Buffer.from(s, 'hex');
  const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const alicePublic = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
  const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const bobPublic = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

  it('agrees with the key pair made just before (the key object kept) and with a fresh import', () => {
    const scalar = Buffer.from(alice);
    expect(nodeCryptoBackend.x25519Base(scalar).toString('hex')).toBe(alicePublic);
    expect(nodeCryptoBackend.x25519(scalar, bobPublic).toString('hex')).toBe(shared);
    // Kept once only: a second agreement with the same scalar imports it again, same bytes.
    expect(nodeCryptoBackend.x25519(scalar, bobPublic).toString('hex')).toBe(shared);
  });

  it('imports a scalar changed after its key pair was made instead of using the kept key', () => {
    const scalar = Buffer.from(alice);
    nodeCryptoBackend.x25519Base(scalar);
    scalar.set(bob);
    // Bob's scalar with Bob's own public key: X25519(b, B), not X25519(a, B).
    const expected = nodeCryptoBackend.x25519(Buffer.from(bob), bobPublic);
    expect(nodeCryptoBackend.x25519(scalar, bobPublic).equals(expected)).toBe(true);
    expect(expected.toString('hex')).not.toBe(shared);
  });
});

describe('HMAC-SHA256 and HKDF from one-shot hashes', () => {
  // Unaligned views of a larger buffer, as keys and messages often are (pooled Buffers).
  const bytes = fc
    .tuple(fc.uint8Array({ maxLength: 200 }), fc.nat(7))
    .map(([b, skew]) => Buffer.concat([Buffer.alloc(skew, 0xee), b]).subarray(skew));
  const key = fc.oneof(
    fc.integer({ min: 0, max: 80 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
  );

  it('matches createHmac for every key length (to past one block) and up to three parts', () => {
    fc.assert(
      fc.property(key, fc.array(bytes, { maxLength: 3 }), (k, parts) => {
        const expected = createHmac('sha256', k);
        for (const p of parts) expected.update(p);
        expect(hmacSha256(k, ...parts).toString('hex')).toBe(expected.digest('hex'));
      }),
      { numRuns: 2000 },
    );
  });

  it('leaves no state behind: the same HMAC twice, between calls with other keys, is the same', () => {
    const a = hmacSha256(Buffer.alloc(32, 1), Buffer.from('x'));
    hmacSha256(Buffer.alloc(61, 0xff), Buffer.alloc(300, 0xff));
    hmacSha256(Buffer.alloc(3, 0xff), Buffer.alloc(5000, 0xff)); // past the scratch buffer
    expect(hmacSha256(Buffer.alloc(32, 1), Buffer.from('x'))).toEqual(a);
  });

  it('hkdfExpand and hkdfExpandInto match crypto.hkdfSync for one-block outputs', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        bytes,
        fc.integer({ min: 1, max: 32 }),
        (prk, info, length) => {
          // HKDF-Expand alone: hkdfSync(PRK as IKM) would extract first, so compare through
          // HKDF-Expand's definition instead, T(1) = HMAC(PRK, info || 0x01).
          const t1 = createHmac('sha256', prk).update(info).update(Buffer.of(1)).digest();
          expect(hkdfExpand(prk, info, undefined, length)).toEqual(t1.subarray(0, length));
          const out = Buffer.alloc(length + 5, 0xaa);
          hkdfExpandInto(prk, info, out, 3, length);
          expect(out.subarray(3, 3 + length)).toEqual(t1.subarray(0, length));
          expect(out[2]).toBe(0xaa);
          expect(out[3 + length]).toBe(0xaa);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('HKDF-Extract then Expand equals crypto.hkdfSync', () => {
    const ikm = Buffer.alloc(32, 7);
    const salt = Buffer.from('sesame salt');
    const info = Buffer.from('some label');
    const prk = hkdfExtract(salt, ikm);
    expect(hkdfExpand(prk, info)).toEqual(Buffer.from(hkdfSync('sha256', ikm, salt, info, 32)));
  });
});
