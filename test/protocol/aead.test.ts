/**
 * The AEAD module (src/protocol/aead.ts) against a reference written from the specification
 * (docs/protocol.md "Records", docs/protocol-udp.md "DATA"): the nonce is iv XOR the 64-bit
 * big-endian sequence, sealing and opening agree with node:crypto used the obvious way, and a
 * DATA datagram sealed by the channel has exactly the documented bytes. Every case runs under
 * each crypto backend (node:crypto, libsodium), which must also reproduce the published
 * ChaCha20-Poly1305 (RFC 8439 section 2.8.2) and X25519 (RFC 7748 section 6.1) vectors.
 */

import { createCipheriv, createDecipheriv } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENSSL_OPEN_MIN_BYTES } from '../../src/net/crypto-backend.js';
import { AEAD_ALGORITHM, open, sealInPlace } from '../../src/protocol/aead.js';
import { type CryptoBackend, setCryptoBackend } from '../../src/protocol/backend.js';
import {
  DatagramChannel,
  DGRAM_DATA,
  DGRAM_DATA_HEADER_BYTES,
  KIND_MESSAGE,
} from '../../src/protocol/index.js';
import { trafficKeys } from '../../src/protocol/key-schedule.js';
import { BACKENDS } from '../helpers/backends.js';

/** iv XOR (0 (4) || seq (u64 big-endian)), computed with BigInt. */
function referenceNonce(iv: Buffer, seq: number): Buffer {
  const pad = Buffer.alloc(12);
  pad.writeBigUInt64BE(BigInt(seq), 4);
  return Buffer.from(iv.map((b, i) => b ^ (pad[i] as number)));
}

function referenceSeal(key: Buffer, iv: Buffer, seq: number, aad: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, referenceNonce(iv, seq), { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function referenceOpen(key: Buffer, iv: Buffer, seq: number, aad: Buffer, sealed: Buffer): Buffer {
  const d = createDecipheriv('chacha20-poly1305', key, referenceNonce(iv, seq), { authTagLength: 16 });
  d.setAAD(aad, { plaintextLength: sealed.length - 16 });
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
}

const KEY = Buffer.alloc(32, 0x42);
const IV = Buffer.from('000102030405060708090a0b', 'hex');
const EDGES = [0, 1, 255, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER];

/** Seal `plain` with the module, laid out after `aad` as records and datagrams do. */
function sealWithModule(key: Buffer, iv: Buffer, seq: number, aad: Buffer, plain: Buffer): Buffer {
  const out = Buffer.alloc(plain.length + 16);
  plain.copy(out);
  sealInPlace(key, iv, seq, aad, out, 0, plain.length);
  return out;
}

/** Install `backend` for the cases of the enclosing describe, and put the previous one back. */
function installFor(backend: CryptoBackend): void {
  let previous: CryptoBackend | undefined;
  beforeAll(() => {
    previous = setCryptoBackend(backend);
  });
  afterAll(() => {
    if (previous !== undefined) setCryptoBackend(previous);
  });
}

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

describe('AEAD', () => {
  it('is ChaCha20-Poly1305', () => {
    expect(AEAD_ALGORITHM).toBe('chacha20-poly1305');
  });
});

// RFC 8439 section 2.8.2: the AEAD_CHACHA20_POLY1305 example.
const RFC8439 = {
  key: hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
  nonce: hex('070000004041424344454647'),
  aad: hex('50515253c0c1c2c3c4c5c6c7'),
  plain: Buffer.from(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    'latin1',
  ),
  ciphertext: hex(
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
      '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
      '3ff4def08e4b7a9de576d26586cec64b6116',
  ),
  tag: hex('1ae10b594f09e26a7e902ecbd0600691'),
};

// RFC 7748 section 6.1: Alice and Bob.
const RFC7748 = {
  alicePrivate: hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
  alicePublic: hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'),
  bobPrivate: hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
  bobPublic: hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'),
  shared: hex('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742'),
};

describe.each(BACKENDS)('$name backend', ({ backend }) => {
  if (backend === undefined) {
    it.skip('libsodium cannot be loaded here', () => {});
    return;
  }
  installFor(backend);

  it('reproduces RFC 8439 section 2.8.2, and opens it without touching its input', () => {
    const buffer = Buffer.concat([RFC8439.plain, Buffer.alloc(16)]);
    backend.sealInPlace(RFC8439.key, RFC8439.nonce, RFC8439.aad, buffer, 0, RFC8439.plain.length);
    expect(buffer.subarray(0, RFC8439.plain.length).toString('hex')).toBe(RFC8439.ciphertext.toString('hex'));
    expect(buffer.subarray(RFC8439.plain.length).toString('hex')).toBe(RFC8439.tag.toString('hex'));
    const ciphertext = Buffer.from(RFC8439.ciphertext);
    const tag = Buffer.from(RFC8439.tag);
    const opened = backend.open(RFC8439.key, RFC8439.nonce, RFC8439.aad, ciphertext, tag);
    expect(opened?.toString('latin1')).toBe(RFC8439.plain.toString('latin1'));
    expect(ciphertext.equals(RFC8439.ciphertext) && tag.equals(RFC8439.tag)).toBe(true);
    tag[0] = (tag[0] as number) ^ 1;
    expect(backend.open(RFC8439.key, RFC8439.nonce, RFC8439.aad, ciphertext, tag)).toBeUndefined();
    expect(ciphertext.equals(RFC8439.ciphertext)).toBe(true);
  });

  it('reproduces RFC 7748 section 6.1 and refuses a low-order peer key', () => {
    expect(backend.x25519Base(RFC7748.alicePrivate).toString('hex')).toBe(
      RFC7748.alicePublic.toString('hex'),
    );
    expect(backend.x25519Base(RFC7748.bobPrivate).toString('hex')).toBe(RFC7748.bobPublic.toString('hex'));
    expect(backend.x25519(RFC7748.alicePrivate, RFC7748.bobPublic).toString('hex')).toBe(
      RFC7748.shared.toString('hex'),
    );
    expect(backend.x25519(RFC7748.bobPrivate, RFC7748.alicePublic).toString('hex')).toBe(
      RFC7748.shared.toString('hex'),
    );
    // The all-zero point and the point of order 8 give an all-zero shared secret.
    expect(() => backend.x25519(RFC7748.alicePrivate, Buffer.alloc(32))).toThrow();
    expect(() => backend.x25519(RFC7748.alicePrivate, Buffer.of(1, ...Buffer.alloc(31)))).toThrow();
  });

  it('seals as the reference does at every sequence edge, including across 2^32', () => {
    const aad = Buffer.from('header');
    const plain = Buffer.from('the same plaintext under every sequence');
    const seen = new Set<string>();
    for (const seq of EDGES) {
      const sealed = sealWithModule(KEY, IV, seq, aad, plain);
      expect(sealed.toString('hex'), `seq ${seq}`).toBe(
        referenceSeal(KEY, IV, seq, aad, plain).toString('hex'),
      );
      seen.add(sealed.toString('hex'));
      expect(open(KEY, IV, seq, aad, sealed)?.toString()).toBe(plain.toString());
    }
    // Every sequence gives another nonce, so another ciphertext.
    expect(seen.size).toBe(EDGES.length);
  });

  it('agrees with the reference for any key, iv, sequence, aad and plaintext', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.maxSafeNat(),
        fc.uint8Array({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 300 }),
        (k, v, seq, a, p) => {
          const [key, iv, aad, plain] = [k, v, a, p].map((b) => Buffer.from(b)) as [
            Buffer,
            Buffer,
            Buffer,
            Buffer,
          ];
          const sealed = sealWithModule(key, iv, seq, aad, plain);
          expect(sealed.equals(referenceSeal(key, iv, seq, aad, plain))).toBe(true);
          expect(referenceOpen(key, iv, seq, aad, sealed).equals(plain)).toBe(true);
          expect(open(key, iv, seq, aad, sealed)?.equals(plain)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses (undefined, no throw) every flipped bit, another sequence, another aad or another key', () => {
    const aad = Buffer.from('aad');
    const plain = Buffer.from('authentic');
    const sealed = sealWithModule(KEY, IV, 7, aad, plain);
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const bad = Buffer.from(sealed);
      bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
      expect(open(KEY, IV, 7, aad, bad), `bit ${bit}`).toBeUndefined();
    }
    expect(open(KEY, IV, 8, aad, sealed)).toBeUndefined();
    expect(open(KEY, IV, 7 + 2 ** 32, aad, sealed)).toBeUndefined();
    expect(open(KEY, IV, 7, Buffer.from('aae'), sealed)).toBeUndefined();
    expect(open(Buffer.alloc(32, 0x43), IV, 7, aad, sealed)).toBeUndefined();
    expect(open(KEY, IV, 7, aad, sealed.subarray(0, sealed.length - 1))).toBeUndefined();
    expect(open(KEY, IV, 7, aad, sealed.subarray(0, 16))).toBeUndefined();
  });

  it('large records, on both sides of the size libsodium hands to OpenSSL: reference bytes, tamper refused, input untouched', () => {
    const aad = Buffer.from('bulk');
    for (const size of [
      OPENSSL_OPEN_MIN_BYTES - 1,
      OPENSSL_OPEN_MIN_BYTES,
      OPENSSL_OPEN_MIN_BYTES + 1,
      16_384 + 1,
    ]) {
      const plain = Buffer.alloc(size);
      for (let i = 0; i < size; i++) plain[i] = (i * 31 + size) & 0xff;
      const sealed = sealWithModule(KEY, IV, size, aad, plain);
      expect(sealed.equals(referenceSeal(KEY, IV, size, aad, plain)), `seal ${size}`).toBe(true);
      const copy = Buffer.from(sealed);
      expect(open(KEY, IV, size, aad, sealed)?.equals(plain), `open ${size}`).toBe(true);
      expect(sealed.equals(copy)).toBe(true);
      for (const at of [0, size - 1, size, sealed.length - 1]) {
        const bad = Buffer.from(sealed);
        bad[at] = (bad[at] as number) ^ 0x01;
        const badCopy = Buffer.from(bad);
        expect(open(KEY, IV, size, aad, bad), `size ${size}, byte ${at}`).toBeUndefined();
        expect(bad.equals(badCopy)).toBe(true);
      }
      expect(open(KEY, IV, size + 1, aad, sealed)).toBeUndefined();
    }
  });

  it('never modifies the sealed input, authentic or not', () => {
    const aad = Buffer.from('aad');
    const sealed = sealWithModule(KEY, IV, 3, aad, Buffer.from('leave my bytes alone'));
    const copy = Buffer.from(sealed);
    expect(open(KEY, IV, 3, aad, sealed)?.toString()).toBe('leave my bytes alone');
    expect(sealed.equals(copy)).toBe(true);
    expect(open(KEY, IV, 4, aad, sealed)).toBeUndefined();
    expect(sealed.equals(copy)).toBe(true);
  });
});

describe.each(BACKENDS)('DATA datagrams through the AEAD module, $name backend', ({ backend }) => {
  if (backend === undefined) {
    it.skip('libsodium cannot be loaded here', () => {});
    return;
  }
  installFor(backend);

  const send = Buffer.alloc(32, 1);
  const receive = Buffer.alloc(32, 2);
  const id = Buffer.from('0102030405060708', 'hex');
  const options = { entropy: undefined as never, now: () => 0 };

  it('have exactly the documented bytes: header || ChaCha20-Poly1305(kind || reply-to || payload) || tag', () => {
    const channel = new DatagramChannel({
      id,
      sendSecret: send,
      receiveSecret: receive,
      originMs: 1000,
      options,
    });
    const payload = Buffer.from('ping');
    const { datagram, counter } = channel.seal(KIND_MESSAGE, 9, payload, 1234);
    expect(counter).toBe(1);
    const header = Buffer.alloc(DGRAM_DATA_HEADER_BYTES);
    header[0] = DGRAM_DATA;
    id.copy(header, 4);
    header.writeBigUInt64BE(1n, 12);
    header.writeBigUInt64BE(234n, 20);
    const inner = Buffer.alloc(9);
    inner[0] = KIND_MESSAGE;
    inner.writeBigUInt64BE(9n, 1);
    const { key, iv } = trafficKeys(send);
    const want = Buffer.concat([header, referenceSeal(key, iv, 1, header, Buffer.concat([inner, payload]))]);
    expect(datagram.toString('hex')).toBe(want.toString('hex'));
  });

  it('open what the peer sealed, and only that', () => {
    const a = new DatagramChannel({ id, sendSecret: send, receiveSecret: receive, originMs: 0, options });
    const b = new DatagramChannel({ id, sendSecret: receive, receiveSecret: send, originMs: 0, options });
    const sealed = a.seal(KIND_MESSAGE, 0, Buffer.from('hi'), 10).datagram;
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
    expect(b.open(tampered, 10)).toBe('forged');
    const opened = b.open(sealed, 10);
    expect(typeof opened === 'object' && opened.payload.toString()).toBe('hi');
    expect(b.open(sealed, 10)).toBe('replayed');
    // Its own datagram (a reflection) is sealed under the other direction's key.
    expect(a.open(a.seal(KIND_MESSAGE, 0, Buffer.from('x'), 10).datagram, 10)).toBe('forged');
  });
});
