/**
 * The crypto backends over real loopback sockets: the backend SESAME_CRYPTO selects is the one
 * in use; a client and server pair exchanges messages (small, empty, fragmented, pipelined)
 * under each backend; and, across processes, a client on one backend talks to a `sesame serve`
 * on the other, which only works if the two give the same bytes.
 */

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSesameError } from '../../src/errors.js';
import { loadKeyring } from '../../src/keyring/file.js';
import { clientKey } from '../../src/keyring/preshared.js';
import { connect } from '../../src/net/client.js';
import { selectCryptoBackend, sodiumBackend } from '../../src/net/crypto-backend.js';
import { SesameServer } from '../../src/net/stream-server.js';
import { cryptoBackend } from '../../src/protocol/backend.js';
import { BACKENDS } from '../helpers/backends.js';
import { home, run, serve } from '../helpers/cli.js';
import { KEY_A } from '../helpers/pair.js';

const servers: SesameServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.shutdown();
});

async function echoServer(): Promise<string> {
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [KEY_A],
    handler: (m: Buffer) => m,
  });
  servers.push(server);
  return server.listen();
}

/** Messages that cover a whole record, an empty one and fragmentation. */
const MESSAGES = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(16_384, 7), Buffer.alloc(100_000, 9)];

describe('the selected backend', () => {
  it('is the one SESAME_CRYPTO names (default: libsodium when it loads)', () => {
    const choice = process.env.SESAME_CRYPTO ?? 'auto';
    const want = choice === 'node' || sodiumBackend === undefined ? 'node' : 'sodium';
    expect(cryptoBackend().name).toBe(want);
  });

  it('refuses an unknown choice, naming it, and keeps the current backend', () => {
    const before = cryptoBackend();
    let caught: unknown;
    try {
      selectCryptoBackend('openssl');
    } catch (err) {
      caught = err;
    }
    expect(isSesameError(caught) && caught.code).toBe('ERR_INVALID_ARGUMENT');
    expect(String(caught)).toMatch(/openssl/);
    expect(cryptoBackend()).toBe(before);
  });
});

describe.each(BACKENDS)('a loopback pair, $name backend', ({ backend }) => {
  if (backend === undefined) {
    it.skip('libsodium cannot be loaded here', () => {});
    return;
  }

  it('echoes every message, one at a time and pipelined', async () => {
    const previous = cryptoBackend();
    selectCryptoBackend(backend.name);
    try {
      const url = await echoServer();
      const session = await connect(url, { key: KEY_A });
      for (const m of MESSAGES) expect((await session.request(m)).equals(m)).toBe(true);
      const burst = Array.from({ length: 16 }, (_, i) => Buffer.from(`burst ${i}`));
      const replies = await Promise.all(burst.map((m) => session.request(m)));
      expect(replies.map(String)).toEqual(burst.map(String));
      await session.close();
    } finally {
      selectCryptoBackend(previous.name);
    }
  });
});

describe('across backends', () => {
  it('a client on one backend talks to `sesame serve` on the other', async (ctx) => {
    if (sodiumBackend === undefined) {
      ctx.skip('libsodium cannot be loaded here: only one backend');
      return;
    }
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    expect((await run(['keygen', '--keyring', ring, '--principal', 'cross'], env)).code).toBe(0);
    const key = clientKey(await loadKeyring(ring), undefined, new Date());
    const previous = cryptoBackend();
    try {
      for (const [server, client] of [
        ['node', 'sodium'],
        ['sodium', 'node'],
      ] as const) {
        const { child, url } = await serve(
          ['--listen', 'tcp://127.0.0.1:0', '--keyring', ring, '--service', 'echo'],
          { ...env, SESAME_CRYPTO: server },
        );
        selectCryptoBackend(client);
        const session = await connect(url, { key });
        for (const m of MESSAGES)
          expect((await session.request(m)).equals(m), `${client} -> ${server}`).toBe(true);
        await session.close();
        child.kill('SIGTERM');
      }
    } finally {
      selectCryptoBackend(previous.name);
    }
  });
});
