/** The shape of a bench run's results (what `--json` writes), and the targets it is checked against. */

import type { TlsCheck } from './clients.js';
import type { CoreResult } from './core.js';
import type { Plan } from './plan.js';
import type { SystemName } from './systems.js';

/** The metric a workload's ratios compare. */
export type Metric = 'cpuUsPerOp' | 'opsPerSec' | 'mbPerSec' | 'rssPerConnBytes';

export const METRIC_LABELS: Record<Metric, string> = {
  cpuUsPerOp: 'server CPU µs per operation (lower is better)',
  opsPerSec: 'operations per second (higher is better)',
  mbPerSec: 'MB/s, 10^6 bytes (higher is better)',
  rssPerConnBytes: "server RSS less V8's young generation, per added held connection (lower is better)",
};

/** One measured point: one workload at one setting on one system. */
export interface Measurement {
  readonly system: SystemName;
  /** Completed operations (connections for churn and idle, round trips, 64 KiB writes). */
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSec: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Server process CPU time (user + system) over the measured window, per operation. */
  readonly cpuUsPerOp: number;
  readonly mbPerSec?: number | undefined;
  /**
   * Idle: server RSS, less V8's young generation, per connection added between the previous
   * level and this one (the slope: what one more held connection costs). The young generation
   * is left out because V8 sizes it by its own policy as objects are retained, growing or
   * shrinking it by megabytes between two levels: a cost of the process, not of a connection.
   */
  readonly rssPerConnBytes?: number | undefined;
  /** Idle: the same slope of the whole RSS, young generation included. */
  readonly rssWholePerConnBytes?: number | undefined;
  /** Idle: server RSS growth from the empty server, divided by the connections held. */
  readonly rssTotalPerConnBytes?: number | undefined;
  readonly rssGrowthBytes?: number | undefined;
  readonly heapGrowthBytes?: number | undefined;
  readonly connections?: number | undefined;
  readonly errors: number;
  readonly wrong: number;
}

export interface Row extends Measurement {
  readonly workload: string;
  readonly title: string;
  readonly metric: Metric;
  /** This row's metric divided by the raw, TLS-PSK and secret-stream rows' (null when missing). */
  readonly vsRaw: number | null;
  readonly vsTls: number | null;
  readonly vsSecretStream: number | null;
}

/**
 * One point of a scaling curve: churn points carry the CPU and rate of a measurement, idle points
 * its memory (per connection held in all, and per connection added since the previous level).
 */
export interface ScalingPoint
  extends Partial<Pick<Measurement, 'cpuUsPerOp' | 'opsPerSec' | 'rssGrowthBytes'>> {
  readonly system: SystemName;
  readonly x: number;
  /** RSS growth from the empty server divided by the connections held. */
  readonly rssPerConnBytes?: number | undefined;
  /** RSS per connection added since the previous level. */
  readonly rssMarginalPerConnBytes?: number | undefined;
  /** The same less the growth of V8's young generation (what the idle row measures). */
  readonly heldMarginalPerConnBytes?: number | undefined;
  /** The server's young generation (V8 new space), physical bytes, at this level. */
  readonly youngBytes?: number | undefined;
}

/** Heap growth per held idle connection for one kind of object (from heap snapshots). */
export interface HeapRow {
  readonly system: SystemName;
  /** `type:constructor`, as V8 heap snapshots name them. */
  readonly kind: string;
  readonly countPerConn: number;
  readonly bytesPerConn: number;
}

/** A target as checked in one run: `system`'s metric over `against`'s, compared with the limit. */
export interface TargetCheck extends Omit<TargetSpec, 'what'> {
  readonly name: string;
  readonly ratio: number | null;
  /**
   * The best ratio possible if Sesame cost nothing beyond the raw system plus its protocol core
   * (the socket-free costs of `--core`): a target beyond it cannot be met by the socket layer.
   */
  readonly floor: number | null;
  /** null when a row is missing (the workload or a system was not run). */
  readonly ok: boolean | null;
}

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryBytes: number;
  readonly os: string;
  readonly node: string;
  readonly openssl: string;
  /** One-minute load average when the run started: other work on the machine skews the results. */
  readonly loadAverageAtStart: number;
}

export interface Replies {
  readonly checked: number;
  readonly wrong: number;
  readonly errors: number;
  readonly firstError?: string | undefined;
}

export interface BenchResults {
  readonly version: 1;
  readonly date: string;
  readonly quick: boolean;
  readonly repeat: number;
  readonly command: string;
  readonly machine: Machine;
  readonly plan: Plan;
  readonly tls: TlsCheck | undefined;
  readonly rows: readonly Row[];
  readonly targets: readonly TargetCheck[];
  readonly churnScaling: readonly ScalingPoint[];
  readonly memoryScaling: readonly ScalingPoint[];
  /** With --heap-profile: the idle servers' heap growth per connection by object kind. */
  readonly heapProfile: readonly HeapRow[];
  /** The protocol core's costs without sockets, measured in the same run. */
  readonly core: readonly CoreResult[];
  readonly replies: Replies;
}

/** A performance target: `system`'s `metric` on `workload` divided by `against`'s, `op` `limit`. */
interface TargetSpec {
  readonly workload: string;
  readonly system: SystemName;
  readonly against: SystemName;
  readonly metric: Metric;
  readonly op: '<=' | '>=';
  readonly limit: number;
  readonly what: string;
}

/** The performance targets, as ratios within one run. */
export function targetSpecs(churnRows: readonly number[]): TargetSpec[] {
  // The targets of docs/performance.md ("The targets"), as ratios within one run.
  const spec = (
    workload: string,
    system: SystemName,
    against: SystemName,
    metric: TargetSpec['metric'],
    op: TargetSpec['op'],
    limit: number,
    what: string,
  ): TargetSpec => ({ workload, system, against, metric, op, limit, what });
  const specs: TargetSpec[] = [];
  for (const c of churnRows) {
    const w = `churn-${c}`;
    specs.push(
      spec(w, 'sesame-fs', 'tls-psk', 'cpuUsPerOp', '<=', 0.7, 'server CPU/op'),
      spec(w, 'sesame-fs', 'secret-stream', 'cpuUsPerOp', '<=', 0.6, 'server CPU/op'),
      spec(w, 'sesame-psk', 'raw', 'cpuUsPerOp', '<=', 2.5, 'server CPU/op'),
    );
  }
  specs.push(
    spec('persistent', 'sesame-fs', 'tls-psk', 'opsPerSec', '>=', 1.2, 'round trips/s'),
    spec('persistent', 'sesame-fs', 'secret-stream', 'opsPerSec', '>=', 1.2, 'round trips/s'),
    spec('burst', 'sesame-fs', 'tls-psk', 'opsPerSec', '>=', 1.5, 'messages/s'),
    spec('bulk', 'sesame-fs', 'tls-psk', 'mbPerSec', '>=', 1.1, 'MB/s'),
    // n/a where spiped is not installed (its row is missing).
    spec('bulk', 'sesame-fs', 'spiped', 'mbPerSec', '>=', 4, 'MB/s'),
    spec('idle', 'sesame-fs', 'tls-psk', 'rssPerConnBytes', '<=', 0.5, 'RSS per connection'),
    spec('idle', 'sesame-fs', 'secret-stream', 'rssPerConnBytes', '<=', 0.8, 'RSS per connection'),
  );
  return specs;
}

/**
 * The best ratio a Sesame row could reach if it cost only the raw row plus the protocol core's
 * server-side cost of the same work (null without the numbers). For churn the raw row is
 * `raw-flights` when it ran: raw net exchanging Sesame's messages, so the handshake's extra
 * flights count as socket work.
 */
function floorRatio(spec: TargetSpec, rows: readonly Row[], core: readonly CoreResult[]): number | null {
  const coreUs = (id: string) => core.find((c) => c.id === id)?.serverUs;
  const cpu = (system: SystemName) => {
    const v = rows.find((x) => x.workload === spec.workload && x.system === system)?.cpuUsPerOp;
    return v !== undefined && Number.isFinite(v) && v > 0 ? v : undefined;
  };
  if (spec.metric === 'rssPerConnBytes') {
    const rss = (system: SystemName) =>
      rows.find((x) => x.workload === spec.workload && x.system === system)?.rssPerConnBytes;
    const rawRss = rss('raw');
    const againstRss = rss(spec.against);
    const state = coreUs('state-bytes');
    if (rawRss === undefined || againstRss === undefined || state === undefined || againstRss <= 0)
      return null;
    return (rawRss + state) / againstRss;
  }
  const raw = cpu('raw');
  const against = cpu(spec.against);
  if (raw === undefined || against === undefined) return null;
  let extra: number | undefined;
  if (spec.workload.startsWith('churn-')) {
    const hs = coreUs(spec.system === 'sesame-fs' ? 'handshake-fs' : 'handshake-psk');
    const rt = coreUs('echo-64');
    extra = hs === undefined || rt === undefined ? undefined : hs + rt;
    // The sockets' share: raw net carrying Sesame's flights when it was measured (the protocol
    // needs them whatever the implementation), else raw net's one request and reply.
    const sockets = cpu('raw-flights') ?? raw;
    // lower CPU is better: the floor is a CPU ratio
    return extra === undefined ? null : (sockets + extra) / against;
  }
  if (spec.workload === 'persistent') extra = coreUs('echo-64');
  else if (spec.workload === 'bulk') extra = coreUs('one-way-64k');
  // throughput targets: at best, throughput is inversely proportional to CPU per operation
  return extra === undefined ? null : against / (raw + extra);
}

/** Evaluate the targets against the rows of a run (and their floors against the core's costs). */
export function checkTargets(
  rows: readonly Row[],
  churnRows: readonly number[],
  core: readonly CoreResult[] = [],
): TargetCheck[] {
  return targetSpecs(churnRows).map((s) => {
    const value = (system: SystemName) => {
      const r = rows.find((x) => x.workload === s.workload && x.system === system);
      const v = r?.[s.metric];
      return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    };
    const mine = value(s.system);
    const theirs = value(s.against);
    const ratio = mine !== undefined && theirs !== undefined && theirs > 0 ? mine / theirs : null;
    const ok = ratio === null ? null : s.op === '<=' ? ratio <= s.limit : ratio >= s.limit;
    return {
      name: `${s.workload}: ${s.system} ${s.what} ${s.op} ${s.limit}x ${s.against}`,
      workload: s.workload,
      system: s.system,
      against: s.against,
      metric: s.metric,
      op: s.op,
      limit: s.limit,
      ratio,
      floor: floorRatio(s, rows, core),
      ok,
    };
  });
}
