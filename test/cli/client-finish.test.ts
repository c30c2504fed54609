// `sesame connect` always finishes, and says why: a request that times out, a session the server
// ends while the client still has input to send, many piped clients against a multi-worker server.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadKeyring } from '../../src/keyring/file.js';
import { presharedKeys } from '../../src/keyring/preshared.js';
import { UdpServer } from '../../src/net/datagram-server.js';
import { SesameServer } from '../../src/net/stream-server.js';
import { BIN, exitOf, home, run, serve, track } from '../helpers/cli.js';

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** `sesame connect URL --keyring RING`, its stdin left open (as a user at a pipe that stays open). */
function client(
  url: string,
  ring: string,
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; out: () => string; err: () => string } {
  const child = track(
    spawn(process.execPath, [BIN, 'connect', url, '--keyring', ring], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { child, out: () => out, err: () => err };
}

/** The exit code, or 'running' when the process is still running after `ms`. */
function exitWithin(child: ChildProcess, ms: number): Promise<number | null | 'running'> {
  return Promise.race([exitOf(child), new Promise<'running'>((r) => setTimeout(r, ms, 'running'))]);
}

async function ringWithKey(env: NodeJS.ProcessEnv): Promise<string> {
  const ring = join(env.HOME as string, 'ring.json');
  expect((await run(['keygen', '--keyring', ring], env)).code).toBe(0);
  return ring;
}

describe('sesame connect finishes', () => {
  it('over udp://, a request that times out prints ERR_REQUEST_TIMEOUT and exits 1 at once', async () => {
    const env = home();
    const ring = await ringWithKey(env);
    // A server that never replies.
    const server = new UdpServer({
      listen: 'udp://127.0.0.1:0',
      keys: presharedKeys(await loadKeyring(ring)),
      handler: () => undefined,
    });
    servers.push(server);
    const url = await server.listen();
    const c = client(url, ring, env);
    c.child.stdin?.write('hello\n');
    // The request times out after 5 s; the client must not wait for more input after that.
    expect(await exitWithin(c.child, 12_000)).toBe(1);
    expect(c.err()).toMatch(/ERR_REQUEST_TIMEOUT/);
    c.child.stdin?.destroy();
  });

  it('a piped client whose session the server closes says so on stderr and exits 1', async () => {
    const env = home();
    const ring = await ringWithKey(env);
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      keys: presharedKeys(await loadKeyring(ring)),
      handler: (m: Buffer) => m,
    });
    servers.push(server);
    const url = await server.listen();
    const c = client(url, ring, env);
    c.child.stdin?.write('one\n');
    await expect.poll(c.out, { timeout: 10_000 }).toBe('one\n');
    // The server ends the session (as a reload with --close-revoked, or a shutdown, would).
    expect(server.closeSessions(() => true)).toBe(1);
    expect(await exitWithin(c.child, 5_000)).toBe(1);
    expect(c.err()).toMatch(/the server closed the session/);
    c.child.stdin?.destroy();
  });

  it('64 concurrent piped clients against serve --workers 2 all print their reply and exit 0', async () => {
    const env = home();
    const ring = await ringWithKey(env);
    const { url } = await serve(['--listen', 'tcp://127.0.0.1:0', '--keyring', ring, '--workers', '2'], env);
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const c = client(url, ring, env);
        c.child.stdin?.end(`c${i}\n`);
        // A hang detector, not a speed target: 64 Node processes start on a shared machine.
        const code = await exitWithin(c.child, 90_000);
        return { code, out: c.out(), err: c.err() };
      }),
    );
    const bad = results.filter((r, i) => r.code !== 0 || !r.out.endsWith(`] c${i}\n`));
    expect(bad).toEqual([]);
  }, 120_000);
});

describe('sesame connect over udp:// and the datagram limit', () => {
  it('refuses a line whose reply could not fit in one datagram, before sending it; shorter ones are answered', async () => {
    const env = home();
    const ring = await ringWithKey(env);
    const { url, log } = await serve(['--listen', 'udp://127.0.0.1:0', '--keyring', ring], env);
    // 1,136 bytes is the longest line: the timestamp reply adds 27 bytes and must stay under 1,200.
    const ok = await run(['connect', url, '--keyring', ring], env, `${'a'.repeat(1136)}\n`);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^\[.{24}\] a{1136}\n$/);
    const r = await run(['connect', url, '--keyring', ring], env, `${'b'.repeat(1180)}\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERR_DATAGRAM_TOO_LARGE/);
    expect(r.stdout).toBe('');
    // Nothing reached the server's service: no handler error, no stack trace in its log.
    expect(log()).not.toMatch(/handler-error|"stack"/);
  });
});
