/**
 * What the security tools (oracle, slowloris, soak, no-loss) share: statistics, tables, key ring
 * files, and servers run as child processes (the `sesame` CLI, or a small SesameServer child that
 * reports its counters over IPC).
 *
 * Rules: every tool is bounded in time and stops by itself; it only ever ends the processes it
 * started, by their PID; network traffic stays on loopback.
 */

import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeyRing, type PresharedKey, saveKeyring, toPresharedKey } from '../../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
/**
 * The compiled tree the tools run from: `dev/build/`, built by dev/tsconfig.json, holding `dev/`
 * and the `src/` it imports (the `sesame` executable included).
 */
export const BUILD_ROOT = join(here, '..', '..');
/** The compiled `sesame` executable, built from the same sources as the package's. */
export const SESAME_BIN = join(BUILD_ROOT, 'src', 'cli', 'bin.js');

// ---------------------------------------------------------------------------------------------
// Statistics

/** The p-quantile (0..1) of ascending `sorted`, by linear interpolation. */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const at = (sorted.length - 1) * p;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (at - lo);
}

export function ascending(values: readonly number[]): number[] {
  return [...values].sort((x, y) => x - y);
}

export function median(values: readonly number[]): number {
  return quantile(ascending(values), 0.5);
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((s, v) => s + v, 0) / values.length;
}

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function summarize(values: readonly number[]): Summary {
  const s = ascending(values);
  return {
    n: s.length,
    p50: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s.length === 0 ? Number.NaN : (s[s.length - 1] as number),
    mean: mean(s),
  };
}

/**
 * Kolmogorov-Smirnov two-sample test: the statistic D (largest gap between the two empirical
 * distribution functions) and its asymptotic p-value (Numerical Recipes, `kstwo`).
 */
export function ksTwoSample(a: readonly number[], b: readonly number[]): { d: number; p: number } {
  const x = ascending(a);
  const y = ascending(b);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i] as number, y[j] as number);
    while (i < x.length && (x[i] as number) <= v) i++;
    while (j < y.length && (y[j] as number) <= v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  const ne = (x.length * y.length) / (x.length + y.length);
  const sq = Math.sqrt(ne);
  return { d, p: kolmogorovQ((sq + 0.12 + 0.11 / sq) * d) };
}

/** Q_KS(lambda) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 lambda^2). */
function kolmogorovQ(lambda: number): number {
  if (lambda < 1e-3) return 1;
  let sum = 0;
  let sign = 1;
  for (let k = 1; k <= 100; k++) {
    const term = sign * Math.exp(-2 * k * k * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
    sign = -sign;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}

/** A small seeded PRNG (mulberry32), so that bootstrap intervals are reproducible. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Percentile bootstrap 95% interval of `stat(a) - stat(b)` (or of `stat(a)` alone when `b` is
 * undefined), from `rounds` resamples.
 */
export function bootstrap(
  a: readonly number[],
  b: readonly number[] | undefined,
  stat: (sorted: number[]) => number,
  rounds: number,
  seed = 1,
): { low: number; high: number } {
  const rand = prng(seed);
  const resample = (v: readonly number[]): number[] => {
    const out = new Array<number>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = v[Math.floor(rand() * v.length)] as number;
    return out.sort((x, y) => x - y);
  };
  const stats: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const sa = stat(resample(a));
    stats.push(b === undefined ? sa : sa - stat(resample(b)));
  }
  const s = ascending(stats);
  return { low: quantile(s, 0.025), high: quantile(s, 0.975) };
}

// ---------------------------------------------------------------------------------------------
// Output

/** A plain-text table with aligned columns (numbers right-aligned). */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    `| ${r.map((c, i) => (/^[-+\d.,% x]+$/.test(c) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

export function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

/** Seconds since `start` (a performance.now() value), for progress lines. */
export function since(start: number): string {
  return `${((performance.now() - start) / 1000).toFixed(1)} s`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The machine, for the record: cores, Node version, platform, soft fd limit. */
export function machine(): string {
  return `${availableCores()} cores, Node ${process.version}, ${process.platform}/${process.arch}, fd limit ${fdLimit() ?? '?'}`;
}

function availableCores(): number {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    return Number.NaN;
  }
}

/** The soft limit on open files this process (and its children) inherit, from the shell. */
export function fdLimit(): number | undefined {
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
  } catch {
    return undefined;
  }
}

/** Resident set size of a process, in bytes (Linux /proc), or undefined. */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Keys

/** A fresh random pre-shared key (not written anywhere). */
export function randomKey(principal: string): PresharedKey {
  return toPresharedKey(KeyRing.generate({ principal, now: new Date(), random: (n) => randomBytes(n) }));
}

/** A temporary directory, removed by `cleanup()`. */
export function tempDir(prefix: string): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Write a key ring with one fresh key per principal to `file` (mode 0600). */
export async function writeKeyring(file: string, principals: readonly string[]): Promise<PresharedKey[]> {
  const ring = new KeyRing(
    principals.map((principal) =>
      KeyRing.generate({ principal, now: new Date(), random: (n) => randomBytes(n) }),
    ),
  );
  await saveKeyring(file, ring);
  return ring.list().map(toPresharedKey);
}

// ---------------------------------------------------------------------------------------------
// Servers in child processes

/** What the server child is told to run (sent over IPC, so no secret appears in `ps`). */
export interface ChildConfig {
  readonly listen: string;
  readonly keys: readonly { id: string; principal: string; secretHex: string }[];
  readonly handshakeTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly maxConnections?: number;
  /**
   * Keep the server's default per-source throttling of failed logins and its per-source cap on
   * handshakes in progress (both off by default, to model attackers with many addresses).
   */
  readonly throttle?: boolean;
}

/** Options of the child process itself (not sent to it). */
export interface ChildProcessOptions {
  /** Run with --expose-gc, so that `stats({ gc: true })` can measure the live heap. */
  readonly exposeGc?: boolean;
}

/** The counters the server child reports. */
export interface ChildStats {
  readonly rss: number;
  readonly heapUsed: number;
  /** Memory of Buffers and other objects outside the JS heap. */
  readonly external: number;
  /** Whether a full garbage collection ran just before these numbers were taken. */
  readonly collected: boolean;
  readonly connections: number;
  readonly authOk: number;
  readonly refusals: Record<string, number>;
  readonly busy: number;
}

export interface ServerChild {
  readonly pid: number;
  readonly url: string;
  /** The counters; with `gc`, after a full garbage collection (needs `exposeGc`). */
  stats(options?: { gc?: boolean }): Promise<ChildStats>;
  /** Graceful close, then the child exits; it is killed (by PID) if it has not after `ms`. */
  stop(ms?: number): Promise<void>;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kill (by PID) every child this process started that is still running, when it exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const c of children)
        if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
      process.exit(130);
    });
  }
}

function track(child: ChildProcess): void {
  installExitHook();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

function keyConfig(keys: readonly PresharedKey[]): ChildConfig['keys'] {
  return keys.map((k) => ({
    id: k.id,
    principal: k.principal,
    secretHex: Buffer.from(k.secret).toString('hex'),
  }));
}

/** Start server-child.js (beside this file) with `config`; resolves once it listens. */
export async function startServerChild(
  config: Omit<ChildConfig, 'keys'> & { keys: readonly PresharedKey[] },
  processOptions: ChildProcessOptions = {},
): Promise<ServerChild> {
  const child = fork(join(here, 'server-child.js'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: processOptions.exposeGc === true ? ['--expose-gc'] : [],
  });
  track(child);
  const pid = child.pid as number;
  let waiting: ((s: ChildStats) => void)[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    child.on('message', (m: { type: string; url?: string; stats?: ChildStats }) => {
      if (m.type === 'listening') resolve(m.url as string);
      if (m.type === 'stats') {
        const [w, ...rest] = waiting;
        waiting = rest;
        w?.(m.stats as ChildStats);
      }
    });
    child.once('exit', (code) => reject(new Error(`server child exited with code ${code}`)));
    child.send({ type: 'start', config: { ...config, keys: keyConfig(config.keys) } });
  });
  return {
    pid,
    url,
    stats: (options = {}) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.send({ type: 'stats', gc: options.gc === true });
      }),
    stop: (ms = 15_000) => stopChild(child, () => child.send({ type: 'stop' }), ms),
  };
}

async function stopChild(child: ChildProcess, ask: () => void, ms: number): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  ask();
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }, ms);
  await exited;
  clearTimeout(timer);
}

/** A `sesame serve` process. */
export interface CliServer {
  readonly pid: number;
  readonly url: string;
  /** Count of log lines per event (authenticated, refused, ...), and refusals per code. */
  readonly events: Map<string, number>;
  readonly exited: Promise<number | null>;
  /** SIGTERM (graceful shutdown); SIGKILL by PID if it has not exited after `ms`. */
  stop(ms?: number): Promise<number | null>;
  signal(signal: NodeJS.Signals): void;
}

/** Run `sesame serve ARGS`; resolves once it logs `listening on URL`. Its log is always drained. */
export async function startCli(args: readonly string[]): Promise<CliServer> {
  const child = spawn(process.execPath, [SESAME_BIN, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  const pid = child.pid as number;
  const events = new Map<string, number>();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let pending = '';
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      pending += c.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const m = /listening on ((?:tcp|unix):\/\/[^\s"]+)/.exec(line);
        if (m?.[1] !== undefined) resolve(m[1]);
        try {
          const entry = JSON.parse(line) as { event?: string; code?: string };
          if (entry.event !== undefined) {
            const key = entry.code === undefined ? entry.event : `${entry.event} ${entry.code}`;
            events.set(key, (events.get(key) ?? 0) + 1);
          }
        } catch {
          // a line that is not JSON (a terminal log): ignored
        }
      }
    });
    void exited.then((code) => reject(new Error(`sesame serve exited with code ${code}: ${stderr.trim()}`)));
  });
  return {
    pid,
    url,
    events,
    exited,
    signal: (signal) => {
      if (child.exitCode === null) process.kill(pid, signal);
    },
    stop: async (ms = 20_000) => {
      await stopChild(child, () => process.kill(pid, 'SIGTERM'), ms);
      return exited;
    },
  };
}

/** `sesame serve --help`, for feature checks. */
export function serveHelp(): string {
  try {
    return execFileSync(process.execPath, [SESAME_BIN, 'serve', '--help'], { encoding: 'utf8' });
  } catch {
    return '';
  }
}

/** A hard deadline for the whole tool: exit with an error if it is still running after `ms`. */
export function hardDeadline(ms: number, what: string): void {
  const t = setTimeout(() => {
    process.stderr.write(`${what}: still running after ${Math.round(ms / 1000)} s; giving up\n`);
    process.exit(3);
  }, ms);
  t.unref();
}
