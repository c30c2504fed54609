// Running real processes in tests: the `sesame` executable, examples, Python peers.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'dist', 'cli', 'bin.js');
export const STAMP =
  /^\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}\] /;

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ProcessOptions {
  readonly env?: NodeJS.ProcessEnv | undefined;
  readonly cwd?: string | undefined;
  readonly input?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

/** A fresh HOME and XDG_CONFIG_HOME, so that default key rings never touch the real ones. */
export function home(): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-cli-'));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config') };
  delete env.SESAME_KEYRING;
  return env;
}

/** Run `cmd args` to completion with `input` on stdin; never rejects. */
export function runCommand(cmd: string, args: string[], options: ProcessOptions = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? 20_000 },
      (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
      },
    );
    // A command may exit before it reads its input: the write then fails with EPIPE, and what
    // counts is the exit code and the output.
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
  });
}

/** Run `sesame args`. */
export function run(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<Run> {
  return runCommand(process.execPath, [BIN, ...args], { env, input });
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

/**
 * Start a long-running `cmd args` (killed after the test); resolves once its stdout and stderr
 * together match `ready`. `log()` is both streams as they came, `stdout()` stdout alone.
 */
export function startProcess(
  cmd: string,
  args: string[],
  ready: RegExp,
  options: ProcessOptions = {},
): Promise<{ child: ChildProcess; match: RegExpExecArray; log: () => string; stdout: () => string }> {
  const child = track(
    spawn(cmd, args, { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let out = '';
  let stdout = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready:\n${out}`)), options.timeoutMs ?? 15_000);
    const check = (d: Buffer) => {
      out += d.toString();
      const match = ready.exec(out);
      if (match !== null) {
        clearTimeout(timer);
        resolve({ child, match, log: () => out, stdout: () => stdout });
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`exited:\n${out}`));
    });
  });
}

const LISTENING = /listening on ((?:tcp|udp|unix):\/\/[^\s"]+)/;

/** Run `node ...argv`, resolve once it prints "listening on URL" (stdout or stderr). */
export async function startListening(
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const { child, match, log } = await startProcess(process.execPath, argv, LISTENING, { env });
  return { child, url: match[1] as string, log };
}

/** Start `sesame serve`, resolve once it logs "listening on URL". */
export function serve(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  return startListening([BIN, 'serve', ...args], env);
}

export function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}
