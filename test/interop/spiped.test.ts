// The spiped profile against the real spiped (Debian's package): Sesame's client through
// `spiped -d`, and `spiped -e` into Sesame's server, with and without forward secrecy (-f) at
// either end; a wrong key is refused at both ends and nothing reaches the target.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compatClientConnection, compatServerProfile } from '../../src/compat/index.js';
import type { AuthEvent } from '../../src/net/base-server.js';
import { openSession } from '../../src/net/client.js';
import { SesameServer } from '../../src/net/stream-server.js';
import { echoService } from '../../src/services/handlers.js';
import { BIN, home, serve, startListening } from '../helpers/cli.js';

function spipedPath(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v spiped'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export const SPIPED = spipedPath();
if (SPIPED === undefined)
  console.log('skipping the spiped interop tests: spiped is not installed (apt-get install spiped)');
const maybe = SPIPED === undefined && process.env.CI !== 'true' ? describe.skip : describe;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const dir = mkdtempSync(join(tmpdir(), 'sesame-spiped-'));
function keyFile(name: string, bytes = randomBytes(32)): { path: string; bytes: Buffer } {
  const path = join(dir, name);
  writeFileSync(path, bytes, { mode: 0o600 });
  return { path, bytes };
}

async function listening(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return typeof a === 'object' && a !== null ? a.port : 0;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  const port = await listening(srv);
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * A plain TCP echo target that counts the bytes it received (spiped -d connects to its target as
 * soon as it accepts, before the handshake, so connections alone prove nothing).
 */
async function echoTarget(): Promise<{ port: number; received: () => number }> {
  let received = 0;
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d: Buffer) => {
      received += d.length;
    });
    s.pipe(s);
  });
  const port = await listening(srv);
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return { port, received: () => received };
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`spiped exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`spiped did not listen on ${port}`);
}

/** Run `spiped -e|-d` in the foreground from `source` to `target` (killed after the test). */
export async function startSpiped(
  mode: '-e' | '-d',
  source: number,
  target: string,
  key: string,
  extra: string[] = [],
): Promise<void> {
  const child = spawn(
    SPIPED as string,
    [
      mode,
      '-F',
      '-s',
      `[127.0.0.1]:${source}`,
      '-t',
      target,
      '-k',
      key,
      '-p',
      join(dir, `${source}.pid`),
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  cleanups.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitForPort(source, child);
}

/** Write `data` on a plain socket, half-close, and read everything until the peer's end. */
function exchange(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s: Socket = createConnection({ port, host: '127.0.0.1', allowHalfOpen: true }, () => s.end(data));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

async function until(test: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !test(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(test()).toBe(true);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

maybe('the real spiped', () => {
  for (const [ours, theirs] of [
    [true, true],
    [true, false],
    [false, true],
    [false, false],
  ] as const) {
    const label = `Sesame fs=${ours}, spiped ${theirs ? 'default' : '-f'}`;

    it(`Sesame's client through spiped -d to a TCP target (${label})`, async () => {
      const key = keyFile(`k-d-${ours}-${theirs}`);
      const target = await echoTarget();
      const port = await freePort();
      await startSpiped('-d', port, `[127.0.0.1]:${target.port}`, key.path, theirs ? [] : ['-f']);
      const session = await openSession(
        `tcp://127.0.0.1:${port}`,
        compatClientConnection({ profile: 'spiped', secret: key.bytes, forwardSecrecy: ours }),
      );
      expect(session.info?.forwardSecrecy).toBe(ours && theirs);
      const data = randomBytes(300_000);
      const got: Buffer[] = [];
      let n = 0;
      const done = session.consume((m) => {
        got.push(m);
        n += m.length;
        if (n >= data.length) void session.close();
      });
      session.send(data);
      await done;
      await session.closed;
      expect(sha(Buffer.concat(got))).toBe(sha(data));
      expect(target.received()).toBe(data.length);
    });

    it(`spiped -e into Sesame's server (${label})`, async () => {
      const key = keyFile(`k-e-${ours}-${theirs}`);
      const server = new SesameServer({
        listen: 'tcp://127.0.0.1:0',
        profile: compatServerProfile({ profile: 'spiped', secret: key.bytes, forwardSecrecy: ours }),
        handler: echoService,
      });
      const auth: AuthEvent[] = [];
      server.on('auth', (e) => auth.push(e));
      const url = await server.listen();
      cleanups.push(() => server.close());
      const port = await freePort();
      await startSpiped(
        '-e',
        port,
        url.replace('tcp://', '').replace('127.0.0.1', '[127.0.0.1]'),
        key.path,
        theirs ? [] : ['-f'],
      );
      const data = randomBytes(300_000);
      const reply = await exchange(port, data);
      expect(sha(reply)).toBe(sha(data));
      // Every handshake succeeded (the readiness probe made spiped -e handshake too).
      expect(auth.length).toBeGreaterThan(0);
      expect(auth.filter((e) => !e.ok)).toEqual([]);
    });
  }

  it('a wrong key is refused at both ends and nothing is forwarded', async () => {
    const right = keyFile('right');
    const wrong = keyFile('wrong');
    // Sesame's client, wrong key, through spiped -d: refused, and the target never sees a connection.
    const target = await echoTarget();
    const port = await freePort();
    await startSpiped('-d', port, `[127.0.0.1]:${target.port}`, right.path);
    await expect(
      openSession(
        `tcp://127.0.0.1:${port}`,
        compatClientConnection({ profile: 'spiped', secret: wrong.bytes }),
      ),
    ).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
    expect(target.received()).toBe(0);
    // spiped -e with the wrong key into Sesame's server: refused, the handler never runs.
    let handled = 0;
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      profile: compatServerProfile({ profile: 'spiped', secret: right.bytes }),
      handler: (m) => {
        handled++;
        return m;
      },
    });
    const auth: AuthEvent[] = [];
    server.on('auth', (e) => auth.push(e));
    const url = await server.listen();
    cleanups.push(() => server.close());
    const ePort = await freePort();
    await startSpiped('-e', ePort, url.replace('tcp://', '').replace('127.0.0.1', '[127.0.0.1]'), wrong.path);
    await until(() => auth.length === 1); // the readiness probe made spiped -e handshake once
    auth.length = 0;
    const reply = await exchange(ePort, Buffer.from('secret request')).catch(() => Buffer.alloc(0));
    expect(reply.length).toBe(0);
    expect(auth.map((e) => (e.ok ? 'ok' : e.code))).toEqual(['ERR_AUTH_FAILED']);
    expect(handled).toBe(0);
  });

  describe('the sesame command as either end of a spiped pipe', () => {
    // A key file as people make them: text with a trailing newline, which spiped hashes too.
    const textKey = () =>
      keyFile(`text-${Math.random()}`, Buffer.from(`${randomBytes(32).toString('hex')}\n`));
    // The two sesame ends under test: the server end in front of `targetPort`, the client end
    // listening on a free local port and carrying to `port`.
    const serveSpiped = (key: string, targetPort: number, flags: string[] = []) =>
      serve(
        [
          '--profile',
          'spiped',
          '--secret-file',
          key,
          '--listen',
          'tcp://127.0.0.1:0',
          '--forward',
          `tcp://127.0.0.1:${targetPort}`,
          ...flags,
        ],
        home(),
      );
    const connectSpiped = (port: number, key: string, flags: string[] = []) =>
      startListening(
        [
          BIN,
          'connect',
          `tcp://127.0.0.1:${port}`,
          '--profile',
          'spiped',
          '--secret-file',
          key,
          '--listen',
          'tcp://127.0.0.1:0',
          ...flags,
        ],
        home(),
      );

    for (const fs of [true, false]) {
      const flags = fs ? [] : ['--no-forward-secrecy'];
      const spipedFlags = fs ? [] : ['-f'];

      it(`spiped -e -> sesame serve --profile spiped --forward -> target (${fs ? 'forward secrecy' : '-f'})`, async () => {
        const key = textKey();
        const target = await echoTarget();
        const server = await serveSpiped(key.path, target.port, flags);
        const port = await freePort();
        await startSpiped('-e', port, `[127.0.0.1]:${server.url.split(':').at(-1)}`, key.path, spipedFlags);
        const data = randomBytes(500_000);
        const reply = await exchange(port, data);
        expect(sha(reply)).toBe(sha(data));
        expect(server.log()).toMatch(/"event":"pipe-open".*"target":"tcp:\/\/127.0.0.1:/);
      });

      it(`client -> sesame connect --profile spiped --listen -> spiped -d -> target (${fs ? 'forward secrecy' : '-f'})`, async () => {
        const key = textKey();
        const target = await echoTarget();
        const port = await freePort();
        await startSpiped('-d', port, `[127.0.0.1]:${target.port}`, key.path, spipedFlags);
        const client = await connectSpiped(port, key.path, flags);
        const data = randomBytes(500_000);
        const reply = await exchange(Number(client.url.split(':').at(-1)), data);
        expect(sha(reply)).toBe(sha(data));
      });
    }

    it('a wrong key through the command line: refused at either end, nothing reaches the target', async () => {
      const right = textKey();
      const wrong = textKey();
      const target = await echoTarget();
      // sesame serve with the right key, spiped -e with the wrong one.
      const server = await serveSpiped(right.path, target.port);
      const ePort = await freePort();
      await startSpiped('-e', ePort, `[127.0.0.1]:${server.url.split(':').at(-1)}`, wrong.path);
      const r1 = await exchange(ePort, Buffer.from('must not arrive')).catch(() => Buffer.alloc(0));
      expect(r1.length).toBe(0);
      await until(() => /ERR_AUTH_FAILED/.test(server.log()));
      // sesame connect with the wrong key, spiped -d with the right one.
      const dPort = await freePort();
      await startSpiped('-d', dPort, `[127.0.0.1]:${target.port}`, right.path);
      const client = await connectSpiped(dPort, wrong.path);
      const r2 = await exchange(
        Number(client.url.split(':').at(-1)),
        Buffer.from('must not arrive either'),
      ).catch(() => Buffer.alloc(0));
      expect(r2.length).toBe(0);
      await until(() => /pipe-connect-error.*ERR_AUTH_REFUSED/.test(client.log()));
      expect(target.received()).toBe(0);
    });
  });
});
