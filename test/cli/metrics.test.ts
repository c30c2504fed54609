// The metrics count refusals without telling which key ids exist: an unknown key id and a wrong
// key for a known one land under the same reason. The metrics (with prom-client) and the datagram
// modules are loaded only by the processes that use them: the CLI does not load them at start.

import { join } from 'node:path';
import { register } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { instrument } from '../../src/cli/metrics.js';
import { connect } from '../../src/net/client.js';
import { SesameServer } from '../../src/net/stream-server.js';
import { ROOT, runCommand } from '../helpers/cli.js';
import { KEY_A, makeKey } from '../helpers/pair.js';

const servers: SesameServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function refusals(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^sesame_handshakes_total\{result="refused",reason="(\w+)"\} (\d+)$/gm)) {
    out[m[1] as string] = Number(m[2]);
  }
  return out;
}

describe('metrics', () => {
  it('count unknown key ids and wrong keys under one reason, ERR_AUTH_FAILED', async () => {
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      keys: [KEY_A],
      handler: (m: Buffer) => m,
      throttle: { freeFailures: 1000 },
    });
    servers.push(server);
    instrument(server);
    const codes: string[] = [];
    server.on('auth', (e) => {
      if (!e.ok) codes.push(e.code);
    });
    const url = await server.listen();
    const before = refusals(await register.metrics());
    const wrong = makeKey(KEY_A.id, 'mallory', 0x01); // a known id, another secret
    const unknown = makeKey('1111111111111111', 'mallory', 0x02);
    for (const key of [wrong, unknown, unknown]) {
      await expect(connect(url, { key })).rejects.toMatchObject({ code: 'ERR_AUTH_REFUSED' });
    }
    await expect.poll(() => codes.length).toBe(3);
    // The server's own events (and so its log) keep the exact reason...
    expect(codes).toEqual(['ERR_AUTH_FAILED', 'ERR_UNKNOWN_KEY', 'ERR_UNKNOWN_KEY']);
    // ...the metrics do not.
    const after = refusals(await register.metrics());
    expect(after.ERR_UNKNOWN_KEY).toBeUndefined();
    expect((after.ERR_AUTH_FAILED ?? 0) - (before.ERR_AUTH_FAILED ?? 0)).toBe(3);
  });

  it('are loaded only when asked for: the CLI loads neither them nor the datagram modules at start', async () => {
    // A fresh process imports the compiled CLI (every module `sesame` loads before it parses its
    // arguments), with a resolve hook reporting each ES module, and Node's CommonJS cache showing
    // prom-client (CommonJS). Then it imports what --metrics and a udp:// address load, to show
    // the checks see them.
    const script = `
      import { createRequire, register } from 'node:module';
      import { MessageChannel } from 'node:worker_threads';
      const { port1, port2 } = new MessageChannel();
      const urls = [];
      port1.on('message', (url) => urls.push(url));
      const hook = 'let port; export function initialize(d) { port = d.port; } ' +
        'export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage(r.url); return r; }';
      register('data:text/javascript,' + encodeURIComponent(hook), { data: { port: port2 }, transferList: [port2] });
      const cache = createRequire(import.meta.url).cache;
      const settle = () => new Promise((r) => setTimeout(r, 200));
      const loaded = () => [
        Object.keys(cache).some((k) => k.includes('/node_modules/prom-client/')),
        ...['/cli/metrics.js', '/net/datagram-server.js', '/net/datagram-client.js'].map((m) => urls.some((u) => u.endsWith(m))),
      ];
      await import(${JSON.stringify(join(ROOT, 'dist', 'cli', 'main.js'))});
      await settle();
      const atStart = loaded();
      for (const m of ['cli/metrics.js', 'net/datagram-server.js', 'net/datagram-client.js'])
        await import(${JSON.stringify(join(ROOT, 'dist'))} + '/' + m);
      await settle();
      console.log(JSON.stringify({ atStart, after: loaded(), modules: urls.length }));
      port1.close();
    `;
    const r = await runCommand(process.execPath, ['--input-type=module', '-e', script], {
      timeoutMs: 20_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { atStart: boolean[]; after: boolean[]; modules: number };
    expect(out.modules).toBeGreaterThan(20); // the hook saw the CLI's own modules
    expect(out.atStart).toEqual([false, false, false, false]);
    expect(out.after).toEqual([true, true, true, true]);
  });
});
