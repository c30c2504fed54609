// The metrics count refusals without telling which key ids exist: an unknown key id and a wrong
// key for a known one land under the same reason.

import { register } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { instrument } from '../../src/cli/metrics.js';
import { connect } from '../../src/net/client.js';
import { SesameServer } from '../../src/net/stream-server.js';
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
});
