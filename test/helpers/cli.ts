// Running the `sesame` executable as a real process in tests.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

export const BIN = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'bin.js');
export const STAMP =
  /^\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}\] /;

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function home(): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-cli-'));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config') };
  delete env.SESAME_KEYRING;
  return env;
}

export function run(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { env, timeout: 20_000 },
      (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

const children: ChildProcess[] = [];

/** Processes to kill after the current test (those still running). */
export function track(child: ChildProcess): ChildProcess {
  children.push(child);
  return child;
}
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Start `sesame serve`, resolve once it logs "listening on URL". */
export function serve(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  return startListening([BIN, 'serve', ...args], env);
}

/** Run `node ...argv`, resolve once it prints "listening on URL" (stdout or stderr). */
export function startListening(
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const child = track(spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 15_000);
    const check = (d: Buffer) => {
      out += d.toString();
      const m = /listening on ((?:tcp|udp|unix):\/\/[^\s"]+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ child, url: m[1] as string, log: () => out });
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', () => reject(new Error(`server exited:\n${out}`)));
  });
}

export function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}
