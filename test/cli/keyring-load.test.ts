// `sesame serve` names, at load and at each reload, every key it cannot use because its secret is
// shorter than 256 bits (a client refuses such a key; the server would refuse it as unknown).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitOf, home, run, serve } from '../helpers/cli.js';

describe('serve loading a key ring', () => {
  it('warns about a key shorter than 256 bits and names it, at load and at reload', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    const good = (await run(['keygen', '--keyring', ring, '--principal', 'good'], env)).stdout.trim();
    const short = (await run(['keygen', '--keyring', ring, '--principal', 'shorty'], env)).stdout.trim();
    const doc = JSON.parse(readFileSync(ring, 'utf8')) as { keys: { id: string; secret: string }[] };
    for (const k of doc.keys) if (k.id === short) k.secret = Buffer.alloc(16, 7).toString('base64');
    writeFileSync(ring, JSON.stringify(doc), { mode: 0o600 });
    const { child, log } = await serve(['--listen', 'tcp://127.0.0.1:0', '--keyring', ring], env);
    await expect.poll(log).toMatch(new RegExp(`"event":"short-key".*"keyId":"${short}".*"bits":128`));
    expect(log()).not.toMatch(new RegExp(`"event":"short-key".*"keyId":"${good}"`));
    const first = log().match(/"event":"short-key"/g)?.length;
    expect(first).toBe(1);
    child.kill('SIGHUP');
    await expect.poll(() => log().match(/"event":"short-key"/g)?.length).toBe(2);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });
});
