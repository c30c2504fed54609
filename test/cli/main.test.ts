// The `sesame` executable run as a real process over loopback TCP and Unix sockets.
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { BIN, exitOf, home, run, STAMP, serve, track } from '../helpers/cli.js';

describe('sesame CLI', () => {
  it('keygen creates a 0600 key ring and prints only the key id', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    const r = await run(['keygen', '--keyring', ring, '--principal', 'alice'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[0-9a-f]{16}\n$/);
    expect(statSync(ring).mode & 0o777).toBe(0o600);
    const second = await run(['keygen', '--keyring', ring], env);
    const ids = (JSON.parse(readFileSync(ring, 'utf8')) as { keys: { id: string }[] }).keys.map((k) => k.id);
    expect(ids).toEqual([r.stdout.trim(), second.stdout.trim()]);
  });

  it('serve with no key ring creates the default one and prints a connect command that works', async () => {
    const env = home();
    const { child, url, log } = await serve(['--listen', 'tcp://127.0.0.1:0'], env);
    const ringPath = join(env.XDG_CONFIG_HOME as string, 'sesame', 'keyring.json');
    expect(statSync(ringPath).mode & 0o777).toBe(0o600);
    await expect.poll(log).toMatch(/connect with: npx sesame connect/);
    const cmd = /connect with: npx sesame (connect [^"\n]+)/.exec(log());
    expect(cmd?.[1]).toBe(`connect ${url}`);
    const r = await run((cmd?.[1] ?? 'connect-command-missing').split(' '), env, 'hello\n\n百变星君\n');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(STAMP);
    expect(lines[0]?.endsWith('] hello')).toBe(true);
    expect(lines[1]?.endsWith('] 百变星君')).toBe(true);
    await expect.poll(log).toMatch(/"event":"authenticated".*"principal":"default"/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
    expect(log()).toMatch(/"msg":"stopped"/);
    // The secret appears nowhere in what the server or the client printed.
    const ring = JSON.parse(readFileSync(ringPath, 'utf8')) as { keys: { secret: string }[] };
    const secret = Buffer.from(ring.keys[0]?.secret ?? '', 'base64');
    expect(secret.length).toBe(32);
    for (const form of [secret.toString('hex'), secret.toString('base64'), secret.toString('base64url')]) {
      expect(log()).not.toContain(form);
      expect(r.stdout + r.stderr).not.toContain(form);
    }
  });

  it('a wrong key is refused: one clear line on stderr, non-zero exit, the reason in the server log', async () => {
    const env = home();
    const serverRing = join(env.HOME as string, 'server.json');
    const otherRing = join(env.HOME as string, 'other.json');
    await run(['keygen', '--keyring', serverRing], env);
    const other = (await run(['keygen', '--keyring', otherRing], env)).stdout.trim();
    const { child, url, log } = await serve(['--listen', 'tcp://127.0.0.1:0', '--keyring', serverRing], env);
    const r = await run(['connect', url, '--keyring', otherRing], env, 'hello\n');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/ERR_AUTH_REFUSED/);
    await expect.poll(log).toMatch(new RegExp(`"code":"ERR_UNKNOWN_KEY".*unknown key id ${other}`));
    child.kill('SIGINT');
    expect(await exitOf(child)).toBe(0);
  });

  it('serves the echo service over a Unix socket, and --key-id picks among several keys', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    await run(['keygen', '--keyring', ring], env);
    const second = (await run(['keygen', '--keyring', ring, '--principal', 'second'], env)).stdout.trim();
    const sock = join(env.HOME as string, 'sesame.sock');
    const { child, url, log } = await serve(
      ['--listen', `unix://${sock}`, '--keyring', ring, '--service', 'echo'],
      env,
    );
    expect(url).toBe(`unix://${sock}`);
    const ambiguous = await run(['connect', url, '--keyring', ring], env, 'x\n');
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/--key-id.*ERR_KEY_AMBIGUOUS/s);
    const r = await run(['connect', url, '--keyring', ring, '--key-id', second], env, 'one\ntwo\n');
    expect(r).toMatchObject({ code: 0, stdout: 'one\ntwo\n' });
    await expect.poll(log).toMatch(/"principal":"second"/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('PSK-only clients are refused unless the server allows them', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    await run(['keygen', '--keyring', ring], env);
    const strict = await serve(['--listen', 'tcp://127.0.0.1:0', '--keyring', ring], env);
    const refused = await run(['connect', strict.url, '--keyring', ring, '--no-forward-secrecy'], env, 'x\n');
    expect(refused.code).toBe(1);
    await expect.poll(strict.log).toMatch(/ERR_FORWARD_SECRECY_REQUIRED/);
    const lax = await serve(
      ['--listen', 'tcp://127.0.0.1:0', '--keyring', ring, '--no-forward-secrecy'],
      env,
    );
    const ok = await run(['connect', lax.url, '--keyring', ring, '--no-forward-secrecy'], env, 'x\n');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(STAMP);
  });

  it('offers an interactive >>> prompt on a terminal; quit leaves', async () => {
    const env = home();
    const { url } = await serve(['--listen', 'tcp://127.0.0.1:0'], env);
    // `script` gives the client a pseudo-terminal for stdin and stdout.
    const cmd = `${process.execPath} ${BIN} connect ${url}`;
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await expect.poll(() => out, { timeout: 10_000 }).toContain('>>> ');
    child.stdin?.write('hello there\n');
    await expect.poll(() => out, { timeout: 10_000 }).toMatch(/\] hello there\r?\n/);
    child.stdin?.write('quit\n');
    expect(await exitOf(child)).toBe(0);
  });

  it('--workers 2 serves from two processes, spreads connections and shuts down cleanly', async () => {
    const env = home();
    const { child, url, log } = await serve(['--listen', 'tcp://127.0.0.1:0', '--workers', '2'], env);
    for (let i = 0; i < 6; i++) {
      const r = await run(['connect', url], env, `m${i}\n`);
      expect(r.stdout, r.stderr).toMatch(new RegExp(`\\] m${i}\\n$`));
    }
    await expect.poll(() => (log().match(/"event":"authenticated"/g) ?? []).length).toBe(6);
    const pids = new Set(
      [...log().matchAll(/"pid":(\d+),"event":"authenticated"/g)].map((m) => Number(m[1])),
    );
    expect(pids.size).toBe(2);
    expect(pids.has(child.pid as number)).toBe(false);
    child.kill('SIGTERM'); // the primary only: it relays the shutdown
    expect(await exitOf(child)).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('has --help on every command and names the argument in usage errors', async () => {
    const env = home();
    for (const cmd of [[], ['keygen'], ['serve'], ['connect']]) {
      const r = await run([...cmd, '--help'], env);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: sesame/);
    }
    const badListen = await run(['serve', '--listen', 'http://x'], env);
    expect(badListen.code).toBe(2);
    expect(badListen.stderr).toMatch(/--listen/);
    const badTimeout = await run(['serve', '--handshake-timeout', 'soon'], env);
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toMatch(/--handshake-timeout/);
    const badService = await run(['serve', '--service', 'ftp'], env);
    expect(badService.code).toBe(2);
    expect(badService.stderr).toMatch(/--service/);
    const noRing = await run(['connect', 'tcp://127.0.0.1:9'], env, 'x\n');
    expect(noRing.code).toBe(1);
    expect(noRing.stderr).toMatch(/no key ring at .*npm start/);
  });
});
