// `sesame serve --forward` and `sesame connect --listen` as real processes at both ends, in front of
// a plain target: bytes and half-close through TCP and Unix sockets, curl through a Node HTTP
// server, 256 MiB each way with a checksum, the target down (both logs say why), graceful exit
// on SIGTERM, a half-closed pipe that flows longer than the idle timeout while bytes move (and is
// cut when they stop), key revocation with --close-revoked, PROXY headers, and the option
// combinations refused with exit status 2.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, exitOf, home, run, serve, startListening } from '../helpers/cli.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listenOn(server: Server, path?: string): Promise<string> {
  await new Promise<void>((r) =>
    path === undefined ? server.listen(0, '127.0.0.1', r) : server.listen(path, r),
  );
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  if (path !== undefined) return `unix://${path}`;
  const a = server.address();
  return `tcp://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`;
}

/** A plain target: `serve` gets each socket; every socket is destroyed after the test. */
function plainTarget(serve: (s: Socket) => void): Server {
  const sockets = new Set<Socket>();
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
  });
  return createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    serve(s);
  });
}

/** A key ring with one key for alice, and the environment to use it. */
async function ring(): Promise<{ env: NodeJS.ProcessEnv; file: string }> {
  const env = home();
  const file = join(env.HOME as string, 'ring.json');
  const r = await run(['keygen', '--keyring', file, '--principal', 'alice'], env);
  expect(r.code).toBe(0);
  return { env, file };
}

/** Both ends as processes: returns the local URL and both logs. */
async function bothEnds(to: string, opts: { listen?: string; local?: string; extra?: string[] } = {}) {
  const { env, file } = await ring();
  const server = await serve(
    [
      '--keyring',
      file,
      '--listen',
      opts.listen ?? 'tcp://127.0.0.1:0',
      '--forward',
      to,
      ...(opts.extra ?? []),
    ],
    env,
  );
  cleanups.push(() => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  });
  const client = await startListening(
    [BIN, 'connect', server.url, '--keyring', file, '--listen', opts.local ?? 'tcp://127.0.0.1:0'],
    env,
  );
  cleanups.push(() => {
    if (client.child.exitCode === null) client.child.kill('SIGKILL');
  });
  return { server, client, local: client.url };
}

function socketOptions(url: string): { path: string } | { host: string; port: number } {
  return url.startsWith('unix://')
    ? { path: url.slice('unix://'.length) }
    : { host: '127.0.0.1', port: Number(url.split(':').at(-1)) };
}

/** Write `data`, half-close, read everything until the peer's end (or an error). */
function exchange(url: string, data: Buffer): Promise<{ reply: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = createConnection({ ...socketOptions(url), allowHalfOpen: true }, () => s.end(data));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve({ reply: Buffer.concat(chunks) }));
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ reply: Buffer.concat(chunks), error: e.code }));
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function until(test: () => boolean, ms = 5000): Promise<void> {
  for (let i = 0; i * 25 < ms && !test(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(test()).toBe(true);
}

/** Sixteen deterministic 64 KiB blocks (counter-mode SHA-256), cycled, so both sides can check them. */
const BLOCKS16 = Array.from({ length: 16 }, (_, i) => {
  const out = Buffer.alloc(64 * 1024);
  for (let at = 0; at < out.length; at += 32)
    createHash('sha256').update(`${i}:${at}`).digest().copy(out, at);
  return out;
});
const block = (i: number): Buffer => BLOCKS16[i % 16] as Buffer;

describe('sesame serve --forward / connect --listen', () => {
  it('joins a local client to the target through both ends; a half-close still gets the whole reply', async () => {
    // The target replies only after the request ended: its size and digest, then 300 000 bytes.
    const to = await listenOn(
      plainTarget((s) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => {
          const all = Buffer.concat(parts);
          s.end(Buffer.concat([Buffer.from(`${all.length} ${sha(all)}\n`), Buffer.alloc(300_000, 1)]));
        });
      }),
    );
    const { server, client, local } = await bothEnds(to);
    const data = Buffer.alloc(2_000_000, 0x42);
    const { reply, error } = await exchange(local, data);
    expect(error).toBeUndefined();
    const nl = reply.indexOf(10);
    expect(reply.subarray(0, nl).toString()).toBe(`${data.length} ${sha(data)}`);
    expect(reply.length - nl - 1).toBe(300_000);
    await until(() => /"event":"pipe-closed"/.test(server.log()));
    expect(server.log()).toMatch(new RegExp(`"event":"pipe-open","principal":"alice".*"target":"${to}"`));
    expect(server.log()).toMatch(/"bytesToTarget":2000000,"bytesFromTarget":300\d\d\d/);
    // SIGTERM: both ends stop accepting and exit 0.
    client.child.kill('SIGTERM');
    server.child.kill('SIGTERM');
    expect(await exitOf(client.child)).toBe(0);
    expect(await exitOf(server.child)).toBe(0);
  });

  it('works over Unix sockets at every hop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sesame-fwd-'));
    const to = await listenOn(
      plainTarget((s) => s.pipe(s)),
      join(dir, 'target.sock'),
    );
    const { local } = await bothEnds(to, {
      listen: `unix://${join(dir, 'sesame.sock')}`,
      local: `unix://${join(dir, 'local.sock')}`,
    });
    const data = Buffer.alloc(100_000, 7);
    const { reply } = await exchange(local, data);
    expect(sha(reply)).toBe(sha(data));
  });

  it('curl through both ends to a Node HTTP server', async () => {
    const http = createHttpServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${req.url}\n`);
    });
    const to = await listenOn(http as unknown as Server);
    const { local } = await bothEnds(to);
    const port = local.split(':').at(-1);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'curl',
        ['-sS', '--max-time', '10', `http://127.0.0.1:${port}/through-sesame`],
        (err, stdout) => (err === null ? resolve(stdout) : reject(err)),
      ),
    );
    expect(out).toBe('hello /through-sesame\n');
  });

  it('carries 256 MiB each way with a checksum', async () => {
    const BLOCKS = 4096; // 4096 x 64 KiB = 256 MiB
    // Write the 256 MiB (blocks 0..15, round and round) as fast as `s` takes them, then end it.
    const sendBlocks = (s: Socket): void => {
      let i = 0;
      const pump = (): void => {
        while (i < BLOCKS) {
          if (!s.write(block(i++ % 16))) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    };
    // The target hashes what it receives and sends the same deterministic 256 MiB back, at once.
    let received = '';
    const to = await listenOn(
      plainTarget((s) => {
        const h = createHash('sha256');
        s.on('data', (d: Buffer) => h.update(d));
        s.on('end', () => {
          received = h.digest('hex');
        });
        sendBlocks(s);
      }),
    );
    const { local } = await bothEnds(to);
    const expected = createHash('sha256');
    for (let i = 0; i < BLOCKS; i++) expected.update(block(i % 16));
    const digest = expected.digest('hex');
    const got = await new Promise<string>((resolve, reject) => {
      const h = createHash('sha256');
      const s = createConnection({ ...socketOptions(local), allowHalfOpen: true });
      s.once('connect', () => sendBlocks(s));
      s.on('data', (d: Buffer) => h.update(d));
      s.on('end', () => resolve(h.digest('hex')));
      s.on('error', reject);
    });
    expect(got).toBe(digest);
    await until(() => received !== '');
    expect(received).toBe(digest);
  }, 60_000);

  it('a target that is down: the local connection ends at once, with nothing, and both logs say why', async () => {
    const dead = createServer();
    const to = await listenOn(dead);
    await new Promise<void>((r) => dead.close(() => r()));
    const { server, client, local } = await bothEnds(to);
    const started = Date.now();
    const { reply } = await exchange(local, Buffer.from('PING\r\n'));
    expect(reply.length).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
    await until(() => /pipe-target-error/.test(server.log()) && /"event":"pipe-closed"/.test(client.log()));
    expect(server.log()).toMatch(
      /"event":"pipe-target-error","principal":"alice".*"code":"ERR_CONNECT_FAILED".*ECONNREFUSED/,
    );
    expect(client.log()).toMatch(/the server end cut the connection before any byte/);
  });

  it("--workers 2 --metrics: the primary's metrics count every pipe and its bytes", async () => {
    const to = await listenOn(plainTarget((s) => s.pipe(s)));
    const { server, local } = await bothEnds(to, {
      extra: ['--workers', '2', '--metrics', 'tcp://127.0.0.1:0'],
    });
    const datas = Array.from({ length: 8 }, (_, i) => Buffer.alloc(10_000 + i, i));
    const replies = await Promise.all(datas.map((d) => exchange(local, d)));
    for (const [i, r] of replies.entries()) expect(sha(r.reply)).toBe(sha(datas[i] as Buffer));
    const total = datas.reduce((n, d) => n + d.length, 0);
    const metricsUrl = /metrics on (http:\/\/[^\s"]+)/.exec(server.log())?.[1] as string;
    const want = new RegExp(`sesame_pipe_bytes_total\\{direction="to_target"\\} ${total}\\b`);
    let text = '';
    for (let i = 0; i < 100 && !want.test(text); i++) {
      text = await fetch(metricsUrl).then(
        (r) => r.text(),
        () => '',
      );
      if (!want.test(text)) await new Promise((r) => setTimeout(r, 100));
    }
    expect(text).toMatch(want);
    expect(text).toMatch(new RegExp(`sesame_pipe_bytes_total\\{direction="from_target"\\} ${total}\\b`));
    expect(text).toMatch(/sesame_pipes_open 0\b/);
    expect(text).toMatch(/sesame_pipe_target_errors_total 0\b/);
  });

  it('a half-closed pipe flows past the idle timeout while bytes move, and is cut once they stop', async () => {
    // After the client's FIN the target streams its reply slowly: 12 chunks 250 ms apart (3 s),
    // three times the server's idle timeout. A request saying `silent` gets no reply at all.
    const silentSockets: Socket[] = [];
    const to = await listenOn(
      plainTarget((s) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => {
          if (Buffer.concat(parts).toString() === 'silent') {
            silentSockets.push(s); // never ends its side: destroyed after the test
            return;
          }
          let i = 0;
          const timer = setInterval(() => {
            if (s.destroyed) clearInterval(timer);
            else if (i < 12) s.write(Buffer.alloc(1000, i++));
            else {
              clearInterval(timer);
              s.end();
            }
          }, 250);
        });
      }),
    );
    cleanups.push(() => {
      for (const s of silentSockets) s.destroy();
    });
    const { server, local } = await bothEnds(to, { extra: ['--idle-timeout', '1s'] });
    const started = Date.now();
    const { reply, error } = await exchange(local, Buffer.from('slow please'));
    expect(error).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_500);
    expect(reply).toEqual(Buffer.concat(Array.from({ length: 12 }, (_, i) => Buffer.alloc(1000, i))));
    await until(() => /"event":"pipe-closed"/.test(server.log()));
    expect(server.log()).toMatch(/"event":"pipe-closed".*"bytesFromTarget":12000/);
    expect(server.log()).not.toMatch(/"event":"pipe-closed"[^\n]*"code"/);

    // No byte after the half-close: the server end cuts the pipe after its idle timeout.
    const silentStart = Date.now();
    const silent = await exchange(local, Buffer.from('silent'));
    expect(silent.reply.length).toBe(0);
    expect(Date.now() - silentStart).toBeLessThan(10_000);
    // The idle session closes gracefully (the idle event logged), and the target's socket with it.
    await until(() => (server.log().match(/"event":"pipe-closed"/g) ?? []).length === 2, 10_000);
    expect(server.log()).toMatch(/"code":"ERR_IDLE_TIMEOUT"/);
  }, 30_000);

  it('--close-revoked: the pipe of a revoked key is closed, the others keep flowing', async () => {
    const env = home();
    const file = join(env.HOME as string, 'ring.json');
    const alice = (await run(['keys', 'add', '--keyring', file, '--principal', 'alice'], env)).stdout.trim();
    const bob = (await run(['keys', 'add', '--keyring', file, '--principal', 'bob'], env)).stdout.trim();
    // An echo that never ends its side (a FIN alone does not make it hang up): the pipe of the
    // revoked key must be closed by the server end itself.
    const targets: Socket[] = [];
    const to = await listenOn(
      plainTarget((s) => {
        targets.push(s);
        s.on('data', (d: Buffer) => s.write(d));
      }),
    );
    cleanups.push(() => {
      for (const s of targets) s.destroy();
    });
    const server = await serve(
      ['--keyring', file, '--listen', 'tcp://127.0.0.1:0', '--forward', to, '--close-revoked'],
      env,
    );
    cleanups.push(() => {
      if (server.child.exitCode === null) server.child.kill('SIGKILL');
    });
    const ends = await Promise.all(
      [alice, bob].map((id) =>
        startListening(
          [BIN, 'connect', server.url, '--keyring', file, '--key-id', id, '--listen', 'tcp://127.0.0.1:0'],
          env,
        ),
      ),
    );
    for (const e of ends) {
      cleanups.push(() => {
        if (e.child.exitCode === null) e.child.kill('SIGKILL');
      });
    }
    // One long-lived local connection through each key, echoing line by line.
    const open = ends.map((e) => {
      const s = createConnection(socketOptions(e.url));
      const state = { socket: s, got: '', ended: false };
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        state.got += d;
      });
      s.on('close', () => {
        state.ended = true;
      });
      s.on('error', () => {});
      cleanups.push(() => {
        s.destroy();
      });
      return state;
    });
    const [a, b] = open as [(typeof open)[0], (typeof open)[0]];
    a.socket.write('alice 1\n');
    b.socket.write('bob 1\n');
    await until(() => a.got === 'alice 1\n' && b.got === 'bob 1\n');
    await until(() => (server.log().match(/"event":"pipe-open"/g) ?? []).length === 2);

    expect((await run(['keys', 'revoke', alice, '--keyring', file], env)).code).toBe(0);
    await until(() => /closed 1 sessions of keys no longer valid/.test(server.log()), 10_000);
    await until(() => a.ended, 10_000); // alice's local connection is closed
    await until(() => /"event":"pipe-closed","principal":"alice"/.test(server.log()));
    expect(server.log()).not.toMatch(/"event":"pipe-closed","principal":"bob"/);
    // Bob's pipe keeps flowing.
    b.socket.write('bob 2\n');
    await until(() => b.got === 'bob 1\nbob 2\n');
    expect(b.ended).toBe(false);
  }, 30_000);

  it('--proxy-protocol: the pipe and its log lines carry the client address from the PROXY header', async () => {
    const { env, file } = await ring();
    // The target answers with the address its peer has, so the test sees what reached it.
    const to = await listenOn(plainTarget((s) => s.pipe(s)));
    const server = await serve(
      [
        '--keyring',
        file,
        '--listen',
        'tcp://127.0.0.1:0',
        '--forward',
        to,
        '--proxy-protocol',
        '--trusted-proxy',
        '127.0.0.1/32',
      ],
      env,
    );
    cleanups.push(() => {
      if (server.child.exitCode === null) server.child.kill('SIGKILL');
    });
    // A load balancer in front of the server end: each connection starts with a PROXY v1 header
    // naming the original client (127.0.0.77:40001), then carries the bytes both ways.
    const serverPort = Number(server.url.split(':').at(-1));
    const balancer = await listenOn(
      plainTarget((front) => {
        const back = createConnection({ host: '127.0.0.1', port: serverPort }, () => {
          back.write(`PROXY TCP4 127.0.0.77 127.0.0.1 40001 ${serverPort}\r\n`);
          front.pipe(back);
          back.pipe(front);
        });
        back.on('error', () => front.destroy());
        front.on('close', () => back.destroy());
      }),
    );
    const client = await startListening(
      [BIN, 'connect', balancer, '--keyring', file, '--listen', 'tcp://127.0.0.1:0'],
      env,
    );
    cleanups.push(() => {
      if (client.child.exitCode === null) client.child.kill('SIGKILL');
    });
    const data = Buffer.from('through the balancer');
    const { reply, error } = await exchange(client.url, data);
    expect(error).toBeUndefined();
    expect(reply).toEqual(data);
    await until(() => /"event":"pipe-closed"/.test(server.log()));
    expect(server.log()).toMatch(
      /"event":"pipe-open","principal":"alice"[^\n]*"remote":"127\.0\.0\.77:40001"[^\n]*"target"/,
    );
    expect(server.log()).toMatch(/"event":"pipe-closed"[^\n]*"remote":"127\.0\.0\.77:40001"/);
    expect(server.log()).toMatch(/pipe alice from 127\.0\.0\.77:40001 -> tcp:\/\/127\.0\.0\.1:/);
  });

  it('refuses option combinations that do not fit, with exit status 2', async () => {
    const env = home();
    for (const args of [
      ['serve', '--forward', 'udp://127.0.0.1:9'],
      ['serve', '--forward', 'tcp://127.0.0.1:9', '--service', 'echo'],
      ['serve', '--listen', 'udp://127.0.0.1:0', '--forward', 'tcp://127.0.0.1:9'],
      ['serve', '--connect-timeout', '5'],
      ['connect', 'tcp://127.0.0.1:9', '--grace', '5'],
      ['connect', 'tcp://127.0.0.1:9', '--listen', 'udp://127.0.0.1:0'],
      ['connect', 'tcp://127.0.0.1:9', '--listen', 'tcp://127.0.0.1:0', '--profile', 'none', '--per-message'],
      ['serve', '--profile', 'seed', '--secret-file', '/dev/null', '--no-forward-secrecy'],
      ['serve', '--profile', 'spiped', '--secret-file', '/dev/null', '--digest', 'md5'],
    ]) {
      const r = await run(args, env);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
    }
  });
});
