/**
 * A Session used as a pipe (forwarding), over Unix sockets:
 * - flow control under full-duplex bulk: two ends that both send more than their high-water marks
 *   before reading must not wait for each other (outputPausesInput: false), while output the input
 *   makes by itself (an echo's replies to a peer that never reads) stays bounded. Unix sockets,
 *   whose kernel buffers are small, make the stall of the old rule deterministic;
 * - the idle close wait (closeWait: 'idle'): after this side's close, the peer's direction flows
 *   for as long as bytes arrive, and is cut once they stop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Session, type SessionOptions } from '../../src/net/session.js';
import { ServerConnection } from '../../src/protocol/connection.js';
import { makeClient, makeServerContext } from '../helpers/pair.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const MARK = 16 * 1024;
const CHUNK = 16 * 1024;

async function unixPair(): Promise<{ client: Socket; server: Socket }> {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-flow-'));
  const path = join(dir, 's');
  const listener: Server = createServer({ allowHalfOpen: true });
  cleanups.push(() => {
    listener.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  const client = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ path, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
  return { client, server: await accepted };
}

async function sessions(options: SessionOptions): Promise<{ client: Session; server: Session }> {
  const sockets = await unixPair();
  const server = new Session(sockets.server, new ServerConnection(makeServerContext()), 'server', options);
  const client = new Session(sockets.client, makeClient(), 'client', options);
  cleanups.push(() => {
    client.destroy();
    server.destroy();
  });
  await Promise.all([client.ready, server.ready]);
  return { client, server };
}

/** Count what `s` receives; resolves once `total` bytes arrived. */
function receiveAll(s: Session, total: number): { got: () => number; done: Promise<void> } {
  let got = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  void s
    .consume((m) => {
      got += m.length;
      if (got >= total) finish();
    })
    .catch(() => {});
  return { got: () => got, done };
}

/** Send `total` bytes in one synchronous run (every write queued before anything is read). */
function sendAllAtOnce(s: Session, total: number, fill: number): void {
  const chunk = Buffer.alloc(CHUNK, fill);
  for (let sent = 0; sent < total; sent += CHUNK) s.send(chunk);
}

function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([
    p.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref()),
  ]);
}

describe('Session flow control under full duplex', () => {
  const TOTAL = 8 * 1024 * 1024; // far more than a Unix socket's kernel buffers both ways

  it('with the default rule, two ends that both queue more than their marks stall each other', async () => {
    // The rule that outputPausesInput: false exists to lift: each end stops reading because of
    // its own output, so neither reads what the other sends.
    const { client, server } = await sessions({ highWaterMarkBytes: MARK });
    const a = receiveAll(client, TOTAL);
    const b = receiveAll(server, TOTAL);
    sendAllAtOnce(client, TOTAL, 1);
    sendAllAtOnce(server, TOTAL, 2);
    expect(await settledWithin(Promise.all([a.done, b.done]), 2_000)).toBe(false);
    expect(client.socket.isPaused() && server.socket.isPaused()).toBe(true);
    expect(a.got()).toBeLessThan(TOTAL);
    expect(b.got()).toBeLessThan(TOTAL);
  }, 10_000);

  it('outputPausesInput: false: the same transfer completes both ways, every byte', async () => {
    const { client, server } = await sessions({ highWaterMarkBytes: MARK, outputPausesInput: false });
    const a = receiveAll(client, TOTAL);
    const b = receiveAll(server, TOTAL);
    sendAllAtOnce(client, TOTAL, 1);
    sendAllAtOnce(server, TOTAL, 2);
    expect(await settledWithin(Promise.all([a.done, b.done]), 20_000)).toBe(true);
    expect(a.got()).toBe(TOTAL);
    expect(b.got()).toBe(TOTAL);
    await Promise.all([client.drained(), server.drained()]);
  }, 30_000);

  it('outputPausesInput: false with senders that wait for drained(): both directions complete', async () => {
    const { client, server } = await sessions({ highWaterMarkBytes: MARK, outputPausesInput: false });
    const a = receiveAll(client, TOTAL);
    const b = receiveAll(server, TOTAL);
    const stream = async (s: Session, fill: number): Promise<void> => {
      const chunk = Buffer.alloc(CHUNK, fill);
      for (let sent = 0; sent < TOTAL; sent += CHUNK) if (!s.send(chunk)) await s.drained();
    };
    const all = Promise.all([stream(client, 1), stream(server, 2), a.done, b.done]);
    expect(await settledWithin(all, 20_000)).toBe(true);
    expect(a.got()).toBe(TOTAL);
    expect(b.got()).toBe(TOTAL);
  }, 30_000);

  it('outputPausesInput: false still bounds what the input makes: an echo to a peer that never reads', async () => {
    const { client, server } = await sessions({ highWaterMarkBytes: MARK, outputPausesInput: false });
    void server.consume((m) => server.send(m)).catch(() => {});
    client.stopReading(); // the client never reads the replies again
    sendAllAtOnce(client, TOTAL, 3);
    // The server reads until its replies are over the mark, then stops: what it holds is the mark
    // plus the replies to one read, not the 8 MiB the client queued.
    const deadline = Date.now() + 5_000;
    let last = -1;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const now = server.bytesIn;
      if (now === last) break;
      last = now;
    }
    expect(server.socket.isPaused()).toBe(true);
    expect(server.socket.writableLength).toBeGreaterThan(MARK);
    expect(server.socket.writableLength).toBeLessThan(MARK + 256 * 1024);
    expect(server.bytesIn).toBeLessThan(TOTAL / 2);
  }, 15_000);
});

describe("Session close wait: 'idle'", () => {
  /** The server half-closes; the client then sends `count` messages `everyMs` apart, then closes. */
  async function slowPeer(
    options: SessionOptions,
    count: number,
    everyMs: number,
  ): Promise<{ server: Session; received: () => number; ms: Promise<number> }> {
    const { client, server } = await sessions(options);
    let received = 0;
    const consumed = server.consume(() => {
      received++;
    });
    consumed.catch(() => {});
    const started = Date.now();
    void server.close();
    let i = 0;
    const timer = setInterval(() => {
      if (client.phase === 'closed' || client.error !== undefined) clearInterval(timer);
      else if (i++ < count) client.send(Buffer.from('tick'));
      else {
        clearInterval(timer);
        void client.close();
      }
    }, everyMs);
    cleanups.push(() => clearInterval(timer));
    return { server, received: () => received, ms: server.closed.then(() => Date.now() - started) };
  }

  it('the deadline (default) cuts a half-closed session that still receives after closeTimeoutMs', async () => {
    const p = await slowPeer({ closeTimeoutMs: 300, idleTimeoutMs: 300 }, 10, 100);
    expect(await p.ms).toBeLessThan(900);
    expect(p.received()).toBeLessThan(10);
  }, 10_000);

  it('idle: the wait lasts as long as bytes arrive, then ends cleanly with the peer', async () => {
    const p = await slowPeer({ closeTimeoutMs: 300, idleTimeoutMs: 300, closeWait: 'idle' }, 10, 100);
    expect(await p.ms).toBeGreaterThanOrEqual(1_000);
    expect(p.received()).toBe(10);
    expect(p.server.error).toBeUndefined();
  }, 10_000);

  it('idle: a peer that falls silent is cut after the idle timeout, with ERR_IDLE_TIMEOUT', async () => {
    const { client, server } = await sessions({
      closeTimeoutMs: 60_000,
      idleTimeoutMs: 300,
      closeWait: 'idle',
    });
    server.consume(() => {}).catch(() => {});
    const started = Date.now();
    void server.close();
    client.send(Buffer.from('one'));
    await server.closed;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(server.error?.code).toBe('ERR_IDLE_TIMEOUT');
  }, 10_000);

  it('idle, set on a running session: once the peer closed, only the closeTimeoutMs deadline is left', async () => {
    const { client, server } = await sessions({ closeTimeoutMs: 400, idleTimeoutMs: 60_000 });
    server.setStreamOptions({ closeWait: 'idle' });
    server.consume(() => {}).catch(() => {});
    void server.close();
    // The client sends its close record but never its FIN: the server's wait becomes the deadline.
    await new Promise((resolve) => setTimeout(resolve, 100));
    client.socket.pause();
    (client as unknown as { conn: { close(): void } }).conn.close();
    const out = (client as unknown as { conn: { takeOutput(): Buffer[] } }).conn.takeOutput();
    for (const b of out) client.socket.write(b);
    const started = Date.now();
    await server.closed;
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(server.error).toBeUndefined();
  }, 10_000);

  it('setStreamOptions checks its values', async () => {
    const { server } = await sessions({});
    expect(() => server.setStreamOptions({ closeWait: 'never' as 'idle' })).toThrow(/closeWait must be/);
  });
});
