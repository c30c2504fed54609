/**
 * The bench's command line, run by `npm run bench` (dev/bench/main.ts).
 *
 *   --quick            a short smoke run (well under a minute)
 *   --json PATH        write the results (rows, targets, scaling curves) as JSON
 *   --svg PATH         write the scaling chart (docs/perf-scaling.svg)
 *   --systems LIST     raw,tls-psk,secret-stream,spiped,sesame-psk,sesame-fs,... (default: all; spiped where installed)
 *   --workloads LIST   churn,persistent,burst,bulk,idle (default: all)
 *   --repeat N         measure every point N times (idle: N walks of the levels), keep the median
 *   --duration MS      measured window of each churn and persistent point
 *   --concurrency LIST churn concurrency levels (default 1,4,16,32,64,256)
 *   --cpu-prof DIR     write a V8 CPU profile of every server process into DIR
 *   --heap-profile     idle: break each server's heap growth per connection down by object kind
 *   --core             instead: the protocol core's costs without sockets (the floor)
 *   --tunnel           instead: the tunnel workload (dev/bench/tunnel.ts)
 *
 * The report goes to stdout; progress goes to stderr when that is a terminal. The run fails
 * (exit 1) when any reply was wrong or any operation failed; a missed target is reported, not
 * an error.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { renderCore, runCore } from './core.js';
import { ALL_SYSTEMS, ALL_WORKLOADS, runBench } from './orchestrator.js';
import { FULL_PLAN, type Plan, QUICK_PLAN, type WorkloadName } from './plan.js';
import { renderReport } from './report.js';
import { spipedInstalled } from './spiped.js';
import { renderScalingSvg } from './svg.js';
import type { SystemName } from './systems.js';
import { renderTunnel, runTunnel } from './tunnel.js';

interface BenchCliOptions {
  quick?: boolean;
  json?: string;
  svg?: string;
  systems?: SystemName[];
  workloads?: WorkloadName[];
  cpuProf?: string;
  core?: boolean;
  repeat?: number;
  duration?: number;
  concurrency?: number[];
  heapProfile?: boolean;
  tunnel?: boolean;
}

function positiveInt(value: string): number {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError('expected a positive whole number');
  return Number(value);
}

function intList(value: string): number[] {
  return value.split(',').map((v) => positiveInt(v.trim()));
}

/** The plan for these options: the full or quick plan with the overrides applied. */
function planFor(opts: BenchCliOptions): Plan {
  const base = opts.quick === true ? QUICK_PLAN : FULL_PLAN;
  const concurrency = opts.concurrency ?? base.churn.concurrency;
  const maxMs = opts.duration;
  return {
    ...base,
    churn: {
      ...base.churn,
      concurrency,
      rows: base.churn.rows.filter((r) => concurrency.includes(r)),
      ...(maxMs === undefined ? {} : { maxMs }),
    },
    persistent: { ...base.persistent, ...(maxMs === undefined ? {} : { maxMs }) },
  };
}

function listArg<T extends string>(allowed: readonly T[]): (value: string) => T[] {
  return (value) => {
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const s of items) {
      if (!allowed.includes(s as T)) {
        throw new InvalidArgumentError(`unknown "${s}"; expected some of ${allowed.join(',')}`);
      }
    }
    if (items.length === 0) throw new InvalidArgumentError('empty list');
    return items as T[];
  };
}

function writeOut(path: string, text: string): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, text);
}

/** Where the bench writes: the report to stdout, progress to stderr (when it is a terminal). */
export interface BenchIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const processIo: BenchIo = { stdout: process.stdout, stderr: process.stderr };

/** Add the bench's options and action to `cmd`; `invocation` names the command in the report. */
export function configureBenchCommand(cmd: Command, invocation: string, io: BenchIo = processIo): Command {
  return cmd
    .description(
      'benchmark Sesame (forward secrecy and PSK-only) against raw net and TLS 1.3 PSK on loopback: ' +
        'churn, persistent round trips, bulk transfer, idle memory',
    )
    .option('--quick', 'a short smoke run (its numbers are not a reference)')
    .option('--json <path>', 'write the results as JSON')
    .option('--svg <path>', 'write the scaling chart as SVG')
    .option('--systems <list>', `systems to run (default: ${ALL_SYSTEMS.join(',')})`, listArg(ALL_SYSTEMS))
    .option(
      '--workloads <list>',
      `workloads to run (default: ${ALL_WORKLOADS.join(',')})`,
      listArg(ALL_WORKLOADS),
    )
    .option(
      '--repeat <n>',
      'measure every point n times (idle: n walks of the levels) and keep the median',
      positiveInt,
    )
    .option('--duration <ms>', 'measured window of each churn and persistent point', positiveInt)
    .option('--concurrency <list>', 'churn concurrency levels, e.g. 1,4,16,32,64,256', intList)
    .option(
      '--cpu-prof <dir>',
      'write a V8 CPU profile of each server process (--tunnel: both sesame processes) into this directory',
    )
    .option('--heap-profile', "idle: break each server's heap growth per connection down by object kind")
    .option('--core', "instead: measure the protocol core's costs without sockets")
    .option(
      '--tunnel',
      'instead: a TCP service direct, through Sesame at both ends, through spiped at both ends',
    )
    .action(async (opts: BenchCliOptions) => {
      if (opts.tunnel === true) {
        const tunnel = await runTunnel(opts.quick === true, {
          execArgv:
            opts.cpuProf === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.cpuProf)}`],
        });
        io.stdout.write(renderTunnel(tunnel));
        if (opts.json !== undefined) writeOut(opts.json, `${JSON.stringify({ tunnel }, null, 2)}\n`);
        const wrong = tunnel.rows.filter((row) => !row.checked).map((row) => row.system);
        if (wrong.length > 0)
          throw new Error(`tunnel: the bulk bytes arrived changed through ${wrong.join(', ')}`);
        return;
      }
      if (opts.core === true) {
        const core = runCore(opts.quick === true ? 0.05 : 1);
        io.stdout.write(renderCore(core));
        if (opts.json !== undefined) writeOut(opts.json, `${JSON.stringify({ core }, null, 2)}\n`);
        return;
      }
      const args = process.argv.slice(2);
      const tty = io.stderr.isTTY === true;
      // spiped runs by default only where the Debian package is installed.
      const systems = opts.systems ?? ALL_SYSTEMS.filter((s) => s !== 'spiped' || spipedInstalled());
      const results = await runBench({
        plan: planFor(opts),
        repeat: opts.repeat,
        heapProfile: opts.heapProfile === true,
        quick: opts.quick === true,
        systems: ALL_SYSTEMS.filter((s) => systems.includes(s)),
        workloads: opts.workloads ?? ALL_WORKLOADS,
        command: args.length === 0 ? invocation.replace(/ --$/, '') : `${invocation} ${args.join(' ')}`,
        serverExecArgv:
          opts.cpuProf === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.cpuProf)}`],
        progress: tty ? (line) => io.stderr.write(`\r\x1b[K${line}`) : undefined,
      });
      if (tty) io.stderr.write('\r\x1b[K');
      io.stdout.write(renderReport(results));
      if (opts.json !== undefined) writeOut(opts.json, `${JSON.stringify(results, null, 2)}\n`);
      if (opts.svg !== undefined) writeOut(opts.svg, renderScalingSvg(results));
      const r = results.replies;
      if (r.wrong > 0 || r.errors > 0) {
        throw new Error(`bench: ${r.wrong} wrong replies and ${r.errors} failed operations`);
      }
    });
}
