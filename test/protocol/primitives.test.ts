import { describe, expect, it } from 'vitest';
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
