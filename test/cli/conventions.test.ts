// The command line's conventions, each through the real executable: exit 2 for bad arguments,
// key management confirmations, hints that work, logs, the config file, Unix socket modes,
// /healthz, --workers auto, and Ctrl-C at the prompt.
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_WORKERS } from '../../src/cli/main.js';
import { BIN, exitOf, home, run, STAMP, serve, track } from '../helpers/cli.js';

const ID = /^[0-9a-f]{16}$/;

describe('bad arguments exit 2, naming the argument', () => {
  it('unknown key ids, bad dates, a window that ends before it starts, option pairs', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    expect((await run(['keys', 'add', '--keyring', ring], env)).code).toBe(0);
    const cases: [string[], RegExp][] = [
      [
        ['keys', 'revoke', '0123456789abcdef', '--keyring', ring],
        /key id 0123456789abcdef.*ERR_KEY_NOT_FOUND/,
      ],
      [['keys', 'remove', '0123456789abcdef', '--keyring', ring], /key id 0123456789abcdef/],
      [['keys', 'export', 'nope', '--keyring', ring], /key id nope/],
      [['keys', 'fingerprint', 'nope', '--keyring', ring], /key id nope/],
      [['keys', 'rotate', 'nobody', '--keyring', ring], /principal "nobody"/],
      [['keys', 'add', '--keyring', ring, '--not-after', '2027-02-30'], /--not-after/],
      [['keys', 'add', '--keyring', ring, '--not-before', 'soon'], /--not-before/],
      [
        ['keys', 'add', '--keyring', ring, '--not-before', '2027-06-01', '--not-after', '2027-01-01'],
        /--not-after .* must be later than --not-before/,
      ],
      [['keys', 'rotate', 'default', '--keyring', ring, '--overlap', 'a while'], /--overlap/],
      [['connect', 'tcp://127.0.0.1:9', '--keyring', ring, '--key-id', '0123456789abcdef'], /--key-id/],
      [['serve', '--proxy-protocol'], /--proxy-protocol needs --trusted-proxy/],
      [['serve', '--trusted-proxy', '10.0.0.1'], /--trusted-proxy applies only with --proxy-protocol/],
      [['serve', '--workers', String(MAX_WORKERS + 1)], /--workers.*at most 64/],
      [['serve', '--workers', 'many'], /--workers/],
      [['serve', '--socket-mode', '660'], /--socket-mode applies only to unix/],
      [['serve', '--socket-mode', '999', '--listen', 'unix:///tmp/x.sock'], /--socket-mode/],
      [['serve', '--idle-timeout', '5 minutes'], /--idle-timeout/],
      [['serve', '--log-level', 'loud'], /--log-level/],
    ];
    for (const [args, pattern] of cases) {
      const r = await run(args, env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(pattern);
    }
    const badEnv = await run(['serve', '--listen', 'tcp://127.0.0.1:0'], {
      ...env,
      SESAME_LOG_LEVEL: 'verbose',
    });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/SESAME_LOG_LEVEL "verbose" is not a log level/);
  }, 90_000); // nineteen processes in a row, on a loaded machine

  it('a port in use is its own error, not an invalid address', async () => {
    const env = home();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const r = await run(['serve', '--listen', `tcp://127.0.0.1:${port}`], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*in use.*ERR_ADDRESS_IN_USE`));
      expect(r.stderr).not.toMatch(/ERR_INVALID_ADDRESS/);
    } finally {
      taken.close();
    }
  });
});

describe('keys: one confirmation line per change, shared defaults, export to stdout', () => {
  it('keygen and keys add share their options; every change says what it did on stderr', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    const a = await run(['keygen', '--keyring', ring, '--not-after', '2099-01-01'], env);
    const b = await run(['keys', 'add', '--keyring', ring], env);
    for (const r of [a, b]) {
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toMatch(ID);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    const idA = a.stdout.trim();
    const idB = b.stdout.trim();
    expect(a.stderr).toBe(
      `sesame: added key ${idA} for default to key ring ${ring} (valid until 2099-01-01T00:00:00.000Z)\n`,
    );
    expect(b.stderr).toBe(`sesame: added key ${idB} for default to key ring ${ring}\n`);
    const rotated = await run(['keys', 'rotate', 'default', '--keyring', ring, '--overlap', '1h30m'], env);
    const idC = rotated.stdout.trim();
    expect(idC).toMatch(ID);
    const expires = /the old keys expire: (.*)$/m.exec(rotated.stderr)?.[1] ?? '';
    expect(expires.split(', ').map((e) => e.split(' at ')[0])).toEqual([idA, idB]);
    for (const when of expires.split(', ').map((e) => Date.parse(e.split(' at ')[1] ?? ''))) {
      expect(Math.abs(when - (Date.now() + 5_400_000))).toBeLessThan(60_000);
    }
    const revoked = await run(['keys', 'revoke', idA, '--keyring', ring], env);
    expect(revoked.stderr).toMatch(new RegExp(`^sesame: revoked key ${idA} \\(default\\) in key ring`));
    const removed = await run(['keys', 'remove', idB, '--keyring', ring], env);
    expect(removed).toMatchObject({ code: 0, stdout: '' });
    expect(removed.stderr).toMatch(
      new RegExp(`^sesame: removed key ${idB} \\(default\\) .*; 2 keys remain\\n$`),
    );
    const ids = (JSON.parse(readFileSync(ring, 'utf8')) as { keys: { id: string }[] }).keys.map((k) => k.id);
    expect(ids).toEqual([idA, idC]);
  });

  it('warns when a new key is already expired', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    const r = await run(
      ['keys', 'add', '--keyring', ring, '--principal', 'old', '--not-after', '2020-01-01'],
      env,
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: key ${r.stdout.trim()} is already expired`));
    const fresh = await run(['keys', 'add', '--keyring', ring, '--not-after', '2099-01-01'], env);
    expect(fresh.stderr).not.toMatch(/warning/);
  });

  it('export writes the one-key ring to stdout without --out or with --out -, and it connects', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'server.json');
    await run(['keys', 'add', '--keyring', ring, '--principal', 'alice'], env);
    const bob = (await run(['keys', 'add', '--keyring', ring, '--principal', 'bob'], env)).stdout.trim();
    const plain = await run(['keys', 'export', bob, '--keyring', ring], env);
    const dash = await run(['keys', 'export', bob, '--keyring', ring, '--out', '-'], env);
    expect(plain.code).toBe(0);
    expect(dash.stdout).toBe(plain.stdout);
    const doc = JSON.parse(plain.stdout) as { version: number; keys: { id: string; principal: string }[] };
    expect(doc.version).toBe(1);
    expect(doc.keys.map((k) => [k.id, k.principal])).toEqual([[bob, 'bob']]);
    const client = join(env.HOME as string, 'bob.json');
    writeFileSync(client, plain.stdout, { mode: 0o600 });
    const { child, url } = await serve(['--listen', 'tcp://127.0.0.1:0', '--keyring', ring], env);
    const r = await run(['connect', url, '--keyring', client], env, 'hi\n');
    expect(r.stdout).toMatch(STAMP);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });
});

describe('hints that work', () => {
  it('with several keys, serve names a usable key id (not a revoked one) and says how to hand keys out', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    const revoked = (await run(['keys', 'add', '--keyring', ring, '--principal', 'gone'], env)).stdout.trim();
    await run(['keys', 'revoke', revoked, '--keyring', ring], env);
    const alice = (await run(['keys', 'add', '--keyring', ring, '--principal', 'alice'], env)).stdout.trim();
    await run(['keys', 'add', '--keyring', ring, '--principal', 'bob'], env);
    const { child, log } = await serve(['--listen', 'tcp://127.0.0.1:0', '--keyring', ring], env);
    await expect.poll(log).toMatch(/give each client only its own key: sesame keys export ID/);
    const cmd = /connect with: npx sesame (connect [^"\n]+)/.exec(log())?.[1] ?? 'connect-missing';
    expect(cmd).toContain(`--key-id ${alice}`);
    const r = await run(cmd.split(' '), env, 'hello\n');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(STAMP);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('a client without a key ring is told to get one from the operator, not to make one', async () => {
    const r = await run(['connect', 'tcp://127.0.0.1:9'], home(), 'x\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no key ring at .*ask the server's operator .*sesame keys export ID/);
    expect(r.stderr).not.toMatch(/keygen/);
  });
});

describe('logs', () => {
  it('JSON lines: level names, ISO times, an event on every line', async () => {
    const env = home();
    const { child, url, log } = await serve(['--listen', 'tcp://127.0.0.1:0', '--log-format', 'json'], env);
    await run(['connect', url], env, 'x\n');
    await expect.poll(log).toMatch(/"event":"closed"/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
    const lines = log()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(5);
    for (const line of lines) {
      expect(line.level).toMatch(/^(info|warn|error)$/);
      expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(typeof line.event, JSON.stringify(line)).toBe('string');
      expect(line.event).not.toBe('message'); // every line the server writes names its event
    }
  }, 40_000);

  it('SESAME_LOG_LEVEL=warn leaves out info lines and keeps refusals', async () => {
    const env = home();
    const sock = join(env.HOME as string, 's.sock');
    const ring = join(env.HOME as string, 'ring.json');
    const other = join(env.HOME as string, 'other.json');
    await run(['keys', 'add', '--keyring', ring], env);
    await run(['keys', 'add', '--keyring', other], env);
    const child = track(
      spawn(process.execPath, [BIN, 'serve', '--listen', `unix://${sock}`, '--keyring', ring], {
        env: { ...env, SESAME_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await expect
      .poll(() => statSync(sock, { throwIfNoEntry: false })?.isSocket() ?? false, { timeout: 15_000 })
      .toBe(true);
    const r = await run(['connect', `unix://${sock}`, '--keyring', other], env, 'x\n');
    expect(r.code).toBe(1);
    await expect.poll(() => out).toMatch(/"level":"warn".*"event":"refused"/);
    expect(out).not.toMatch(/"level":"info"/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('profile none is logged as unauthenticated, never as authenticated', async () => {
    const env = home();
    const { child, url, log } = await serve(['--listen', 'tcp://127.0.0.1:0', '--profile', 'none'], env);
    const r = await run(['connect', url, '--profile', 'none'], env, 'x\n');
    expect(r.code).toBe(0);
    await expect.poll(log).toMatch(/"event":"unauthenticated"/);
    expect(log()).not.toMatch(/"event":"authenticated"/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });
});

describe('--config', () => {
  it('sets serve and connect options from JSON; flags override the file; a typo is exit 2', async () => {
    const env = home();
    const dir = env.HOME as string;
    const ring = join(dir, 'ring.json');
    await run(['keys', 'add', '--keyring', ring], env);
    const config = join(dir, 'sesame.json');
    writeFileSync(
      config,
      JSON.stringify({
        '//': 'shared by serve and connect',
        keyring: ring,
        'handshake-timeout': '5s',
        serve: {
          listen: 'tcp://127.0.0.1:0',
          service: 'echo',
          'idle-timeout': '1h30m',
          'forward-secrecy': false,
        },
        connect: { 'forward-secrecy': false },
      }),
    );
    const { child, url, log } = await serve(['--config', config], env);
    await expect.poll(log).toMatch(/"service":"echo"/);
    const connectConfig = join(dir, 'client.json');
    writeFileSync(connectConfig, JSON.stringify({ url, keyring: ring, 'forward-secrecy': false }));
    const r = await run(['connect', '--config', connectConfig], env, 'echoed\n');
    expect(r).toMatchObject({ code: 0, stdout: 'echoed\n' });
    await expect.poll(log).toMatch(/"forwardSecrecy":false/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
    // A flag on the command line wins over the file.
    const over = await serve(['--config', config, '--service', 'timestamp'], env);
    await expect.poll(over.log).toMatch(/"service":"timestamp"/);
    over.child.kill('SIGTERM');
    expect(await exitOf(over.child)).toBe(0);
    for (const [doc, pattern] of [
      [{ listn: 'tcp://127.0.0.1:0' }, /listn: not an option of sesame serve/],
      [{ 'idle-timeout': 'forever' }, /idle-timeout: expected a duration/],
      [{ service: 'ftp' }, /service: "ftp" is not one of timestamp, echo/],
      [{ 'proxy-protocol': 'yes' }, /proxy-protocol: expected true or false/],
      [['not', 'an', 'object'], /expected a JSON object/],
    ] as const) {
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, JSON.stringify(doc));
      const r2 = await run(['serve', '--config', bad], env);
      expect(r2.code, JSON.stringify(doc)).toBe(2);
      expect(r2.stderr).toMatch(pattern);
    }
    const missing = await run(['serve', '--config', join(dir, 'missing.json')], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--config .*missing\.json: cannot read it/);
  }, 60_000);
});

describe('small conventions', () => {
  it('--socket-mode sets a Unix socket mode', async () => {
    const env = home();
    const sock = join(env.HOME as string, 's.sock');
    const { child } = await serve(['--listen', `unix://${sock}`, '--socket-mode', '660'], env);
    expect(statSync(sock).mode & 0o777).toBe(0o660);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('/healthz answers next to /metrics', async () => {
    const env = home();
    const { child, log } = await serve(
      ['--listen', 'tcp://127.0.0.1:0', '--metrics', 'tcp://127.0.0.1:0'],
      env,
    );
    await expect.poll(log).toMatch(/metrics on http:\/\/[^\s"]+/);
    const metrics = /metrics on (http:\/\/[^\s"]+)/.exec(log())?.[1] as string;
    const health = await fetch(metrics.replace(/\/metrics$/, '/healthz'));
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('ok\n');
    expect((await fetch(metrics.replace(/\/metrics$/, '/nothing'))).status).toBe(404);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('--workers auto starts one worker per CPU; a key ring change counts one reload across them', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    await run(['keys', 'add', '--keyring', ring], env);
    const { child, log } = await serve(
      [
        '--listen',
        'tcp://127.0.0.1:0',
        '--keyring',
        ring,
        '--workers',
        'auto',
        '--metrics',
        'tcp://127.0.0.1:0',
      ],
      env,
    );
    expect(log()).toContain(`"workers":${availableParallelism()}`);
    await expect.poll(log).toMatch(/metrics on http:\/\/[^\s"]+/);
    const metrics = /metrics on (http:\/\/[^\s"]+)/.exec(log())?.[1] as string;
    await run(['keys', 'add', '--keyring', ring, '--principal', 'second'], env);
    const workers = availableParallelism();
    await expect
      .poll(() => (log().match(/"event":"reload","result":"ok"/g) ?? []).length, { timeout: 10_000 })
      .toBe(workers);
    const text = await (await fetch(metrics)).text();
    expect(text).toMatch(/^sesame_keyring_reloads_total\{result="ok"\} 1$/m);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  }, 40_000);

  it('Ctrl-C at the interactive prompt ends the line and exits 130', async () => {
    const env = home();
    const { child: server, url } = await serve(['--listen', 'tcp://127.0.0.1:0'], env);
    const cmd = `${process.execPath} ${BIN} connect ${url}; echo "exit=$?"`;
    const child = track(
      spawn('script', ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] }),
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await expect.poll(() => out, { timeout: 10_000 }).toContain('>>> ');
    child.stdin?.write('\x03');
    await expect.poll(() => out, { timeout: 10_000 }).toMatch(/exit=130/);
    // The prompt's line is ended (readline may move the cursor first) before the shell's next line.
    expect(out).toMatch(new RegExp(`>>> (${String.fromCharCode(27)}\\[\\d+G)?\\r?\\nexit=130`));
    server.kill('SIGTERM');
    expect(await exitOf(server)).toBe(0);
  });
});
