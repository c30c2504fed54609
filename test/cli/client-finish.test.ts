// `sesame connect` always finishes, and says why: a request that times out, a session the server
// ends while the client still has input to send (or sits at the prompt), in the native and the
// seed profile, many piped clients against a multi-worker server.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
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
  return spawnSesame(['connect', url, '--keyring', ring], env);
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

/** `sesame ARGS` with its stdin a pipe left open, collecting its output. */
function spawnSesame(
  args: string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; out: () => string; err: () => string } {
  const child = track(spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] }));
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

/**
 * `sesame ARGS` on a terminal (util-linux `script` gives it a pseudo-terminal), then `exit=CODE`;
 * `out()` is everything the terminal showed.
 */
function onTerminal(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; out: () => string } {
  const cmd = `${[process.execPath, BIN, ...args].join(' ')}; echo "exit=$?"`;
  const child = track(spawn('script', ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] }));
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return { child, out: () => out };
}

describe('sesame connect says at once that the server ended the session', () => {
  it('interactive: a server shutdown ends the >>> prompt with the reason and exit 1', async () => {
    const env = home();
    const ring = await ringWithKey(env);
    const server = await serve(['--listen', 'tcp://127.0.0.1:0', '--keyring', ring], env);
    const c = onTerminal(['connect', server.url, '--keyring', ring], env);
    await expect.poll(c.out, { timeout: 10_000 }).toContain('>>> ');
    c.child.stdin?.write('one\r');
    await expect.poll(c.out, { timeout: 10_000 }).toMatch(/\] one/);
    server.child.kill('SIGTERM');
    // No line is typed after the shutdown: the prompt must not wait for one.
    await expect.poll(c.out, { timeout: 5_000 }).toMatch(/exit=1/);
    expect(c.out()).toMatch(/the server closed the session \(a shutdown, an idle timeout or a revoked key/);
    expect(await exitOf(server.child)).toBe(0);
  });

  it('piped: an idle timeout is reported on stderr with exit 1, while stdin is still open', async () => {
    const env = home();
    const ring = await ringWithKey(env);
    const server = await serve(
      ['--listen', 'tcp://127.0.0.1:0', '--keyring', ring, '--idle-timeout', '1s'],
      env,
    );
    const c = spawnSesame(['connect', server.url, '--keyring', ring], env);
    c.child.stdin?.write('one\n');
    await expect.poll(c.out, { timeout: 10_000 }).toMatch(/\] one\n$/);
    expect(await exitWithin(c.child, 8_000)).toBe(1);
    expect(c.err()).toMatch(/the server closed the session/);
    c.child.stdin?.destroy();
  });

  describe('--profile seed', () => {
    async function seedServer(
      env: NodeJS.ProcessEnv,
    ): Promise<{ url: string; child: ChildProcess; secret: string }> {
      const secret = join(env.HOME as string, 'secret');
      writeFileSync(secret, 'a seed secret of 32 bytes or so.\n', { mode: 0o600 });
      const s = await serve(
        ['--profile', 'seed', '--secret-file', secret, '--listen', 'tcp://127.0.0.1:0'],
        env,
      );
      return { url: s.url, child: s.child, secret };
    }

    it('piped: a server shutdown after a reply is the server closing the session, not a wrong secret', async () => {
      const env = home();
      const server = await seedServer(env);
      const c = spawnSesame(
        ['connect', server.url, '--profile', 'seed', '--secret-file', server.secret],
        env,
      );
      c.child.stdin?.write('one\n');
      await expect.poll(c.out, { timeout: 10_000 }).toMatch(/\] one\n$/);
      server.child.kill('SIGTERM');
      expect(await exitWithin(c.child, 5_000)).toBe(1);
      expect(c.err()).toMatch(/the server closed the session.*\(ERR_CLOSED\)/);
      expect(c.err()).not.toMatch(/wrong secret|ERR_AUTH_REFUSED/);
      c.child.stdin?.destroy();
    });

    it('interactive: a shutdown before any reply (the user has typed nothing) is not a wrong secret either', async () => {
      const env = home();
      const server = await seedServer(env);
      const c = onTerminal(['connect', server.url, '--profile', 'seed', '--secret-file', server.secret], env);
      await expect.poll(c.out, { timeout: 10_000 }).toContain('>>> ');
      // A refusal comes at once; an end later than SEED_VERDICT_MS (1 s) is the server ending it.
      await new Promise((r) => setTimeout(r, 1_500));
      server.child.kill('SIGTERM');
      await expect.poll(c.out, { timeout: 5_000 }).toMatch(/exit=1/);
      expect(c.out()).toMatch(/the server closed the session.*before any reply/);
      expect(c.out()).not.toMatch(/wrong secret|ERR_AUTH_REFUSED/);
    });

    it('a wrong secret is still reported as a refusal', async () => {
      const env = home();
      const server = await seedServer(env);
      const wrong = join(env.HOME as string, 'wrong');
      writeFileSync(wrong, 'not the secret the server holds..\n', { mode: 0o600 });
      const r = await run(['connect', server.url, '--profile', 'seed', '--secret-file', wrong], env, 'one\n');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/refused the answer \(wrong secret or digest\) \(ERR_AUTH_REFUSED\)/);
    });
  });
});
