/**
 * Memory and connection exhaustion at a stream server, over loopback with real sockets: input
 * held across connections (message fragments never completed, unterminated lines) stays under
 * the server's input budget, the newest offenders are closed with ERR_INPUT_BUDGET and everyone
 * else keeps being served.
 */
import { createConnection, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { compatServerProfile } from '../../src/compat/index.js';
import type { AuthEvent } from '../../src/net/base-server.js';
import { connect } from '../../src/net/client.js';
import { sessionHandler } from '../../src/net/handlers.js';
import { type ServerOptions, SesameServer } from '../../src/net/stream-server.js';
import { ClientConnection, systemEntropy } from '../../src/protocol/index.js';
import { echoService } from '../../src/services/handlers.js';
import { KEY_A } from '../helpers/pair.js';

const servers: SesameServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(
  over: Partial<ServerOptions> = {},
): Promise<{ server: SesameServer; port: number; auth: AuthEvent[] }> {
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [KEY_A],
    handler: echoService,
    ...over,
  });
  const auth: AuthEvent[] = [];
  server.on('auth', (e) => auth.push(e));
  servers.push(server);
  const url = await server.listen();
  return { server, port: Number(/:(\d+)$/.exec(url)?.[1]), auth };
}

async function startWithUrl(
  over: Partial<ServerOptions> = {},
): Promise<{ server: SesameServer; url: string; auth: AuthEvent[] }> {
  const r = await start(over);
  return { ...r, url: r.server.url };
}

function raw(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    sockets.push(s);
    s.once('error', reject);
  });
}

function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve();
    s.on('error', () => {});
    s.once('close', () => resolve());
  });
}

/** A native client over a raw socket, driven by hand: the test decides which records leave. */
async function handshake(
  port: number,
): Promise<{ socket: Socket; conn: ClientConnection; replies: Buffer[] }> {
  const socket = await raw(port);
  const conn = new ClientConnection({ key: KEY_A, entropy: systemEntropy, now: Date.now });
  const replies: Buffer[] = [];
  const open = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk) => {
      for (const e of conn.receive(chunk)) {
        if (e.type === 'established') resolve();
        else if (e.type === 'message') replies.push(e.data);
        else if (e.type === 'error') reject(e.error);
      }
      for (const b of conn.takeOutput()) socket.write(b);
    });
    socket.once('close', () => reject(new Error('closed during the handshake')));
  });
  for (const b of conn.takeOutput()) socket.write(b);
  await open;
  return { socket, conn, replies };
}

/** Seal a message of `bytes` and write every record but the last: a message that never completes. */
function sendAllButLast(c: { socket: Socket; conn: ClientConnection }, bytes: number): Buffer {
  c.conn.send(Buffer.alloc(bytes, 0x42));
  const records = c.conn.takeOutput();
  const last = records.pop() as Buffer;
  for (const r of records) c.socket.write(r);
  return last;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('input held across connections', () => {
  it('counts message fragments and closes the newest offenders over the input budget', async () => {
    const MiB = 1024 * 1024;
    const held = MiB - 16 * 1024; // 63 of a 1 MiB message's 64 records
    const budget = 3 * held + 512 * 1024;
    const { server, port } = await start({ inputBudgetBytes: budget });
    const peers = [];
    const lasts: Buffer[] = [];
    // Three peers each hold 63 of the 64 records of a 1 MiB message, under budget.
    for (let i = 0; i < 3; i++) {
      const p = await handshake(port);
      peers.push(p);
      lasts.push(sendAllButLast(p, MiB));
      await until(() => server.heldInputBytes === (i + 1) * held);
    }
    expect(server.heldInputBytes).toBe(3 * held);
    expect(server.connectionCount).toBe(3);
    // A fourth one pushes the total over (holding over 64 KiB by then): it is the newest
    // offender, and only it is closed.
    const fourth = await handshake(port);
    const errors: string[] = [];
    server.on('session-error', (e) => errors.push(e.code));
    const gone = closed(fourth.socket);
    sendAllButLast(fourth, MiB);
    await gone;
    await until(() => server.connectionCount === 3);
    expect(errors).toEqual(['ERR_INPUT_BUDGET']);
    expect(server.heldInputBytes).toBe(3 * held);
    // The others are still served: their messages complete and come back whole.
    for (const [i, p] of peers.entries()) {
      p.socket.write(lasts[i] as Buffer);
      await until(() => p.replies.length === 1);
      expect(p.replies[0]?.length).toBe(MiB);
    }
    expect(server.heldInputBytes).toBe(0);
  });

  it('bounds unterminated lines of --profile none --framing line the same way', async () => {
    const KiB = 1024;
    const { server, port } = await start({
      profile: compatServerProfile({ profile: 'none', framing: 'line' }),
      handler: sessionHandler(async (session) => {
        for await (const m of session) session.send(m);
      }),
      inputBudgetBytes: 512 * KiB,
    });
    const a = await raw(port);
    a.write(Buffer.alloc(300 * KiB, 0x61));
    await until(() => server.heldInputBytes === 300 * KiB);
    const b = await raw(port);
    const bClosed = closed(b);
    b.write(Buffer.alloc(300 * KiB, 0x62));
    await bClosed;
    await until(() => server.heldInputBytes === 300 * KiB);
    // The first line completes and is served.
    const reply = new Promise<number>((resolve) => {
      let n = 0;
      a.on('data', (d) => {
        n += d.length;
        if (n === 300 * KiB + 1) resolve(n);
      });
    });
    a.write('\n');
    expect(await reply).toBe(300 * KiB + 1);
    expect(server.heldInputBytes).toBe(0);
  });
});

describe('connections from one source', () => {
  it('a source that floods with unfinished handshakes cannot lock out clients from other addresses', async () => {
    const { server, url, auth } = await startWithUrl({ maxConnections: 60, maxHandshakesPerSource: 16 });
    // The flood: 60 connections from 127.0.0.2 that never send a byte, as many as maxConnections.
    const flood: Socket[] = [];
    for (let i = 0; i < 60; i++) flood.push(await raw(Number(/:(\d+)$/.exec(url)?.[1]), '127.0.0.2'));
    await until(() => auth.filter((e) => !e.ok).length >= 44);
    expect(server.connectionCount).toBe(16);
    expect(auth.filter((e) => !e.ok && e.code === 'ERR_SERVER_BUSY')).toHaveLength(44);
    // Legitimate clients from other addresses keep getting in while the flood holds its slots.
    let ok = 0;
    const attempts = 40;
    await Promise.all(
      Array.from({ length: attempts }, async (_, i) => {
        try {
          const s = await connect(url, { key: KEY_A, localAddress: `127.0.0.${3 + (i % 4)}` });
          if ((await s.request(Buffer.from(`c${i}`))).toString() === `c${i}`) ok++;
          await s.close();
        } catch {
          // counted as a failure below
        }
      }),
    );
    expect(ok / attempts).toBeGreaterThanOrEqual(0.95);
    // The flooder's slots are still held: nothing cut them before their deadlines.
    expect(flood.filter((s) => !s.destroyed).length).toBeGreaterThanOrEqual(16);
  });

  it('cuts a peer that sends no byte at the first-byte deadline, well before the handshake deadline', async () => {
    const { url, auth } = await startWithUrl({ firstByteTimeoutMs: 200, handshakeTimeoutMs: 20_000 });
    const silent = await raw(Number(/:(\d+)$/.exec(url)?.[1]));
    const started = Date.now();
    await closed(silent);
    expect(Date.now() - started).toBeLessThan(10_000);
    await until(() => auth.length === 1);
    expect(auth[0]).toMatchObject({ ok: false, code: 'ERR_HANDSHAKE_TIMEOUT' });
    // One byte in time is enough: then only the handshake deadline applies.
    const slow = await raw(Number(/:(\d+)$/.exec(url)?.[1]));
    slow.write(Buffer.of(0x53));
    await new Promise((r) => setTimeout(r, 600));
    expect(slow.destroyed).toBe(false);
  });

  it('keeps one first-byte deadline per connection with one shared timer: each silent peer at its own time', async () => {
    const { url, auth } = await startWithUrl({ firstByteTimeoutMs: 300, handshakeTimeoutMs: 20_000 });
    const port = Number(/:(\d+)$/.exec(url)?.[1]);
    const first = await raw(port);
    const t0 = Date.now();
    const firstClosed = closed(first).then(() => Date.now() - t0);
    await new Promise((r) => setTimeout(r, 150));
    const second = await raw(port);
    const t1 = Date.now();
    const secondClosed = closed(second).then(() => Date.now() - t1);
    const talker = await raw(port);
    talker.write(Buffer.of(0x53));
    // Neither is cut before its own deadline; both are cut (the timer re-arms for the second).
    expect(await firstClosed).toBeGreaterThanOrEqual(290);
    expect(await secondClosed).toBeGreaterThanOrEqual(290);
    await until(() => auth.length === 2);
    expect(auth.map((a) => !a.ok && a.code)).toEqual(['ERR_HANDSHAKE_TIMEOUT', 'ERR_HANDSHAKE_TIMEOUT']);
    await new Promise((r) => setTimeout(r, 400));
    expect(talker.destroyed).toBe(false);
  });
});
