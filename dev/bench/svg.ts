/**
 * The scaling chart for the docs, as a self-contained SVG: server CPU per connection by churn
 * concurrency (log scale) and server RSS growth by held idle connections, every system on the
 * same axes.
 */

import type { BenchResults, ScalingPoint } from './results.js';
import { SYSTEM_LABELS, SYSTEMS, type SystemName } from './systems.js';

const COLORS: Record<SystemName, string> = {
  raw: '#7f7f7f',
  'tls-psk': '#d95f02',
  'sesame-psk': '#7fb2e5',
  'sesame-fs': '#1f4e9c',
  'sesame-psk-node': '#9ecae1',
  'sesame-fs-node': '#4a7ab8',
  'secret-stream': '#1b9e77',
  spiped: '#e7298a',
  'raw-flights': '#b8b8b8',
};

interface Series {
  readonly system: SystemName;
  readonly points: readonly { x: number; y: number }[];
}

interface Panel {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly logX: boolean;
  readonly series: readonly Series[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const f = (x: number) => (Math.round(x * 10) / 10).toString();

/** Round tick values covering [0, max]: steps of 1, 2 or 5 times a power of ten. */
export function ticks(max: number, target = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * p >= raw) ?? 10) * p;
  const out: number[] = [];
  for (let v = 0; v < max + step - 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function tickLabel(v: number): string {
  return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(1);
}

function panel(p: Panel, x0: number, y0: number, w: number, h: number): string[] {
  const out: string[] = [];
  const left = x0 + 64;
  const right = x0 + w - 16;
  const top = y0 + 34;
  const bottom = y0 + h - 46;
  const xs = [...new Set(p.series.flatMap((s) => s.points.map((q) => q.x)))].sort((a, b) => a - b);
  const ys = p.series.flatMap((s) => s.points.map((q) => q.y)).filter((y) => Number.isFinite(y));
  const yTicks = ticks(Math.max(...ys, 0));
  const yMax = yTicks[yTicks.length - 1] ?? 1;
  let xTicks: number[];
  let sx: (x: number) => number;
  if (p.logX) {
    const lo = Math.log2(xs[0] ?? 1);
    const hi = Math.log2(xs[xs.length - 1] ?? 2);
    const span = hi - lo || 1;
    sx = (x) => left + ((Math.log2(x) - lo) / span) * (right - left);
    xTicks = xs;
  } else {
    xTicks = ticks(xs[xs.length - 1] ?? 1);
    const xMax = xTicks[xTicks.length - 1] ?? 1;
    sx = (x) => left + (x / xMax) * (right - left);
  }
  const sy = (y: number) => bottom - (y / yMax) * (bottom - top);
  out.push(`<text x="${f((left + right) / 2)}" y="${y0 + 18}" class="title">${esc(p.title)}</text>`);
  for (const t of yTicks) {
    out.push(
      `<line x1="${left}" x2="${right}" y1="${f(sy(t))}" y2="${f(sy(t))}" class="grid"/>`,
      `<text x="${left - 6}" y="${f(sy(t) + 4)}" class="ytick">${tickLabel(t)}</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(
      `<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${bottom}" y2="${bottom + 4}" class="axis"/>`,
      `<text x="${f(sx(t))}" y="${bottom + 17}" class="xtick">${tickLabel(t)}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" class="axis"/>`,
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${bottom}" class="axis"/>`,
    `<text x="${f((left + right) / 2)}" y="${bottom + 36}" class="label">${esc(p.xLabel)}</text>`,
    `<text transform="translate(${x0 + 16} ${f((top + bottom) / 2)}) rotate(-90)" class="label">${esc(p.yLabel)}</text>`,
  );
  for (const s of p.series) {
    const pts = s.points.filter((q) => Number.isFinite(q.y)).sort((a, b) => a.x - b.x);
    if (pts.length === 0) continue;
    const c = COLORS[s.system];
    out.push(
      `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((q) => `${f(sx(q.x))},${f(sy(q.y))}`).join(' ')}"/>`,
      ...pts.map((q) => `<circle cx="${f(sx(q.x))}" cy="${f(sy(q.y))}" r="3" fill="${c}"/>`),
    );
  }
  return out;
}

function series(points: readonly ScalingPoint[], y: (p: ScalingPoint) => number | undefined): Series[] {
  return SYSTEMS.filter((s) => points.some((p) => p.system === s)).map((system) => ({
    system,
    points: points.filter((p) => p.system === system).map((p) => ({ x: p.x, y: y(p) ?? Number.NaN })),
  }));
}

/** The chart for `res` (an SVG document). */
export function renderScalingSvg(res: BenchResults): string {
  const panels: Panel[] = [];
  if (res.churnScaling.length > 0) {
    panels.push({
      title: 'Churn: server CPU per connection',
      xLabel: 'concurrent connections (log scale)',
      yLabel: 'server CPU µs per connection',
      logX: true,
      series: series(res.churnScaling, (p) => p.cpuUsPerOp),
    });
  }
  if (res.memoryScaling.length > 0) {
    panels.push({
      title: 'Idle: server memory',
      xLabel: 'held authenticated connections',
      yLabel: 'server RSS growth, MiB',
      logX: false,
      series: series(res.memoryScaling, (p) =>
        p.rssGrowthBytes === undefined ? undefined : p.rssGrowthBytes / 2 ** 20,
      ),
    });
  }
  const pw = 460;
  const ph = 340;
  const width = Math.max(1, panels.length) * pw;
  const height = ph + 56;
  const systems = SYSTEMS.filter((s) => panels.some((p) => p.series.some((q) => q.system === s)));
  const legend = systems.map((s, i) => {
    const x = 20 + i * 150;
    return (
      `<line x1="${x}" x2="${x + 24}" y1="${height - 20}" y2="${height - 20}" stroke="${COLORS[s]}" stroke-width="3"/>` +
      `<text x="${x + 30}" y="${height - 16}" class="legend">${esc(SYSTEM_LABELS[s])}</text>`
    );
  });
  const body = panels.flatMap((p, i) => panel(p, i * pw, 0, pw, ph));
  const m = res.machine;
  const caption = `${m.cpus} x ${m.cpuModel}, Node ${m.node}${res.quick ? ' (quick run)' : ''}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" role="img" aria-labelledby="sesame-bench-title">`,
    '<title id="sesame-bench-title">Sesame, raw TCP and TLS 1.3-PSK: server CPU per connection and memory per idle connection as load grows</title>',
    '<style>.title{font-size:14px;font-weight:bold;text-anchor:middle}.label{font-size:12px;text-anchor:middle}' +
      '.xtick{font-size:11px;text-anchor:middle}.ytick{font-size:11px;text-anchor:end}.legend{font-size:12px}' +
      '.caption{font-size:10px;fill:#666;text-anchor:end}.grid{stroke:#e5e5e5}.axis{stroke:#333}</style>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...body,
    ...legend,
    `<text x="${width - 10}" y="${height - 16}" class="caption">${esc(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
