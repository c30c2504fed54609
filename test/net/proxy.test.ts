// PROXY protocol on the server: trusted proxies only, the real client address in events,
// throttling and verify hooks; and per-source backoff after failed logins.
import { createConnection, createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuthEvent } from '../../src/net/base-server.js';
import { connect } from '../../src/net/client.js';
import type { ConnectionInfo } from '../../src/net/handlers.js';
import { type ServerOptions, SesameServer } from '../../src/net/stream-server.js';
import { encodeProxyV2, PROXY_V2_SIGNATURE } from '../../src/protocol/proxy-header.js';
import { echoService } from '../../src/services/handlers.js';
import { KEY_A, makeKey } from '../helpers/pair.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function start(over: Partial<ServerOptions>) {
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [KEY_A],
    handler: echoService,
    ...over,
  });
  const auth: AuthEvent[] = [];
  server.on('auth', (e: AuthEvent) => auth.push(e));
  const url = await server.listen();
  closers.push(() => server.close());
  return { server, url, port: Number(url.split(':').at(-1)), auth };
}

/** A relay on loopback that announces every client as `source` with a PROXY header (`v1` or v2). */
async function relay(targetPort: number, header: () => Buffer): Promise<string> {
  const srv: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort }, () => {
      upstream.write(header());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => srv.close(() => r())));
  const addr = srv.address();
  return `tcp://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
}

const v2 = (address: string) => () =>
  encodeProxyV2({ address, port: 40000 }, { address: '127.0.0.1', port: 9527 });
const v1 = (address: string) => () => Buffer.from(`PROXY TCP4 ${address} 127.0.0.1 40001 9527\r\n`, 'latin1');

describe('PROXY protocol', () => {
  it('uses the client address from a v2 or v1 header sent by a trusted proxy', async () => {
    const seen: ConnectionInfo[] = [];
    const { port, auth } = await start({
      proxyProtocol: true,
      trustedProxies: ['127.0.0.0/8'],
      verifyRequest: (info) => {
        seen.push(info);
        return true;
      },
    });
    for (const [header, address, p] of [
      [v2('203.0.113.5'), '203.0.113.5', 40000],
      [v1('198.51.100.7'), '198.51.100.7', 40001],
    ] as const) {
      const s = await connect(await relay(port, header), { key: KEY_A });
      expect((await s.request(Buffer.from('hi'))).toString()).toBe('hi');
      await s.close();
      expect(auth.at(-1)).toMatchObject({ ok: true, remote: `${address}:${p}` });
      expect(seen.at(-1)).toMatchObject({ remoteAddress: address, remotePort: p });
    }
  });

  it('refuses connections from untrusted addresses and malformed headers', async () => {
    const untrusted = await start({ proxyProtocol: true, trustedProxies: ['10.0.0.0/8'] });
    await expect(
      connect(await relay(untrusted.port, v2('203.0.113.5')), { key: KEY_A }),
    ).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
    expect(untrusted.auth.at(-1)).toMatchObject({ ok: false, code: 'ERR_PROXY_UNTRUSTED' });

    const trusted = await start({ proxyProtocol: true, trustedProxies: ['127.0.0.1'] });
    await expect(
      connect(await relay(trusted.port, () => Buffer.from('PROXY NONSENSE\r\n')), { key: KEY_A }),
    ).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
    await expect.poll(() => trusted.auth.at(-1)).toMatchObject({ ok: false, code: 'ERR_PROXY_HEADER' });
    // a Sesame client that sends no header at all: its ClientHello is not a PROXY header
    await expect(connect(trusted.url, { key: KEY_A })).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
  });

  it('throttles the real client address after repeated failures; other clients are unaffected', async () => {
    const { port, auth } = await start({
      proxyProtocol: true,
      trustedProxies: ['127.0.0.1'],
      throttle: { freeFailures: 2, baseDelayMs: 60_000 },
    });
    const attacker = await relay(port, v2('198.51.100.66'));
    const neighbour = await relay(port, v2('198.51.100.67'));
    const wrong = makeKey(KEY_A.id, 'alice', 0x00);
    for (let i = 0; i < 3; i++)
      await expect(connect(attacker, { key: wrong })).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
    // now even the right key is refused from that address, before any handshake work
    await expect(connect(attacker, { key: KEY_A })).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
    await expect
      .poll(() => auth.at(-1))
      .toMatchObject({ ok: false, code: 'ERR_THROTTLED', remote: '198.51.100.66:40000' });
    const s = await connect(neighbour, { key: KEY_A });
    expect((await s.request(Buffer.from('still served'))).toString()).toBe('still served');
    await s.close();
    expect(auth.filter((e) => !e.ok).map((e) => (e.ok ? '' : e.code))).toEqual([
      'ERR_AUTH_FAILED',
      'ERR_AUTH_FAILED',
      'ERR_AUTH_FAILED',
      'ERR_THROTTLED',
    ]);
  });
});

describe('PROXY health checks', () => {
  it('closes a proxy health check (v2 LOCAL) without counting it as a failed login', async () => {
    const { server, port, auth } = await start({
      proxyProtocol: true,
      trustedProxies: ['127.0.0.1'],
      throttle: { freeFailures: 0 },
    });
    const checks: string[] = [];
    server.on('health-check', (r: string) => checks.push(r));
    const local = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    for (let i = 0; i < 3; i++) {
      const s = createConnection({ host: '127.0.0.1', port }, () => s.write(local));
      await new Promise((r) => s.once('close', r));
    }
    expect(checks).toHaveLength(3);
    expect(auth).toEqual([]);
    const s = await connect(await relay(port, v2('127.0.0.1')), { key: KEY_A }); // the proxy's own address is not blocked
    await s.close();
  });
});
