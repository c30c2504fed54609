// The programs in examples/ (the seed's programs written with Sesame's API) against Python peers
// that follow the seed's protocol: each prints what the seed's program prints.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCommand, startProcess } from '../helpers/cli.js';

const PY = join(import.meta.dirname, 'python');
const STAMP = /\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d \d{4}\] /g;
const dir = mkdtempSync(join(tmpdir(), 'sesame-examples-'));

function secretFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  return path;
}
// The keys written into the seed's programs.
const EXAMPLE1_KEY = secretFile('example1', '老衲洗头用飘柔');
const EXAMPLE2_KEY = secretFile('example2', '芝麻开门');

const run = (cmd: string, args: string[], input = '') =>
  runCommand(cmd, args, { input, cwd: ROOT, timeoutMs: 15_000 });
const py = (script: string, args: string[], input = '') => run('python3', [join(PY, script), ...args], input);
const example = (name: string, args: string[], input = '') =>
  run(process.execPath, [join(ROOT, 'examples', name), ...args], input);

/** Start a server; resolves once it reports its port (examples on stderr, Python peers on stdout). */
async function start(cmd: string, args: string[]) {
  const { child, match, stdout } = await startProcess(
    cmd,
    args,
    /listening on (?:tcp:\/\/127\.0\.0\.1:)?(\d+)/,
    {
      cwd: ROOT,
      timeoutMs: 10_000,
    },
  );
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
  return { port: match[1] as string, stdout, exited };
}
const exampleServer = (name: string) =>
  start(process.execPath, [join(ROOT, 'examples', name), '--port', '0']);
const pyServer = (script: string, args: string[]) =>
  start('python3', ['-u', join(PY, script), '--port', '0', ...args]);

/** Output with every ctime stamp replaced, so it can be compared exactly. */
const stamped = (text: string) => text.replace(STAMP, '[STAMP] ');

describe('examples/ against Python peers that follow the seed', () => {
  it('seed1-server.js: one client, judged legitimate, then the server stops', async () => {
    const server = await exampleServer('seed1-server.js');
    const client = await py('seed_client.py', [
      '--port',
      server.port,
      '--hex',
      '--digest',
      'md5',
      '--secret-file',
      EXAMPLE1_KEY,
    ]);
    expect(client.stdout).toBe('--------\n');
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toBe('是合法的客户端\n');
  });

  it('seed1-server.js: a client with another key is not legitimate', async () => {
    const server = await exampleServer('seed1-server.js');
    await py('seed_client.py', [
      '--port',
      server.port,
      '--hex',
      '--digest',
      'md5',
      '--secret-file',
      EXAMPLE2_KEY,
    ]);
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toBe('不是合法的客户端\n');
  });

  it('seed1-client.js: the Python server finds it legitimate', async () => {
    const server = await pyServer('seed_server.py', [
      '--hex',
      '--digest',
      'md5',
      '--secret-file',
      EXAMPLE1_KEY,
    ]);
    const r = await example('seed1-client.js', ['--port', server.port]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('--------\n');
    await expect.poll(server.stdout).toMatch(/\nlegitimate client\n/);
  });

  it('seed2-server.js: stamped replies and the seed log, and the refusal of another key', async () => {
    const server = await exampleServer('seed2-server.js');
    const args = ['--port', server.port, '--digest', 'md5', '--secret-file'];
    const ok = await py('seed_client.py', [...args, EXAMPLE2_KEY], 'time\n也许猪的身体不优美,长鼻短尾\n');
    expect(stamped(ok.stdout)).toBe('[STAMP] time\n[STAMP] 也许猪的身体不优美,长鼻短尾\n');
    const bad = await py('seed_client.py', [...args, EXAMPLE1_KEY], 'time\n');
    expect(bad.code).toBe(1);
    await expect
      .poll(server.stdout)
      .toMatch(
        /^新连接\[127\.0\.0\.1:\d+\]\n开始验证新链接的合法性\n链接已通过验证,开始通信\n新连接\[127\.0\.0\.1:\d+\]\n开始验证新链接的合法性\n链接非法,关闭\n$/,
      );
  });

  it('seed2-client.js: the >>> loop against the Python server; quit leaves', async () => {
    const server = await pyServer('seed_server.py', ['--digest', 'md5', '--secret-file', EXAMPLE2_KEY]);
    const r = await example(
      'seed2-client.js',
      ['--port', server.port],
      'time\n\n百变星君\nquit\nnever sent\n',
    );
    expect(r.code).toBe(0);
    expect(stamped(r.stdout)).toBe('>>>[STAMP] time\n>>>>>>[STAMP] 百变星君\n>>>');
  });

  it('socketserver-stream-server.js: one line per connection, the terminator kept', async () => {
    const server = await exampleServer('socketserver-stream-server.js');
    const r = await py(
      'socketserver_client.py',
      ['--port', server.port, '--framing', 'line'],
      '百变星君\n大圣娶亲\n',
    );
    expect(stamped(r.stdout)).toBe('[STAMP] 百变星君\n[STAMP] 大圣娶亲\n');
    await expect
      .poll(server.stdout)
      .toMatch(
        /^waiting for connection\.\.\.\n\.\.\.connected from: \('127\.0\.0\.1', \d+\)\n\.\.\.connected from: \('127\.0\.0\.1', \d+\)\n$/,
      );
  });

  it('socketserver-threading-server.js: one chunk per connection, logged and answered', async () => {
    const server = await exampleServer('socketserver-threading-server.js');
    const r = await py(
      'socketserver_client.py',
      ['--port', server.port, '--framing', 'chunk'],
      '哆啦A梦\n蜡笔小新\n',
    );
    expect(stamped(r.stdout)).toBe('[STAMP] 哆啦A梦\n[STAMP] 蜡笔小新\n');
    await expect
      .poll(() => stamped(server.stdout()))
      .toMatch(
        /^等待连接\.\.\.\n(\.\.\.连接来自: \('127\.0\.0\.1', \d+\)\n\[STAMP\] (哆啦A梦|蜡笔小新)\n){2}$/,
      );
  });
});
