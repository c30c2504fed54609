/**
 * Authenticated UDP over loopback (src/net/udp.ts): the timestamp service one datagram per line,
 * refusals, replay and forgery, a server restart, stale datagrams, amplification, a junk flood,
 * limits, retransmission and shutdown.
 */

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { isSesameError } from '../../src/errors.js';
import { formatAddress, parseAddress } from '../../src/net/address.js';
import type { AuthEvent, DropEvent as UdpDropEvent } from '../../src/net/base-server.js';
import { connectUdp, type UdpConnectOptions, type UdpSession } from '../../src/net/datagram-client.js';
import { type DatagramContext, UdpServer, type UdpServerOptions } from '../../src/net/datagram-server.js';
import { DatagramClientEndpoint } from '../../src/protocol/datagram/index.js';
import { systemEntropy } from '../../src/protocol/primitives.js';
import { timestampReply } from '../../src/services/timestamp.js';
import { KEY_A, KEY_B, makeKey } from '../helpers/pair.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const CTIME_REPLY = /^\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\] /;

interface Started {
  server: UdpServer;
  url: string;
  port: number;
  auth: AuthEvent[];
  drops: UdpDropEvent[];
  calls: Buffer[];
}

async function start(over: Partial<UdpServerOptions> = {}): Promise<Started> {
  const calls: Buffer[] = [];
  const server = new UdpServer({
    listen: 'udp://127.0.0.1:0',
    keys: [KEY_A, KEY_B],
    handler: (message) => {
      calls.push(message);
      return timestampReply(message, new Date());
    },
    ...over,
  });
  const auth: AuthEvent[] = [];
  const drops: UdpDropEvent[] = [];
  server.on('auth', (e: AuthEvent) => auth.push(e));
  server.on('drop', (e: UdpDropEvent) => drops.push(e));
  const url = await server.listen();
  cleanup.push(() => server.close());
  return { server, url, port: portOf(url), auth, drops, calls };
}

function portOf(url: string): number {
  const a = parseAddress(url);
  if (a.kind !== 'udp') throw new Error(url);
  return a.port;
}

async function connect(url: string, over: Partial<UdpConnectOptions> = {}): Promise<UdpSession> {
  const s = await connectUdp(url, { key: KEY_A, retransmitMs: 50, ...over });
  cleanup.push(() => s.close());
  return s;
}

async function bound(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  cleanup.push(() => new Promise<void>((resolve) => s.close(() => resolve())));
  return s;
}

/** A raw socket that records what it receives. */
async function raw(): Promise<{
  socket: Socket;
  received: Buffer[];
  send(d: Buffer, port: number): Promise<void>;
}> {
  const socket = await bound();
  const received: Buffer[] = [];
  socket.on('message', (m) => received.push(m));
  return {
    socket,
    received,
    send: (d, port) => new Promise<void>((resolve) => socket.send(d, port, '127.0.0.1', () => resolve())),
  };
}

/**
 * A UDP relay between one client and a server that records both directions and can lose
 * datagrams on purpose.
 */
async function relay(
  serverPort: number,
  lose: { fromClient?: (i: number) => boolean; fromServer?: (i: number) => boolean } = {},
) {
  const front = await bound();
  const back = await bound();
  const fromClient: Buffer[] = [];
  const fromServer: Buffer[] = [];
  let client: RemoteInfo | undefined;
  front.on('message', (m, r) => {
    client = r;
    const i = fromClient.push(m) - 1;
    if (!lose.fromClient?.(i)) back.send(m, serverPort, '127.0.0.1');
  });
  back.on('message', (m) => {
    const i = fromServer.push(m) - 1;
    if (client !== undefined && !lose.fromServer?.(i)) front.send(m, client.port, client.address);
  });
  return { url: `udp://127.0.0.1:${front.address().port}`, fromClient, fromServer };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  for (let waited = 0; !cond() && waited < ms; waited += 10) await sleep(10);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('UDP server and client over loopback', () => {
  it('serves the timestamp service: one line, one datagram, one reply', async () => {
    const { url, auth, calls } = await start();
    expect(url).toMatch(/^udp:\/\/127\.0\.0\.1:\d+$/);
    const s = await connect(url, { key: KEY_B });
    expect(s.info.principal).toBe('bob');
    expect(s.info.keyId).toBe(KEY_B.id);
    expect(s.info.forwardSecrecy).toBe(true);
    expect(s.sessionId).toMatch(/^[0-9a-f]{16}$/);
    for (const line of ['hello', 'second line', '']) {
      const reply = (await s.request(Buffer.from(line))).toString();
      expect(reply).toMatch(CTIME_REPLY);
      expect(reply.endsWith(`] ${line}`)).toBe(true);
    }
    expect(calls.map(String)).toEqual(['hello', 'second line', '']);
    expect(auth).toHaveLength(1);
    const a = auth[0] as AuthEvent;
    expect(a.ok && a.session.principal).toBe('bob');
    expect(a.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(a.ok && a.session.channelBinding).toEqual(s.info.channelBinding);
  });

  it('matches replies to requests by counter, whatever order they come in', async () => {
    const { url } = await start({
      handler: async (m, ctx: DatagramContext) => {
        await sleep(m.toString() === 'slow' ? 60 : 1);
        ctx.reply(Buffer.concat([Buffer.from('first: '), m]));
        return Buffer.concat([Buffer.from('second: '), m]);
      },
    });
    const s = await connect(url);
    const extra: string[] = [];
    s.on('message', (data: Buffer, replyTo: number) => extra.push(`${replyTo > 0}:${data}`));
    const [slow, fast] = await Promise.all([s.request(Buffer.from('slow')), s.request(Buffer.from('fast'))]);
    expect(slow.toString()).toBe('first: slow');
    expect(fast.toString()).toBe('first: fast');
    await until(() => extra.length === 2);
    expect(extra.sort()).toEqual(['true:second: fast', 'true:second: slow']);
  });

  it('gives a wrong or an unknown key no answer at all', async () => {
    // Retransmitted hellos are failures too: keep the login backoff (tested below) out of the way.
    const { server, auth } = await start({ throttle: { freeFailures: 1000 } });
    const r = await relay(portOf(server.url));
    for (const key of [{ ...KEY_A, secret: Buffer.alloc(32, 9) }, makeKey('0000000000000bad', 'nobody', 3)]) {
      const err = await rejection(connectUdp(r.url, { key, handshakeTimeoutMs: 400, retransmitMs: 50 }));
      expect(isSesameError(err, 'ERR_HANDSHAKE_TIMEOUT')).toBe(true);
    }
    expect(r.fromClient.length).toBeGreaterThanOrEqual(6);
    expect(r.fromServer).toEqual([]);
    const codes = new Set(auth.map((a) => (a.ok ? 'ok' : a.code)));
    expect([...codes].sort()).toEqual(['ERR_AUTH_FAILED', 'ERR_UNKNOWN_KEY']);
  });

  it('drops replayed and forged datagrams', async () => {
    const { server, calls, drops } = await start();
    const r = await relay(portOf(server.url));
    const s = await connect(r.url);
    for (const m of ['a', 'b', 'c']) await s.request(Buffer.from(m));
    expect(calls.map(String)).toEqual(['a', 'b', 'c']);
    const attacker = await raw();
    const port = portOf(server.url);
    // Replay everything the client sent: hellos, the FINISHED, the three requests.
    for (const d of r.fromClient) await attacker.send(d, port);
    // Forge: the last request under a counter not seen yet, once with a ciphertext byte changed
    // and once unchanged (the counter is in the AAD and the nonce).
    const last = r.fromClient[r.fromClient.length - 1] as Buffer;
    const forged = Buffer.from(last);
    forged.writeBigUInt64BE(98n, 12);
    forged[40] = (forged[40] as number) ^ 1;
    await attacker.send(forged, port);
    const ahead = Buffer.from(last);
    ahead.writeBigUInt64BE(99n, 12);
    await attacker.send(ahead, port);
    await until(() => drops.length >= r.fromClient.length + 2);
    expect(calls.map(String)).toEqual(['a', 'b', 'c']);
    expect(attacker.received).toEqual([]);
    const reasons = drops.map((d) => d.reason);
    expect(reasons.filter((x) => x === 'replayed').length).toBe(4); // FINISHED and three requests
    expect(reasons.filter((x) => x === 'forged').length).toBe(2);
    expect(reasons).toContain('refused'); // the hello: ERR_REPLAYED_HELLO
    expect(drops.find((d) => d.reason === 'refused')?.code).toBe('ERR_REPLAYED_HELLO');
    // The genuine client is unaffected.
    expect((await s.request(Buffer.from('d'))).toString()).toMatch(/\] d$/);
  });

  it('accepts no replayed datagram after a server restart', async () => {
    const first = await start();
    const port = first.port;
    const r = await relay(port);
    const s = await connect(r.url);
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    await s.request(Buffer.from('before the restart'));
    await first.server.close();
    await closed; // the server told the client it closed
    const second = await start({ listen: `udp://127.0.0.1:${port}` });
    const attacker = await raw();
    let sentBytes = 0;
    for (const d of r.fromClient) {
      sentBytes += d.length;
      await attacker.send(d, port);
    }
    await until(() => second.drops.length >= r.fromClient.length - 1);
    await sleep(30);
    expect(second.calls).toEqual([]);
    expect(second.auth.filter((a) => a.ok)).toEqual([]);
    expect(second.server.sessionCount).toBe(0);
    // The old hello is still fresh, so the new server may answer it once, never with more bytes.
    const got = attacker.received.reduce((n, d) => n + d.length, 0);
    expect(got).toBeLessThanOrEqual(sentBytes);
    expect(attacker.received.length).toBeLessThanOrEqual(1);
    expect(second.drops.map((d) => d.reason)).toEqual(
      expect.arrayContaining(['unknown-session', 'unknown-session']),
    );
  });

  it('drops stale datagrams (a freshness bound of 30 s by default)', async () => {
    let skewMs = 0;
    const { url, drops, calls } = await start({ now: () => Date.now() + skewMs });
    const s = await connect(url, { requestTimeoutMs: 300 });
    await s.request(Buffer.from('fresh'));
    skewMs = 31_000; // as if the datagram had been held back 31 s
    const err = await rejection(s.request(Buffer.from('held back')));
    expect(isSesameError(err, 'ERR_REQUEST_TIMEOUT')).toBe(true);
    expect(drops.map((d) => d.reason)).toContain('stale');
    skewMs = 0;
    expect((await s.request(Buffer.from('fresh again'))).toString()).toMatch(/fresh again$/);
    expect(calls.map(String)).toEqual(['fresh', 'fresh again']);
  });

  it('never answers an unauthenticated datagram with more bytes than it received', async () => {
    const { port, drops } = await start();
    const attacker = await raw();
    let sentBytes = 0;
    const send = async (d: Buffer) => {
      sentBytes += d.length;
      await attacker.send(d, port);
    };
    // Junk of every size class, and junk shaped like each datagram type.
    for (let i = 0; i < 200; i++) {
      const d = systemEntropy.bytes(1 + ((i * 37) % 1400));
      if (i % 5 > 0) {
        d[0] = i % 5;
        d.fill(0, 1, 4);
      }
      await send(d);
      if (i % 20 === 19) await until(() => drops.length > i); // let the server keep up
    }
    // A genuine hello from someone who holds a key: one SERVER_HELLO of the same size.
    const client = new DatagramClientEndpoint({ key: KEY_A, entropy: systemEntropy, now: Date.now });
    const hello = client.hello();
    await send(hello);
    await send(hello); // replayed: nothing
    await until(() => drops.length >= 201);
    await sleep(30);
    expect(attacker.received.map((d) => d.length)).toEqual([hello.length]);
    expect(attacker.received.reduce((n, d) => n + d.length, 0)).toBeLessThanOrEqual(sentBytes);
  });

  it('keeps serving a legitimate client through a flood of junk', async () => {
    const { server, port, drops } = await start({ maxPendingPerSource: 4 });
    const r = await relay(port);
    const s = await connect(r.url);
    await s.request(Buffer.from('warm up'));
    const attacker = await raw();
    const captured = [...r.fromClient];
    const genuine = new DatagramClientEndpoint({ key: KEY_A, entropy: systemEntropy, now: Date.now });
    let flooding = true;
    let floodSent = 0;
    const flood = (async () => {
      for (let round = 0; flooding && round < 10_000; round++) {
        for (let i = 0; i < 25; i++) {
          const k = floodSent++ % 5;
          let d: Buffer;
          if (k === 0) d = systemEntropy.bytes(1 + (floodSent % 1200));
          else if (k === 1)
            d = captured[floodSent % captured.length] as Buffer; // replays
          else if (k === 2)
            d = genuine.hello(); // costly hellos, bounded per source
          else {
            // DATA naming the live session, with random counters and garbage ciphertext.
            d = systemEntropy.bytes(80);
            d[0] = 4;
            d.fill(0, 1, 4);
            Buffer.from(s.sessionId, 'hex').copy(d, 4);
          }
          attacker.socket.send(d, port, '127.0.0.1');
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const replies: string[] = [];
    for (let i = 0; i < 50; i++) replies.push((await s.request(Buffer.from(`req ${i}`), 2000)).toString());
    flooding = false;
    await flood;
    expect(replies.every((x, i) => x.endsWith(`] req ${i}`))).toBe(true);
    expect(floodSent).toBeGreaterThan(1000);
    expect(drops.length).toBeGreaterThan(500);
    expect(server.pendingCount).toBeLessThanOrEqual(4);
    expect(server.sessionCount).toBe(1);
  });

  it('refuses over-limit payloads at the sender with ERR_DATAGRAM_TOO_LARGE', async () => {
    const errors: unknown[] = [];
    const { server, url } = await start({ handler: (m) => Buffer.concat([m, m]) });
    server.on('handler-error', (err: unknown) => errors.push(err));
    const s = await connect(url, { requestTimeoutMs: 300 });
    expect(() => s.send(Buffer.alloc(1201))).toThrow(
      expect.objectContaining({ code: 'ERR_DATAGRAM_TOO_LARGE' }),
    );
    const err = await rejection(s.request(Buffer.alloc(1201)));
    expect(isSesameError(err, 'ERR_DATAGRAM_TOO_LARGE')).toBe(true);
    // The reply would be 1400 bytes: the server's handler gets the error, the client no reply.
    expect(isSesameError(await rejection(s.request(Buffer.alloc(700))), 'ERR_REQUEST_TIMEOUT')).toBe(true);
    expect(errors.some((e) => isSesameError(e, 'ERR_DATAGRAM_TOO_LARGE'))).toBe(true);
    expect((await s.request(Buffer.from('ok'))).toString()).toBe('okok');
  });

  it('carries large datagrams when configured (up to 65,454 bytes)', async () => {
    const { url } = await start({ handler: (m) => m, maxPayloadBytes: 65_454 });
    const s = await connect(url, { maxPayloadBytes: 65_454 });
    const big = systemEntropy.bytes(60_000);
    expect((await s.request(big)).equals(big)).toBe(true);
  });

  it('retransmits lost handshake datagrams (a new hello each time)', async () => {
    const { server, auth } = await start();
    // Lose the first two hellos, and the first answer to the FINISHED.
    const r = await relay(portOf(server.url), { fromClient: (i) => i < 2, fromServer: (i) => i === 1 });
    const s = await connect(r.url, { retransmitMs: 30 });
    expect((await s.request(Buffer.from('made it'))).toString()).toMatch(/made it$/);
    const hellos = r.fromClient.filter((d) => d[0] === 1);
    expect(hellos.length).toBeGreaterThanOrEqual(3);
    expect(new Set(hellos.map((d) => d.toString('hex'))).size).toBe(hellos.length);
    expect(r.fromClient.filter((d) => d[0] === 3).length).toBeGreaterThanOrEqual(2);
    expect(auth.filter((a) => a.ok)).toHaveLength(1);
  });

  it('tells clients when it closes, and fails their waiting requests', async () => {
    const { server, url } = await start({ handler: () => new Promise(() => {}), shutdownTimeoutMs: 100 });
    const s = await connect(url);
    const ended = new Promise<void>((resolve) => s.once('close', () => resolve()));
    const pending = rejection(s.request(Buffer.from('never answered'), 5000));
    await sleep(20);
    await server.close();
    await ended;
    expect(isSesameError(await pending, 'ERR_CLOSED')).toBe(true);
    expect(s.closed).toBe(true);
    expect(() => s.send(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  });

  it('forgets a silent session, unless the client sends keepalives', async () => {
    const ends: unknown[] = [];
    const { server, url } = await start({ sessionIdleMs: 400, sweepIntervalMs: 25 });
    server.on('session-end', (e: unknown) => ends.push(e));
    const kept = await connect(url, { keepaliveMs: 60 });
    const silent = await connect(url, { keepaliveMs: 0, requestTimeoutMs: 200 });
    await sleep(650);
    expect(server.sessionCount).toBe(1);
    expect(ends).toEqual([{ sessionId: silent.sessionId, why: 'idle' }]);
    expect((await kept.request(Buffer.from('still here'))).toString()).toMatch(/still here$/);
    expect(isSesameError(await rejection(silent.request(Buffer.from('hello?'))), 'ERR_REQUEST_TIMEOUT')).toBe(
      true,
    );
    // A client close frees its session at once.
    await kept.close();
    await until(() => server.sessionCount === 0);
    expect(ends).toContainEqual({ sessionId: kept.sessionId, why: 'closed' });
  });

  it('reports a closed port, bad addresses and keys as typed errors', async () => {
    const free = await bound();
    const port = free.address().port;
    await new Promise<void>((resolve) => free.close(() => resolve()));
    cleanup.pop();
    const err = await rejection(
      connectUdp(`udp://127.0.0.1:${port}`, { key: KEY_A, handshakeTimeoutMs: 500 }),
    );
    expect(isSesameError(err) && ['ERR_CONNECT_FAILED', 'ERR_HANDSHAKE_TIMEOUT'].includes(err.code)).toBe(
      true,
    );
    expect(
      isSesameError(await rejection(connectUdp('tcp://127.0.0.1:1', { key: KEY_A })), 'ERR_INVALID_ADDRESS'),
    ).toBe(true);
    expect(
      isSesameError(
        await rejection(connectUdp('udp://127.0.0.1:1', { key: { ...KEY_A, secret: Buffer.alloc(8) } })),
        'ERR_KEY_TOO_SHORT',
      ),
    ).toBe(true);
    expect(() => new UdpServer({ listen: 'tcp://127.0.0.1:0', keys: [], handler: () => undefined })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ADDRESS' }),
    );
    const { url } = await start();
    const twice = new UdpServer({ listen: url, keys: [], handler: () => undefined });
    // A port in use is its own error (ERR_ADDRESS_IN_USE), not an invalid address.
    expect(isSesameError(await rejection(twice.listen()), 'ERR_ADDRESS_IN_USE')).toBe(true);
  });

  it('parses and formats udp:// addresses', () => {
    expect(parseAddress('udp://127.0.0.1:9527')).toEqual({ kind: 'udp', host: '127.0.0.1', port: 9527 });
    expect(parseAddress('udp://[::1]:0')).toEqual({ kind: 'udp', host: '::1', port: 0 });
    expect(formatAddress({ kind: 'udp', host: '::1', port: 5 })).toBe('udp://[::1]:5');
    expect(formatAddress(parseAddress('tcp://localhost:1'))).toBe('tcp://localhost:1');
    for (const bad of ['udp://127.0.0.1', 'udp://:1', 'udp://h:65536', 'udp:/x:1']) {
      expect(() => parseAddress(bad), bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ADDRESS' }));
    }
  });

  it('works over IPv6 loopback when the host has it', async () => {
    const server = new UdpServer({ listen: 'udp://[::1]:0', keys: [KEY_A], handler: (m) => m });
    let url: string;
    try {
      url = await server.listen();
    } catch {
      return; // no IPv6 here
    }
    cleanup.push(() => server.close());
    expect(url).toMatch(/^udp:\/\/\[::1\]:\d+$/);
    const s = await connect(url);
    expect((await s.request(Buffer.from('six'))).toString()).toBe('six');
  });
});

describe('UDP server: the hooks every server has', () => {
  it('closeSessions() ends the sessions picked with an authenticated close, and only those', async () => {
    const { server, url } = await start();
    const a = await connect(url);
    const b = await connect(url, { key: KEY_B });
    await a.request(Buffer.from('a'));
    await b.request(Buffer.from('b'));
    const ended: string[] = [];
    server.on('session-closed', (e) => ended.push(e.keyId ?? '-'));
    let aClosed = false;
    a.on('close', () => {
      aClosed = true;
    });
    expect(server.closeSessions((info) => info.keyId === KEY_A.id)).toBe(1);
    await until(() => aClosed);
    expect(aClosed).toBe(true);
    expect(ended).toEqual([KEY_A.id]);
    await expect(a.request(Buffer.from('again'))).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect((await b.request(Buffer.from('still'))).toString()).toMatch(/\] still$/);
    expect(server.sessionCount).toBe(1);
  });

  it('verifyRequest refuses a session: its messages are never served and it is closed', async () => {
    const refused: string[] = [];
    const { server, url, calls } = await start({
      verifyRequest: async (info) => info.keyId !== KEY_B.id,
    });
    server.on('refused', (info) => refused.push(info.keyId ?? '-'));
    const b = await connect(url, { key: KEY_B, requestTimeoutMs: 300 });
    const err = await rejection(b.request(Buffer.from('no')));
    expect(isSesameError(err) && ['ERR_CLOSED', 'ERR_REQUEST_TIMEOUT'].includes(err.code)).toBe(true);
    expect(refused).toEqual([KEY_B.id]);
    expect(calls).toEqual([]);
    const a = await connect(url);
    expect((await a.request(Buffer.from('yes'))).toString()).toMatch(/\] yes$/);
  });

  it('blocks a source after repeated failed logins (ERR_THROTTLED), as a stream server does', async () => {
    const { auth, drops, url } = await start({ throttle: { freeFailures: 2, baseDelayMs: 60_000 } });
    const wrong = { ...KEY_A, secret: Buffer.alloc(32, 9) };
    await rejection(connectUdp(url, { key: wrong, handshakeTimeoutMs: 600, retransmitMs: 50 }));
    const codes = auth.map((e) => (e.ok ? 'ok' : e.code));
    expect(codes.slice(0, 2)).toEqual(['ERR_AUTH_FAILED', 'ERR_AUTH_FAILED']);
    expect(codes).toContain('ERR_THROTTLED');
    expect(drops.some((d) => d.reason === 'throttled' && d.code === 'ERR_THROTTLED')).toBe(true);
    // The right key from the blocked source waits too: the block is per source, before any key work.
    const err = await rejection(connectUdp(url, { key: KEY_A, handshakeTimeoutMs: 300, retransmitMs: 50 }));
    expect(isSesameError(err, 'ERR_HANDSHAKE_TIMEOUT')).toBe(true);
  });

  it('reports idle sessions to handleTimeout and handler failures to handleError, with the peer', async () => {
    const { server, url } = await start({
      sessionIdleMs: 100,
      sweepIntervalMs: 20,
      handler: (m) => {
        if (m.toString() === 'boom') throw new Error('boom');
        return m;
      },
    });
    const timeouts: string[] = [];
    const errors: string[] = [];
    server.on('timeout', (info) => timeouts.push(info.keyId ?? '-'));
    server.on('handler-error', (err, info) => errors.push(`${(err as Error).message} ${info.keyId}`));
    const s = await connect(url, { keepaliveMs: 0, requestTimeoutMs: 200 });
    await rejection(s.request(Buffer.from('boom')));
    expect(errors).toEqual([`boom ${KEY_A.id}`]);
    await until(() => timeouts.length > 0);
    expect(timeouts).toEqual([KEY_A.id]);
  });

  it('serveForever() resolves once close() has run, and a second listen is refused', async () => {
    const server = new UdpServer({ listen: 'udp://127.0.0.1:0', keys: [KEY_A], handler: (m) => m });
    let done = false;
    const forever = server.serveForever().then(() => {
      done = true;
    });
    await until(() => server.url !== 'udp://127.0.0.1:0');
    await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
    expect(done).toBe(false);
    await server.close();
    await forever;
    expect(done).toBe(true);
  });
});
