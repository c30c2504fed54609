/**
 * Runs the fuzz properties either by count (the CI run: `runs` cases each) or for a time budget
 * (`npm run fuzz -- --minutes N`, which sets FUZZ_MINUTES).
 *
 * Environment:
 * - FUZZ_MINUTES: when > 0, each test file gets this much wall time, shared equally between its
 *   properties; each property then runs `fc.check` with `interruptAfterTimeLimit` and no run
 *   limit.
 * - FUZZ_SEED: a fixed fast-check seed (to replay a failure); otherwise fast-check picks one and
 *   prints it on failure.
 * - FUZZ_SCALE: multiplies every CI count (e.g. 0.1 for a quick local pass).
 * - FUZZ_REPORT: a file to which one JSON line per property is appended (name, cases, failed,
 *   seed, ms); scripts/fuzz.mjs reads it to print the totals.
 * - FUZZ_STACKS=1: keep stack traces while the properties run. By default they are turned off
 *   for the duration of a property (Error.stackTraceLimit = 0): capturing a stack for every
 *   refused input costs more than most cases, and no behaviour depends on it. Set it when
 *   replaying a failure with FUZZ_SEED to see where an unexpected exception came from.
 */

import { appendFileSync } from 'node:fs';
import fc from 'fast-check';
import { it } from 'vitest';

const minutes = Number(process.env.FUZZ_MINUTES ?? '0');
/** Whether the properties run for a time budget instead of a count. */
export const TIME_BOXED = Number.isFinite(minutes) && minutes > 0;
const scale = Number(process.env.FUZZ_SCALE ?? '1');
const fixedSeed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const reportFile = process.env.FUZZ_REPORT;
const keepStacks = process.env.FUZZ_STACKS === '1';

/** One named property and the number of cases the CI run gives it. */
export interface FuzzProperty {
  readonly name: string;
  readonly runs: number;
  check(params: fc.Parameters<never>): fc.RunDetails<unknown>;
}

/**
 * A property over one arbitrary. `predicate` throws (any Error) when an invariant is broken; its
 * return value is ignored.
 */
export function defineProperty<T>(
  name: string,
  runs: number,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => void,
): FuzzProperty {
  return {
    name,
    runs,
    check: (params) =>
      fc.check(
        fc.property(arbitrary, (value) => {
          predicate(value);
        }),
        params as unknown as fc.Parameters<[T]>,
      ) as fc.RunDetails<unknown>,
  };
}

/** The line appended to FUZZ_REPORT for one property run. */
export interface FuzzReportLine {
  readonly suite: string;
  readonly property: string;
  readonly cases: number;
  readonly failed: boolean;
  readonly seed: number;
  readonly ms: number;
}

function runOne(suite: string, p: FuzzProperty, budgetMs: number): void {
  const base = fixedSeed === undefined ? {} : { seed: fixedSeed };
  const params: fc.Parameters<never> = TIME_BOXED
    ? { ...base, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: budgetMs }
    : { ...base, numRuns: Math.max(1, Math.round(p.runs * (Number.isFinite(scale) ? scale : 1))) };
  const started = performance.now();
  const stackTraceLimit = Error.stackTraceLimit;
  if (!keepStacks) Error.stackTraceLimit = 0;
  let details: fc.RunDetails<unknown>;
  try {
    details = p.check(params);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  const ms = performance.now() - started;
  if (reportFile !== undefined) {
    const line: FuzzReportLine = {
      suite,
      property: p.name,
      cases: details.numRuns,
      failed: details.failed,
      seed: details.seed,
      ms: Math.round(ms),
    };
    appendFileSync(reportFile, `${JSON.stringify(line)}\n`);
  }
  if (details.failed) {
    const cause = details.errorInstance;
    const why = cause instanceof Error ? (cause.stack ?? `${cause.name}: ${cause.message}`) : String(cause);
    throw new Error(`${fc.defaultReportMessage(details) ?? `property ${p.name} failed`}\n${why}`);
  }
}

/** Register one vitest test per property. */
export function fuzzSuite(suite: string, properties: readonly FuzzProperty[]): void {
  for (const p of properties) {
    const budgetMs = TIME_BOXED ? (minutes * 60_000) / properties.length : 0;
    // The CI counts are sized to finish in seconds; the timeout only catches a hang.
    const timeoutMs = TIME_BOXED ? budgetMs + 300_000 : 300_000;
    it(p.name, () => runOne(suite, p, budgetMs), timeoutMs);
  }
}
