/**
 * The `tunnel` workload (`npm run bench -- --tunnel`): a plain TCP service reached directly, through
 * Sesame at both ends (`sesame connect --listen` -> `sesame serve --forward`, native protocol with
 * forward secrecy), and through spiped at both ends (`spiped -e` -> `spiped -d`, its default, with
 * forward secrecy) when spiped is installed; and through two floors (plain-proxy.ts): two plain
 * Node proxies (`plain node`, no cryptography), and the same carrying the bytes in Sesame's records
 * (`sealed node`, no handshake, session or message layer). A target's ratio for a floor is the
 * best a Node implementation of the two ends (or one using Sesame's records) could reach in the
 * same run. One run measures, for each:
 *
 * - bulk: MB/s of one connection uploading a fixed amount to a sink (which acknowledges the end);
 * - round trips: 64-byte echoes per second on one connection, in lockstep;
 * - connections: connections per second, each opening, echoing one 64-byte request and closing,
 *   16 at a time;
 * - CPU: user + system time of the two tunnel processes (from /proc), per MB and per connection.
 *
 * Rules: loopback only; every phase is bounded in count and in time; the tunnel processes are
 * started here and ended here by PID. The target and the load run in this process, the same for
 * every system, and are not counted in CPU. Targets (as ratios to spiped in the same run): bulk
 * >= 3x, round trips >= 1.5x, CPU per connection <= 0.5x.
 */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spipedInstalled, startSpiped } from './spiped.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'bin.js');
const PLAIN_PROXY = join(dirname(fileURLToPath(import.meta.url)), 'plain-proxy.js');
const MESSAGE = 64;
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** What one system measured. */
export interface TunnelRow {
  readonly system: 'direct' | 'plain node' | 'sealed node' | 'sesame' | 'spiped';
  /**
   * Every byte was checked: the sink received exactly the bulk upload's bytes (a wrong echo in
   * the other phases fails the run).
   */
  readonly checked: boolean;
  readonly bulkMBps: number;
  readonly roundTripsPerSec: number;
  readonly connectionsPerSec: number;
  /** CPU seconds of the tunnel processes per MB of bulk, in ms. */
  readonly cpuMsPerMB: number;
  /** CPU of the tunnel processes per connection, in ms. */
  readonly cpuMsPerConnection: number;
  /** CPU of the tunnel processes per round trip, in µs. */
  readonly cpuUsPerRoundTrip: number;
}

/** The whole workload's results. */
export interface TunnelResults {
  readonly rows: TunnelRow[];
  readonly skipped: string[];
  readonly loadAverage: number[];
  readonly bulkBytes: number;
}

function cpuTicks(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return total;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return typeof a === 'object' && a !== null ? a.port : 0;
}

/**
 * The target: the first byte says what to do: `B` sink, anything else echo. The sink compares
 * every byte after the `B` with `source` repeated (what the bulk phase sends) and, at the end,
 * answers `ok N` (N bytes, all equal) or `bad N` (the first N were equal). A connection that ends
 * before its first byte (spiped connects to its target before its handshake) is ended too;
 * `sockets` holds the open ones, so the phase can end them.
 */
function target(sockets: Set<Socket>, source: Buffer): Server {
  return createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('end', () => {
      if (s.listenerCount('data') === 0) s.end();
    });
    s.once('data', (first: Buffer) => {
      if (first[0] === 0x42) {
        let at = 0;
        let good = true;
        const check = (d: Buffer): void => {
          for (let i = 0; good && i < d.length; ) {
            const off = at % source.length;
            const n = Math.min(d.length - i, source.length - off);
            good = d.subarray(i, i + n).equals(source.subarray(off, off + n));
            if (good) at += n;
            i += n;
          }
        };
        check(first.subarray(1));
        s.on('data', check);
        s.on('end', () => s.end(`${good ? 'ok' : 'bad'} ${at}`));
      } else {
        s.write(first);
        s.pipe(s);
      }
    });
  });
}

function waitForOutput(child: ChildProcess, pattern: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`not ready in ${ms} ms: ${out}`)), ms);
    const on = (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1] ?? '');
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', () => reject(new Error(`exited: ${out}`)));
  });
}

interface Tunnel {
  port: number;
  pids: number[];
  /** End the tunnel's processes (by PID) and wait for them to exit. */
  stop(): Promise<void>;
}

/** Options of {@link runTunnel}. */
export interface TunnelOptions {
  /** Node flags for both sesame processes (e.g. `--cpu-prof`, `--cpu-prof-dir=DIR`). */
  readonly execArgv?: readonly string[] | undefined;
  /** Told of each system as it starts. */
  readonly progress?: ((line: string) => void) | undefined;
}

/**
 * Stop `children`: SIGTERM first, so that a sesame process lets its pipes go and writes what
 * `--cpu-prof` asked for on its way out; SIGKILL whatever is still running after `ms`.
 */
async function stopProcesses(children: ChildProcess[], ms: number): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            resolve();
            return;
          }
          const timer = setTimeout(() => child.kill('SIGKILL'), ms);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

async function sesameTunnel(targetPort: number, dir: string, execArgv: readonly string[]): Promise<Tunnel> {
  const ring = join(dir, 'ring.json');
  const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: dir, SESAME_LOG_LEVEL: 'warn' };
  execFileSync(process.execPath, [BIN, 'keygen', '--keyring', ring], { env });
  const server = spawn(
    process.execPath,
    [
      ...execArgv,
      BIN,
      'serve',
      '--keyring',
      ring,
      '--listen',
      'tcp://127.0.0.1:0',
      '--forward',
      `tcp://127.0.0.1:${targetPort}`,
    ],
    { env: { ...env, SESAME_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const url = await waitForOutput(server, /listening on (tcp:\/\/[\d.:]+)/, 15_000);
  server.stdout?.resume();
  const client = spawn(
    process.execPath,
    [...execArgv, BIN, 'connect', url, '--keyring', ring, '--listen', 'tcp://127.0.0.1:0', '--grace', '0'],
    {
      env: { ...env, SESAME_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const local = await waitForOutput(client, /listening on (tcp:\/\/[\d.:]+)/, 15_000);
  client.stdout?.resume();
  return {
    port: Number(local.split(':').at(-1)),
    pids: [server.pid as number, client.pid as number],
    // The client end first: its pipes are gone before the server end is asked to drain.
    stop: async () => {
      await stopProcesses([client], 10_000);
      await stopProcesses([server], 10_000);
    },
  };
}

/**
 * The floors: two Node proxies (plain-proxy.ts) in a row, each a process of its own as Sesame's
 * two ends are: `plain` moves the bytes with no cryptography; `sealed` carries them in Sesame's
 * records with no handshake, session or message layer around them.
 */
async function floorTunnel(targetPort: number, sealed: boolean): Promise<Tunnel> {
  const secret = randomBytes(32).toString('hex');
  const start = async (port: number, role: string): Promise<[ChildProcess, number]> => {
    const args = [PLAIN_PROXY, String(port), ...(sealed ? [role, secret] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await waitForOutput(child, /listening on (tcp:\/\/[\d.:]+)/, 15_000);
    child.stdout?.resume();
    return [child, Number(url.split(':').at(-1))];
  };
  const [server, serverPort] = await start(targetPort, 'server');
  const [client, port] = await start(serverPort, 'client');
  return {
    port,
    pids: [server.pid as number, client.pid as number],
    stop: () => stopProcesses([client, server], 5_000),
  };
}

async function spipedTunnel(targetPort: number): Promise<Tunnel> {
  const pair = await startSpiped(targetPort);
  return {
    port: pair.port,
    pids: pair.processes.map((p) => p.pid as number),
    stop: () => stopProcesses([...pair.processes], 5_000),
  };
}

/** The bulk phase's outcome: how long it took, and whether the sink saw exactly what was sent. */
interface BulkResult {
  readonly seconds: number;
  /** The sink received exactly the bytes sent, in order. */
  readonly checked: boolean;
}

/**
 * Upload `bytes` of `source` repeated on one connection; resolves once the sink has answered
 * whether it received exactly that.
 */
function bulk(port: number, source: Buffer, bytes: number, capMs: number): Promise<BulkResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const s = createConnection({ port, host: '127.0.0.1', allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`bulk not done in ${capMs} ms`));
    }, capMs);
    let sent = 0;
    const pump = (): void => {
      while (sent < bytes) {
        const at = sent % source.length;
        const chunk = source.subarray(at, at + Math.min(64 * 1024, bytes - sent));
        sent += chunk.length;
        if (!s.write(chunk)) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    s.once('connect', () => {
      s.write('B');
      pump();
    });
    let answer = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      answer += d;
    });
    s.on('end', () => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      resolve({ seconds, checked: answer === `ok ${bytes}` });
    });
    s.on('error', reject);
  });
}

/** The `i`-th round trip's message: its number in the first bytes, so a stale echo is caught. */
function numbered(i: number, fill: number): Buffer {
  const m = Buffer.alloc(MESSAGE, fill);
  m.writeUInt32BE(i >>> 0, 0);
  return m;
}

/**
 * Lockstep 64-byte echoes on one connection for `ms` (at most `max`); resolves with the count.
 * @throws (rejects) when an echo differs from what was sent.
 */
function roundTrips(port: number, ms: number, max: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.setNoDelay(true);
    let n = 0;
    let msg = numbered(0, 0x72);
    const got = Buffer.alloc(MESSAGE);
    let have = 0;
    let until = 0;
    s.once('connect', () => {
      until = Date.now() + ms;
      s.write(msg);
    });
    s.on('data', (d: Buffer) => {
      if (have + d.length > MESSAGE) {
        s.destroy(new Error(`round trips: ${have + d.length} bytes back for one ${MESSAGE}-byte message`));
        return;
      }
      d.copy(got, have);
      have += d.length;
      if (have < MESSAGE) return;
      have = 0;
      if (!got.equals(msg)) {
        s.destroy(new Error(`round trips: echo ${n} differs from what was sent`));
        return;
      }
      n++;
      if (n >= max || Date.now() >= until) {
        s.removeAllListeners('close');
        s.destroy();
        resolve(n);
      } else {
        msg = numbered(n, 0x72);
        s.write(msg);
      }
    });
    s.on('close', () => reject(new Error(`round trips: the connection closed after ${n}`)));
    s.on('error', reject);
  });
}

/** One connection: connect, echo 64 bytes (checked), close. */
function oneConnection(port: number, i = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    const msg = numbered(i, 0x63);
    const s = createConnection({ port, host: '127.0.0.1' }, () => s.write(msg));
    const chunks: Buffer[] = [];
    let got = 0;
    s.setTimeout(10_000, () => s.destroy(new Error('connection timed out')));
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= MESSAGE) s.end();
    });
    s.on('close', () => {
      if (got < MESSAGE) reject(new Error('no echo'));
      else if (!Buffer.concat(chunks).equals(msg)) reject(new Error('the echo differs from what was sent'));
      else resolve();
    });
    s.on('error', reject);
  });
}

/**
 * Connections, `concurrency` at a time, for `ms` (at most `max`); resolves with the count.
 * @throws (rejects) on the first connection that fails or echoes wrong bytes.
 */
async function connections(port: number, ms: number, max: number, concurrency: number): Promise<number> {
  const until = Date.now() + ms;
  let done = 0;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < until && started < max) {
      started++;
      await oneConnection(port, started);
      done++;
    }
  };
  // Bounded in time whatever happens to a connection: the phase ends at its deadline plus 10 s.
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms + 10_000);
  });
  await Promise.race([Promise.all(Array.from({ length: concurrency }, worker)), deadline]);
  clearTimeout(timer);
  if (started - done > 0 && Date.now() > until + 10_000)
    throw new Error(`${started - done} connections never finished`);
  return done;
}

/**
 * Run the workload; `quick` shrinks every phase (its numbers are not a reference).
 * @throws (rejects) when a phase fails or an echo differs from what was sent.
 */
export async function runTunnel(quick: boolean, options: TunnelOptions = {}): Promise<TunnelResults> {
  const bulkBytes = (quick ? 16 : 256) * 1024 * 1024;
  const phaseMs = quick ? 1_000 : 5_000;
  const execArgv = options.execArgv ?? [];
  const dir = mkdtempSync(join(tmpdir(), 'sesame-tunnel-'));
  const targetSockets = new Set<Socket>();
  // 1 MiB of random bytes (64 KiB writes of it, round and round): a lost, repeated or reordered
  // chunk is caught.
  const source = randomBytes(1024 * 1024);
  const t = target(targetSockets, source);
  const targetPort = await listen(t);
  const spiped = spipedInstalled();
  const skipped = spiped ? [] : ['spiped: not installed (apt-get install spiped)'];
  const rows: TunnelRow[] = [];
  const systems: TunnelRow['system'][] = [
    'direct',
    'plain node',
    'sealed node',
    'sesame',
    ...(spiped ? (['spiped'] as const) : []),
  ];
  try {
    for (const system of systems) {
      options.progress?.(`tunnel: ${system}`);
      const tunnel: Tunnel =
        system === 'direct'
          ? { port: targetPort, pids: [], stop: async () => {} }
          : system === 'plain node' || system === 'sealed node'
            ? await floorTunnel(targetPort, system === 'sealed node')
            : system === 'sesame'
              ? await sesameTunnel(targetPort, dir, execArgv)
              : await spipedTunnel(targetPort);
      try {
        await oneConnection(tunnel.port); // warm up
        let c0 = cpuTicks(tunnel.pids);
        const b = await bulk(tunnel.port, source, bulkBytes, 120_000);
        const bulkCpu = cpuTicks(tunnel.pids) - c0;
        c0 = cpuTicks(tunnel.pids);
        const rt = await roundTrips(tunnel.port, phaseMs, 1_000_000);
        const rtCpu = cpuTicks(tunnel.pids) - c0;
        c0 = cpuTicks(tunnel.pids);
        const connStart = Date.now();
        const conns = await connections(tunnel.port, phaseMs, 100_000, 16);
        const connSeconds = (Date.now() - connStart) / 1000;
        const connCpu = cpuTicks(tunnel.pids) - c0;
        const mb = bulkBytes / 1e6;
        const ms = (ticks: number) => (ticks * 1000) / CLOCK_TICKS;
        rows.push({
          system,
          checked: b.checked,
          bulkMBps: mb / b.seconds,
          roundTripsPerSec: rt / (phaseMs / 1000),
          connectionsPerSec: conns / connSeconds,
          cpuMsPerMB: ms(bulkCpu) / mb,
          cpuMsPerConnection: conns === 0 ? 0 : ms(connCpu) / conns,
          cpuUsPerRoundTrip: rt === 0 ? 0 : (ms(rtCpu) * 1000) / rt,
        });
      } finally {
        await tunnel.stop();
      }
    }
  } finally {
    for (const s of targetSockets) s.destroy();
    await new Promise<void>((r) => t.close(() => r()));
  }
  return { rows, skipped, loadAverage: (await import('node:os')).loadavg(), bulkBytes };
}

const f = (n: number, digits = 1) => n.toFixed(digits);

/** The report: one row per system, then the targets as ratios to spiped. */
export function renderTunnel(r: TunnelResults): string {
  const lines = [
    `## tunnel (bulk ${r.bulkBytes / 1024 / 1024} MiB; load average ${r.loadAverage.map((l) => l.toFixed(2)).join(', ')})`,
    '',
    '| system | bytes checked | bulk MB/s | 64 B round trips/s | connections/s | tunnel CPU ms/MB | tunnel CPU ms/connection | tunnel CPU µs/round trip |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...r.rows.map(
      (x) =>
        `| ${x.system} | ${x.checked ? 'yes' : 'NO'} | ${f(x.bulkMBps)} | ${f(x.roundTripsPerSec, 0)} | ${f(x.connectionsPerSec, 0)} | ${f(x.cpuMsPerMB, 2)} | ${f(x.cpuMsPerConnection, 3)} | ${f(x.cpuUsPerRoundTrip, 1)} |`,
    ),
    '',
  ];
  const sesame = r.rows.find((x) => x.system === 'sesame');
  const spiped = r.rows.find((x) => x.system === 'spiped');
  const plain = r.rows.find((x) => x.system === 'plain node');
  const sealed = r.rows.find((x) => x.system === 'sealed node');
  if (sesame !== undefined && spiped !== undefined) {
    // Each target as a ratio to spiped, with the same ratio for the two floors: a target past the
    // plain floor is out of reach of any Node implementation of the two ends, and one past the
    // sealed floor out of reach of any that carries the bytes in Sesame's records.
    const targets: [string, (x: TunnelRow) => number, number, 'more' | 'less'][] = [
      ['bulk vs spiped', (x) => x.bulkMBps / spiped.bulkMBps, 3, 'more'],
      ['round trips vs spiped', (x) => x.roundTripsPerSec / spiped.roundTripsPerSec, 1.5, 'more'],
      ['CPU per connection vs spiped', (x) => x.cpuMsPerConnection / spiped.cpuMsPerConnection, 0.5, 'less'],
    ];
    lines.push(
      '| target | ratio | wanted | floor: plain Node | floor: sealed Node | met |',
      '|---|---:|---:|---:|---:|---|',
    );
    for (const [name, ratio, wanted, way] of targets) {
      const reaches = (x: TunnelRow | undefined): boolean | undefined =>
        x === undefined ? undefined : way === 'more' ? ratio(x) >= wanted : ratio(x) <= wanted;
      const shown = (x: TunnelRow | undefined): string => (x === undefined ? 'n/a' : f(ratio(x), 2));
      const status = reaches(sesame)
        ? 'yes'
        : reaches(plain) === false
          ? 'NO (beyond the plain floor)'
          : reaches(sealed) === false
            ? 'NO (beyond the sealed floor)'
            : 'NO';
      lines.push(
        `| ${name} | ${shown(sesame)} | ${way === 'more' ? '>=' : '<='} ${wanted} | ${shown(plain)} | ${shown(sealed)} | ${status} |`,
      );
    }
    lines.push('');
  }
  for (const s of r.skipped) lines.push(`skipped ${s}`);
  return `${lines.join('\n')}\n`;
}
