import { describe, expect, it } from 'vitest';
import { nodeCryptoBackend } from '../../src/protocol/backend.js';
import { systemEntropy, x25519 } from '../../src/protocol/primitives.js';

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
