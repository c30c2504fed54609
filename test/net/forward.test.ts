// Forwarding over loopback sockets, with Sesame at both ends (ForwardListener -> SesameServer
// with forwardHandler -> a plain target): bytes both ways with a checksum, half-close end to end,
// back-pressure end to end, a target that is down, 100 concurrent pipes, per-pipe isolation, and
// the same code over the spiped and none profiles.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { compatClientConnection, compatServerProfile } from '../../src/compat/index.js';
import { connect, openSession } from '../../src/net/client.js';
import {
  ForwardListener,
  forwardHandler,
  type LocalPipeEvent,
  type PipeEvent,
} from '../../src/net/forward.js';
import { SesameServer } from '../../src/net/stream-server.js';
import { KEY_A } from '../helpers/pair.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listening(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return `tcp://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`;
}

/** A plain target: `serve` is given each accepted socket (half-open allowed). */
async function target(serve: (s: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    serve(s);
  });
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
  });
  return listening(srv);
}

const echo = (s: Socket) => s.pipe(s);

/** Listens with a backlog of 0, fills the queue itself, prints the port, and never accepts. */
const STALL = `
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(8):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', port))
    except BlockingIOError: pass
    fill.append(c)
time.sleep(0.2)
print(port, flush=True)
time.sleep(60)
`;

interface Ends {
  local: string;
  serverEvents: PipeEvent[];
  clientEvents: LocalPipeEvent[];
}

/** Sesame at both ends: a local listener forwarding to a Sesame server forwarding to `to`. */
async function tunnel(to: string, connectTimeoutMs?: number, highWaterMarkBytes?: number): Promise<Ends> {
  const serverEvents: PipeEvent[] = [];
  const clientEvents: LocalPipeEvent[] = [];
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [KEY_A],
    highWaterMarkBytes,
    handler: forwardHandler(to, { onEvent: (e) => serverEvents.push(e), connectTimeoutMs }),
  });
  const url = await server.listen();
  cleanups.push(() => server.close());
  const listener = new ForwardListener({
    listen: 'tcp://127.0.0.1:0',
    open: () => connect(url, { key: KEY_A, highWaterMarkBytes }),
    onEvent: (e) => clientEvents.push(e),
  });
  const local = await listener.listen();
  cleanups.push(() => listener.close(1000));
  return { local, serverEvents, clientEvents };
}

function portOf(url: string): number {
  return Number(url.split(':').at(-1));
}

/** Write `data`, half-close, read everything until the peer's end (or a reset). */
function exchange(url: string, data: Buffer): Promise<{ reply: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = createConnection({ port: portOf(url), host: '127.0.0.1', allowHalfOpen: true }, () =>
      s.end(data),
    );
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve({ reply: Buffer.concat(chunks) }));
    s.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ reply: Buffer.concat(chunks), error: err.code ?? 'error' }),
    );
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function until(test: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !test(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(test()).toBe(true);
}

describe('forwarding with Sesame at both ends', () => {
  it('carries bytes both ways unchanged, and names principal and target in its events', async () => {
    const to = await target(echo);
    const t = await tunnel(to);
    const data = randomBytes(4 * 1024 * 1024 + 17);
    const { reply, error } = await exchange(t.local, data);
    expect(error).toBeUndefined();
    expect(sha(reply)).toBe(sha(data));
    await until(
      () =>
        t.serverEvents.some((e) => e.type === 'closed') && t.clientEvents.some((e) => e.type === 'closed'),
    );
    const open = t.serverEvents.find((e) => e.type === 'open');
    expect(open?.info.principal).toBe('alice');
    expect(open?.target).toBe(to);
    const closed = t.serverEvents.find((e) => e.type === 'closed');
    expect(closed?.type === 'closed' && closed.result).toMatchObject({
      bytesFromSession: data.length,
      bytesToSession: data.length,
      error: undefined,
    });
  });

  it('full duplex with small high-water marks at both ends: 32 MiB through an echo, no stall', async () => {
    // Each session sends more than its 16 KiB mark both ways at once; one that stopped reading
    // because of its own output would wait for the other end, which waits for it.
    const to = await target(echo);
    const t = await tunnel(to, undefined, 16 * 1024);
    const data = randomBytes(32 * 1024 * 1024);
    const { reply, error } = await exchange(t.local, data);
    expect(error).toBeUndefined();
    expect(reply.length).toBe(data.length);
    expect(sha(reply)).toBe(sha(data));
  }, 30_000);

  it('carries a half-close end to end: the target sees the FIN after every byte, and its reply still arrives', async () => {
    // The target answers only once the request has ended, with its size and digest.
    const to = await target((s) => {
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      s.on('end', () => {
        const all = Buffer.concat(parts);
        s.end(Buffer.concat([Buffer.from(`${all.length} ${sha(all)}\n`), randomBytes(1_000_000)]));
      });
    });
    const t = await tunnel(to);
    const data = randomBytes(777_777);
    const { reply, error } = await exchange(t.local, data);
    expect(error).toBeUndefined();
    expect(reply.subarray(0, reply.indexOf(10)).toString()).toBe(`${data.length} ${sha(data)}`);
    expect(reply.length).toBe(reply.indexOf(10) + 1 + 1_000_000);
  });

  it('a session that closes while its messages still wait for the plain side delivers them all before the FIN', async () => {
    // The target ends its side at once and reads nothing for a while: the server end receives the
    // whole upload and the client's close (its 64 MiB mark holds it all), the target's FIN closes
    // the other direction, and the session closes with most of the upload still queued for the
    // target. All of it must reach the target, then the FIN.
    let resume = (): void => {};
    let settle = (_: { length: number; digest: string }): void => {};
    const got = new Promise<{ length: number; digest: string }>((r) => {
      settle = r;
    });
    const to = await target((s) => {
      s.pause();
      s.end();
      const h = createHash('sha256');
      let length = 0;
      s.on('data', (d: Buffer) => {
        h.update(d);
        length += d.length;
      });
      s.on('end', () => settle({ length, digest: h.digest('hex') }));
      resume = () => s.resume();
    });
    const t = await tunnel(to, undefined, 64 * 1024 * 1024);
    const data = randomBytes(32 * 1024 * 1024);
    const { reply, error } = await exchange(t.local, data);
    expect(error).toBeUndefined();
    expect(reply.length).toBe(0);
    // Both directions have ended at the local client; give the two ends time to close the session.
    await new Promise((r) => setTimeout(r, 500));
    resume();
    expect(await got).toEqual({ length: data.length, digest: sha(data) });
  }, 30_000);

  it('a target that is down resets the local connection promptly, and both ends report why', async () => {
    const dead = createServer();
    const to = await listening(dead);
    await new Promise<void>((r) => dead.close(() => r()));
    const t = await tunnel(to);
    const started = Date.now();
    const { reply } = await exchange(t.local, Buffer.from('GET / HTTP/1.0\r\n\r\n'));
    expect(reply.length).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
    await until(() => t.clientEvents.some((e) => e.type === 'closed'));
    const te = t.serverEvents.find((e) => e.type === 'target-error');
    expect(te?.type === 'target-error' && te.error.code).toBe('ERR_CONNECT_FAILED');
    expect(te?.type === 'target-error' && te.error.message).toContain('ECONNREFUSED');
    const closed = t.clientEvents.find((e) => e.type === 'closed');
    // The server end cut the session without a close record: a truncation, or a reset.
    expect(['ERR_TRUNCATED', 'ERR_CONNECTION_RESET']).toContain(
      closed?.type === 'closed' && closed.result.error?.code,
    );
  });

  it('a target that does not answer in time is a connect timeout', async () => {
    // A Python listener with a backlog of 0 that never accepts: once its queue is full, the
    // kernel drops further SYNs, so a connect neither succeeds nor fails.
    const py = spawn('python3', ['-c', STALL], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => {
      py.kill('SIGKILL');
    });
    const port = await new Promise<string>((r) =>
      py.stdout.once('data', (d: Buffer) => r(d.toString().trim())),
    );
    const t = await tunnel(`tcp://127.0.0.1:${port}`, 300);
    const started = Date.now();
    const { reply } = await exchange(t.local, Buffer.from('x'));
    expect(reply.length).toBe(0);
    await until(() => t.serverEvents.some((e) => e.type === 'target-error'));
    const te = t.serverEvents.find((e) => e.type === 'target-error');
    expect(te?.type === 'target-error' && te.error.code).toBe('ERR_CONNECT_FAILED');
    expect(te?.type === 'target-error' && te.error.message).toContain('timeout after 300 ms');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('back-pressure: a local client that does not read stops the target being read', async () => {
    let pushed = 0;
    let stop = false;
    const to = await target((s) => {
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        // Bounded: at most 256 MiB, and only while the socket takes it.
        while (!stop && pushed < 256 * 1024 * 1024) {
          pushed += chunk.length;
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    const t = await tunnel(to);
    const s = createConnection({ port: portOf(t.local), host: '127.0.0.1' });
    s.pause(); // never read
    await new Promise((r) => setTimeout(r, 1500));
    const first = pushed;
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    s.destroy();
    // Kernel buffers at three hops plus a high-water mark per side: far below the 256 MiB on offer,
    // and no longer growing.
    expect(first).toBeLessThan(64 * 1024 * 1024);
    expect(pushed - first).toBeLessThan(2 * 1024 * 1024);
  });

  it('100 concurrent pipes each get their own bytes back; resetting one target connection ends only its pipe', async () => {
    let victim: Socket | undefined;
    const to = await target((s) => {
      s.once('data', (d: Buffer) => {
        if (d.toString().startsWith('victim')) {
          victim = s;
          return;
        }
        s.write(d);
        s.pipe(s);
      });
    });
    const t = await tunnel(to);
    const victimRun = exchange(t.local, Buffer.from('victim'));
    await until(() => victim !== undefined);
    const datas = Array.from({ length: 100 }, (_, i) =>
      Buffer.concat([Buffer.from(`pipe ${i} `), randomBytes(20_000)]),
    );
    const runs = datas.map((d) => exchange(t.local, d));
    victim?.resetAndDestroy();
    const results = await Promise.all(runs);
    for (const [i, r] of results.entries()) {
      expect(r.error).toBeUndefined();
      expect(sha(r.reply)).toBe(sha(datas[i] as Buffer));
    }
    const v = await victimRun;
    expect(v.reply.length).toBe(0);
  });

  for (const name of ['spiped', 'none'] as const) {
    it(`the same forwarding works over the ${name} profile`, async () => {
      const to = await target(echo);
      const secret = name === 'spiped' ? randomBytes(32) : undefined;
      const settings = { profile: name, secret, ...(name === 'none' ? { framing: 'chunk' as const } : {}) };
      let serverUrl = '';
      const server = new SesameServer({
        listen: 'tcp://127.0.0.1:0',
        profile: compatServerProfile({ ...settings, maxChunkBytes: 64 * 1024 }),
        handler: forwardHandler(to),
      });
      serverUrl = await server.listen();
      cleanups.push(() => server.close());
      const listener = new ForwardListener({
        listen: 'tcp://127.0.0.1:0',
        open: () => openSession(serverUrl, compatClientConnection(settings)),
      });
      const local = await listener.listen();
      cleanups.push(() => listener.close(1000));
      const data = randomBytes(1_000_003);
      const { reply, error } = await exchange(local, data);
      expect(error).toBeUndefined();
      expect(sha(reply)).toBe(sha(data));
    });
  }
});
