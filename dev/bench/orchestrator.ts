/**
 * Runs a bench: for each workload, one server process and one load-generator process per system
 * under test, all on loopback. Systems take turns point by point (raw, TLS-PSK, Sesame PSK,
 * Sesame FS at each setting), so a disturbance on the machine hits them alike.
 *
 * Server CPU per operation is the server process's own CPU time (user + system, all threads)
 * over the measured window divided by the operations completed in it: the load generator shares
 * the 2 cores, so throughput alone would partly measure the generator.
 */

import { randomBytes } from 'node:crypto';
import { cpus, loadavg, release, totalmem, type } from 'node:os';
import type { TlsCheck } from './clients.js';
import { type CoreResult, runCore } from './core.js';
import { Child } from './ipc.js';
import type { LoadCommands, RunResult } from './load-process.js';
import { type Plan, WORKLOADS, type WorkloadName } from './plan.js';
import {
  type BenchResults,
  checkTargets,
  type HeapRow,
  type Machine,
  type Measurement,
  type Metric,
  type Row,
  type ScalingPoint,
} from './results.js';
import type { HeapCensus, ServerCommands, Snapshot } from './server-process.js';
import {
  type BenchKey,
  type BenchService,
  CHURN_ONLY,
  maxChurnConcurrency,
  SYSTEM_LABELS,
  SYSTEMS,
  type SystemName,
} from './systems.js';

export interface RunOptions {
  readonly plan: Plan;
  readonly quick: boolean;
  readonly systems: readonly SystemName[];
  readonly workloads: readonly WorkloadName[];
  readonly command: string;
  /** Extra node flags for the server processes (e.g. --cpu-prof). */
  readonly serverExecArgv?: readonly string[] | undefined;
  /** Measure each churn, persistent and bulk point this many times and keep the median (default 1). */
  readonly repeat?: number | undefined;
  /** Take a heap census of each idle server before and after the connections (slow). */
  readonly heapProfile?: boolean | undefined;
  /** Measure the protocol core without sockets too, for the targets' floors (default true). */
  readonly core?: boolean | undefined;
  /** Progress lines go here (undefined: none). */
  readonly progress?: ((line: string) => void) | undefined;
}

const CALL_SLACK_MS = 60_000;

/** One system under test: its server process and its load-generator process. */
class Sut {
  private constructor(
    readonly system: SystemName,
    readonly server: Child<ServerCommands>,
    readonly load: Child<LoadCommands>,
  ) {}

  static async start(
    system: SystemName,
    service: BenchService,
    key: BenchKey,
    serverExecArgv: readonly string[],
  ): Promise<Sut> {
    const here = new URL('.', import.meta.url);
    const server = new Child<ServerCommands>(
      `${system} server`,
      new URL('server-process.js', here).pathname,
      ['--expose-gc', ...serverExecArgv],
    );
    const load = new Child<LoadCommands>(`${system} load`, new URL('load-process.js', here).pathname);
    const sut = new Sut(system, server, load);
    try {
      const { port } = await server.call('start', { system, service, key }, 30_000);
      await load.call('target', { system, host: '127.0.0.1', port, key }, 30_000);
    } catch (err) {
      await sut.stop();
      throw err;
    }
    return sut;
  }

  /**
   * The server's CPU time and memory once it holds `connections` connections.
   * @throws Error when it still holds another number after 10 s (a connection was not served or
   *   not closed: the measurement would be wrong).
   */
  async snapshot(connections: number, gc = false): Promise<Snapshot> {
    const s = await this.server.call('snapshot', { connections, gc, waitMs: 10_000 }, 30_000);
    if (s.timedOut) {
      throw new Error(`${this.system} server holds ${s.connections} connections, expected ${connections}`);
    }
    return s;
  }

  async stop(): Promise<void> {
    await Promise.all([this.load.stop(), this.server.stop()]);
  }
}

class Tallies {
  checked = 0;
  wrong = 0;
  errors = 0;
  firstError: string | undefined;
  tls: TlsCheck | undefined;

  add(system: SystemName, r: RunResult): RunResult {
    this.checked += r.replies;
    this.wrong += r.wrong;
    this.errors += r.errors;
    if (r.firstError !== undefined) this.firstError ??= `${system}: ${r.firstError}`;
    this.tls ??= r.tls;
    return r;
  }
}

function measurement(system: SystemName, r: RunResult, cpuUs: number): Measurement {
  const seconds = r.elapsedMs / 1000;
  const finite = (x: number) => (Number.isFinite(x) ? x : null);
  return {
    system,
    ops: r.ops,
    seconds,
    opsPerSec: r.ops / seconds,
    p50Ms: finite(r.p50Ms),
    p99Ms: finite(r.p99Ms),
    cpuUsPerOp: r.ops > 0 ? cpuUs / r.ops : Number.NaN,
    ...(r.bytes !== undefined ? { mbPerSec: r.bytes / 1e6 / seconds } : {}),
    errors: r.errors,
    wrong: r.wrong,
  };
}

function machine(): Machine {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    os: `${type()} ${release()}`,
    node: process.version,
    openssl: process.versions.openssl ?? 'unknown',
    loadAverageAtStart: loadavg()[0] ?? 0,
  };
}

/** Start one Sut per system (in order), run `body`, and stop them all whatever happens. */
async function withSuts<T>(
  opts: RunOptions,
  service: BenchService,
  key: BenchKey,
  body: (suts: Sut[]) => Promise<T>,
): Promise<T> {
  const suts: Sut[] = [];
  try {
    for (const s of opts.systems) {
      if (service !== 'timestamp' && CHURN_ONLY.has(s)) continue;
      suts.push(await Sut.start(s, service, key, opts.serverExecArgv ?? []));
    }
    return await body(suts);
  } finally {
    await Promise.all(suts.map((s) => s.stop()));
  }
}

/** Heap growth per held connection by object kind, largest first. */
function censusDiff(system: SystemName, before: HeapCensus, after: HeapCensus, held: number): HeapRow[] {
  const rows: HeapRow[] = [];
  for (const [kind, [count, bytes]] of Object.entries(after)) {
    const [c0, b0] = before[kind] ?? [0, 0];
    if (bytes - b0 > 0)
      rows.push({ system, kind, countPerConn: (count - c0) / held, bytesPerConn: (bytes - b0) / held });
  }
  return rows.sort((a, b) => b.bytesPerConn - a.bytesPerConn);
}

/** A measurement with the row it becomes: its workload, title and the metric its ratios compare. */
interface MeasuredRow {
  readonly workload: string;
  readonly title: string;
  readonly metric: Metric;
  readonly m: Measurement;
}

/** The measurement whose `metric` is the median of `ms` (so every field comes from one run). */
function medianBy(ms: readonly Measurement[], metric: Metric): Measurement {
  const sorted = [...ms].sort((a, b) => (a[metric] ?? Number.NaN) - (b[metric] ?? Number.NaN));
  return sorted[Math.floor((sorted.length - 1) / 2)] as Measurement;
}

/**
 * Measure every Sut `repeat` times, the systems taking turns in each round; returns each
 * system's median measurement by `metric`.
 */
async function repeated(
  suts: readonly Sut[],
  repeat: number,
  metric: Metric,
  measure: (sut: Sut, round: number) => Promise<Measurement>,
): Promise<Measurement[]> {
  const all = suts.map(() => [] as Measurement[]);
  for (let round = 0; round < repeat; round++) {
    for (const [i, sut] of suts.entries()) all[i]?.push(await measure(sut, round));
  }
  return all.map((ms) => medianBy(ms, metric));
}

/** The load commands measured as one window of server CPU time. */
type MeasuredCommand = 'churn' | 'persistent' | 'burst' | 'bulk';

interface MeasuredCall<K extends MeasuredCommand> {
  /** The connections the server holds during the window (its snapshots wait for that number). */
  readonly held: number;
  readonly run: LoadCommands[K]['args'];
  /** A call made first, outside the window, to warm the server up (undefined: none). */
  readonly warmup: LoadCommands[K]['args'] | undefined;
  readonly timeout: number;
}

/**
 * One measurement: the warm-up call if any, then `command` between two snapshots of the server;
 * the server's CPU time between them, over the operations completed, is the CPU per operation.
 * Every reply of both calls goes into `tallies`.
 */
async function measureCall<K extends MeasuredCommand>(
  sut: Sut,
  tallies: Tallies,
  command: K,
  call: MeasuredCall<K>,
): Promise<Measurement> {
  // The indexed types do not narrow for a generic K; every measured command takes its own args.
  const load = sut.load as Child<Pick<LoadCommands, K>>;
  if (call.warmup !== undefined)
    tallies.add(sut.system, (await load.call(command, call.warmup, call.timeout)) as RunResult);
  const s0 = await sut.snapshot(call.held);
  const r = tallies.add(sut.system, (await load.call(command, call.run, call.timeout)) as RunResult);
  const s1 = await sut.snapshot(call.held);
  return measurement(sut.system, r, s1.cpuUs - s0.cpuUs);
}

/** A workload measured on connections opened once and held: persistent and bulk. */
interface HeldWorkload<K extends 'persistent' | 'burst' | 'bulk'> {
  readonly workload: K;
  readonly service: BenchService;
  readonly title: string;
  readonly metric: Metric;
  /** Connections each system opens (all of them, or the run stops) and holds. */
  readonly connections: number;
  /** Make one echo round trip on each new connection. */
  readonly roundTrip: boolean;
  readonly run: LoadCommands[K]['args'];
  /** The first round's warm-up call (undefined: none). */
  readonly warmup: LoadCommands[K]['args'] | undefined;
  readonly timeout: number;
}

/**
 * Run a held-connection workload on fresh servers: open the connections on every system, measure
 * `repeat` rounds (the systems taking turns; the first round warms up first), close them, and
 * return one row per system, its median by the workload's metric.
 */
async function overHeldConnections<K extends 'persistent' | 'burst' | 'bulk'>(
  opts: RunOptions,
  key: BenchKey,
  tallies: Tallies,
  repeat: number,
  progress: (what: string, system: SystemName) => void,
  w: HeldWorkload<K>,
): Promise<MeasuredRow[]> {
  return withSuts(opts, w.service, key, async (suts) => {
    for (const sut of suts) {
      const open = {
        count: w.connections,
        roundTrip: w.roundTrip,
        concurrency: w.connections,
        maxMs: 30_000,
      };
      const opened = tallies.add(sut.system, await sut.load.call('open', open, w.timeout));
      if (opened.ops !== w.connections)
        throw new Error(`${sut.system}: opened ${opened.ops}/${w.connections}`);
    }
    const ms = await repeated(suts, repeat, w.metric, (sut, round) => {
      progress(w.workload, sut.system);
      return measureCall(sut, tallies, w.workload, {
        held: w.connections,
        run: w.run,
        warmup: round === 0 ? w.warmup : undefined,
        timeout: w.timeout,
      });
    });
    for (const sut of suts) await sut.load.call('closeAll', null, w.timeout);
    return ms.map((m) => ({ workload: w.workload, title: w.title, metric: w.metric, m }));
  });
}

/** Run the bench described by `opts`. */
export async function runBench(opts: RunOptions): Promise<BenchResults> {
  const key: BenchKey = { id: randomBytes(8).toString('hex'), secretHex: randomBytes(32).toString('hex') };
  const host = machine();
  const { plan } = opts;
  const repeat = Math.max(1, opts.repeat ?? 1);
  const tallies = new Tallies();
  const measured: MeasuredRow[] = [];
  const churnScaling: ScalingPoint[] = [];
  const memoryScaling: ScalingPoint[] = [];
  const heapProfile: HeapRow[] = [];
  const n = opts.systems.length;
  const nAll = opts.systems.filter((s) => !CHURN_ONLY.has(s)).length;
  const has = (w: WorkloadName) => opts.workloads.includes(w);
  const steps =
    n * repeat * (has('churn') ? plan.churn.concurrency.length : 0) +
    nAll *
      repeat *
      ((has('persistent') ? 1 : 0) +
        (has('burst') ? 1 : 0) +
        (has('bulk') ? 1 : 0) +
        (has('idle') ? plan.idle.levels.length : 0));
  let step = 0;
  const progress = (what: string, system: SystemName) => {
    step++;
    opts.progress?.(`[${step}/${steps}] ${what}: ${SYSTEM_LABELS[system]}`);
  };

  if (has('churn')) {
    const c = plan.churn;
    const timeout = c.maxMs + CALL_SLACK_MS;
    await withSuts(opts, 'timestamp', key, async (suts) => {
      for (const concurrency of c.concurrency) {
        const args = { concurrency, maxOps: c.maxOps, messageBytes: c.messageBytes };
        const here = suts.filter((sut) => concurrency <= maxChurnConcurrency(sut.system));
        const ms = await repeated(here, repeat, 'cpuUsPerOp', (sut, round) => {
          progress(`churn, ${concurrency} concurrent`, sut.system);
          return measureCall(sut, tallies, 'churn', {
            held: 0,
            run: { ...args, maxMs: c.maxMs },
            warmup: round === 0 && c.warmupMs > 0 ? { ...args, maxMs: c.warmupMs } : undefined,
            timeout,
          });
        });
        for (const m of ms) {
          churnScaling.push({
            system: m.system,
            x: concurrency,
            cpuUsPerOp: m.cpuUsPerOp,
            opsPerSec: m.opsPerSec,
          });
          if (c.rows.includes(concurrency)) {
            measured.push({
              workload: `churn-${concurrency}`,
              title: `churn, ${concurrency} concurrent: connect, authenticate, one ${c.messageBytes}-byte timestamp request, close`,
              metric: 'cpuUsPerOp',
              m,
            });
          }
        }
      }
    });
  }

  if (has('persistent')) {
    const p = plan.persistent;
    const args = { maxOps: p.maxOps, messageBytes: p.messageBytes };
    measured.push(
      ...(await overHeldConnections(opts, key, tallies, repeat, progress, {
        workload: 'persistent',
        service: 'echo',
        title: `persistent: ${p.connections} connections, strict request/response ${p.messageBytes}-byte echo round trips`,
        metric: 'opsPerSec',
        connections: p.connections,
        roundTrip: true,
        run: { ...args, maxMs: p.maxMs },
        warmup: p.warmupMs > 0 ? { ...args, maxMs: p.warmupMs } : undefined,
        timeout: p.maxMs + CALL_SLACK_MS,
      })),
    );
  }

  if (has('burst')) {
    const b = plan.burst;
    const args = { maxOps: b.maxOps, messages: b.messages, messageBytes: b.messageBytes };
    measured.push(
      ...(await overHeldConnections(opts, key, tallies, repeat, progress, {
        workload: 'burst',
        service: 'echo',
        title: `burst: ${b.connections} connections, turns of ${b.messages} pipelined ${b.messageBytes}-byte echo requests (ops = messages)`,
        metric: 'opsPerSec',
        connections: b.connections,
        roundTrip: true,
        run: { ...args, maxMs: b.maxMs },
        warmup: b.warmupMs > 0 ? { ...args, maxMs: b.warmupMs } : undefined,
        timeout: b.maxMs + CALL_SLACK_MS,
      })),
    );
  }

  if (has('bulk')) {
    const b = plan.bulk;
    const args = { chunkBytes: b.chunkBytes, maxMs: b.maxMs };
    measured.push(
      ...(await overHeldConnections(opts, key, tallies, repeat, progress, {
        workload: 'bulk',
        service: 'bulk',
        title: `bulk: ${b.totalBytes / 1024 / 1024} MiB in ${b.chunkBytes / 1024} KiB messages on one connection, the server acknowledges the count`,
        metric: 'mbPerSec',
        connections: 1,
        roundTrip: false,
        run: { ...args, totalBytes: b.totalBytes },
        warmup: b.warmupBytes > 0 ? { ...args, totalBytes: b.warmupBytes } : undefined,
        timeout: b.maxMs + CALL_SLACK_MS,
      })),
    );
  }

  if (has('idle')) {
    const d = plan.idle;
    // Each round starts fresh servers and walks the levels; the row and every scaling point are
    // the median over the rounds (RSS moves in steps as V8 grows its heap, so one walk is noisy).
    const rows = new Map<SystemName, Measurement[]>();
    const points = new Map<string, ScalingPoint[]>();
    for (let round = 0; round < repeat; round++) {
      await withSuts(opts, 'echo', key, async (suts) => {
        const timeout = d.maxMs + CALL_SLACK_MS;
        const base = new Map<SystemName, Snapshot>();
        const censusBefore = new Map<SystemName, HeapCensus>();
        const prev = new Map<SystemName, { snap: Snapshot; held: number }>();
        const census = opts.heapProfile === true && round === 0;
        for (const sut of suts) {
          tallies.add(
            sut.system,
            await sut.load.call(
              'open',
              { count: d.warmup, roundTrip: true, concurrency: d.openConcurrency, maxMs: d.maxMs },
              timeout,
            ),
          );
          await sut.load.call('closeAll', null, timeout);
          if (census) censusBefore.set(sut.system, await sut.server.call('heapCensus', null, 120_000));
          const s = await sut.snapshot(0, true);
          base.set(sut.system, s);
          prev.set(sut.system, { snap: s, held: 0 });
        }
        for (const level of d.levels) {
          for (const sut of suts) {
            progress(`idle, ${level} connections`, sut.system);
            const b = base.get(sut.system) as Snapshot;
            const p = prev.get(sut.system) as { snap: Snapshot; held: number };
            const r = tallies.add(
              sut.system,
              await sut.load.call(
                'open',
                { count: level - p.held, roundTrip: true, concurrency: d.openConcurrency, maxMs: d.maxMs },
                timeout,
              ),
            );
            const held = p.held + r.ops;
            const s = await sut.snapshot(held, true);
            const growth = s.rss - b.rss;
            const added = Math.max(1, held - p.held);
            const marginal = (s.rss - p.snap.rss) / added;
            // The row leaves V8's young generation out: V8 resizes it by its own policy.
            const marginalHeld = (s.rss - s.youngBytes - (p.snap.rss - p.snap.youngBytes)) / added;
            const m: Measurement = {
              ...measurement(sut.system, r, s.cpuUs - p.snap.cpuAfterGcUs),
              connections: held,
              rssGrowthBytes: growth,
              heapGrowthBytes: s.heapUsed + s.external - (b.heapUsed + b.external),
              rssPerConnBytes: marginalHeld,
              rssWholePerConnBytes: marginal,
              rssTotalPerConnBytes: growth / held,
            };
            prev.set(sut.system, { snap: s, held });
            const at = `${sut.system} ${level}`;
            points.set(at, [
              ...(points.get(at) ?? []),
              {
                system: sut.system,
                x: held,
                rssGrowthBytes: growth,
                rssPerConnBytes: growth / held,
                rssMarginalPerConnBytes: marginal,
                heldMarginalPerConnBytes: marginalHeld,
                youngBytes: s.youngBytes,
              },
            ]);
            // The row: the slope from the row level to the next one, once the heap has its working size.
            if (d.levels[d.levels.indexOf(level) - 1] === d.row) {
              rows.set(sut.system, [...(rows.get(sut.system) ?? []), m]);
            }
          }
        }
        if (census) {
          for (const sut of suts) {
            const before = censusBefore.get(sut.system);
            const held = prev.get(sut.system)?.held ?? 0;
            if (before === undefined || held === 0) continue;
            const after = await sut.server.call('heapCensus', null, 120_000);
            heapProfile.push(...censusDiff(sut.system, before, after, held));
          }
        }
      });
    }
    for (const ps of points.values()) {
      const mid = [...ps].sort((x, y) => (x.rssGrowthBytes ?? 0) - (y.rssGrowthBytes ?? 0));
      const median = mid[Math.floor((mid.length - 1) / 2)] as ScalingPoint;
      const middle = (pick: (q: ScalingPoint) => number | undefined) =>
        ps.map((q) => pick(q) ?? Number.NaN).sort((x, y) => x - y)[Math.floor((ps.length - 1) / 2)];
      memoryScaling.push({
        ...median,
        rssMarginalPerConnBytes: middle((q) => q.rssMarginalPerConnBytes),
        heldMarginalPerConnBytes: middle((q) => q.heldMarginalPerConnBytes),
      });
    }
    const next = d.levels[d.levels.indexOf(d.row) + 1];
    for (const [, ms] of rows) {
      measured.push({
        workload: 'idle',
        title: `idle: server RSS less V8's young generation, per added authenticated connection, from ${d.row} to ${next} held (each made one echo round trip)`,
        metric: 'rssPerConnBytes',
        m: medianBy(ms, 'rssPerConnBytes'),
      });
    }
  }

  // The socket-free floor, measured while no other bench process runs.
  let core: CoreResult[] = [];
  if (opts.core !== false) {
    opts.progress?.('protocol core without sockets');
    core = runCore(opts.quick ? 0.05 : 1);
  }

  const rows: Row[] = measured.map(({ workload, title, metric, m }) => {
    const of = (system: SystemName) => {
      const other = measured.find((x) => x.workload === workload && x.m.system === system)?.m[metric];
      const mine = m[metric];
      return typeof other === 'number' && typeof mine === 'number' && other > 0 ? mine / other : null;
    };
    return {
      workload,
      title,
      metric,
      ...m,
      vsRaw: of('raw'),
      vsTls: of('tls-psk'),
      vsSecretStream: of('secret-stream'),
    };
  });
  return {
    version: 1,
    date: new Date().toISOString(),
    quick: opts.quick,
    command: opts.command,
    machine: host,
    repeat,
    plan,
    tls: tallies.tls,
    rows,
    targets: checkTargets(rows, plan.churn.rows, core),
    churnScaling,
    memoryScaling,
    heapProfile,
    core,
    replies: {
      checked: tallies.checked,
      wrong: tallies.wrong,
      errors: tallies.errors,
      firstError: tallies.firstError,
    },
  };
}

/** Every system and workload, in the order they run. */
export const ALL_SYSTEMS: readonly SystemName[] = SYSTEMS;
export const ALL_WORKLOADS: readonly WorkloadName[] = WORKLOADS;
