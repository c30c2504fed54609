/**
 * Test vectors of the native protocol (docs/protocol.md, "Test vectors").
 *
 * Every value is computed twice: once by the implementation (ClientConnection, ServerConnection)
 * and once here, from the specification alone, with nothing but node:crypto (HMAC, SHA-256,
 * X25519, ChaCha20-Poly1305). The two must agree byte for byte; the result must equal the committed
 * test/protocol/vectors/native-v2.json, and every hex value of that file must appear in docs/protocol.md.
 *
 * Run with UPDATE_VECTORS=1 to rewrite the JSON file instead of comparing with it.
 */

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ClientConnection,
  type ConnectionEvent,
  deterministicEntropy,
  LABEL_C2S,
  LABEL_CLIENT_FINISHED,
  LABEL_EXPORTER,
  LABEL_EXTRACT_SALT,
  LABEL_GATE,
  LABEL_IV,
  LABEL_KEY,
  LABEL_KEY_UPDATE,
  LABEL_S2C,
  LABEL_SERVER_FINISHED,
  type PresharedKey,
  ServerConnection,
  ServerContext,
} from '../../src/protocol/index.js';
import { hkdfExpand, hkdfExpandInto, hkdfExtract } from '../../src/protocol/primitives.js';
import { prng } from '../helpers/prng.js';

const VECTORS_FILE = fileURLToPath(new URL('./vectors/native-v2.json', import.meta.url));
const PROTOCOL_DOC = fileURLToPath(new URL('../../docs/protocol.md', import.meta.url));
const UPDATE = process.env.UPDATE_VECTORS === '1';

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

const TIMESTAMP = '2026-11-29T19:26:43Z';
const NOW = Date.parse(TIMESTAMP);
const CLIENT_SEED = 'sesame test vector client';
const SERVER_SEED = 'sesame test vector server';
const PSK = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const KEY: PresharedKey = { id: '0123456789abcdef', principal: 'vector', secret: PSK };

// The labels, written out as the specification gives them (not imported), so that a change in
// constants.ts shows up here as well as in the vectors.
const L = {
  salt: 'sesame v1',
  gate: 'sesame v1 gate',
  serverFinished: 'sesame v1 server finished',
  clientFinished: 'sesame v1 client finished',
  c2s: 'sesame v1 c2s',
  s2c: 'sesame v1 s2c',
  exporter: 'sesame v1 exporter',
  key: 'sesame v1 key',
  iv: 'sesame v1 iv',
  keyUpdate: 'sesame v1 key update',
  exportPrefix: 'sesame v1 export ',
} as const;

// ---------------------------------------------------------------------------------------------
// The protocol, from the specification, with node:crypto only
// ---------------------------------------------------------------------------------------------

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const cat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);

function hmac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** HKDF-Expand for L <= 32: T(1) = HMAC(PRK, info || 0x01), truncated (RFC 5869 section 2.3). */
function expand(prk: Uint8Array, info: Uint8Array, length = 32): Buffer {
  return hmac(prk, info, Buffer.of(1)).subarray(0, length);
}

/** HKDF-Extract then HKDF-Expand in one call, by node:crypto itself. */
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** Block `i` of the deterministic test randomness: SHA-256(seed || u32be(i)). */
const block = (seed: string, i: number): Buffer => sha256(Buffer.from(seed, 'utf8'), u32(i));

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

function x25519Private(scalar: Uint8Array) {
  return createPrivateKey({ key: cat(PKCS8_X25519, scalar), format: 'der', type: 'pkcs8' });
}

/** X25519(scalar, 9): the public key, read from the SPKI encoding (last 32 bytes). */
function x25519Public(scalar: Uint8Array): Buffer {
  const spki = createPublicKey(x25519Private(scalar)).export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32);
}

function x25519Shared(scalar: Uint8Array, peer: Uint8Array): Buffer {
  const publicKey = createPublicKey({
    key: cat(Buffer.from('302a300506032b656e032100', 'hex'), peer),
    format: 'der',
    type: 'spki',
  });
  return diffieHellman({ privateKey: x25519Private(scalar), publicKey });
}

function header(type: number, flags: number): Buffer {
  return cat(ascii('SESM'), Buffer.of(2, type, flags, 0)); // version 2
}

/** nonce = iv XOR (64-bit big-endian seq, left-padded with zeros to 12 bytes). */
function recordNonce(iv: Buffer, seq: number): Buffer {
  const pad = cat(Buffer.alloc(4), u64(seq));
  return Buffer.from(iv.map((b, i) => b ^ (pad[i] as number)));
}

interface RecordVector {
  seq: number;
  nonce: string;
  type: number;
  payload: string;
  record: string;
}

function sealRecord(key: Buffer, iv: Buffer, seq: number, type: number, payload: Buffer): RecordVector {
  const nonce = recordNonce(iv, seq);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(1 + payload.length + 16);
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  cipher.setAAD(length, { plaintextLength: 1 + payload.length });
  const body = cat(cipher.update(cat(Buffer.of(type), payload)), cipher.final(), cipher.getAuthTag());
  return { seq, nonce: hex(nonce), type, payload: hex(payload), record: hex(cat(length, body)) };
}

function openRecord(key: Buffer, iv: Buffer, seq: number, record: Buffer): { type: number; payload: Buffer } {
  const decipher = createDecipheriv('chacha20-poly1305', key, recordNonce(iv, seq), { authTagLength: 16 });
  decipher.setAAD(record.subarray(0, 2), { plaintextLength: record.length - 18 });
  decipher.setAuthTag(record.subarray(record.length - 16));
  const plain = cat(decipher.update(record.subarray(2, record.length - 16)), decipher.final());
  return { type: plain[0] as number, payload: plain.subarray(1) };
}

const RECORD_MESSAGE = 1;
const RECORD_CLOSE = 3;
const RECORD_KEY_UPDATE = 6;
const RECORD_BATCH = 7;

/** A batch record's payload: `u16(len(m)) || m` for each message, in order. */
const batchOf = (...ms: Buffer[]): Buffer =>
  cat(
    ...ms.flatMap((m) => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(m.length);
      return [length, m];
    }),
  );

/**
 * The records each side sends in the vectors: "hello" and "world", sent together, so in one batch
 * record; an empty message (always a record of its own); then close.
 */
const RECORD_PLAN: [number, Buffer][] = [
  [RECORD_BATCH, batchOf(Buffer.from('hello'), Buffer.from('world'))],
  [RECORD_MESSAGE, Buffer.alloc(0)],
  [RECORD_CLOSE, Buffer.alloc(0)],
];

type Mode = 'x25519' | 'pskOnly';

/** Everything about one handshake mode, computed from the specification alone. */
function specify(mode: Mode) {
  const fs = mode === 'x25519';
  const flags = fs ? 1 : 0;
  const early = hmac(ascii(L.salt), PSK);
  const gate = expand(early, ascii(L.gate));
  expect(gate).toEqual(hkdf(PSK, ascii(L.salt), ascii(L.gate)));

  // Randomness: the client draws its nonce, then its X25519 secret; this server implementation
  // draws one block for its own use first (the dummy key), then its nonce, then its X25519 secret.
  const clientNonce = block(CLIENT_SEED, 0);
  const clientPrivate = block(CLIENT_SEED, 1);
  const serverNonce = block(SERVER_SEED, 1);
  const serverPrivate = block(SERVER_SEED, 2);
  const clientShare = x25519Public(clientPrivate);
  const serverShare = x25519Public(serverPrivate);
  const shared = x25519Shared(clientPrivate, serverShare);
  expect(x25519Shared(serverPrivate, clientShare)).toEqual(shared);

  const chBody = cat(
    header(1, flags),
    Buffer.from(KEY.id, 'hex'),
    u64(NOW),
    clientNonce,
    fs ? clientShare : Buffer.alloc(0),
  );
  const mac1 = hmac(gate, chBody).subarray(0, 16);
  const clientHello = cat(chBody, mac1);

  const ikm = fs ? shared : Buffer.alloc(32);
  const hs = hmac(early, ikm);
  const shBody = cat(header(2, flags), serverNonce, fs ? serverShare : Buffer.alloc(0));
  const th1 = sha256(clientHello, shBody);
  const serverFinished = hmac(expand(hs, ascii(L.serverFinished)), th1);
  const serverHello = cat(shBody, serverFinished);
  const th2 = sha256(clientHello, serverHello);
  const clientFinished = hmac(expand(hs, ascii(L.clientFinished)), th2);
  const clientFinishedMessage = cat(header(3, flags), clientFinished);
  const th3 = sha256(clientHello, serverHello, clientFinishedMessage);

  const c2s = expand(hs, cat(ascii(L.c2s), th3));
  const s2c = expand(hs, cat(ascii(L.s2c), th3));
  const exporter = expand(hs, cat(ascii(L.exporter), th3));
  // The same values through node's own HKDF: Expand(Extract(early, ikm), info).
  expect(c2s).toEqual(hkdf(ikm, early, cat(ascii(L.c2s), th3)));
  expect(s2c).toEqual(hkdf(ikm, early, cat(ascii(L.s2c), th3)));
  expect(exporter).toEqual(hkdf(ikm, early, cat(ascii(L.exporter), th3)));

  const keys = (secret: Buffer) => ({
    key: expand(secret, ascii(L.key)),
    iv: expand(secret, ascii(L.iv), 12),
  });
  const c2sKeys = keys(c2s);
  const s2cKeys = keys(s2c);
  const channelBinding = expand(exporter, cat(ascii(L.exportPrefix), ascii('channel binding'), Buffer.of(0)));

  const plan = (k: { key: Buffer; iv: Buffer }) =>
    RECORD_PLAN.map(([type, payload], seq) => sealRecord(k.key, k.iv, seq, type, payload));

  // Key update: a key update record (request 0) at seq 0 under the first key, then "hello" at
  // seq 0 under the next one.
  const c2sNext = expand(c2s, ascii(L.keyUpdate));
  const s2cNext = expand(s2c, ascii(L.keyUpdate));
  const c2sNextKeys = keys(c2sNext);
  const s2cNextKeys = keys(s2cNext);
  const updatePlan = (first: { key: Buffer; iv: Buffer }, next: { key: Buffer; iv: Buffer }) => [
    sealRecord(first.key, first.iv, 0, RECORD_KEY_UPDATE, Buffer.of(0)),
    sealRecord(next.key, next.iv, 0, RECORD_MESSAGE, Buffer.from('hello')),
  ];

  return {
    flags,
    clientNonce: hex(clientNonce),
    ...(fs
      ? {
          clientPrivate: hex(clientPrivate),
          clientShare: hex(clientShare),
        }
      : {}),
    serverNonce: hex(serverNonce),
    ...(fs
      ? {
          serverPrivate: hex(serverPrivate),
          serverShare: hex(serverShare),
          sharedSecret: hex(shared),
        }
      : {}),
    mac1: hex(mac1),
    clientHello: hex(clientHello),
    hs: hex(hs),
    th1: hex(th1),
    serverFinished: hex(serverFinished),
    serverHello: hex(serverHello),
    th2: hex(th2),
    clientFinished: hex(clientFinished),
    clientFinishedMessage: hex(clientFinishedMessage),
    th3: hex(th3),
    c2s: hex(c2s),
    s2c: hex(s2c),
    exporter: hex(exporter),
    c2sKey: hex(c2sKeys.key),
    c2sIv: hex(c2sKeys.iv),
    s2cKey: hex(s2cKeys.key),
    s2cIv: hex(s2cKeys.iv),
    channelBinding: hex(channelBinding),
    records: { c2s: plan(c2sKeys), s2c: plan(s2cKeys) },
    keyUpdate: {
      c2sNext: hex(c2sNext),
      c2sNextKey: hex(c2sNextKeys.key),
      c2sNextIv: hex(c2sNextKeys.iv),
      s2cNext: hex(s2cNext),
      s2cNextKey: hex(s2cNextKeys.key),
      s2cNextIv: hex(s2cNextKeys.iv),
      c2s: updatePlan(c2sKeys, c2sNextKeys),
      s2c: updatePlan(s2cKeys, s2cNextKeys),
    },
  };
}

function specifyAll() {
  const early = hmac(ascii(L.salt), PSK);
  return {
    description:
      'Sesame native protocol v2 test vectors (docs/protocol.md, "Test vectors"). All byte strings are lowercase hex.',
    inputs: {
      psk: hex(PSK),
      keyId: KEY.id,
      principal: KEY.principal,
      timestamp: TIMESTAMP,
      timestampMs: NOW,
      clientSeed: CLIENT_SEED,
      serverSeed: SERVER_SEED,
    },
    pskSecrets: { early: hex(early), gate: hex(expand(early, ascii(L.gate))) },
    modes: { x25519: specify('x25519'), pskOnly: specify('pskOnly') },
  };
}

// ---------------------------------------------------------------------------------------------
// The implementation, driven with the same inputs
// ---------------------------------------------------------------------------------------------

function newServer(mode: Mode): ServerConnection {
  const ctx = new ServerContext({
    keys: [KEY],
    entropy: deterministicEntropy(SERVER_SEED),
    now: () => NOW,
    requireForwardSecrecy: mode === 'x25519',
  });
  return new ServerConnection(ctx);
}

function newClient(mode: Mode): ClientConnection {
  return new ClientConnection({
    key: KEY,
    entropy: deterministicEntropy(CLIENT_SEED),
    now: () => NOW,
    forwardSecrecy: mode === 'x25519',
  });
}

function only(chunks: Buffer[]): Buffer {
  expect(chunks).toHaveLength(1);
  return chunks[0] as Buffer;
}

/** Events as plain data, for comparisons. */
function plain(events: ConnectionEvent[]): unknown[] {
  return events.map((e): unknown => {
    if (e.type === 'established') {
      const binding = e.session.channelBinding;
      return {
        type: e.type,
        profile: e.session.profile,
        keyId: e.session.keyId,
        principal: e.session.principal,
        forwardSecrecy: e.session.forwardSecrecy,
        channelBinding: binding === undefined ? undefined : hex(binding),
      };
    }
    if (e.type === 'message') return { type: e.type, data: hex(e.data) };
    if (e.type === 'ping' || e.type === 'pong') return { type: e.type, payload: hex(e.payload) };
    if (e.type === 'error') return { type: e.type, code: e.error.code };
    return { type: e.type };
  });
}

function runImplementation(mode: Mode) {
  const client = newClient(mode);
  const server = newServer(mode);
  const clientHello = only(client.takeOutput());
  const serverEvents = server.receive(clientHello);
  expect(serverEvents).toEqual([]);
  const serverHello = only(server.takeOutput());
  const clientEvents = client.receive(serverHello);
  const clientFinishedMessage = only(client.takeOutput());
  serverEvents.push(...server.receive(clientFinishedMessage));
  expect(server.hasOutput).toBe(false);

  const sendPlan = (conn: ClientConnection | ServerConnection): Buffer[] => {
    conn.send(Buffer.from('hello'));
    conn.send(Buffer.from('world'));
    conn.send(Buffer.alloc(0));
    conn.close();
    return conn.takeOutput();
  };
  const c2s = sendPlan(client);
  const s2c = sendPlan(server);
  serverEvents.push(...server.receive(Buffer.concat(c2s)));
  clientEvents.push(...client.receive(Buffer.concat(s2c)));
  return {
    clientHello,
    serverHello,
    clientFinishedMessage,
    c2s,
    s2c,
    clientEvents,
    serverEvents,
    exporterCheck: client.exportKeyingMaterial('vector check', Buffer.from('ctx')),
  };
}

function runKeyUpdate(mode: Mode): { c2s: Buffer[]; s2c: Buffer[]; events: unknown[] } {
  const client = newClient(mode);
  const server = newServer(mode);
  server.receive(only(client.takeOutput()));
  client.receive(only(server.takeOutput()));
  server.receive(only(client.takeOutput()));
  client.updateKeys(false);
  client.send(Buffer.from('hello'));
  server.updateKeys(false);
  server.send(Buffer.from('hello'));
  const c2s = client.takeOutput();
  const s2c = server.takeOutput();
  const events = [...plain(server.receive(Buffer.concat(c2s))), ...plain(client.receive(Buffer.concat(s2c)))];
  return { c2s, s2c, events };
}

// ---------------------------------------------------------------------------------------------
// Feeding helpers
// ---------------------------------------------------------------------------------------------

function splits(stream: Buffer): { name: string; chunks: Buffer[] }[] {
  const out = [
    { name: 'whole', chunks: [stream] },
    {
      name: 'byte by byte',
      chunks: Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1)),
    },
  ];
  for (let s = 1; s <= 25; s++) {
    const rand = prng(s);
    const chunks: Buffer[] = [];
    let at = 0;
    while (at < stream.length) {
      const n = 1 + Math.floor(rand() * (s % 2 === 0 ? 40 : 200));
      // Copy each chunk so no test relies on views into one shared buffer.
      chunks.push(Buffer.from(stream.subarray(at, at + n)));
      at += n;
    }
    out.push({ name: `random split ${s}`, chunks });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

const MODES: Mode[] = ['x25519', 'pskOnly'];

function loadCommitted(): unknown {
  if (!existsSync(VECTORS_FILE)) {
    throw new Error(`${VECTORS_FILE} is missing: run the tests once with UPDATE_VECTORS=1`);
  }
  return JSON.parse(readFileSync(VECTORS_FILE, 'utf8'));
}

/** Every string value in `v` that is a non-empty lowercase hex byte string. */
function hexValues(v: unknown, path = ''): { path: string; value: string }[] {
  if (typeof v === 'string') return /^(?:[0-9a-f]{2})+$/.test(v) ? [{ path, value: v }] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => hexValues(x, `${path}[${i}]`));
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v).flatMap(([k, x]) => hexValues(x, path === '' ? k : `${path}.${k}`));
  }
  return [];
}

describe('HKDF primitives', () => {
  it('match RFC 5869 test case 1', () => {
    const ikm = Buffer.alloc(22, 0x0b);
    const salt = Buffer.from('000102030405060708090a0b0c', 'hex');
    const info = Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex');
    const prk = hkdfExtract(salt, ikm);
    expect(hex(prk)).toBe('077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5');
    // The RFC's OKM is 42 bytes; one HMAC gives its first 32.
    const okm = hkdf(ikm, salt, info, 42);
    expect(hex(okm)).toBe(
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
    expect(hkdfExpand(prk, info)).toEqual(okm.subarray(0, 32));
    expect(hkdfExpand(prk, info.subarray(0, 3), info.subarray(3))).toEqual(okm.subarray(0, 32));
    expect(hkdfExpand(prk, info, undefined, 12)).toEqual(okm.subarray(0, 12));
  });

  it('agree with crypto.hkdfSync for many inputs and every output length up to 32', () => {
    const rand = deterministicEntropy('hkdf cross-check');
    for (let i = 0; i < 300; i++) {
      const [a, b, c, d, e] = rand.bytes(5);
      const ikm = rand.bytes((a as number) % 100);
      const salt = rand.bytes((b as number) % 80);
      const label = rand.bytes((c as number) % 60);
      const context = rand.bytes((d as number) % 3 === 0 ? 0 : ((d as number) % 50) + 1);
      const length = ((e as number) % 32) + 1;
      const want = hkdf(ikm, salt, cat(label, context), length);
      const prk = hkdfExtract(salt, ikm);
      expect(prk).toEqual(hmac(salt, ikm));
      expect(hkdfExpand(prk, label, context.length === 0 ? undefined : context, length)).toEqual(want);
      expect(hkdfExpand(prk, cat(label, context), undefined, length)).toEqual(want);
      // Written in place: the same bytes, and nothing outside them touched.
      const out = Buffer.alloc(length + 8, 0xee);
      hkdfExpandInto(prk, cat(label, context), out, 4, length);
      expect(out.subarray(4, 4 + length)).toEqual(want);
      expect([...out.subarray(0, 4), ...out.subarray(4 + length)].every((x) => x === 0xee)).toBe(true);
    }
  });
});

let specified: ReturnType<typeof specifyAll> | undefined;
/** The specified vectors, computed once (inside a test, so that its checks report there). */
const getSpec = () => {
  specified ??= specifyAll();
  return specified;
};

describe('native v2 test vectors', () => {
  it('use the labels of constants.ts', () => {
    expect([
      LABEL_EXTRACT_SALT,
      LABEL_GATE,
      LABEL_SERVER_FINISHED,
      LABEL_CLIENT_FINISHED,
      LABEL_C2S,
      LABEL_S2C,
      LABEL_EXPORTER,
      LABEL_KEY,
      LABEL_IV,
      LABEL_KEY_UPDATE,
    ]).toEqual([
      L.salt,
      L.gate,
      L.serverFinished,
      L.clientFinished,
      L.c2s,
      L.s2c,
      L.exporter,
      L.key,
      L.iv,
      L.keyUpdate,
    ]);
  });

  for (const mode of MODES) {
    it(`${mode}: the implementation produces the specified bytes`, () => {
      const want = getSpec().modes[mode];
      const got = runImplementation(mode);
      expect(hex(got.clientHello)).toBe(want.clientHello);
      expect(hex(got.serverHello)).toBe(want.serverHello);
      expect(hex(got.clientFinishedMessage)).toBe(want.clientFinishedMessage);
      expect(got.c2s.map(hex)).toEqual(want.records.c2s.map((r) => r.record));
      expect(got.s2c.map(hex)).toEqual(want.records.s2c.map((r) => r.record));
      const established = {
        type: 'established',
        profile: 'native',
        keyId: KEY.id,
        principal: KEY.principal,
        forwardSecrecy: mode === 'x25519',
        channelBinding: want.channelBinding,
      };
      const received = [
        established,
        { type: 'message', data: hex(Buffer.from('hello')) },
        { type: 'message', data: hex(Buffer.from('world')) },
        { type: 'message', data: '' },
        { type: 'close' },
      ];
      expect(plain(got.clientEvents)).toEqual(received);
      expect(plain(got.serverEvents)).toEqual(received);
      // The exporter, through the public API.
      const exporter = Buffer.from(want.exporter, 'hex');
      expect(got.exporterCheck).toEqual(
        expand(exporter, cat(ascii(L.exportPrefix), ascii('vector check'), Buffer.of(0), ascii('ctx'))),
      );
    });

    it(`${mode}: records decrypt under the specified keys and key update restarts the sequence`, () => {
      const want = getSpec().modes[mode];
      for (const dir of ['c2s', 's2c'] as const) {
        const key = Buffer.from(dir === 'c2s' ? want.c2sKey : want.s2cKey, 'hex');
        const iv = Buffer.from(dir === 'c2s' ? want.c2sIv : want.s2cIv, 'hex');
        for (const r of want.records[dir]) {
          const opened = openRecord(key, iv, r.seq, Buffer.from(r.record, 'hex'));
          expect({ type: opened.type, payload: hex(opened.payload) }).toEqual({
            type: r.type,
            payload: r.payload,
          });
        }
      }
      const got = runKeyUpdate(mode);
      expect(got.c2s.map(hex)).toEqual(want.keyUpdate.c2s.map((r) => r.record));
      expect(got.s2c.map(hex)).toEqual(want.keyUpdate.s2c.map((r) => r.record));
      expect(got.events).toEqual([
        { type: 'message', data: hex(Buffer.from('hello')) },
        { type: 'message', data: hex(Buffer.from('hello')) },
      ]);
    });

    it(`${mode}: fresh connections give the same events whatever the input split`, () => {
      const want = getSpec().modes[mode];
      const fromHex = (s: string) => Buffer.from(s, 'hex');
      const toServer = cat(
        fromHex(want.clientHello),
        fromHex(want.clientFinishedMessage),
        ...want.records.c2s.map((r) => fromHex(r.record)),
      );
      const toClient = cat(fromHex(want.serverHello), ...want.records.s2c.map((r) => fromHex(r.record)));
      const expected = [
        {
          type: 'established',
          profile: 'native',
          keyId: KEY.id,
          principal: KEY.principal,
          forwardSecrecy: mode === 'x25519',
          channelBinding: want.channelBinding,
        },
        { type: 'message', data: hex(Buffer.from('hello')) },
        { type: 'message', data: hex(Buffer.from('world')) },
        { type: 'message', data: '' },
        { type: 'close' },
      ];
      for (const { name, chunks } of splits(toServer)) {
        const server = newServer(mode);
        const events = chunks.flatMap((c) => server.receive(c));
        expect(plain(events), `server, ${name}`).toEqual(expected);
        expect(hex(Buffer.concat(server.takeOutput())), `server output, ${name}`).toBe(want.serverHello);
        expect(server.receiveEnd()).toEqual([]);
      }
      for (const { name, chunks } of splits(toClient)) {
        const client = newClient(mode);
        const events = chunks.flatMap((c) => client.receive(c));
        expect(plain(events), `client, ${name}`).toEqual(expected);
        expect(hex(Buffer.concat(client.takeOutput())), `client output, ${name}`).toBe(
          want.clientHello + want.clientFinishedMessage,
        );
        expect(client.receiveEnd()).toEqual([]);
      }
    });
  }

  it('version 1 is refused with ERR_UNSUPPORTED_VERSION at either end', () => {
    const want = getSpec().modes.x25519;
    const asVersion1 = (h: string): Buffer => {
      const b = Buffer.from(h, 'hex');
      b[4] = 1;
      return b;
    };
    const server = newServer('x25519');
    const serverEvents = plain(server.receive(asVersion1(want.clientHello)));
    expect(serverEvents).toEqual([{ type: 'error', code: 'ERR_UNSUPPORTED_VERSION' }]);
    expect(server.error?.message).toMatch(/version 1/);
    expect(server.takeOutput()).toEqual([]);
    const client = newClient('x25519');
    client.takeOutput();
    expect(plain(client.receive(asVersion1(want.serverHello)))).toEqual([
      { type: 'error', code: 'ERR_UNSUPPORTED_VERSION' },
    ]);
  });

  it('equal the committed JSON file (UPDATE_VECTORS=1 rewrites it)', () => {
    const spec = getSpec();
    const regenerated = JSON.parse(JSON.stringify(spec)) as unknown;
    if (UPDATE) {
      mkdirSync(dirname(VECTORS_FILE), { recursive: true });
      writeFileSync(VECTORS_FILE, `${JSON.stringify(spec, null, 2)}\n`);
      return;
    }
    expect(regenerated).toEqual(loadCommitted());
  });

  it('appear verbatim in docs/protocol.md, with every label', () => {
    const doc = readFileSync(PROTOCOL_DOC, 'utf8');
    const missing = hexValues(UPDATE ? getSpec() : loadCommitted()).filter(
      ({ value }) => !doc.includes(value),
    );
    expect(missing.map((m) => m.path)).toEqual([]);
    for (const label of Object.values(L)) expect(doc).toContain(`"${label}"`);
  });
});
