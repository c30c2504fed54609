// `serve --workers 2` has one replay state: a recorded ClientHello sent again on many
// connections, which the primary spreads over both workers, gets at most one ServerHello in all,
// and a worker started later (after one was killed) refuses it too.
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKeyring } from '../../src/keyring/file.js';
import { clientKey } from '../../src/keyring/preshared.js';
import { ClientConnection, systemEntropy } from '../../src/protocol/index.js';
import { home, run, serve } from '../helpers/cli.js';

/**
 * Spacing between two sends of the hello: well beyond the relay's delay between workers (mostly
 * under 2 ms, a tail to 50 ms on a busy machine: docs/security.md, 3.7), so that each send finds
 * the other worker informed even while the rest of the suite loads the machine. The window
 * itself is measured by dev/tools/replay-window.ts, not here.
 */
const SPACING_MS = 500;

/**
 * Send `hello` on a new connection from `source`; true when the server answered with any byte (a
 * ServerHello). Each send comes from its own loopback address, so the failed-login throttle (per
 * source) never closes a connection before its hello is judged.
 */
function answered(port: number, hello: Buffer, source: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port, localAddress: source });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the server neither answered nor closed within 10 s'));
    }, 10_000);
    const done = (got: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    socket.once('data', () => done(true));
    socket.once('close', () => done(false));
    socket.once('error', () => done(false));
    socket.write(hello);
  });
}

async function answers(port: number, hello: Buffer, times: number, net: number): Promise<number> {
  let n = 0;
  for (let i = 0; i < times; i++) {
    if (await answered(port, hello, `127.0.${net}.${i + 1}`)) n++;
    await new Promise((r) => setTimeout(r, SPACING_MS));
  }
  return n;
}

describe('serve --workers: one replay state', () => {
  it('a recorded ClientHello sent on many connections gets at most one ServerHello, also from a replacement worker', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    expect((await run(['keygen', '--keyring', ring], env)).code).toBe(0);
    const { url, log } = await serve(
      ['--listen', 'tcp://127.0.0.1:0', '--keyring', ring, '--workers', '2', '--log-format', 'json'],
      env,
    );
    const port = Number(new URL(url).port);
    const key = clientKey(await loadKeyring(ring), undefined, new Date());
    const client = new ClientConnection({ key, entropy: systemEntropy, now: Date.now });
    client.start();
    const hello = Buffer.concat(client.takeOutput());
    expect(hello).toHaveLength(104);

    // Round-robin spreads 10 connections over both workers: with a cache per worker, two answer.
    expect(await answers(port, hello, 10, 21)).toBe(1);
    expect(log()).toContain('ERR_REPLAYED_HELLO');

    // Kill one worker: its replacement learns the primary's copy before it accepts.
    const pids = [...log().matchAll(/worker (\d+) ready/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(2);
    process.kill(pids[0] as number, 'SIGKILL');
    await expect.poll(() => [...log().matchAll(/worker (\d+) ready/g)].length, { timeout: 15_000 }).toBe(3);
    expect(await answers(port, hello, 10, 22)).toBe(0);
  }, 60_000);
});
