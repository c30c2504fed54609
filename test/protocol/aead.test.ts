/**
 * The AEAD module (src/protocol/aead.ts) against a reference written from the specification
 * (docs/protocol.md "Records", docs/protocol-udp.md "DATA"): the nonce is iv XOR the 64-bit
 * big-endian sequence, sealing and opening agree with node:crypto used the obvious way, and a
 * DATA datagram sealed by the channel has exactly the documented bytes.
 */

import { createCipheriv, createDecipheriv } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AEAD_ALGORITHM, open, sealInPlace } from '../../src/protocol/aead.js';
import {
  DatagramChannel,
  DGRAM_DATA,
  DGRAM_DATA_HEADER_BYTES,
  KIND_MESSAGE,
} from '../../src/protocol/index.js';
import { trafficKeys } from '../../src/protocol/key-schedule.js';

/** iv XOR (0 (4) || seq (u64 big-endian)), computed with BigInt. */
function referenceNonce(iv: Buffer, seq: number): Buffer {
  const pad = Buffer.alloc(12);
  pad.writeBigUInt64BE(BigInt(seq), 4);
  return Buffer.from(iv.map((b, i) => b ^ (pad[i] as number)));
}

function referenceSeal(key: Buffer, iv: Buffer, seq: number, aad: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, referenceNonce(iv, seq), { authTagLength: 16 });
  c.setAAD(aad);
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function referenceOpen(key: Buffer, iv: Buffer, seq: number, aad: Buffer, sealed: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, referenceNonce(iv, seq), { authTagLength: 16 });
  d.setAAD(aad);
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

describe('AEAD', () => {
  it('is AES-256-GCM', () => {
    expect(AEAD_ALGORITHM).toBe('aes-256-gcm');
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
});

describe('DATA datagrams through the AEAD module', () => {
  const send = Buffer.alloc(32, 1);
  const receive = Buffer.alloc(32, 2);
  const id = Buffer.from('0102030405060708', 'hex');
  const options = { entropy: undefined as never, now: () => 0 };

  it('have exactly the documented bytes: header || AES-256-GCM(kind || reply-to || payload) || tag', () => {
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
