// A real Redis (Debian's redis-server) protected by Sesame at both ends, driven by the real
// redis-cli through `sesame connect --listen` -> `sesame serve --forward`: commands and replies,
// a pipelined bulk load, 100 redis-cli processes at once, and Redis going away mid-run.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, home, type Run, run, runCommand, serve, startListening } from '../helpers/cli.js';

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const REDIS = which('redis-server');
const CLI = which('redis-cli');
if (REDIS === undefined || CLI === undefined) {
  console.log(
    'skipping the Redis tests: redis-server or redis-cli is not installed (apt-get install redis-server redis-tools)',
  );
}
// CI installs both (.ci/run); elsewhere the tests are skipped when either is missing.
const maybe =
  (REDIS === undefined || CLI === undefined) && process.env.CI !== 'true' ? describe.skip : describe;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function kill(child: ChildProcess): void {
  if (child.exitCode === null) child.kill('SIGKILL');
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const a = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  return typeof a === 'object' && a !== null ? a.port : 0;
}

async function startRedis(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    REDIS as string,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'yes',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  cleanups.push(() => kill(child));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis did not start:\n${out}`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { port, child };
}

function redisCli(port: number, args: string[], input?: string): Promise<Run> {
  return runCommand(CLI as string, ['-p', String(port), ...args], { input: input ?? '' });
}

/** The two commands of the README: `serve --forward` in front of Redis, `connect --listen` for the client. */
async function protectedRedis(redisPort: number) {
  const env = home();
  const ring = join(env.HOME as string, 'ring.json');
  expect((await run(['keygen', '--keyring', ring, '--principal', 'cache-client'], env)).code).toBe(0);
  const server = await serve(
    ['--keyring', ring, '--listen', 'tcp://127.0.0.1:0', '--forward', `tcp://127.0.0.1:${redisPort}`],
    env,
  );
  cleanups.push(() => kill(server.child));
  const client = await startListening(
    [BIN, 'connect', server.url, '--keyring', ring, '--listen', 'tcp://127.0.0.1:0'],
    env,
  );
  cleanups.push(() => kill(client.child));
  return { server, client, port: Number(client.url.split(':').at(-1)) };
}

maybe('Redis through Sesame at both ends', () => {
  it('redis-cli sets and gets through the tunnel, and the server log names the principal and Redis', async () => {
    const redis = await startRedis();
    const t = await protectedRedis(redis.port);
    expect((await redisCli(t.port, ['SET', 'greeting', 'hello from sesame'])).stdout.trim()).toBe('OK');
    expect((await redisCli(t.port, ['GET', 'greeting'])).stdout.trim()).toBe('hello from sesame');
    // The value is really in Redis: read it directly, not through the tunnel.
    expect((await redisCli(redis.port, ['GET', 'greeting'])).stdout.trim()).toBe('hello from sesame');
    expect(t.server.log()).toMatch(
      new RegExp(`"event":"pipe-open","principal":"cache-client".*"target":"tcp://127.0.0.1:${redis.port}"`),
    );
  });

  it('a pipelined bulk load (redis-cli --pipe) of 20 000 commands arrives whole', async () => {
    const redis = await startRedis();
    const t = await protectedRedis(redis.port);
    const lines = Array.from(
      { length: 20_000 },
      (_, i) => `SET key:${i} ${'v'.repeat(i % 200)}${i}\r\n`,
    ).join('');
    const r = await redisCli(t.port, ['--pipe'], lines);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/errors: 0, replies: 20000/);
    expect((await redisCli(redis.port, ['DBSIZE'])).stdout.trim()).toBe('20000');
    expect((await redisCli(t.port, ['GET', 'key:19999'])).stdout.trim()).toBe(
      `${'v'.repeat(19_999 % 200)}19999`,
    );
  });

  it('100 redis-cli processes at once each get their own answer', async () => {
    const redis = await startRedis();
    const t = await protectedRedis(redis.port);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => redisCli(t.port, ['ECHO', `client-${i}`])),
    );
    expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 100 }, (_, i) => `client-${i}`));
  });

  it('Redis gone: redis-cli fails promptly, and the tunnel serves again once Redis is back', async () => {
    const redis = await startRedis();
    const t = await protectedRedis(redis.port);
    expect((await redisCli(t.port, ['PING'])).stdout.trim()).toBe('PONG');
    redis.child.kill('SIGKILL');
    await new Promise<void>((r) => redis.child.once('exit', () => r()));
    const started = Date.now();
    const down = await redisCli(t.port, ['PING']);
    expect(down.stdout.trim()).not.toBe('PONG');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(t.server.log()).toMatch(/pipe-target-error.*ECONNREFUSED/);
    // A new Redis on the same port: the same tunnel works again (each pipe connects anew).
    const again = spawn(
      REDIS as string,
      ['--port', String(redis.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    cleanups.push(() => kill(again));
    await new Promise<void>((r) =>
      again.stdout?.on('data', (d: Buffer) => /Ready to accept/.test(d.toString()) && r()),
    );
    expect((await redisCli(t.port, ['PING'])).stdout.trim()).toBe('PONG');
  });
});
