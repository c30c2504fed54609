#!/usr/bin/env node
// Run the fuzz properties of test/fuzz/ and print how many cases ran and how many failed.
//
//   npm run fuzz                     the CI counts (about 10^6 cases), one vitest worker per core
//   npm run fuzz -- --minutes 10     every test file runs for 10 minutes, all files at once
//   npm run fuzz -- --seed 1234      replay with a fixed fast-check seed
//   npm run fuzz -- --scale 0.1      a tenth of the CI counts
//
// The properties read FUZZ_MINUTES, FUZZ_SEED, FUZZ_SCALE and FUZZ_REPORT (see
// test/fuzz/runner.ts). The fuzz targets are the TypeScript sources, so no build is needed.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    seed: { type: 'string' },
    scale: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  process.stdout.write('usage: npm run fuzz -- [--minutes N] [--seed S] [--scale X]\n');
  process.exit(0);
}

const minutes = values.minutes === undefined ? 0 : Number(values.minutes);
if (!Number.isFinite(minutes) || minutes < 0) {
  process.stderr.write('fuzz: --minutes must be a non-negative number\n');
  process.exit(2);
}
if (values.seed !== undefined && !/^-?\d+$/.test(values.seed)) {
  process.stderr.write('fuzz: --seed must be an integer\n');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'sesame-fuzz-'));
const report = join(dir, 'report.jsonl');
const files = readdirSync('test/fuzz').filter((f) => f.endsWith('.test.ts'));
// Time-boxed: every file at once, so the whole run takes the time asked for.
const workers = minutes > 0 ? files.length : Math.max(1, availableParallelism());
const env = {
  ...process.env,
  SESAME_SKIP_BUILD: '1',
  FUZZ_REPORT: report,
  ...(minutes > 0 ? { FUZZ_MINUTES: String(minutes) } : {}),
  ...(values.seed !== undefined ? { FUZZ_SEED: values.seed } : {}),
  ...(values.scale !== undefined ? { FUZZ_SCALE: values.scale } : {}),
};

const started = Date.now();
const args = ['vitest', 'run', 'test/fuzz', `--maxWorkers=${workers}`];
process.stdout.write(
  `fuzz: ${files.length} files, ${workers} workers, ${minutes > 0 ? `${minutes} min per file` : 'CI counts'}\n`,
);
const child = spawn('npx', args, { env, stdio: 'inherit' });
const code = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));

let lines = [];
try {
  lines = readFileSync(report, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
} catch {
  // no property ran
}
rmSync(dir, { recursive: true, force: true });

const rows = lines.map((l) => [
  l.suite,
  l.property,
  String(l.cases),
  l.failed ? 'FAILED' : 'ok',
  String(l.seed),
  (l.ms / 1000).toFixed(1),
]);
const header = ['suite', 'property', 'cases', 'result', 'seed', 's'];
const widths = header.map((h, i) =>
  Math.min(i === 1 ? 70 : 40, Math.max(h.length, ...rows.map((r) => r[i].length))),
);
const fmt = (r) =>
  r.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.slice(0, widths[i]).padEnd(widths[i]))).join('  ');
process.stdout.write(`\n${fmt(header)}\n${fmt(widths.map((w) => '-'.repeat(w)))}\n`);
for (const r of rows) process.stdout.write(`${fmt(r)}\n`);
const cases = lines.reduce((s, l) => s + l.cases, 0);
const failures = lines.filter((l) => l.failed).length;
const wall = ((Date.now() - started) / 1000).toFixed(1);
process.stdout.write(
  `\ncases run: ${cases}   properties: ${lines.length}   failures: ${failures}   wall time: ${wall} s   vitest exit code: ${code}\n`,
);
process.exit(code === 0 && failures === 0 ? 0 : 1);
