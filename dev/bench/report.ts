/** The bench's text report: the table with ratios, the targets, the scaling curves, the reply check. */

import { renderCore } from './core.js';
import {
  type BenchResults,
  METRIC_LABELS,
  type Row,
  type ScalingPoint,
  type TargetCheck,
} from './results.js';
import { SYSTEM_LABELS, SYSTEMS, type SystemName } from './systems.js';

function num(x: number | null | undefined, digits: number): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * A target in words: what is compared with what, and the bound, such as "churn-32: Sesame FS
 * needs at most 0.4x the server CPU µs per operation of TLS-PSK".
 */
export function targetInWords(
  t: Pick<TargetCheck, 'workload' | 'system' | 'against' | 'metric' | 'op' | 'limit'>,
): string {
  const metric = METRIC_LABELS[t.metric].replace(/ \(.*\)$/, '');
  const bound = t.op === '<=' ? 'needs at most' : 'reaches at least';
  return `${t.workload}: ${SYSTEM_LABELS[t.system]} ${bound} ${t.limit}x the ${metric} of ${SYSTEM_LABELS[t.against]}`;
}

function ratio(x: number | null): string {
  return x === null ? '—' : `${x.toFixed(2)}x`;
}

/** Columns: the first `leftColumns` are left-aligned, the others right-aligned. */
function table(header: string[], lines: string[][], leftColumns = 1, indent = '  '): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: string[]) =>
    indent +
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [fmt(header), ...lines.map(fmt)];
}

const HEADER = [
  'system',
  'ops/s',
  'p50 ms',
  'p99 ms',
  'CPU µs/op',
  'MB/s',
  'KiB/conn',
  '×raw',
  '×TLS',
  '×SS',
];

function rowCells(r: Row): string[] {
  return [
    SYSTEM_LABELS[r.system],
    num(r.opsPerSec, 0),
    num(r.p50Ms, 2),
    num(r.p99Ms, 2),
    num(r.cpuUsPerOp, 1),
    num(r.mbPerSec, 0),
    r.rssPerConnBytes === undefined ? '—' : num(r.rssPerConnBytes / 1024, 2),
    ratio(r.vsRaw),
    ratio(r.vsTls),
    ratio(r.vsSecretStream ?? null),
  ];
}

function curve(
  points: readonly ScalingPoint[],
  xLabel: string,
  value: (p: ScalingPoint) => string,
  systems: readonly SystemName[],
): string[] {
  const xs = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b);
  const lines = systems
    .filter((s) => points.some((p) => p.system === s))
    .map((s) => [
      SYSTEM_LABELS[s],
      ...xs.map((x) => {
        const p = points.find((q) => q.system === s && q.x === x);
        return p === undefined ? '—' : value(p);
      }),
    ]);
  return table([xLabel, ...xs.map(String)], lines);
}

/** The whole report, as lines. */
export function renderReport(res: BenchResults): string {
  const out: string[] = [];
  const m = res.machine;
  out.push(
    `Sesame bench${res.quick ? ' (--quick: a smoke run; its numbers are not a reference)' : ''}, ${res.date}`,
    `machine: ${m.cpus} x ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${m.os}; Node ${m.node}, OpenSSL ${m.openssl}`,
    `command: ${res.command}`,
    `load average at start: ${m.loadAverageAtStart.toFixed(2)}${m.loadAverageAtStart > m.cpus / 2 ? ' (the machine was busy: numbers may be skewed)' : ''}` +
      (res.repeat > 1 ? `; every figure is the median of ${res.repeat} runs` : ''),
  );
  if (res.tls !== undefined) {
    const t = res.tls;
    out.push(
      `TLS-PSK negotiated: ${t.protocol}, ${t.cipher}, key exchange ${t.keyExchange}, ` +
        `${t.peerCertificate ? 'WITH a certificate' : 'no certificate'}`,
    );
  }
  const workloads = [...new Set(res.rows.map((r) => r.workload))];
  for (const w of workloads) {
    const rows = res.rows.filter((r) => r.workload === w);
    const first = rows[0] as Row;
    out.push(
      '',
      first.title,
      `  ratios: ${METRIC_LABELS[first.metric]}`,
      ...table(HEADER, rows.map(rowCells)),
    );
  }
  if (res.targets.length > 0) {
    out.push('', 'targets (ratios within this run)');
    const lines = res.targets.map((t) => [
      t.ok === null ? 'n/a' : t.ok ? 'PASS' : 'MISS',
      targetInWords(t),
      ratio(t.ratio),
      ratio(t.floor),
    ]);
    out.push(...table(['', 'target', 'measured', 'floor'], lines, 2));
    if (res.targets.some((t) => t.floor !== null)) {
      out.push(
        '  floor: the best ratio if Sesame cost nothing beyond raw net plus its protocol core (below),',
        '  i.e. if sockets, sessions, the handler and the GC cost Sesame no more than they cost raw net;',
        '  for churn, raw net carrying Sesame\'s flights (the "raw, flights" row) when it ran',
      );
    }
  }
  const systems = SYSTEMS.filter(
    (s) =>
      res.rows.some((r) => r.system === s) ||
      res.churnScaling.some((p) => p.system === s) ||
      res.memoryScaling.some((p) => p.system === s),
  );
  if (res.churnScaling.length > 0) {
    out.push('', 'churn scaling: server CPU µs per connection, by concurrency');
    out.push(...curve(res.churnScaling, 'concurrent', (p) => num(p.cpuUsPerOp, 1), systems));
    out.push('', 'churn scaling: connections per second, by concurrency');
    out.push(...curve(res.churnScaling, 'concurrent', (p) => num(p.opsPerSec, 0), systems));
  }
  if (res.memoryScaling.length > 0) {
    const memoryCurves: [string, (p: ScalingPoint) => string][] = [
      [
        'server RSS growth in MiB, by held connections',
        (p) => num((p.rssGrowthBytes ?? Number.NaN) / 2 ** 20, 1),
      ],
      [
        'server RSS growth divided by held connections, KiB',
        (p) => num((p.rssPerConnBytes ?? Number.NaN) / 1024, 2),
      ],
      [
        'server RSS per connection added since the previous level, KiB',
        (p) => num((p.rssMarginalPerConnBytes ?? Number.NaN) / 1024, 2),
      ],
      [
        "V8's young generation (new space) in MiB, by held connections: part of the RSS above, sized by V8",
        (p) => num((p.youngBytes ?? Number.NaN) / 2 ** 20, 1),
      ],
      [
        "server RSS less V8's young generation, per connection added since the previous level, KiB (the idle row)",
        (p) => num((p.heldMarginalPerConnBytes ?? Number.NaN) / 1024, 2),
      ],
    ];
    for (const [title, cell] of memoryCurves) {
      out.push('', `memory scaling: ${title}`);
      out.push(...curve(res.memoryScaling, 'connections', cell, systems));
    }
  }
  if (res.heapProfile.length > 0) {
    out.push('', 'idle: server heap growth per held connection by object kind (V8 heap snapshots, top 12)');
    for (const s of systems) {
      const rows = res.heapProfile.filter((h) => h.system === s);
      if (rows.length === 0) continue;
      const total = rows.reduce((sum, h) => sum + h.bytesPerConn, 0);
      out.push(`  ${SYSTEM_LABELS[s]}: ${num(total, 0)} bytes per connection in all`);
      out.push(
        ...table(
          ['object', 'per conn', 'bytes'],
          rows.slice(0, 12).map((h) => [h.kind, num(h.countPerConn, 2), num(h.bytesPerConn, 0)]),
          1,
          '    ',
        ),
      );
    }
  }
  if (res.core.length > 0) out.push('', renderCore(res.core).trimEnd());
  const r = res.replies;
  out.push(
    '',
    r.wrong === 0 && r.errors === 0
      ? `replies: ${r.checked} checked, all correct`
      : `replies: ${r.checked} checked, ${r.wrong} wrong, ${r.errors} errors${r.firstError === undefined ? '' : ` (first: ${r.firstError})`}`,
  );
  return `${out.join('\n')}\n`;
}
