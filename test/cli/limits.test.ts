// The server limits as `serve` flags, through the real executable: each reaches the server (the
// refusal it causes is logged with its code and reason), and a bad value exits 2 naming the flag.
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatSize, parseSize } from '../../src/cli/sizes.js';
import { exitOf, home, run, serve } from '../helpers/cli.js';

/** A raw connection from `source` to `url`'s port; resolves once connected. */
function rawConnect(url: string, source = '127.0.0.1'): Promise<Socket> {
  const port = Number(new URL(url).port);
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port, localAddress: source }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves once `socket` is closed by the server. */
function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    socket.once('close', () => resolve());
    socket.on('error', () => {});
    socket.resume();
  });
}

async function ringWithKey(env: NodeJS.ProcessEnv): Promise<string> {
  const ring = join(env.HOME as string, 'ring.json');
  expect((await run(['keygen', '--keyring', ring], env)).code).toBe(0);
  return ring;
}

describe('serve limit flags', () => {
  it('refuses bad values with exit 2, naming the flag', async () => {
    const env = home();
    const cases: [string[], RegExp][] = [
      [['--input-budget', '0'], /--input-budget.*at least 1 byte/],
      [['--input-budget', '64MB'], /--input-budget.*expected a size/],
      [['--input-budget', '99999999999GiB'], /--input-budget.*too large/],
      [['--max-handshakes-per-source', '0'], /--max-handshakes-per-source.*positive whole number/],
      [
        ['--max-connections-per-source', String(2 ** 31 + 1)],
        /--max-connections-per-source.*at most 2147483648/,
      ],
      [['--max-connections', String(2 ** 31 + 1)], /--max-connections.*at most 2147483648/],
      [['--first-byte-timeout', 'soon'], /--first-byte-timeout.*expected a duration/],
      [['--first-byte-timeout', '25d'], /--first-byte-timeout.*at most 24d20h31m23s647ms/],
    ];
    for (const [args, message] of cases) {
      const r = await run(['serve', '--listen', 'tcp://127.0.0.1:0', ...args], env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });

  it('shows each default in help in the syntax it takes', async () => {
    const help = (await run(['serve', '--help'], home())).stdout.replace(/\s+/g, ' ');
    expect(help).toMatch(/--input-budget <size> .*\(default: 256MiB\)/);
    expect(help).toMatch(/--max-handshakes-per-source <n> .*\(default: 128\)/);
    expect(help).toMatch(/--max-connections-per-source <n> .*\(default: --max-connections\)/);
    expect(help).toMatch(/--first-byte-timeout <duration> .*\(default: 3s\)/);
  });

  it('--first-byte-timeout and --max-handshakes-per-source reach the server', async () => {
    const env = home();
    const ring = await ringWithKey(env);
    const { child, url, log } = await serve(
      [
        '--listen',
        'tcp://127.0.0.1:0',
        '--keyring',
        ring,
        '--log-format',
        'json',
        '--handshake-timeout',
        '1m',
        '--first-byte-timeout',
        '700ms',
        '--max-handshakes-per-source',
        '2',
      ],
      env,
    );
    // Two silent connections from one address are let in; the third is over the cap.
    const [a, b] = [await rawConnect(url, '127.0.4.1'), await rawConnect(url, '127.0.4.1')];
    const c = await rawConnect(url, '127.0.4.1');
    await closed(c);
    await expect.poll(log, { timeout: 5_000 }).toMatch(/"code":"ERR_SERVER_BUSY".*2 handshakes in progress/);
    // The silent two are cut at the first-byte deadline, long before the 1-minute handshake one.
    await Promise.all([closed(a), closed(b)]);
    await expect.poll(log, { timeout: 5_000 }).toMatch(/no byte received within 700 ms of accept/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('--max-connections-per-source and --input-budget reach the server (profile none, an unterminated line)', async () => {
    const env = home();
    const { child, url, log } = await serve(
      [
        '--profile',
        'none',
        '--framing',
        'line',
        '--listen',
        'tcp://127.0.0.1:0',
        '--log-format',
        'json',
        '--max-connections-per-source',
        '1',
        '--input-budget',
        '100KiB',
      ],
      env,
    );
    const first = await rawConnect(url, '127.0.5.1');
    const second = await rawConnect(url, '127.0.5.1');
    await closed(second);
    await expect.poll(log, { timeout: 5_000 }).toMatch(/"code":"ERR_SERVER_BUSY".*1 connections open/);
    // 300 KiB without a newline: over the 100 KiB budget, the holder is closed.
    first.write(Buffer.alloc(300 * 1024, 'a'));
    await closed(first);
    await expect.poll(log, { timeout: 5_000 }).toMatch(/ERR_INPUT_BUDGET/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });
});

describe('sizes', () => {
  it('parses and formats the size syntax', () => {
    expect(parseSize('65536')).toBe(65536);
    expect(parseSize('512KiB')).toBe(512 * 1024);
    expect(parseSize(' 64MiB ')).toBe(64 * 1024 ** 2);
    expect(parseSize('1GiB')).toBe(1024 ** 3);
    for (const bad of ['', '0', '0KiB', '1.5MiB', '-1', '64MB', '64 MiB', 'KiB']) {
      expect(() => parseSize(bad), bad).toThrow(/expected a size/);
    }
    expect(formatSize(256 * 1024 ** 2)).toBe('256MiB');
    expect(formatSize(1536)).toBe('1536');
    expect(formatSize(2048)).toBe('2KiB');
    expect(formatSize(3 * 1024 ** 3)).toBe('3GiB');
  });
});
