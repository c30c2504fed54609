// The spiped profile's sans-I/O connections, driven in memory: the handshake in both roles with
// and without forward secrecy, the packet layout recomputed independently from DESIGN.md (AES-256
// in ECB over the counter blocks, so the CTR layout is checked rather than assumed), and every
// refusal: wrong key at either end, a bad DH value, a tampered, reordered or truncated packet.
import { createCipheriv, createHash, createHmac, getDiffieHellman, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createCompatConnection,
  SPIPED_NONCE_BYTES,
  SPIPED_PACKET_BYTES,
  SpipedConnection,
  SpipedOpener,
  SpipedSealer,
  spipedDhKeyPair,
  spipedDhmac,
  spipedKey,
  spipedSessionKeys,
  spipedSignedDh,
} from '../../src/compat/index.js';
import type { ConnectionEvent, ProtocolConnection } from '../../src/protocol/channel.js';
import { deterministicEntropy } from '../../src/protocol/primitives.js';

const KEY_FILE = Buffer.from('0123456789abcdef0123456789abcdef\n', 'latin1');
const OTHER_FILE = Buffer.from('0123456789abcdef0123456789abcdef', 'latin1');
const PRIME = getDiffieHellman('modp14').getPrime();

function end(
  role: 'client' | 'server',
  seed: number,
  opts: { fs?: boolean; requireFs?: boolean; key?: Buffer } = {},
) {
  return createCompatConnection(role, {
    profile: 'spiped',
    secret: opts.key ?? KEY_FILE,
    entropy: deterministicEntropy(`spiped-${seed}`),
    forwardSecrecy: opts.fs,
    requireForwardSecrecy: opts.requireFs,
  });
}

interface Pair {
  client: ProtocolConnection;
  server: ProtocolConnection;
  ce: ConnectionEvent[];
  se: ConnectionEvent[];
  wire: { c: Buffer[]; s: Buffer[] };
}

function pair(c: ProtocolConnection, s: ProtocolConnection): Pair {
  const p: Pair = { client: c, server: s, ce: [...c.start()], se: [...s.start()], wire: { c: [], s: [] } };
  pump(p);
  return p;
}

function pump(p: Pair, byteByByte = false): void {
  const feed = (to: ProtocolConnection, events: ConnectionEvent[], chunk: Buffer) => {
    if (to.error !== undefined) return;
    if (!byteByByte) events.push(...to.receive(chunk));
    else for (const b of chunk) if (to.error === undefined) events.push(...to.receive(Buffer.of(b)));
  };
  for (let moved = true; moved; ) {
    moved = false;
    for (const b of p.client.takeOutput()) {
      moved = true;
      p.wire.c.push(b);
      feed(p.server, p.se, b);
    }
    for (const b of p.server.takeOutput()) {
      moved = true;
      p.wire.s.push(b);
      feed(p.client, p.ce, b);
    }
  }
}

const types = (events: ConnectionEvent[]) => events.map((e) => e.type);
const messages = (events: ConnectionEvent[]) =>
  Buffer.concat(events.flatMap((e) => (e.type === 'message' ? [e.data] : [])));
const errorCode = (events: ConnectionEvent[]) => {
  const last = events.at(-1);
  return last?.type === 'error' ? last.error.code : undefined;
};

/** AES-256-CTR as DESIGN.md and crypto_aesctr.c define it, block by block: be64(nonce) || be64(block#). */
function ctrByHand(key: Buffer, nonce: number, data: Buffer): Buffer {
  const ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
  const out = Buffer.alloc(data.length);
  for (let block = 0; block * 16 < data.length; block++) {
    const counter = Buffer.alloc(16);
    counter.writeBigUInt64BE(BigInt(nonce), 0);
    counter.writeBigUInt64BE(BigInt(block), 8);
    const stream = ecb.update(counter);
    for (let i = 0; i < 16 && block * 16 + i < data.length; i++) {
      out[block * 16 + i] = (data[block * 16 + i] as number) ^ (stream[i] as number);
    }
  }
  return out;
}

function packetByHand(
  keys: { encrypt: Buffer; mac: Buffer },
  packet: number,
  m: Buffer,
  lengthField = m.length,
): Buffer {
  const padded = Buffer.alloc(1028);
  m.copy(padded);
  padded.writeUInt32BE(lengthField, 1024);
  const enc = ctrByHand(keys.encrypt, packet, padded);
  const pnum = Buffer.alloc(8);
  pnum.writeBigUInt64BE(BigInt(packet));
  return Buffer.concat([enc, createHmac('sha256', keys.mac).update(enc).update(pnum).digest()]);
}

describe('spiped key schedule (DESIGN.md)', () => {
  it('K is the SHA-256 of the whole key file, trailing newline included', () => {
    expect(spipedKey(KEY_FILE)).toEqual(createHash('sha256').update(KEY_FILE).digest());
    expect(spipedKey(KEY_FILE)).not.toEqual(spipedKey(OTHER_FILE));
  });

  it('dk_1 and dk_2 are one-iteration PBKDF2-SHA256 outputs split in order', () => {
    const K = spipedKey(KEY_FILE);
    const nc = Buffer.alloc(32, 1);
    const ns = Buffer.alloc(32, 2);
    const dk1 = pbkdf2Sync(K, Buffer.concat([nc, ns]), 1, 64, 'sha256');
    expect(spipedDhmac(K, nc, ns)).toEqual({ client: dk1.subarray(0, 32), server: dk1.subarray(32) });
    const y = Buffer.alloc(256, 3);
    const dk2 = pbkdf2Sync(K, Buffer.concat([nc, ns, y]), 1, 128, 'sha256');
    const keys = spipedSessionKeys(K, nc, ns, y);
    expect(
      Buffer.concat([keys.client.encrypt, keys.client.mac, keys.server.encrypt, keys.server.mac]),
    ).toEqual(dk2);
  });

  it('the DH value is 2^(2^258 + x) mod p in 256 big-endian bytes, and both ends agree', () => {
    const x = Buffer.alloc(32, 7);
    const a = spipedDhKeyPair(x);
    const b = spipedDhKeyPair(Buffer.alloc(32, 9));
    const p = BigInt(`0x${PRIME.toString('hex')}`);
    let r = 1n;
    let base = 2n;
    let e = (1n << 258n) + BigInt(`0x${x.toString('hex')}`);
    while (e > 0n) {
      if (e & 1n) r = (r * base) % p;
      base = (base * base) % p;
      e >>= 1n;
    }
    expect(a.y.length).toBe(256);
    expect(BigInt(`0x${a.y.toString('hex')}`)).toBe(r);
    expect(a.agree(b.y)).toEqual(b.agree(a.y));
    // Degenerate values that OpenSSL refuses are computed as spiped computes them.
    expect(a.agree(Buffer.alloc(256)).equals(Buffer.alloc(256))).toBe(true);
    const one = Buffer.alloc(256);
    one[255] = 1;
    expect(a.agree(one)).toEqual(one);
  });

  it('a packet is AES-256-CTR(be64 packet# || be64 block#) of M, zeros, be32 length, then the HMAC with be64 packet#', () => {
    const keys = { encrypt: Buffer.alloc(32, 0x11), mac: Buffer.alloc(32, 0x22) };
    const sealer = new SpipedSealer(keys);
    const m0 = Buffer.from('hello');
    const m1 = Buffer.alloc(1024, 0x61);
    const p0 = sealer.seal(m0);
    const p1 = sealer.seal(m1);
    expect(p0.length).toBe(SPIPED_PACKET_BYTES);
    expect(p0).toEqual(packetByHand(keys, 0, m0));
    expect(p1).toEqual(packetByHand(keys, 1, m1));
    const opener = new SpipedOpener(keys);
    expect(opener.open(p0)).toEqual(m0);
    expect(opener.open(p1)).toEqual(m1);
  });

  it('refuses a packet out of order, a flipped bit, and a length field of 0 or over 1024', () => {
    const keys = { encrypt: Buffer.alloc(32, 0x11), mac: Buffer.alloc(32, 0x22) };
    const sealer = new SpipedSealer(keys);
    sealer.seal(Buffer.from('a'));
    const second = sealer.seal(Buffer.from('b'));
    expect(() => new SpipedOpener(keys).open(second)).toThrow(
      expect.objectContaining({ code: 'ERR_RECORD_DECRYPT' }),
    );
    const flipped = Buffer.from(packetByHand(keys, 0, Buffer.from('a')));
    flipped[3] = (flipped[3] as number) ^ 1;
    expect(() => new SpipedOpener(keys).open(flipped)).toThrow(
      expect.objectContaining({ code: 'ERR_RECORD_DECRYPT' }),
    );
    for (const bad of [0, 1025]) {
      const p = packetByHand(keys, 0, Buffer.from('a'), bad);
      expect(() => new SpipedOpener(keys).open(p)).toThrow(
        expect.objectContaining({ code: 'ERR_RECORD_LENGTH' }),
      );
    }
  });
});

describe('spiped connections', () => {
  for (const [cfs, sfs] of [
    [true, true],
    [false, true],
    [true, false],
    [false, false],
  ] as const) {
    it(`handshake and bytes both ways (client fs=${cfs}, server fs=${sfs})`, () => {
      const p = pair(end('client', 1, { fs: cfs }), end('server', 2, { fs: sfs }));
      expect(types(p.ce)).toEqual(['established']);
      expect(types(p.se)).toEqual(['established']);
      const info = p.client.session;
      expect(info?.profile).toBe('spiped');
      expect(info?.forwardSecrecy).toBe(cfs && sfs);
      expect(p.server.session?.forwardSecrecy).toBe(cfs && sfs);
      // The first flight of each end is its nonce alone; then 288 bytes of y || h each way.
      expect(p.wire.c[0]?.length).toBe(SPIPED_NONCE_BYTES);
      expect(p.wire.s[0]?.length).toBe(SPIPED_NONCE_BYTES);
      expect(Buffer.concat(p.wire.c).length).toBe(32 + 288);
      expect(Buffer.concat(p.wire.s).length).toBe(32 + 288);
      const big = Buffer.alloc(5000, 0x5a);
      p.client.send(big);
      p.server.send(Buffer.from('pong'));
      pump(p, true);
      expect(messages(p.se)).toEqual(big);
      expect(messages(p.ce)).toEqual(Buffer.from('pong'));
      // 5000 bytes are five packets: 4 x 1024 + 904.
      expect(Buffer.concat(p.wire.c).length).toBe(32 + 288 + 5 * SPIPED_PACKET_BYTES);
      // A direction ends with the transport's end of stream, on a packet boundary.
      expect(types(p.server.receiveEnd())).toEqual(['close']);
    });
  }

  it('a no-forward-secrecy end sends y = 1 with its MAC', () => {
    const p = pair(end('client', 3, { fs: false }), end('server', 4));
    const yh = Buffer.concat(p.wire.c).subarray(32, 32 + 288);
    const y = yh.subarray(0, 256);
    expect(y.subarray(0, 255).every((b) => b === 0)).toBe(true);
    expect(y[255]).toBe(1);
    const nc = Buffer.concat(p.wire.c).subarray(0, 32);
    const ns = Buffer.concat(p.wire.s).subarray(0, 32);
    expect(yh).toEqual(spipedSignedDh(y, spipedDhmac(spipedKey(KEY_FILE), nc, ns).client));
  });

  it('wrong key: the server drops the client (ERR_AUTH_FAILED) and the client reads the drop as a refusal', () => {
    const p = pair(end('client', 5, { key: OTHER_FILE }), end('server', 6));
    expect(errorCode(p.se)).toBe('ERR_AUTH_FAILED');
    expect(p.client.isOpen).toBe(false);
    // The server sent its nonce and nothing else: no DH value for a client that failed.
    expect(Buffer.concat(p.wire.s).length).toBe(32);
    expect(errorCode(p.client.receiveEnd())).toBe('ERR_AUTH_REFUSED');
  });

  it('a client checks the server too (ERR_SERVER_AUTH_FAILED on a wrong MAC)', () => {
    const c = end('client', 7);
    c.start();
    const [nonceC] = c.takeOutput();
    const nonceS = Buffer.alloc(32, 8);
    const events = c.receive(nonceS);
    expect(events).toEqual([]);
    const dhmac = spipedDhmac(spipedKey(OTHER_FILE), nonceC as Buffer, nonceS);
    const y = spipedDhKeyPair(Buffer.alloc(32, 1)).y;
    expect(errorCode(c.receive(spipedSignedDh(y, dhmac.server)))).toBe('ERR_SERVER_AUTH_FAILED');
  });

  it('refuses y >= p with a valid MAC, y = 1 when forward secrecy is required, and a reflected nonce', () => {
    for (const [y, requireFs, code] of [
      [PRIME, false, 'ERR_BAD_KEY_SHARE'],
      [Buffer.concat([Buffer.alloc(255), Buffer.of(1)]), true, 'ERR_FORWARD_SECRECY_REQUIRED'],
    ] as const) {
      const s = end('server', 9, { requireFs });
      s.start();
      const [nonceS] = s.takeOutput();
      const nonceC = Buffer.alloc(32, 4);
      const dhmac = spipedDhmac(spipedKey(KEY_FILE), nonceC, nonceS as Buffer);
      expect(errorCode(s.receive(Buffer.concat([nonceC, spipedSignedDh(y, dhmac.client)])))).toBe(code);
    }
    const c = end('client', 10);
    c.start();
    const [own] = c.takeOutput();
    expect(errorCode(c.receive(own as Buffer))).toBe('ERR_REFLECTED_MESSAGE');
  });

  it('an end inside a packet is ERR_TRUNCATED; inside the handshake, a refusal or a truncation by role', () => {
    const p = pair(end('client', 11), end('server', 12));
    p.client.send(Buffer.from('x'));
    const [packet] = p.client.takeOutput();
    expect(types(p.server.receive((packet as Buffer).subarray(0, 100)))).toEqual([]);
    expect(errorCode(p.server.receiveEnd())).toBe('ERR_TRUNCATED');
    const s = end('server', 13);
    s.start();
    expect(errorCode(s.receive(Buffer.alloc(10)))).toBeUndefined();
    expect(errorCode(s.receiveEnd())).toBe('ERR_TRUNCATED');
  });

  it('refuses an empty key file and has no exporter', () => {
    expect(
      () =>
        new SpipedConnection('client', { keyFile: Buffer.alloc(0), entropy: deterministicEntropy('one') }),
    ).toThrow(expect.objectContaining({ code: 'ERR_KEY_TOO_SHORT' }));
    const p = pair(end('client', 14), end('server', 15));
    expect(() => p.client.exportKeyingMaterial('x')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_STATE' }),
    );
  });
});
