// Operating `sesame serve`: key management, hot reload, --close-revoked, metrics (also across
// workers), UDP, and PROXY headers, each through the real executable.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKeyring } from '../../src/keyring/file.js';
import { clientKey } from '../../src/keyring/preshared.js';
import { connect } from '../../src/net/client.js';
import { connectUdp } from '../../src/net/datagram-client.js';
import { exitOf, home, run, STAMP, serve } from '../helpers/cli.js';

async function metricsOf(log: () => string): Promise<string> {
  await expect.poll(log).toMatch(/metrics on http:\/\/[^\s"]+/);
  const url = /metrics on (http:\/\/[^\s"]+)/.exec(log())?.[1] as string;
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return res.text();
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? Number.NaN : Number(line.split(' ').at(-1));
}

describe('sesame keys', () => {
  it('adds, lists, rotates, revokes, exports and fingerprints keys without printing a secret', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'ring.json');
    const alice = (await run(['keys', 'add', '--keyring', ring, '--principal', 'alice'], env)).stdout.trim();
    const bob = (await run(['keys', 'add', '--keyring', ring, '--principal', 'bob'], env)).stdout.trim();
    expect([alice, bob]).toEqual([
      expect.stringMatching(/^[0-9a-f]{16}$/),
      expect.stringMatching(/^[0-9a-f]{16}$/),
    ]);
    const rotated = await run(['keys', 'rotate', 'alice', '--keyring', ring, '--overlap', '1h'], env);
    expect(rotated.code).toBe(0);
    const alice2 = rotated.stdout.trim();
    expect(alice2).toMatch(/^[0-9a-f]{16}$/);
    expect((await run(['keys', 'revoke', bob, '--keyring', ring], env)).code).toBe(0);
    const list = await run(['keys', 'list', '--keyring', ring, '--json'], env);
    const rows = list.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>);
    expect(rows.map((r) => [r.id, r.principal, r.status])).toEqual([
      [alice, 'alice', 'valid'],
      [bob, 'bob', 'revoked'],
      [alice2, 'alice', 'valid'],
    ]);
    expect(rows[0]?.notAfter).toBeDefined(); // the old key ends after the overlap
    const out = join(env.HOME as string, 'alice.json');
    expect((await run(['keys', 'export', alice2, '--keyring', ring, '--out', out], env)).code).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect((await run(['keys', 'export', alice2, '--keyring', ring, '--out', out], env)).code).toBe(1); // no overwrite
    const fpAll = (await run(['keys', 'fingerprint', '--keyring', ring], env)).stdout;
    const fpOne = (await run(['keys', 'fingerprint', alice2, '--keyring', out], env)).stdout;
    expect(fpAll).toContain(fpOne.trim()); // the exported key has the same fingerprint
    const table = (await run(['keys', 'list', '--keyring', ring], env)).stdout;
    const secrets = (JSON.parse(readFileSync(ring, 'utf8')) as { keys: { secret: string }[] }).keys.map(
      (k) => k.secret,
    );
    for (const secret of secrets) {
      const raw = Buffer.from(secret, 'base64');
      for (const text of [table, list.stdout, fpAll]) {
        expect(text).not.toContain(secret);
        expect(text).not.toContain(raw.toString('hex'));
      }
    }
    const unknown = await run(['keys', 'revoke', '0000000000000000', '--keyring', ring], env);
    expect(unknown.code).toBe(2); // an unknown key id is a bad argument
    expect(unknown.stderr).toMatch(/ERR_KEY_NOT_FOUND/);
  });
});

describe('serve: reload, metrics, UDP', () => {
  it('reloads the key ring on change: new keys accepted, revoked ones refused, a bad file ignored', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'server.json');
    const alice = (await run(['keys', 'add', '--keyring', ring, '--principal', 'alice'], env)).stdout.trim();
    const aliceRing = join(env.HOME as string, 'alice.json');
    await run(['keys', 'export', alice, '--keyring', ring, '--out', aliceRing], env);
    const { child, url, log } = await serve(
      ['--listen', 'tcp://127.0.0.1:0', '--keyring', ring, '--metrics', 'tcp://127.0.0.1:0'],
      env,
    );
    expect((await run(['connect', url, '--keyring', aliceRing], env, 'before\n')).stdout).toMatch(STAMP);

    // a new key works without a restart
    const carol = (await run(['keys', 'add', '--keyring', ring, '--principal', 'carol'], env)).stdout.trim();
    const carolRing = join(env.HOME as string, 'carol.json');
    await run(['keys', 'export', carol, '--keyring', ring, '--out', carolRing], env);
    await expect.poll(log).toMatch(/key ring reloaded.*2 keys/);
    expect((await run(['connect', url, '--keyring', carolRing], env, 'new key\n')).stdout).toMatch(
      /\] new key\n$/,
    );

    // a revoked key is refused from then on
    await run(['keys', 'revoke', alice, '--keyring', ring], env);
    await expect
      .poll(async () => (await run(['connect', url, '--keyring', aliceRing], env, 'x\n')).code)
      .toBe(1);
    await expect.poll(log).toMatch(/"code":"ERR_KEY_REVOKED"/);

    // a malformed ring is refused; the keys in force stay
    writeFileSync(`${ring}.tmp`, '{ not json');
    const { renameSync } = await import('node:fs');
    renameSync(`${ring}.tmp`, ring);
    await expect.poll(log).toMatch(/key ring reload refused/);
    expect((await run(['connect', url, '--keyring', carolRing], env, 'still\n')).stdout).toMatch(
      /\] still\n$/,
    );

    // SIGHUP reloads too (the file is valid again)
    await run(['keys', 'add', '--keyring', join(env.HOME as string, 'fresh.json'), '--principal', 'x'], env);
    writeFileSync(ring, readFileSync(join(env.HOME as string, 'fresh.json')));
    child.kill('SIGHUP');
    await expect.poll(log).toMatch(/key ring reloaded \((SIGHUP|file change)\): 1 keys/);

    const text = await metricsOf(log);
    expect(metric(text, 'sesame_handshakes_total{result="ok"')).toBe(3);
    expect(
      metric(text, 'sesame_handshakes_total{result="refused",reason="ERR_KEY_REVOKED"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(metric(text, 'sesame_keyring_reloads_total{result="error"}')).toBeGreaterThanOrEqual(1);
    expect(metric(text, 'sesame_keyring_reloads_total{result="ok"}')).toBeGreaterThanOrEqual(3);
    expect(metric(text, 'sesame_messages_total{direction="in"}')).toBe(3);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('rotates a key without dropping a connection: the old session lives on, the old key expires', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'server.json');
    const old = (await run(['keys', 'add', '--keyring', ring, '--principal', 'svc'], env)).stdout.trim();
    const oldRing = join(env.HOME as string, 'old.json');
    await run(['keys', 'export', old, '--keyring', ring, '--out', oldRing], env);
    const { child, url, log } = await serve(['--listen', 'tcp://127.0.0.1:0', '--keyring', ring], env);
    const held = await connect(url, { key: clientKey(await loadKeyring(oldRing), undefined, new Date()) });
    expect((await held.request(Buffer.from('before'))).toString()).toMatch(/\] before$/);
    const rotated = await run(['keys', 'rotate', 'svc', '--keyring', ring, '--overlap', '1s'], env);
    const fresh = rotated.stdout.trim();
    const freshRing = join(env.HOME as string, 'fresh.json');
    await run(['keys', 'export', fresh, '--keyring', ring, '--out', freshRing], env);
    await expect.poll(log).toMatch(/key ring reloaded.*2 keys/);
    expect((await run(['connect', url, '--keyring', freshRing], env, 'new\n')).stdout).toMatch(/\] new\n$/);
    await new Promise((r) => setTimeout(r, 1100)); // the overlap ends
    // a new connection with the old key is refused (the server says why in its log)...
    const late = await connect(url, {
      key: { ...clientKey(await loadKeyring(oldRing), undefined, new Date(0)), notAfter: undefined },
    }).catch((e: { code: string }) => e.code);
    expect(late).toBe('ERR_AUTH_REFUSED');
    await expect.poll(log).toMatch(/"code":"ERR_KEY_EXPIRED"/);
    // ...while the session opened before the rotation still works
    expect((await held.request(Buffer.from('after'))).toString()).toMatch(/\] after$/);
    await held.close();
    expect(held.error).toBeUndefined();
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('--close-revoked closes open sessions of a key when it is revoked', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'server.json');
    const alice = (await run(['keys', 'add', '--keyring', ring, '--principal', 'alice'], env)).stdout.trim();
    const bob = (await run(['keys', 'add', '--keyring', ring, '--principal', 'bob'], env)).stdout.trim();
    const { child, url, log } = await serve(
      ['--listen', 'tcp://127.0.0.1:0', '--keyring', ring, '--close-revoked'],
      env,
    );
    const keys = await loadKeyring(ring);
    const a = await connect(url, { key: clientKey(keys, alice, new Date()) });
    const b = await connect(url, { key: clientKey(keys, bob, new Date()) });
    expect((await a.request(Buffer.from('a'))).toString()).toMatch(/\] a$/);
    await run(['keys', 'revoke', alice, '--keyring', ring], env);
    expect(await a.next()).toBeUndefined(); // closed by the server, with a close record
    await a.close();
    expect(a.error).toBeUndefined();
    expect((await b.request(Buffer.from('b'))).toString()).toMatch(/\] b$/); // bob is untouched
    await b.close();
    expect(log()).toMatch(/closed 1 sessions of keys no longer valid/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('--close-revoked closes open UDP sessions of a key when it is revoked', async () => {
    const env = home();
    const ring = join(env.HOME as string, 'server.json');
    const alice = (await run(['keys', 'add', '--keyring', ring, '--principal', 'alice'], env)).stdout.trim();
    const bob = (await run(['keys', 'add', '--keyring', ring, '--principal', 'bob'], env)).stdout.trim();
    const { child, url, log } = await serve(
      ['--listen', 'udp://127.0.0.1:0', '--keyring', ring, '--close-revoked'],
      env,
    );
    const keys = await loadKeyring(ring);
    const a = await connectUdp(url, { key: clientKey(keys, alice, new Date()) });
    const b = await connectUdp(url, { key: clientKey(keys, bob, new Date()) });
    const aClosed = new Promise<void>((resolve) => a.once('close', resolve));
    expect((await a.request(Buffer.from('a'))).toString()).toMatch(/\] a$/);
    await run(['keys', 'revoke', alice, '--keyring', ring], env);
    await aClosed; // an authenticated CLOSE from the server
    expect(a.closed).toBe(true);
    expect((await b.request(Buffer.from('b'))).toString()).toMatch(/\] b$/); // bob is untouched
    await b.close();
    expect(log()).toMatch(/closed 1 sessions of keys no longer valid/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('--workers 2 --metrics reports the sum over both workers', async () => {
    const env = home();
    const { child, url, log } = await serve(
      ['--listen', 'tcp://127.0.0.1:0', '--workers', '2', '--metrics', 'tcp://127.0.0.1:0'],
      env,
    );
    for (let i = 0; i < 6; i++) expect((await run(['connect', url], env, `m${i}\n`)).code).toBe(0);
    const pids = new Set([...log().matchAll(/"pid":(\d+),"event":"authenticated"/g)].map((m) => m[1]));
    expect(pids.size).toBe(2);
    const text = await metricsOf(log);
    expect(metric(text, 'sesame_handshakes_total{result="ok"')).toBe(6);
    expect(metric(text, 'sesame_messages_total{direction="out"}')).toBe(6);
    // SIGHUP to the primary reaches every worker
    child.kill('SIGHUP');
    await expect.poll(() => (log().match(/key ring reloaded \(SIGHUP\)/g) ?? []).length).toBe(2);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('serves the timestamp service over UDP: one line, one datagram, one reply', async () => {
    const env = home();
    const { child, url, log } = await serve(['--listen', 'udp://127.0.0.1:0'], env);
    expect(url).toMatch(/^udp:\/\/127\.0\.0\.1:\d+$/);
    const r = await run(['connect', url], env, 'hello\n百变星君\n');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.replace(STAMP, ''))).toEqual(['hello', '百变星君']);
    await expect.poll(log).toMatch(/"event":"authenticated"/);
    const refused = await run(
      ['connect', url, '--keyring', join(env.HOME as string, 'none.json')],
      env,
      'x\n',
    );
    expect(refused.code).toBe(1);
    const bad = await run(['serve', '--listen', 'udp://127.0.0.1:0', '--workers', '2'], env);
    expect(bad.code).toBe(2); // an option combination that cannot work is a bad argument
    expect(bad.stderr).toMatch(/--workers/);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });
});
