/**
 * The protocol core's own costs, without sockets (`bench --core`): a handshake per side, a
 * small message round trip, bulk sealing and opening, and the Node crypto calls they are made of.
 * These are the floor under the socket workloads: whatever the socket layer does, a connection
 * costs at least its handshake here, and a message at least its records.
 *
 * Each figure is the lowest of several rounds of CPU time per operation, so a busy machine
 * disturbs it less than wall-clock throughput.
 *
 * Rules:
 * - Every loop is bounded by a count (`cpuPerCall`, `sides`, `connectionState`).
 * - No key here comes from `generateKeyPairSync`: on Node 20, exporting (or otherwise locking) a
 *   key it made deadlocks the process when a garbage collection during the call finalizes the
 *   key-generation job, whose destructor waits for the lock the call holds (seen under gdb:
 *   `~KeyGenJob` waiting on the key's mutex, called by the collector from `ExportJWKEdKey`). This
 *   run once did exactly that and hung. X25519 keys are imported from raw bytes as JWK instead,
 *   which makes no job (see src/protocol/primitives.ts).
 */

import {
  createCipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
} from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sodiumBackend } from '../../src/net/crypto-backend.js';
import { nodeCryptoBackend } from '../../src/protocol/backend.js';
import { DEFAULT_REPLAY_CACHE_ENTRIES } from '../../src/protocol/constants.js';
import {
  ClientConnection,
  ServerConnection,
  ServerContext,
  systemEntropy,
} from '../../src/protocol/index.js';
// Internal: the HMAC the handshake uses, measured as the core calls it (not exported).
import { hmacSha256 } from '../../src/protocol/primitives.js';
import { ReplayCache } from '../../src/protocol/replay-cache.js';

export interface CoreResult {
  /** Stable key: handshake-fs, handshake-psk, echo-64, one-way-16k, one-way-64k, or a crypto call. */
  readonly id: string;
  readonly name: string;
  /** CPU µs per operation on the client side (or for the whole operation when there are no sides). */
  readonly clientUs: number;
  /** CPU µs per operation on the server side (NaN when not applicable). */
  readonly serverUs: number;
  /** Set for the one row that is memory, not time: clientUs/serverUs are then bytes. */
  readonly unit?: 'bytes' | undefined;
}

const KEY = { id: '0123456789abcdef', principal: 'bench', secret: randomBytes(32) };

/** Time `fn` in CPU µs per call: the lowest of `rounds` rounds of `n` calls. */
function cpuPerCall(fn: () => void, n: number, rounds: number): number {
  for (let i = 0; i < Math.ceil(n / 4); i++) fn();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const d = process.cpuUsage(t);
    best = Math.min(best, (d.user + d.system) / n);
  }
  return best;
}

/** Per-side cost: `step` gets a timer to wrap the server's calls in; the rest is the client's. */
function sides(step: (server: <T>(f: () => T) => T) => void, n: number, rounds: number): [number, number] {
  let serverNs = 0n;
  const server = <T>(f: () => T): T => {
    const t = process.hrtime.bigint();
    try {
      return f();
    } finally {
      serverNs += process.hrtime.bigint() - t;
    }
  };
  for (let i = 0; i < Math.ceil(n / 4); i++) step(server);
  let bestTotal = Number.POSITIVE_INFINITY;
  let bestServer = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    serverNs = 0n;
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) step(server);
    const total = Number(process.hrtime.bigint() - t) / 1000 / n;
    const srv = Number(serverNs) / 1000 / n;
    if (total < bestTotal) {
      bestTotal = total;
      bestServer = srv;
    }
  }
  return [bestTotal - bestServer, bestServer];
}

function feed(to: ClientConnection | ServerConnection, chunks: Buffer[]): void {
  for (const c of chunks) {
    for (const e of to.receive(c)) if (e.type === 'error') throw e.error;
  }
}

function handshake(
  forwardSecrecy: boolean,
  ctx: ServerContext,
  server: <T>(f: () => T) => T,
): [ClientConnection, ServerConnection] {
  const c = new ClientConnection({ key: KEY, forwardSecrecy, entropy: systemEntropy, now: Date.now });
  const s = server(() => new ServerConnection(ctx));
  const ch = c.takeOutput();
  const sh = server(() => {
    feed(s, ch);
    return s.takeOutput();
  });
  feed(c, sh);
  const cf = c.takeOutput();
  server(() => feed(s, cf));
  if (!s.isOpen || !c.isOpen) throw new Error('handshake did not complete');
  return [c, s];
}

/**
 * Heap (and buffer) bytes one established connection keeps, per side: `count` connections are
 * made and held, each after one message each way, and the growth is read after full collections.
 */
function connectionState(ctx: ServerContext, count: number): CoreResult {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const used = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  const message = Buffer.alloc(32, 1);
  const make = (): [ClientConnection, ServerConnection] => {
    const [c, s] = handshake(true, ctx, (f) => f());
    c.send(message);
    feed(s, c.takeOutput());
    s.send(message);
    feed(c, s.takeOutput());
    return [c, s];
  };
  for (let i = 0; i < Math.min(200, count); i++) make();
  const clients: ClientConnection[] = [];
  const servers: ServerConnection[] = [];
  let before = used();
  for (let i = 0; i < count; i++) {
    const [c, s] = make();
    clients.push(c);
    servers.push(s);
  }
  const both = used() - before;
  clients.length = 0;
  before = used();
  const serverOnly = before;
  servers.length = 0;
  const serverBytes = (serverOnly - used()) / count;
  return {
    id: 'state-bytes',
    name: 'state kept per open connection, bytes (heap + buffers)',
    clientUs: both / count - serverBytes,
    serverUs: serverBytes,
    unit: 'bytes',
  };
}

/** Measure the core. `scale` < 1 shortens every loop (for a smoke run). */
export function runCore(scale = 1): CoreResult[] {
  const n = (k: number) => Math.max(10, Math.round(k * scale));
  const rounds = scale < 1 ? 2 : 7;
  const out: CoreResult[] = [];
  const ctx = (requireForwardSecrecy: boolean) =>
    new ServerContext({ keys: [KEY], entropy: systemEntropy, now: Date.now, requireForwardSecrecy });
  for (const fs of [true, false]) {
    const context = ctx(fs);
    const [c, s] = sides((server) => void handshake(fs, context, server), n(2_000), rounds);
    out.push({
      id: fs ? 'handshake-fs' : 'handshake-psk',
      name: `handshake, ${fs ? 'forward secrecy (X25519)' : 'PSK-only'}`,
      clientUs: c,
      serverUs: s,
    });
  }
  const [client, server] = handshake(true, ctx(true), (f) => f());
  for (const size of [64, 16 * 1024, 64 * 1024]) {
    const message = randomBytes(size);
    const [c, s] = sides(
      (srv) => {
        client.send(message);
        const wire = client.takeOutput();
        const reply = srv(() => {
          for (const chunk of wire) {
            for (const e of server.receive(chunk))
              if (e.type === 'message') server.send(size <= 64 ? e.data : e.data.subarray(0, 8));
          }
          return server.takeOutput();
        });
        feed(client, reply);
      },
      n(size <= 64 ? 20_000 : 1_000),
      rounds,
    );
    out.push({
      id: size <= 64 ? `echo-${size}` : `one-way-${size / 1024}k`,
      name: size <= 64 ? `${size}-byte echo round trip` : `${size / 1024} KiB message one way (8-byte reply)`,
      clientUs: c,
      serverUs: s,
    });
  }
  // The Node crypto calls underneath.
  const key32 = randomBytes(32);
  const msg = randomBytes(64);
  // Raw scalars imported as JWK: no key-generation job exists to deadlock a later export.
  const minePrivate = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: randomBytes(32).toString('base64url'), x: '' },
    format: 'jwk',
  });
  const peerJwk = {
    kty: 'OKP',
    crv: 'X25519',
    x: nodeCryptoBackend.x25519Base(randomBytes(32)).toString('base64url'),
  };
  const peerKey = createPublicKey({ key: peerJwk, format: 'jwk' });
  const iv = randomBytes(12);
  // A server's replay cache once full (the default bound): every record evicts the oldest entry.
  const replay = new ReplayCache(DEFAULT_REPLAY_CACHE_ENTRIES);
  const replayNonce = Buffer.alloc(32);
  let replayCount = 0;
  const recordNonce = () => {
    replayNonce.writeUInt32BE(replayCount++, 0);
    replay.check(replayNonce, 0, 1e15);
  };
  for (let i = 0; i < DEFAULT_REPLAY_CACHE_ENTRIES; i++) recordNonce();
  const calls: [string, string, () => void, number][] = [
    ['replay-full', 'replay cache check, full (100,000 entries)', recordNonce, 50_000],
    [
      'createHmac',
      'createHmac SHA-256, 64 bytes',
      () => createHmac('sha256', key32).update(msg).digest(),
      20_000,
    ],
    ['hmac', 'hmacSha256 (two one-shot hashes), 64 bytes', () => hmacSha256(key32, msg), 20_000],
    [
      'aes-gcm-64',
      'AES-256-GCM record, 64 bytes (createCipheriv..getAuthTag)',
      () => {
        const c = createCipheriv('aes-256-gcm', key32, iv, { authTagLength: 16 });
        c.update(msg);
        c.final();
        c.getAuthTag();
      },
      20_000,
    ],
    ...backendCalls(key32, iv),
    ['x25519-keypair', 'X25519 key pair (systemEntropy.x25519)', () => systemEntropy.x25519(), 2_000],
    [
      'x25519-import',
      'X25519 peer key import (JWK)',
      () => createPublicKey({ key: peerJwk, format: 'jwk' }),
      5_000,
    ],
    [
      'x25519-dh',
      'X25519 diffieHellman',
      () => diffieHellman({ privateKey: minePrivate, publicKey: peerKey }),
      2_000,
    ],
  ];
  for (const [id, name, fn, k] of calls) {
    out.push({ id, name, clientUs: cpuPerCall(fn, n(k), rounds), serverUs: Number.NaN });
  }
  // Last, as it leaves the most garbage behind; listed after the handshakes.
  out.splice(2, 0, connectionState(ctx(true), n(2_000)));
  return out;
}

/** Each crypto backend's record seal and X25519 calls, one row each. */
function backendCalls(key: Buffer, iv: Buffer): [string, string, () => void, number][] {
  const out: [string, string, () => void, number][] = [];
  const record = Buffer.alloc(1 + 64 + 16);
  const aad = Buffer.alloc(2);
  const scalar = randomBytes(32);
  const peer = nodeCryptoBackend.x25519Base(randomBytes(32));
  for (const b of [sodiumBackend, nodeCryptoBackend]) {
    if (b === undefined) continue;
    out.push(
      [
        `chacha-64-${b.name}`,
        `ChaCha20-Poly1305 record, 64 bytes (${b.name} backend)`,
        () => b.sealInPlace(key, iv, aad, record, 0, 65),
        20_000,
      ],
      [
        `x25519-dh-${b.name}`,
        `X25519 key pair + agreement (${b.name} backend)`,
        () => b.x25519(scalar, peer) && b.x25519Base(scalar),
        2_000,
      ],
    );
  }
  return out;
}

export function renderCore(results: readonly CoreResult[]): string {
  const fmt = (x: number, unit?: 'bytes') =>
    !Number.isFinite(x) ? '—' : unit === 'bytes' ? x.toFixed(0) : x.toFixed(1);
  const w = Math.max(...results.map((r) => r.name.length));
  const lines = [
    'protocol core without sockets: CPU µs per operation (lowest of several rounds), and the state it keeps',
    `  ${'operation'.padEnd(w)}  ${'client'.padStart(8)}  ${'server'.padStart(8)}`,
  ];
  for (const r of results)
    lines.push(
      `  ${r.name.padEnd(w)}  ${fmt(r.clientUs, r.unit).padStart(8)}  ${fmt(r.serverUs, r.unit).padStart(8)}`,
    );
  lines.push('  (the Node crypto rows are one call each, in the client column)');
  return `${lines.join('\n')}\n`;
}
