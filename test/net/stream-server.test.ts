import { mkdtempSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuthEvent } from '../../src/net/base-server.js';
import { connect } from '../../src/net/client.js';
import { sessionHandler } from '../../src/net/handlers.js';
import type { Session } from '../../src/net/session.js';
import { type ServerOptions, SesameServer } from '../../src/net/stream-server.js';
import type { PresharedKey } from '../../src/protocol/connection.js';
import { echoService, timestampService } from '../../src/services/handlers.js';
import { KEY_A, KEY_B, makeKey } from '../helpers/pair.js';

const servers: SesameServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(
  over: Partial<ServerOptions> = {},
): Promise<{ server: SesameServer; url: string; auth: AuthEvent[] }> {
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [KEY_A, KEY_B],
    handler: echoService,
    ...over,
  });
  const auth: AuthEvent[] = [];
  server.on('auth', (e: AuthEvent) => auth.push(e));
  servers.push(server);
  const url = await server.listen();
  return { server, url, auth };
}

function rawSocket(url: string): Promise<Socket> {
  const m = /^tcp:\/\/127\.0\.0\.1:(\d+)$/.exec(url);
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port: Number(m?.[1]) }, () => resolve(s));
    s.once('error', reject);
  });
}

function closedWithin(s: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
    s.on('error', () => {});
    s.resume();
  });
}

describe('server and client over loopback', () => {
  it('authenticates and exchanges messages over TCP, reporting the key and principal', async () => {
    const { url, auth } = await start();
    const s = await connect(url, { key: KEY_B });
    expect(s.info?.principal).toBe('bob');
    expect((await s.request(Buffer.from('ping'))).toString()).toBe('ping');
    const big = Buffer.alloc(1_000_000, 3);
    expect((await s.request(big)).equals(big)).toBe(true);
    await s.close();
    expect(auth).toHaveLength(1);
    expect(auth[0]).toMatchObject({
      ok: true,
      session: { keyId: KEY_B.id, principal: 'bob', forwardSecrecy: true },
    });
  });

  it('serves the timestamp service over a Unix socket', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'sesame-')), 's.sock');
    const { url } = await start({ listen: `unix://${path}`, handler: timestampService });
    expect(url).toBe(`unix://${path}`);
    const s = await connect(url, { key: KEY_A });
    const reply = (await s.request(Buffer.from('百变星君'))).toString('utf8');
    expect(reply).toMatch(
      /^\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\] 百变星君$/,
    );
    await s.close();
  });

  it('refuses wrong, unknown, revoked and expired keys: the client sees ERR_AUTH_REFUSED, the server logs why', async () => {
    const revoked = makeKey('aaaaaaaaaaaaaaaa', 'carol', 0xc3, { revoked: true });
    const expired = makeKey('bbbbbbbbbbbbbbbb', 'dave', 0xd4, { notAfter: new Date(Date.now() - 1000) });
    const { url, auth } = await start({ keys: [KEY_A, revoked, expired] });
    const attempts: [PresharedKey, string][] = [
      [makeKey(KEY_A.id, 'alice', 0x00), 'ERR_AUTH_FAILED'],
      [makeKey('1234123412341234', 'eve', 0xa1), 'ERR_UNKNOWN_KEY'],
      [revoked, 'ERR_KEY_REVOKED'],
      [expired, 'ERR_KEY_EXPIRED'],
    ];
    for (const [key, code] of attempts) {
      await expect(connect(url, { key })).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
      await expect.poll(() => auth.at(-1)).toMatchObject({ ok: false, code });
    }
    // and the server still serves a good client
    const s = await connect(url, { key: KEY_A });
    expect((await s.request(Buffer.from('still here'))).toString()).toBe('still here');
    await s.close();
  });

  it('a server holding another secret under the same key id refuses the client', async () => {
    const { url, auth } = await start({ keys: [makeKey(KEY_A.id, 'alice', 0x77)] });
    await expect(connect(url, { key: KEY_A })).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
    await expect.poll(() => auth.at(-1)).toMatchObject({ ok: false, code: 'ERR_AUTH_FAILED' });
  });

  it('cuts a silent client at the handshake deadline while serving others', async () => {
    const { url, auth } = await start({ handshakeTimeoutMs: 300 });
    const silent = await rawSocket(url);
    const slow = await rawSocket(url);
    slow.write(Buffer.from('SE')); // a partial header, then nothing
    const s = await connect(url, { key: KEY_A });
    expect((await s.request(Buffer.from('served'))).toString()).toBe('served');
    expect(await closedWithin(silent, 2000)).toBe(true);
    expect(await closedWithin(slow, 2000)).toBe(true);
    expect(auth.filter((e) => !e.ok).map((e) => (e.ok ? '' : e.code))).toEqual([
      'ERR_HANDSHAKE_TIMEOUT',
      'ERR_HANDSHAKE_TIMEOUT',
    ]);
    await s.close();
  });

  it('closes garbage-speaking peers with a typed refusal and keeps serving', async () => {
    const { url, auth } = await start();
    const junk = await rawSocket(url);
    junk.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await closedWithin(junk, 2000)).toBe(true);
    await expect.poll(() => auth.at(-1)).toMatchObject({ ok: false, code: 'ERR_MALFORMED_MESSAGE' });
    const s = await connect(url, { key: KEY_A });
    expect((await s.request(Buffer.from('ok'))).toString()).toBe('ok');
    await s.close();
  });

  it('closes idle sessions with an authenticated close', async () => {
    const { url } = await start({ idleTimeoutMs: 200 });
    const s = await connect(url, { key: KEY_A });
    expect(await s.next()).toBeUndefined(); // clean end: the server's close record arrived
    await s.close();
    expect(s.error).toBeUndefined();
  });

  it("keeps every session's idle timeout on one timer: never early, restarted by traffic", async () => {
    const socketTimers: [number | undefined, number][] = [];
    const { url } = await start({
      idleTimeoutMs: 400,
      handler: sessionHandler(async (session) => {
        // The server arms no socket timer (nor a listener for one) for an open session.
        socketTimers.push([session.socket.timeout, session.socket.listenerCount('timeout')]);
        for await (const m of session) session.send(m);
      }),
    });
    const silent = await connect(url, { key: KEY_A });
    const opened = performance.now();
    const silentEnd = silent.next().then((m) => ({ m, after: performance.now() - opened }));
    const busy = await connect(url, { key: KEY_A });
    // A round trip every 100 ms for 900 ms: more than twice the timeout, and never closed.
    for (let i = 0; i < 9; i++) {
      await new Promise((r) => setTimeout(r, 100));
      expect((await busy.request(Buffer.from(`${i}`))).toString()).toBe(`${i}`);
    }
    const { m, after } = await silentEnd;
    expect(m).toBeUndefined(); // the server's authenticated close
    expect(silent.error).toBeUndefined();
    // Not before the timeout (the server opened it after the client did), and not long after.
    expect(after).toBeGreaterThanOrEqual(399);
    expect(after).toBeLessThan(900);
    expect(socketTimers).toEqual([
      [undefined, 0],
      [undefined, 0],
    ]);
    // Now silent, the busy one goes too.
    expect(await busy.next()).toBeUndefined();
    await Promise.all([silent.close(), busy.close()]);
  });

  it('refuses connections over maxConnections', async () => {
    const { server, url } = await start({ maxConnections: 2 });
    const busy: string[] = [];
    server.on('busy', (r: string) => busy.push(r));
    const a = await connect(url, { key: KEY_A });
    const b = await connect(url, { key: KEY_A });
    await expect(connect(url, { key: KEY_A })).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
    expect(busy).toHaveLength(1);
    await a.close();
    await b.close();
  });

  it('serves hundreds of concurrent clients', async () => {
    const { url } = await start({ handler: timestampService });
    const n = 200;
    const replies = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const s = await connect(url, { key: i % 2 === 0 ? KEY_A : KEY_B });
        const r = await s.request(Buffer.from(`client ${i}`));
        await s.close();
        return r.toString();
      }),
    );
    replies.forEach((r, i) => {
      expect(r.endsWith(`] client ${i}`)).toBe(true);
    });
  });

  it('shuts down gracefully: replies to received messages are delivered, then sessions close', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { server, url } = await start({
      handler: sessionHandler(async (session: Session) => {
        for await (const m of session) {
          await gate;
          session.send(m);
        }
      }),
    });
    const s = await connect(url, { key: KEY_A });
    const pending = [s.request(Buffer.from('one'))];
    await new Promise((r) => setTimeout(r, 50)); // the server has received it
    const closing = server.close();
    release();
    expect((await pending[0])?.toString()).toBe('one');
    expect(await s.next()).toBeUndefined(); // the server's close record
    await s.close();
    await closing;
    await expect(connect(url, { key: KEY_A })).rejects.toMatchObject({ code: 'ERR_CONNECT_FAILED' });
  });

  it('a handler that throws ends only its own session', async () => {
    const { server, url } = await start({
      handler: sessionHandler(async (session: Session) => {
        for await (const m of session) {
          if (m.toString() === 'boom') throw new Error('handler bug');
          session.send(m);
        }
      }),
    });
    const errors: unknown[] = [];
    server.on('handler-error', (e: unknown) => errors.push(e));
    const good = await connect(url, { key: KEY_A });
    const bad = await connect(url, { key: KEY_B });
    await expect(bad.request(Buffer.from('boom'))).rejects.toMatchObject({ code: 'ERR_TRUNCATED' });
    expect((await good.request(Buffer.from('fine'))).toString()).toBe('fine');
    expect(errors).toHaveLength(1);
    await good.close();
  });

  it('counts queued empty messages against the high-water mark (an empty-message flood pauses reading)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { server, url } = await start({
      highWaterMarkBytes: 64 * 1024,
      handler: sessionHandler(async (session: Session) => {
        await gate; // a handler busy elsewhere: messages queue up
        for await (const _ of session) {
          // drain
        }
      }),
    });
    const s = await connect(url, { key: KEY_A });
    const empty = Buffer.alloc(0);
    for (let i = 0; i < 200_000; i++) s.send(empty);
    let last = -1;
    for (let i = 0; i < 40 && server.stats().messagesIn !== last; i++) {
      last = server.stats().messagesIn;
      await new Promise((r) => setTimeout(r, 100));
    }
    // 64 KiB of high-water mark at 128 bytes a message: about 512 queued before reading pauses.
    expect(server.stats().messagesIn).toBeLessThan(20_000);
    release();
    s.destroy();
  });

  it('applies backpressure to a peer that never reads', async () => {
    const { server, url } = await start({ highWaterMarkBytes: 64 * 1024 });
    const s = await connect(url, { key: KEY_A, highWaterMarkBytes: 64 * 1024 });
    s.socket.pause(); // never read replies
    const chunk = Buffer.alloc(60_000, 1);
    const offered = 800 * chunk.length; // 48 MB
    for (let i = 0; i < 800; i++) s.send(chunk);
    // Wait until the server has stopped taking more (its reads stall once its replies back up).
    let last = -1;
    for (let i = 0; i < 40 && server.stats().bytesIn !== last; i++) {
      last = server.stats().bytesIn;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Without backpressure the echo server would read all 48 MB; with it, it stops after what the
    // kernel buffers and the high-water marks hold, and the rest waits at the client.
    expect(server.stats().bytesIn).toBeLessThan(offered / 2);
    expect(s.socket.writableLength).toBeGreaterThan(offered / 4);
    s.destroy();
  });
});
