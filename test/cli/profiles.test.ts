// `sesame serve|connect --profile NAME` run as real processes, against the Python peers in
// test/python over loopback TCP.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { remoteListenProblem } from '../../src/cli/profiles.js';
import { BIN, runCommand, startProcess } from '../helpers/cli.js';

const PY = join(import.meta.dirname, '..', 'interop', 'python');
const STAMP = /^\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d \d{4}\] /;
const dir = mkdtempSync(join(tmpdir(), 'sesame-cli-profiles-'));

function file(name: string, content: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}
const PASS = '芝麻开门';
const KEY = file('key', `${PASS}\n`);
const KEY_BARE = file('key-bare', PASS); // the same key: one trailing newline is not part of it
const KEY_TWO_NEWLINES = file('key-nn', `${PASS}\n\n`); // a different key: only one is dropped
const WRONG = file('wrong', '老衲洗头用飘柔\n');
const LONG = file('long', 'a-secret-of-more-than-16-bytes\n');

const sesame = (args: string[], input = '') =>
  runCommand(process.execPath, [BIN, ...args], { input, timeoutMs: 15_000 });
const py = (script: string, args: string[], input = '') =>
  runCommand('python3', [join(PY, script), ...args], { input, timeoutMs: 15_000 });

/** Start a long-running process; resolves once its output matches `ready`. */
async function start(cmd: string, args: string[], ready: RegExp) {
  const { child, match, log } = await startProcess(cmd, args, ready, { timeoutMs: 10_000 });
  return { child, match, out: log };
}

/** `sesame serve` with `args` on a free loopback port: its port, its log, a stop function. */
async function serve(args: string[]) {
  const s = await start(
    process.execPath,
    [BIN, 'serve', '--listen', 'tcp://127.0.0.1:0', ...args],
    /listening on tcp:\/\/[^\s:]+:(\d+)/,
  );
  const stop = async () => {
    s.child.kill('SIGTERM');
    return new Promise<number | null>((resolve) => {
      if (s.child.exitCode !== null) resolve(s.child.exitCode);
      else s.child.once('exit', (code) => resolve(code));
    });
  };
  return { port: s.match[1] as string, log: s.out, stop };
}

/** A Python server peer on a free port. */
async function pyServer(script: string, args: string[]) {
  const s = await start('python3', ['-u', join(PY, script), '--port', '0', ...args], /listening on (\d+)/);
  return { url: `tcp://127.0.0.1:${s.match[1]}`, out: s.out };
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');
function expectStamped(text: string, texts: string[]): void {
  const got = lines(text);
  expect(got.map((l) => l.replace(STAMP, ''))).toEqual(texts);
  for (const l of got) expect(l).toMatch(STAMP);
}

function expectNoSecret(text: string): void {
  const secret = Buffer.from(PASS, 'utf8');
  for (const form of [PASS, secret.toString('hex'), secret.toString('base64')])
    expect(text).not.toContain(form);
}

describe('sesame serve --profile', () => {
  it('seed: the Python client gets stamped replies; a wrong key is refused and logged; no secret in logs', async () => {
    const server = await serve(['--profile', 'seed', '--secret-file', KEY, '--digest', 'md5']);
    const args = ['--port', server.port, '--digest', 'md5', '--secret-file'];
    const ok = await py('seed_client.py', [...args, KEY_BARE], 'time\n也许猪的身体不优美\n');
    expect(ok.code).toBe(0);
    expectStamped(ok.stdout, ['time', '也许猪的身体不优美']);
    const bad = await py('seed_client.py', [...args, KEY_TWO_NEWLINES], 'time\n');
    expect(bad.code).toBe(1);
    await expect.poll(server.log).toMatch(/refused 127\.0\.0\.1:\d+: ERR_AUTH_FAILED/);
    expect(server.log()).toMatch(/authenticated 127\.0\.0\.1:\d+ \(seed\)/);
    expect(server.log()).toMatch(/secret in .* is only 12 bytes/);
    expect(await server.stop()).toBe(0);
    expectNoSecret(server.log());
  });

  it('seed-hex: the server logs whether each client was legitimate', async () => {
    const server = await serve(['--profile', 'seed-hex', '--secret-file', KEY]);
    const args = ['--port', server.port, '--hex', '--secret-file'];
    expect((await py('seed_client.py', [...args, KEY])).stdout).toBe('--------\n');
    expect((await py('seed_client.py', [...args, WRONG])).stdout).toBe('--------\n');
    await expect
      .poll(server.log)
      .toMatch(/"msg":"legitimate client 127[\s\S]*"msg":"not a legitimate client 127[^\n]*ERR_AUTH_FAILED/);
    expect(await server.stop()).toBe(0);
  });

  it('python-mp: multiprocessing.connection.Client, right and wrong authkey', async () => {
    const server = await serve(['--profile', 'python-mp', '--secret-file', LONG, '--digest', 'sha3_384']);
    const ok = await py('mp_client.py', ['--port', server.port, '--secret-file', LONG], 'hello\n芝麻\n');
    expect(ok.code).toBe(0);
    expectStamped(ok.stdout, ['hello', '芝麻']);
    const bad = await py('mp_client.py', ['--port', server.port, '--secret-file', WRONG], 'hello\n');
    expect(bad.stderr).toMatch(/AuthenticationError: digest sent was rejected/);
    await expect.poll(server.log).toMatch(/refused [^\n]*ERR_AUTH_FAILED/);
    expect(server.log()).not.toMatch(/only \d+ bytes/);
    expect(await server.stop()).toBe(0);
  });

  for (const framing of ['line', 'chunk'] as const) {
    it(`none --framing ${framing}: the socketserver client, with a warning`, async () => {
      const server = await serve(['--profile', 'none', '--framing', framing]);
      const r = await py(
        'socketserver_client.py',
        ['--port', server.port, '--framing', framing],
        '百变星君\n大圣娶亲\n',
      );
      expect(r.code).toBe(0);
      expectStamped(r.stdout, ['百变星君', '大圣娶亲']);
      expect(server.log()).toMatch(/connections are NOT authenticated/);
      await expect.poll(server.log).toMatch(/connection from 127[^\n]*not authenticated/);
      expect(await server.stop()).toBe(0);
    });
  }
});

describe('sesame connect --profile', () => {
  it('seed: against the Python server, and refused with a wrong key (exit 1, ERR_AUTH_REFUSED)', async () => {
    const server = await pyServer('seed_server.py', ['--secret-file', KEY_BARE]);
    const ok = await sesame(
      ['connect', server.url, '--profile', 'seed', '--secret-file', KEY],
      'time\n\n超人迪加\n',
    );
    expect(ok.code).toBe(0);
    expectStamped(ok.stdout, ['time', '超人迪加']);
    expect(ok.stderr).toMatch(/warning: the secret in .* is only 12 bytes/);
    const per = await sesame(
      ['connect', server.url, '--profile', 'seed', '--secret-file', KEY, '--per-message'],
      'a\nb\n',
    );
    expectStamped(per.stdout, ['a', 'b']);
    const bad = await sesame(['connect', server.url, '--profile', 'seed', '--secret-file', WRONG], 'time\n');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^sesame: .*refused.*\(ERR_AUTH_REFUSED\)$/m);
    expect(server.out()).toMatch(/(authenticated[\s\S]*){3}refused: wrong answer/);
    expectNoSecret(ok.stdout + ok.stderr + bad.stdout + bad.stderr);
  });

  it('seed-hex: the Python server says legitimate, then not', async () => {
    const server = await pyServer('seed_server.py', ['--secret-file', KEY, '--hex', '--digest', 'sha512']);
    const args = ['connect', server.url, '--profile', 'seed-hex', '--digest', 'sha512', '--secret-file'];
    expect((await sesame([...args, KEY])).code).toBe(0);
    expect((await sesame([...args, WRONG])).code).toBe(0); // the protocol gives the client no verdict
    await expect.poll(server.out).toMatch(/\nlegitimate client\n[\s\S]*\nnot a legitimate client\n/);
  });

  it('python-mp: against multiprocessing.connection.Listener, in both challenge formats', async () => {
    const server = await pyServer('mp_server.py', ['--secret-file', KEY]);
    for (const digest of ['sha256', 'legacy']) {
      const r = await sesame(
        ['connect', server.url, '--profile', 'python-mp', '--digest', digest, '--secret-file', KEY],
        `hi ${digest}\n`,
      );
      expect(r.code).toBe(0);
      expectStamped(r.stdout, [`hi ${digest}`]);
    }
    const bad = await sesame(
      ['connect', server.url, '--profile', 'python-mp', '--secret-file', WRONG],
      'x\n',
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/#FAILURE#.*\(ERR_AUTH_REFUSED\)/);
    const liar = await pyServer('mp_server.py', ['--secret-file', KEY, '--answer-secret-file', WRONG]);
    const cheated = await sesame(
      ['connect', liar.url, '--profile', 'python-mp', '--secret-file', KEY],
      'x\n',
    );
    expect(cheated.code).toBe(1);
    expect(cheated.stderr).toMatch(/\(ERR_SERVER_AUTH_FAILED\)/);
  });

  it('none --framing line: a connection per message against StreamRequestHandler; a hint without', async () => {
    const server = await pyServer('socketserver_server.py', ['--framing', 'line']);
    const base = ['connect', server.url, '--profile', 'none', '--framing', 'line'];
    const ok = await sesame([...base, '--per-message'], '百变星君\n大圣娶亲\n');
    expect(ok.code).toBe(0);
    expectStamped(ok.stdout, ['百变星君', '大圣娶亲']);
    expect(ok.stderr).toMatch(/NOT authenticated/);
    const one = await sesame(base, 'a\nb\n');
    expect(one.code).toBe(1);
    expectStamped(one.stdout, ['a']);
    expect(one.stderr).toMatch(/needs --per-message \(ERR_CLOSED\)/);
  });

  it('none (chunks): a connection per message against ThreadingTCPServer', async () => {
    const server = await pyServer('socketserver_server.py', ['--framing', 'chunk']);
    const r = await sesame(
      ['connect', server.url, '--profile', 'none', '--per-message'],
      '哆啦A梦\n蜡笔小新\n',
    );
    expect(r.code).toBe(0);
    expectStamped(r.stdout, ['哆啦A梦', '蜡笔小新']);
  });
});

describe('profile options', () => {
  it('bad combinations exit 2 with one line saying why', async () => {
    const cases: [string[], RegExp][] = [
      [['serve', '--digest', 'md5'], /--digest applies only with --profile/],
      [['connect', '--secret-file', KEY, '--per-message'], /--secret-file, --per-message apply only with/],
      [['serve', '--profile', 'seed'], /--profile seed needs --secret-file PATH/],
      [
        ['serve', '--profile', 'seed', '--secret-file', KEY, '--digest', 'sha384'],
        /must be one of md5, sha1/,
      ],
      [
        ['connect', '--profile', 'python-mp', '--secret-file', KEY, '--digest', 'sha1'],
        /legacy, md5, sha256/,
      ],
      [
        ['serve', '--profile', 'python-mp', '--secret-file', KEY, '--framing', 'line'],
        /--framing applies only/,
      ],
      [['serve', '--profile', 'none', '--secret-file', KEY], /profile none uses no secret/],
      [
        ['serve', '--profile', 'seed', '--secret-file', KEY, '--keyring', KEY],
        /--keyring applies only to the native/,
      ],
      [
        ['serve', '--profile', 'none', '--listen', 'tcp://0.0.0.0:0'],
        /refusing to listen on tcp:\/\/0\.0\.0\.0:0/,
      ],
      [['serve', '--profile', 'tls'], /argument 'tls' is invalid/],
    ];
    const runs = await Promise.all(cases.map(([args]) => sesame(args)));
    runs.forEach((r, i) => {
      expect(r.code, cases[i]?.[0].join(' ')).toBe(2);
      expect(r.stderr).toMatch(cases[i]?.[1] as RegExp);
    });
  });

  it('an empty or missing secret file fails (exit 1); a file others can read draws a warning', async () => {
    const empty = file('empty', '\n');
    const r1 = await sesame(['connect', '--profile', 'seed', '--secret-file', empty], 'x\n');
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/is empty \(ERR_KEY_TOO_SHORT\)/);
    const r2 = await sesame(['connect', '--profile', 'seed', '--secret-file', join(dir, 'missing')], 'x\n');
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/cannot read secret file .*ENOENT/);
    const open = file('open', 'a-secret-of-more-than-16-bytes\n', 0o644);
    const server = await serve([
      '--profile',
      'python-mp',
      '--secret-file',
      open,
      '--listen',
      'tcp://127.0.0.1:0',
    ]);
    expect(server.log()).toMatch(/accessible by other users \(mode 0644\)/);
    expect(await server.stop()).toBe(0);
  });

  it('--allow-remote is what lets profile none listen beyond loopback', () => {
    expect(remoteListenProblem('none', 'tcp://0.0.0.0:9527', false)).toMatch(/refusing to listen/);
    expect(remoteListenProblem('none', 'tcp://[::]:9527', false)).toMatch(/refusing to listen/);
    expect(remoteListenProblem('none', 'tcp://0.0.0.0:9527', true)).toBeUndefined();
    expect(remoteListenProblem('none', 'tcp://[::1]:9527', false)).toBeUndefined();
    expect(remoteListenProblem('none', 'tcp://localhost:9527', false)).toBeUndefined();
    expect(remoteListenProblem('none', 'unix:///tmp/x.sock', false)).toBeUndefined();
    expect(remoteListenProblem('seed', 'tcp://0.0.0.0:9527', false)).toBeUndefined();
  });
});
