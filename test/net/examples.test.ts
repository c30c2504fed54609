// The framework examples in examples/ run as real processes, each reached with `sesame connect`.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitOf, home, run, startListening } from '../helpers/cli.js';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');

describe('framework examples', () => {
  for (const url of ['tcp://127.0.0.1:0', 'udp://127.0.0.1:0', 'unix']) {
    it(`service-stream.js over ${url.split(':')[0]}`, async () => {
      const env = home();
      const ring = join(env.HOME as string, 'ring.json');
      const listen = url === 'unix' ? `unix://${join(env.HOME as string, 's.sock')}` : url;
      const { child, url: bound } = await startListening(
        [join(EXAMPLES, 'service-stream.js'), listen, '--keyring', ring],
        env,
      );
      const r = await run(['connect', bound, '--keyring', ring], env, 'hello\nworld\n');
      expect(r).toMatchObject({ code: 0, stdout: 'default says HELLO\ndefault says WORLD\n' });
      child.kill('SIGTERM');
      expect(await exitOf(child)).toBe(0);
    });
  }

  it('service-base.js: setup, handle over the whole connection, finish', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    const { child, url, log } = await startListening(
      [join(EXAMPLES, 'service-base.js'), 'tcp://127.0.0.1:0', '--keyring', ring],
      env,
    );
    const r = await run(['connect', url, '--keyring', ring], env, '1\n2\n39\ntotal\n');
    expect(r.stdout).toBe('ok\nok\nok\n42\n');
    await expect.poll(log).toMatch(/done, total 42/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('service-workers.js: two processes answer, SIGTERM stops them all', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    const { child, url } = await startListening(
      [join(EXAMPLES, 'service-workers.js'), 'tcp://127.0.0.1:0', '--keyring', ring, '--workers', '2'],
      env,
    );
    const pids = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await run(['connect', url, '--keyring', ring], env, `m${i}\n`);
      const m = /^(\d+): m\d\n$/.exec(r.stdout);
      expect(m).not.toBeNull();
      pids.add(m?.[1] as string);
    }
    expect(pids.size).toBe(2);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });
});
