// Behind real HAProxy (Debian's 2.6, TCP mode): two Sesame servers balanced with send-proxy-v2,
// and the v1 text form; the servers see the client's real address, not the proxy's.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadKeyring } from '../../src/keyring/file.js';
import { clientKey } from '../../src/keyring/preshared.js';
import type { AuthEvent } from '../../src/net/base-server.js';
import { connect } from '../../src/net/client.js';
import { SesameServer } from '../../src/net/stream-server.js';
import { echoService } from '../../src/services/handlers.js';
import { exitOf, home, run, serve as serveCli } from '../helpers/cli.js';
import { KEY_A } from '../helpers/pair.js';

function haproxyPath(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v haproxy || ls /usr/sbin/haproxy'], { encoding: 'utf8' })
      .trim()
      .split('\n')[0];
  } catch {
    return undefined;
  }
}

const HAPROXY = haproxyPath();
// CI installs HAProxy (.ci/run); elsewhere the test is skipped when it is missing.
const maybe = HAPROXY === undefined && process.env.CI !== 'true' ? describe.skip : describe;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  return typeof addr === 'object' && addr !== null ? addr.port : 0;
}

async function sesame(): Promise<{ port: number; auth: AuthEvent[] }> {
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [KEY_A],
    handler: echoService,
    proxyProtocol: true,
    trustedProxies: ['127.0.0.1/32'],
  });
  const auth: AuthEvent[] = [];
  server.on('auth', (e: AuthEvent) => auth.push(e));
  const url = await server.listen();
  cleanups.push(() => server.close());
  return { port: Number(url.split(':').at(-1)), auth };
}

async function haproxy(backends: string[]): Promise<number> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sesame-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 256',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 30s',
      '  timeout server 30s',
      'frontend sesame',
      `  bind 127.0.0.1:${port}`,
      '  default_backend servers',
      'backend servers',
      '  balance roundrobin',
      ...backends.map((b, i) => `  server s${i} ${b}`),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(HAPROXY as string, ['-f', cfg, '-db'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  // Wait until HAProxy accepts.
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return port;
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`haproxy did not start: ${out}`);
}

maybe('behind HAProxy', () => {
  it('balances over two servers with send-proxy-v2; each sees the real client address', async () => {
    const a = await sesame();
    const b = await sesame();
    const port = await haproxy([`127.0.0.1:${a.port} send-proxy-v2`, `127.0.0.1:${b.port} send-proxy-v2`]);
    for (let i = 0; i < 6; i++) {
      // Connect from 127.0.0.2 so the client's address differs from the proxy's (127.0.0.1).
      const s = await connect(`tcp://127.0.0.1:${port}`, { key: KEY_A, localAddress: '127.0.0.2' });
      expect((await s.request(Buffer.from(`m${i}`))).toString()).toBe(`m${i}`);
      await s.close();
    }
    const ok = [...a.auth, ...b.auth].filter((e) => e.ok);
    expect(ok).toHaveLength(6);
    expect(a.auth.filter((e) => e.ok).length).toBeGreaterThan(0);
    expect(b.auth.filter((e) => e.ok).length).toBeGreaterThan(0);
    for (const e of ok) expect(e.remote).toMatch(/^127\.0\.0\.2:\d+$/);
  });

  it('reads the v1 text form (send-proxy)', async () => {
    const a = await sesame();
    const port = await haproxy([`127.0.0.1:${a.port} send-proxy`]);
    const s = await connect(`tcp://127.0.0.1:${port}`, { key: KEY_A, localAddress: '127.0.0.3' });
    expect((await s.request(Buffer.from('v1'))).toString()).toBe('v1');
    await s.close();
    expect(a.auth.filter((e) => e.ok).map((e) => e.remote)).toEqual([
      expect.stringMatching(/^127\.0\.0\.3:\d+$/),
    ]);
  });

  it('sesame serve --proxy-protocol: two processes behind HAProxy, rotated keys, logs with real addresses', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    await run(['keys', 'add', '--keyring', ring, '--principal', 'svc'], env);
    const servers = await Promise.all(
      [0, 1].map(() =>
        serveCli(
          [
            '--listen',
            'tcp://127.0.0.1:0',
            '--keyring',
            ring,
            '--proxy-protocol',
            '--trusted-proxy',
            '127.0.0.1/32',
          ],
          env,
        ),
      ),
    );
    const port = await haproxy(servers.map((s) => `${s.url.replace('tcp://', '')} send-proxy-v2`));
    const key = clientKey(await loadKeyring(ring), undefined, new Date());
    for (let i = 0; i < 4; i++) {
      const s = await connect(`tcp://127.0.0.1:${port}`, { key, localAddress: '127.0.0.2' });
      expect((await s.request(Buffer.from(`m${i}`))).toString()).toMatch(new RegExp(`\\] m${i}$`));
      await s.close();
    }
    for (const s of servers) {
      await expect.poll(s.log).toMatch(/authenticated 127\.0\.0\.2:\d+ with key/);
      s.child.kill('SIGTERM');
      expect(await exitOf(s.child)).toBe(0);
    }
  });

  it('health checks (check check-send-proxy, as docs/operations.md configures) are accepted and closed, never refused', async () => {
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      keys: [KEY_A],
      handler: echoService,
      proxyProtocol: true,
      trustedProxies: ['127.0.0.1/32'],
    });
    const auth: AuthEvent[] = [];
    const checks: string[] = [];
    server.on('auth', (e: AuthEvent) => auth.push(e));
    server.on('health-check', (remote) => checks.push(remote));
    const url = await server.listen();
    cleanups.push(() => server.close());
    const port = await haproxy([
      `${url.replace('tcp://', '')} send-proxy-v2 check check-send-proxy inter 100`,
    ]);
    await expect.poll(() => checks.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(5);
    // A client still gets through, and no check was logged or counted as a refusal.
    const s = await connect(`tcp://127.0.0.1:${port}`, { key: KEY_A, localAddress: '127.0.0.2' });
    expect((await s.request(Buffer.from('after checks'))).toString()).toBe('after checks');
    await s.close();
    expect(auth.filter((e) => !e.ok)).toEqual([]);
    expect(auth.filter((e) => e.ok)).toHaveLength(1);
    for (const r of checks) expect(r).toMatch(/^(127\.0\.0\.1:\d+|unknown)$/);
  });

  it('a server expecting PROXY headers refuses a client that bypasses the proxy', async () => {
    const a = await sesame();
    await expect(
      connect(`tcp://127.0.0.1:${a.port}`, { key: KEY_A, localAddress: '127.0.0.2' }),
    ).rejects.toMatchObject({
      code: 'ERR_AUTH_REFUSED',
    });
    await expect.poll(() => a.auth.at(-1)).toMatchObject({ ok: false, code: 'ERR_PROXY_UNTRUSTED' });
  });
});
