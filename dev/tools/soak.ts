/**
 * `npm run soak -- --minutes N`: does the server's memory stay flat under steady load?
 *
 * Runs a server as a child process and puts a steady mix on it for N minutes: request/response
 * traffic on long-lived sessions at a fixed rate, new connections (handshake, one request, close)
 * at a fixed rate, and refused handshakes (a wrong key, from addresses spread over 127.0.1.0/24,
 * so that some are refused at the handshake and some by the per-source throttle). Every few
 * seconds it samples the server's resident set size (/proc/PID/status), and at the end prints a
 * table and whether RSS stayed within +/-10% of its median after warm-up.
 *
 * Targets:
 *   --target cli     (default) `sesame serve --service echo`, the executable as deployed
 *   --target child   the same SesameServer and echo service in a child process run with
 *                    --expose-gc, which also reports its live JS heap and external memory after a
 *                    full garbage collection at each sample. That tells a leak (the live heap
 *                    grows) from V8 and the allocator keeping memory they have freed (RSS moves,
 *                    the live heap does not).
 *
 * Options: --minutes N (default 2), --sample-seconds S (default 5), --sessions N (default 16),
 * --rate R requests per second (default 500), --churn C new connections per second (default 20),
 * --bad B refused handshakes per second (default 5), --warmup-seconds W (default: half of the
 * run, at least 10 s: V8 and the allocator take minutes to settle on the heap they keep; in a
 * 20-minute run RSS reached its plateau after about 7 minutes), --target cli|child.
 */

import { createConnection } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, type Session } from '../../src/index.js';
import { ClientConnection, type PresharedKey, systemEntropy } from '../../src/protocol/index.js';
import {
  fmt,
  hardDeadline,
  log,
  machine,
  median,
  randomKey,
  rssOf,
  sleep,
  startCli,
  startServerChild,
  table,
  tempDir,
  writeKeyring,
} from './common.js';

const { values: opts } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    'sample-seconds': { type: 'string', default: '5' },
    sessions: { type: 'string', default: '16' },
    rate: { type: 'string', default: '500' },
    churn: { type: 'string', default: '20' },
    bad: { type: 'string', default: '5' },
    'warmup-seconds': { type: 'string' },
    target: { type: 'string', default: 'cli' },
  },
});
if (opts.target !== 'cli' && opts.target !== 'child') {
  process.stderr.write('soak: --target is cli or child\n');
  process.exit(2);
}
const CHILD = opts.target === 'child';
const RUN_MS = Number(opts.minutes) * 60_000;
const SAMPLE_MS = Number(opts['sample-seconds']) * 1000;
const SESSIONS = Number(opts.sessions);
const RATE = Number(opts.rate);
const CHURN = Number(opts.churn);
const BAD = Number(opts.bad);
const WARMUP_MS =
  opts['warmup-seconds'] === undefined ? Math.max(10_000, RUN_MS / 2) : Number(opts['warmup-seconds']) * 1000;
const MAX_OUTSTANDING = 8;
const MB = 2 ** 20;

interface Counters {
  requests: number;
  replies: number;
  requestErrors: number;
  connections: number;
  connectionErrors: number;
  refusedAsExpected: number;
  badNotRefused: number;
}

function zero(): Counters {
  return {
    requests: 0,
    replies: 0,
    requestErrors: 0,
    connections: 0,
    connectionErrors: 0,
    refusedAsExpected: 0,
    badNotRefused: 0,
  };
}

/** What the soak needs of a server: its process, a way to stop it, a summary, maybe its heap. */
interface Target {
  readonly pid: number;
  readonly url: string;
  stop(): Promise<string>;
  /** The live JS heap and external memory after a full GC (child target only). */
  liveHeap?: () => Promise<{ heap: number; external: number }>;
}

async function cliTarget(ringFile: string): Promise<Target> {
  const cli = await startCli([
    '--listen',
    'tcp://127.0.0.1:0',
    '--keyring',
    ringFile,
    '--service',
    'echo',
    '--handshake-timeout',
    '5000',
  ]);
  return {
    pid: cli.pid,
    url: cli.url,
    stop: async () => {
      const code = await cli.stop();
      const events = [...cli.events.entries()].map(([k, v]) => `${k} ${v}`).join(', ');
      return `log: ${events}; exit code ${code}`;
    },
  };
}

async function childTarget(key: PresharedKey): Promise<Target> {
  const child = await startServerChild(
    { listen: 'tcp://127.0.0.1:0', keys: [key], handshakeTimeoutMs: 5000, throttle: true },
    { exposeGc: true },
  );
  return {
    pid: child.pid,
    url: child.url,
    stop: async () => {
      const s = await child.stats();
      await child.stop();
      const refusals = Object.entries(s.refusals).map(([k, v]) => `refused ${k} ${v}`);
      return `authenticated ${s.authOk}, ${refusals.join(', ')}`;
    },
    liveHeap: async () => {
      const s = await child.stats({ gc: true });
      return { heap: s.heapUsed, external: s.external };
    },
  };
}

/** A wrong-key ClientHello from a spread of loopback addresses; the server must close at once. */
function badHandshake(port: number, hello: Buffer, done: (refused: boolean) => void): void {
  const localAddress = `127.0.1.${1 + Math.floor(Math.random() * 254)}`;
  const s = createConnection({ host: '127.0.0.1', port, localAddress });
  let bytes = 0;
  s.on('data', (d: Buffer) => {
    bytes += d.length;
  });
  s.on('error', () => {});
  s.once('connect', () => s.write(hello));
  s.once('close', () => done(bytes === 0));
  s.setTimeout(30_000, () => s.destroy());
}

/** Least-squares slope of y over x (x in seconds), per minute. */
function slopePerMinute(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return (num / den) * 60;
}

interface Sample {
  readonly t: number;
  readonly rss: number;
  readonly heap: number | undefined;
  readonly external: number | undefined;
  readonly c: Counters;
}

async function main(): Promise<void> {
  hardDeadline(RUN_MS + 120_000, 'soak');
  const dir = tempDir('sesame-soak-');
  const ringFile = join(dir.path, 'keyring.json');
  const [key] = (await writeKeyring(ringFile, ['soak'])) as [PresharedKey];
  const server = CHILD ? await childTarget(key) : await cliTarget(ringFile);
  const port = Number(/:(\d+)$/.exec(server.url)?.[1]);
  log(
    `soak: ${opts.minutes} min against ${CHILD ? 'a SesameServer child' : '`sesame serve`'} ${server.url} (pid ${server.pid})`,
  );
  log(`machine: ${machine()}`);
  log(
    `load: ${SESSIONS} sessions at ${RATE} requests/s in all, ${CHURN} new connections/s, ${BAD} refused handshakes/s; ` +
      `RSS every ${SAMPLE_MS / 1000} s, warm-up ${WARMUP_MS / 1000} s`,
  );

  const total = zero();
  let interval = zero();
  const bump = (k: keyof Counters) => {
    total[k]++;
    interval[k]++;
  };
  const sessions: (Session | undefined)[] = [];
  const outstanding: number[] = [];
  let running = true;
  const wrong = { ...randomKey('intruder'), id: key.id };
  const wrongHello = () =>
    Buffer.concat(new ClientConnection({ key: wrong, entropy: systemEntropy, now: Date.now }).takeOutput());

  const openSession = async (i: number): Promise<void> => {
    try {
      sessions[i] = await connect(server.url, { key });
      bump('connections');
    } catch {
      bump('connectionErrors');
      sessions[i] = undefined;
    }
  };
  await Promise.all(Array.from({ length: SESSIONS }, (_, i) => openSession(i)));

  const request = (i: number): void => {
    const s = sessions[i];
    if (s === undefined || (outstanding[i] ?? 0) >= MAX_OUTSTANDING) return;
    outstanding[i] = (outstanding[i] ?? 0) + 1;
    bump('requests');
    s.request(Buffer.from(`soak ${total.requests}`)).then(
      () => {
        outstanding[i] = (outstanding[i] ?? 1) - 1;
        bump('replies');
      },
      () => {
        outstanding[i] = 0;
        bump('requestErrors');
        sessions[i] = undefined;
        if (running) void openSession(i);
      },
    );
  };

  // Steady traffic: a tick every 10 ms spreads RATE requests per second over the sessions.
  let next = 0;
  let credit = 0;
  const tick = setInterval(() => {
    credit += RATE / 100;
    for (; credit >= 1; credit--) request(next++ % SESSIONS);
  }, 10);
  const churn = setInterval(() => {
    void (async () => {
      try {
        const s = await connect(server.url, { key });
        await s.request(Buffer.from('churn'));
        await s.close();
        bump('connections');
      } catch {
        bump('connectionErrors');
      }
    })();
  }, 1000 / CHURN);
  const bad = setInterval(
    () =>
      badHandshake(port, wrongHello(), (refused) => bump(refused ? 'refusedAsExpected' : 'badNotRefused')),
    1000 / BAD,
  );

  const samples: Sample[] = [];
  const started = performance.now();
  while (performance.now() - started < RUN_MS) {
    await sleep(SAMPLE_MS);
    const rss = rssOf(server.pid);
    if (rss === undefined) throw new Error('cannot read the server RSS (/proc/PID/status)');
    const live = await server.liveHeap?.();
    const sample: Sample = {
      t: (performance.now() - started) / 1000,
      rss,
      heap: live?.heap,
      external: live?.external,
      c: interval,
    };
    samples.push(sample);
    interval = zero();
    log(
      `  ${fmt(sample.t, 0)} s  RSS ${fmt(rss / MB)} MB` +
        (live === undefined ? '' : `  live heap ${fmt(live.heap / MB)} MB`) +
        `  ${fmt(sample.c.replies / (SAMPLE_MS / 1000), 0)} replies/s`,
    );
  }
  running = false;
  clearInterval(tick);
  clearInterval(churn);
  clearInterval(bad);
  await sleep(1000);
  await Promise.all(sessions.map((s) => s?.close()));
  const summary = await server.stop();
  dir.cleanup();

  const after = samples.filter((s) => s.t * 1000 > WARMUP_MS);
  const reference = median(after.map((s) => s.rss));
  const perSecond = (n: number, digits: number) => fmt(n / (SAMPLE_MS / 1000), digits);
  log('');
  log(
    table(
      [
        't (s)',
        'RSS (MB)',
        'vs median after warm-up',
        ...(CHILD ? ['live heap (MB)', 'external (MB)'] : []),
        'replies/s',
        'new conns/s',
        'refused/s',
        'errors',
      ],
      samples.map((s) => [
        fmt(s.t, 0),
        fmt(s.rss / MB),
        s.t * 1000 > WARMUP_MS ? `${fmt(((s.rss - reference) / reference) * 100)} %` : 'warm-up',
        ...(CHILD ? [fmt((s.heap ?? Number.NaN) / MB), fmt((s.external ?? Number.NaN) / MB)] : []),
        perSecond(s.c.replies, 0),
        perSecond(s.c.connections, 1),
        perSecond(s.c.refusedAsExpected, 1),
        String(s.c.requestErrors + s.c.connectionErrors + s.c.badNotRefused),
      ]),
    ),
  );
  const deviation = Math.max(...after.map((s) => Math.abs(s.rss - reference) / reference));
  const slope = slopePerMinute(after.map((s) => [s.t, s.rss / MB] as const));
  log('');
  log(
    `totals: ${total.requests} requests, ${total.replies} replies, ${total.requestErrors} request errors, ` +
      `${total.connections} connections, ${total.connectionErrors} connection errors, ` +
      `${total.refusedAsExpected} bad handshakes refused silently, ${total.badNotRefused} answered`,
  );
  log(`server: ${summary}`);
  log(
    `RSS after warm-up: median ${fmt(reference / MB)} MB, largest deviation ${fmt(deviation * 100)} %, ` +
      `trend ${fmt(slope, 2)} MB/min over ${after.length} samples`,
  );
  if (CHILD) {
    const heaps = after.map((s) => [s.t, (s.heap ?? 0) / MB] as const);
    const values = heaps.map(([, h]) => h);
    log(
      `live heap after GC, after warm-up: ${fmt(Math.min(...values))} to ${fmt(Math.max(...values))} MB, ` +
        `trend ${fmt(slopePerMinute(heaps), 3)} MB/min`,
    );
  }
  const ok = after.length >= 2 && deviation <= 0.1 && total.badNotRefused === 0;
  log(
    `verdict: ${ok ? 'OK' : 'NOT OK'}: RSS ${deviation <= 0.1 ? 'stayed' : 'did NOT stay'} within +/-10% after warm-up`,
  );
  process.exitCode = ok ? 0 : 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
