/**
 * What a server keeps per connection shares V8 hidden classes: an object built with a spread and
 * then extended gets a class of its own per connection (a Map and its descriptors, hundreds of
 * bytes of every held connection). Checked with V8's own %HaveSameMap.
 */
import { setFlagsFromString } from 'node:v8';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/net/client.js';
import type { RequestContext } from '../../src/net/handlers.js';
import { SesameServer } from '../../src/net/stream-server.js';
import { KEY_A, KEY_B } from '../helpers/pair.js';

setFlagsFromString('--allow-natives-syntax');
// Compiled after the flag is set, so the natives syntax parses.
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

const servers: SesameServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('hidden classes of per-connection objects', () => {
  it('every request context, connection info and session info of a server shares one class', async () => {
    const contexts: RequestContext[] = [];
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      keys: [KEY_A, KEY_B],
      handler: (m: Buffer, ctx: RequestContext) => {
        contexts.push(ctx);
        return m;
      },
    });
    servers.push(server);
    const url = await server.listen();
    // Many connections: V8 may share a class among the first few and give later ones their own.
    const clients = await Promise.all(
      Array.from({ length: 40 }, (_, i) => connect(url, { key: i % 2 === 0 ? KEY_A : KEY_B })),
    );
    for (const c of clients) expect((await c.request(Buffer.from('x'))).toString()).toBe('x');
    expect(contexts).toHaveLength(40);
    const [first, ...rest] = contexts as [RequestContext, ...RequestContext[]];
    for (const ctx of rest) expect(haveSameMap(first, ctx)).toBe(true);
    const infos = clients.map((c) => c.info as object);
    for (const info of infos.slice(1)) expect(haveSameMap(infos[0] as object, info)).toBe(true);
    await Promise.all(clients.map((c) => c.close()));
  });
});
