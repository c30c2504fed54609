/**
 * The `tunnel` workload (`npm run bench -- --tunnel`): a plain TCP service reached directly, through
 * Sesame at both ends (`sesame connect --listen` -> `sesame serve --forward`, native protocol with
 * forward secrecy), and through spiped at both ends (`spiped -e` -> `spiped -d`, its default, with
 * forward secrecy) when spiped is installed. One run measures, for each:
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
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'bin.js');
const MESSAGE = 64;
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** What one system measured. */
export interface TunnelRow {
  readonly system: 'direct' | 'sesame' | 'spiped';
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

async function freePort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * The target: the first byte says what to do: `B` sink (ack 'k' at the end), anything else echo.
 * A connection that ends before its first byte (spiped connects to its target before its
 * handshake) is ended too; `sockets` holds the open ones, so the phase can end them.
 */
function target(sockets: Set<Socket>): Server {
  return createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.on('end', () => {
      if (s.listenerCount('data') === 0) s.end();
    });
    s.once('data', (first: Buffer) => {
      if (first[0] === 0x42) {
        s.on('data', () => {});
        s.on('end', () => s.end('k'));
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

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host: '127.0.0.1' }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

interface Tunnel {
  port: number;
  pids: number[];
  stop(): void;
}

async function sesameTunnel(targetPort: number, dir: string): Promise<Tunnel> {
  const ring = join(dir, 'ring.json');
  const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: dir, SESAME_LOG_LEVEL: 'warn' };
  execFileSync(process.execPath, [BIN, 'keygen', '--keyring', ring], { env });
  const server = spawn(
    process.execPath,
    [
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
    [BIN, 'connect', url, '--keyring', ring, '--listen', 'tcp://127.0.0.1:0'],
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
    stop: () => {
      server.kill('SIGKILL');
      client.kill('SIGKILL');
    },
  };
}

async function spipedTunnel(spiped: string, targetPort: number, dir: string): Promise<Tunnel> {
  const key = join(dir, 'spiped.key');
  writeFileSync(key, randomBytes(32), { mode: 0o600 });
  const dPort = await freePort();
  const d = spawn(
    spiped,
    [
      '-d',
      '-F',
      '-s',
      `[127.0.0.1]:${dPort}`,
      '-t',
      `[127.0.0.1]:${targetPort}`,
      '-k',
      key,
      '-p',
      join(dir, 'd.pid'),
      '-n',
      '0',
    ],
    { stdio: 'ignore' },
  );
  await waitForPort(dPort, 10_000);
  const ePort = await freePort();
  const e = spawn(
    spiped,
    [
      '-e',
      '-F',
      '-s',
      `[127.0.0.1]:${ePort}`,
      '-t',
      `[127.0.0.1]:${dPort}`,
      '-k',
      key,
      '-p',
      join(dir, 'e.pid'),
      '-n',
      '0',
    ],
    { stdio: 'ignore' },
  );
  await waitForPort(ePort, 10_000);
  return {
    port: ePort,
    pids: [d.pid as number, e.pid as number],
    stop: () => {
      d.kill('SIGKILL');
      e.kill('SIGKILL');
    },
  };
}

/** Upload `bytes` on one connection; resolves with the seconds until the sink's ack. */
function bulk(port: number, bytes: number, capMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const started = process.hrtime.bigint();
    const s = createConnection({ port, host: '127.0.0.1', allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`bulk not done in ${capMs} ms`));
    }, capMs);
    let sent = 0;
    const pump = (): void => {
      while (sent < bytes) {
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
    s.on('data', () => {});
    s.on('end', () => {
      clearTimeout(timer);
      resolve(Number(process.hrtime.bigint() - started) / 1e9);
    });
    s.on('error', reject);
  });
}

/** Lockstep 64-byte echoes on one connection for `ms` (at most `max`); resolves with the count. */
function roundTrips(port: number, ms: number, max: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const msg = Buffer.alloc(MESSAGE, 0x72);
    const s = createConnection({ port, host: '127.0.0.1' });
    let n = 0;
    let got = 0;
    let until = 0;
    s.once('connect', () => {
      until = Date.now() + ms;
      s.write(msg);
    });
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got < MESSAGE) return;
      got -= MESSAGE;
      n++;
      if (n >= max || Date.now() >= until) {
        s.destroy();
        resolve(n);
      } else {
        s.write(msg);
      }
    });
    s.on('close', () => reject(new Error(`round trips: the connection closed after ${n}`)));
    s.on('error', reject);
  });
}

/** One connection: connect, echo 64 bytes, close. */
function oneConnection(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ port, host: '127.0.0.1' }, () => s.write(Buffer.alloc(MESSAGE, 0x63)));
    let got = 0;
    s.setTimeout(10_000, () => s.destroy(new Error('connection timed out')));
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= MESSAGE) s.end();
    });
    s.on('close', () => (got >= MESSAGE ? resolve() : reject(new Error('no echo'))));
    s.on('error', reject);
  });
}

/** Connections, `concurrency` at a time, for `ms` (at most `max`); resolves with the count. */
async function connections(port: number, ms: number, max: number, concurrency: number): Promise<number> {
  const until = Date.now() + ms;
  let done = 0;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < until && started < max) {
      started++;
      await oneConnection(port);
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

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Run the workload; `quick` shrinks every phase (its numbers are not a reference). */
export async function runTunnel(quick: boolean, progress?: (line: string) => void): Promise<TunnelResults> {
  const bulkBytes = (quick ? 16 : 256) * 1024 * 1024;
  const phaseMs = quick ? 1_000 : 5_000;
  const dir = mkdtempSync(join(tmpdir(), 'sesame-tunnel-'));
  const targetSockets = new Set<Socket>();
  const t = target(targetSockets);
  const targetPort = await listen(t);
  const spiped = which('spiped');
  const skipped = spiped === undefined ? ['spiped: not installed (apt-get install spiped)'] : [];
  const rows: TunnelRow[] = [];
  const systems: TunnelRow['system'][] = [
    'direct',
    'sesame',
    ...(spiped === undefined ? [] : (['spiped'] as const)),
  ];
  try {
    for (const system of systems) {
      progress?.(`tunnel: ${system}`);
      const tunnel: Tunnel =
        system === 'direct'
          ? { port: targetPort, pids: [], stop: () => {} }
          : system === 'sesame'
            ? await sesameTunnel(targetPort, dir)
            : await spipedTunnel(spiped as string, targetPort, dir);
      try {
        await oneConnection(tunnel.port); // warm up
        let c0 = cpuTicks(tunnel.pids);
        const seconds = await bulk(tunnel.port, bulkBytes, 120_000);
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
          bulkMBps: mb / seconds,
          roundTripsPerSec: rt / (phaseMs / 1000),
          connectionsPerSec: conns / connSeconds,
          cpuMsPerMB: ms(bulkCpu) / mb,
          cpuMsPerConnection: conns === 0 ? 0 : ms(connCpu) / conns,
          cpuUsPerRoundTrip: rt === 0 ? 0 : (ms(rtCpu) * 1000) / rt,
        });
      } finally {
        tunnel.stop();
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
    '| system | bulk MB/s | 64 B round trips/s | connections/s | tunnel CPU ms/MB | tunnel CPU ms/connection | tunnel CPU µs/round trip |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...r.rows.map(
      (x) =>
        `| ${x.system} | ${f(x.bulkMBps)} | ${f(x.roundTripsPerSec, 0)} | ${f(x.connectionsPerSec, 0)} | ${f(x.cpuMsPerMB, 2)} | ${f(x.cpuMsPerConnection, 3)} | ${f(x.cpuUsPerRoundTrip, 1)} |`,
    ),
    '',
  ];
  const sesame = r.rows.find((x) => x.system === 'sesame');
  const spiped = r.rows.find((x) => x.system === 'spiped');
  if (sesame !== undefined && spiped !== undefined) {
    const targets: [string, number, string, boolean][] = [
      ['bulk vs spiped', sesame.bulkMBps / spiped.bulkMBps, '>= 3', sesame.bulkMBps >= 3 * spiped.bulkMBps],
      [
        'round trips vs spiped',
        sesame.roundTripsPerSec / spiped.roundTripsPerSec,
        '>= 1.5',
        sesame.roundTripsPerSec >= 1.5 * spiped.roundTripsPerSec,
      ],
      [
        'CPU per connection vs spiped',
        sesame.cpuMsPerConnection / spiped.cpuMsPerConnection,
        '<= 0.5',
        sesame.cpuMsPerConnection <= 0.5 * spiped.cpuMsPerConnection,
      ],
    ];
    lines.push('| target | ratio | wanted | met |', '|---|---:|---:|---|');
    for (const [name, ratio, wanted, met] of targets)
      lines.push(`| ${name} | ${f(ratio, 2)} | ${wanted} | ${met ? 'yes' : 'NO'} |`);
    lines.push('');
  }
  for (const s of r.skipped) lines.push(`skipped ${s}`);
  return `${lines.join('\n')}\n`;
}
