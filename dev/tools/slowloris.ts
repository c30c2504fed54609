/**
 * `npm run slowloris`: do silent and slow peers hurt legitimate clients?
 *
 * 1. Starts a server (a child process) with a short handshake deadline.
 * 2. Measures legitimate clients unloaded: latency of a request on an open session, and of a
 *    whole new connection (connect, handshake, one request, close).
 * 3. Opens `--attackers` connections from 127.0.0.2 (half silent, half sending one byte of a
 *    ClientHello per second) and keeps that many open: each one the server cuts is replaced.
 * 4. Measures the legitimate clients again under that load, and prints both, the p99 ratio
 *    (target: within 2x) and how the attackers were cut: how many, and after how long (they
 *    must be cut at the handshake deadline).
 *
 * Bounded: two measuring phases of `--seconds` each plus the ramp-up; the whole run stops by
 * itself (`--max-seconds`). It needs about 2 x attackers file descriptors (this process and the
 * server child each hold one per attacker): see the fd limit it prints.
 *
 * Options: --attackers N (default 1000), --silent-fraction F (default 0.5), --handshake-timeout MS
 * (default 3000), --seconds S per phase (default 12), --clients N legitimate loops (default 4),
 * --throttle (keep the server's per-source throttling of failed logins; off by default, to model
 * attackers with many addresses), --reconnect-ms MS (wait before replacing a cut attacker;
 * default 0: at once), --max-seconds S (default 150).
 */

import { createConnection, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { connect, type Session } from '../../src/index.js';
import { ClientConnection, type PresharedKey, systemEntropy } from '../../src/protocol/index.js';
import {
  fdLimit,
  fmt,
  hardDeadline,
  log,
  machine,
  randomKey,
  sleep,
  startServerChild,
  summarize,
  table,
} from './common.js';

const { values: opts } = parseArgs({
  options: {
    attackers: { type: 'string', default: '1000' },
    'silent-fraction': { type: 'string', default: '0.5' },
    'handshake-timeout': { type: 'string', default: '3000' },
    seconds: { type: 'string', default: '12' },
    clients: { type: 'string', default: '4' },
    throttle: { type: 'boolean', default: false },
    'reconnect-ms': { type: 'string', default: '0' },
    'max-seconds': { type: 'string', default: '150' },
  },
});
const ATTACKERS = Number(opts.attackers);
const SILENT = Math.round(ATTACKERS * Number(opts['silent-fraction']));
const DEADLINE_MS = Number(opts['handshake-timeout']);
const PHASE_MS = Number(opts.seconds) * 1000;
const CLIENTS = Number(opts.clients);
const RECONNECT_MS = Number(opts['reconnect-ms']);
const ATTACKER_ADDRESS = '127.0.0.2';

interface Latencies {
  request: number[];
  connection: number[];
  failures: number;
}

/** Legitimate clients for `ms`: requests on open sessions, and a new connection every 4th time. */
async function measure(url: string, key: PresharedKey, ms: number): Promise<Latencies> {
  const out: Latencies = { request: [], connection: [], failures: 0 };
  const until = performance.now() + ms;
  const loop = async (n: number): Promise<void> => {
    let session: Session | undefined;
    for (let i = 0; performance.now() < until; i++) {
      try {
        session ??= await connect(url, { key });
        const t0 = performance.now();
        await session.request(Buffer.from(`request ${n}.${i}`));
        out.request.push(performance.now() - t0);
        if (i % 4 === 0) {
          const t1 = performance.now();
          const s = await connect(url, { key });
          await s.request(Buffer.from(`connection ${n}.${i}`));
          await s.close();
          out.connection.push(performance.now() - t1);
        }
      } catch {
        out.failures++;
        session?.destroy();
        session = undefined;
      }
      await sleep(10);
    }
    await session?.close();
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, n) => loop(n)));
  return out;
}

interface Cut {
  readonly silent: boolean;
  readonly lifetimeMs: number;
}

/** Keeps `ATTACKERS` slow connections open until `stop()`; records when the server cuts them. */
class Attack {
  readonly cuts: Cut[] = [];
  opened = 0;
  failedToOpen = 0;
  private running = true;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly port: number,
    private readonly hello: Buffer,
  ) {}

  /** Open every attacker, 100 at a time; resolves when all are connected. */
  async start(): Promise<void> {
    const all: Promise<void>[] = [];
    for (let i = 0; i < ATTACKERS; i++) {
      all.push(this.open(i < SILENT));
      if (i % 100 === 99) await Promise.all(all.splice(0));
    }
    await Promise.all(all);
  }

  private open(silent: boolean): Promise<void> {
    return new Promise((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port: this.port, localAddress: ATTACKER_ADDRESS });
      let openedAt = 0;
      let timer: NodeJS.Timeout | undefined;
      socket.on('error', () => {});
      socket.on('data', () => {});
      socket.once('connect', () => {
        openedAt = performance.now();
        this.opened++;
        this.sockets.add(socket);
        if (!silent) {
          let at = 0;
          timer = setInterval(() => {
            if (at < this.hello.length) socket.write(this.hello.subarray(at, ++at));
          }, 1000);
          this.timers.add(timer);
        }
        resolve();
      });
      socket.once('close', () => {
        if (timer !== undefined) {
          clearInterval(timer);
          this.timers.delete(timer);
        }
        if (openedAt === 0) {
          this.failedToOpen++;
          resolve();
        } else if (this.sockets.delete(socket) && this.running) {
          this.cuts.push({ silent, lifetimeMs: performance.now() - openedAt });
        }
        // Keep the pressure: replace every attacker the server cut (after --reconnect-ms).
        if (this.running) {
          if (RECONNECT_MS > 0) setTimeout(() => this.running && void this.open(silent), RECONNECT_MS);
          else void this.open(silent);
        }
      });
    });
  }

  stop(): void {
    this.running = false;
    for (const t of this.timers) clearInterval(t);
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

function latencyRow(phase: string, l: Latencies): string[] {
  const r = summarize(l.request);
  const c = summarize(l.connection);
  return [
    phase,
    String(r.n),
    fmt(r.p50, 2),
    fmt(r.p99, 2),
    String(c.n),
    fmt(c.p50, 2),
    fmt(c.p99, 2),
    String(l.failures),
  ];
}

async function main(): Promise<void> {
  hardDeadline(Number(opts['max-seconds']) * 1000, 'slowloris');
  const limit = fdLimit();
  log(`slowloris: ${ATTACKERS} attackers (${SILENT} silent, ${ATTACKERS - SILENT} at one byte per second)`);
  log(`machine: ${machine()}`);
  if (limit !== undefined && limit < ATTACKERS + 200) {
    log(
      `the soft fd limit (${limit}) is too low for ${ATTACKERS} attackers: raise it (ulimit -n ${ATTACKERS * 2 + 500})`,
    );
    process.exit(2);
  }
  const key = randomKey('legit');
  const server = await startServerChild({
    listen: 'tcp://127.0.0.1:0',
    keys: [key],
    handshakeTimeoutMs: DEADLINE_MS,
    maxConnections: ATTACKERS * 2 + 1000,
    throttle: opts.throttle,
  });
  const port = Number(/:(\d+)$/.exec(server.url)?.[1]);
  log(
    `server ${server.url} (pid ${server.pid}), handshake deadline ${DEADLINE_MS} ms, throttle ${opts.throttle ? 'on' : 'off'}`,
  );

  log(`measuring legitimate clients, unloaded, for ${PHASE_MS / 1000} s...`);
  const unloaded = await measure(server.url, key, PHASE_MS);

  const hello = Buffer.concat(
    new ClientConnection({ key, entropy: systemEntropy, now: Date.now }).takeOutput(),
  );
  const attack = new Attack(port, hello);
  const rampStart = performance.now();
  await attack.start();
  log(`${attack.opened} attackers connected in ${fmt((performance.now() - rampStart) / 1000)} s`);
  // Wait (a little) for the server to have accepted them all.
  let before = await server.stats();
  for (let i = 0; i < 50 && before.connections < ATTACKERS; i++) {
    await sleep(100);
    before = await server.stats();
  }
  log(`server holds ${before.connections} connections; measuring under attack for ${PHASE_MS / 1000} s...`);
  const loaded = await measure(server.url, key, PHASE_MS);
  const during = await server.stats();
  attack.stop();
  await sleep(500);
  const after = await server.stats();
  await server.stop();

  log('');
  log('legitimate clients (milliseconds):');
  log(
    table(
      [
        'phase',
        'requests',
        'request p50',
        'request p99',
        'connections',
        'connection p50',
        'connection p99',
        'failures',
      ],
      [latencyRow('unloaded', unloaded), latencyRow(`${ATTACKERS} slow peers`, loaded)],
    ),
  );
  const ratio = (a: number[], b: number[]) => summarize(b).p99 / summarize(a).p99;
  const rr = ratio(unloaded.request, loaded.request);
  const rc = ratio(unloaded.connection, loaded.connection);
  log(
    `p99 ratio, loaded / unloaded: request ${fmt(rr, 2)}x, new connection ${fmt(rc, 2)}x (target: within 2x)`,
  );

  log('');
  log('attackers cut by the server:');
  const rows = [true, false].map((silent) => {
    const cuts = attack.cuts.filter((c) => c.silent === silent).map((c) => c.lifetimeMs);
    const s = summarize(cuts);
    const atDeadline = cuts.filter((ms) => ms >= DEADLINE_MS - 50 && ms <= DEADLINE_MS + 1000).length;
    const early = cuts.filter((ms) => ms < DEADLINE_MS - 50).length;
    return [
      silent ? 'silent' : 'one byte per second',
      String(cuts.length),
      String(atDeadline),
      String(early),
      fmt(cuts.length === 0 ? Number.NaN : Math.min(...cuts), 0),
      fmt(s.p50, 0),
      fmt(s.max, 0),
    ];
  });
  log(
    table(
      [
        'attackers',
        'cut',
        `cut in [deadline, +1 s]`,
        'cut before the deadline',
        'min ms',
        'p50 ms',
        'max ms',
      ],
      rows,
    ),
  );
  const refusals = Object.entries(after.refusals).map(([k, v]) => `${k} ${v}`);
  log(`connections opened by attackers: ${attack.opened}; server-side refusals: ${refusals.join(', ')}`);
  if (after.refusals.ERR_TRUNCATED !== undefined) {
    log('(ERR_TRUNCATED: attackers still open when this script hung up at the end)');
  }
  log(
    `server connections: ${before.connections} at full attack, ${during.connections} after the loaded phase`,
  );
  // With the throttle on, a blocked attacker address is turned away at once: early cuts are expected.
  const early = attack.cuts.filter((c) => c.lifetimeMs < DEADLINE_MS - 50).length;
  const ok =
    rr <= 2 && rc <= 2 && unloaded.failures + loaded.failures === 0 && (opts.throttle || early === 0);
  log(
    `verdict: ${ok ? 'OK' : 'NOT OK'}: p99 ${rr <= 2 && rc <= 2 ? 'within' : 'NOT within'} 2x, ` +
      `${unloaded.failures + loaded.failures} legitimate failures, ` +
      `${early} attackers cut before the deadline`,
  );
  process.exitCode = ok ? 0 : 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`slowloris: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
