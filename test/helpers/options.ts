/**
 * What each option must allow, written out independently of the rule tables in src/, and the
 * values that probe it: for a whole number, one below and one above its range and the usual
 * non-integers; for a flag, non-booleans; the boundary values that must be accepted.
 */
import { expect } from 'vitest';
import { isSesameError } from '../../src/errors.js';

/** What one option allows. */
export type Expected =
  | { readonly min: number; readonly max: number }
  | 'boolean'
  | { readonly allowed: string; readonly bad: readonly unknown[]; readonly good: readonly unknown[] };

/** Expected ranges by option name. */
export type ExpectedTable = Readonly<Record<string, Expected>>;

/** Values `expected` must refuse. */
export function badValues(expected: Expected): unknown[] {
  if (expected === 'boolean') return ['yes', 1, 0, null];
  if ('bad' in expected) return [...expected.bad];
  return [
    expected.min - 1,
    expected.max + 1,
    Number.NaN,
    1.5,
    expected.min + 0.5,
    -5,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    '5',
  ];
}

/** Values `expected` must accept: the boundaries. */
export function goodValues(expected: Expected): unknown[] {
  if (expected === 'boolean') return [true, false];
  if ('good' in expected) return [...expected.good];
  return [expected.min, expected.max];
}

/** What the error message must say after the option's name. */
export function allowedText(expected: Expected): string {
  if (expected === 'boolean') return 'true or false';
  if ('allowed' in expected) return expected.allowed;
  return `a whole number from ${expected.min} to ${expected.max}`;
}

/** The cases of a table: [name, value, expected] for every value to refuse. */
export function refusals(table: ExpectedTable): [string, unknown, Expected][] {
  return Object.entries(table).flatMap(([name, e]) =>
    badValues(e).map((v): [string, unknown, Expected] => [name, v, e]),
  );
}

/** The cases of a table: [name, value] for every boundary value to accept. */
export function acceptances(table: ExpectedTable): [string, unknown][] {
  return Object.entries(table).flatMap(([name, e]) => goodValues(e).map((v): [string, unknown] => [name, v]));
}

/** A readable label for a value in a test name. */
export function label(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object' && value !== null) return 'an object';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** Assert `err` is ERR_INVALID_ARGUMENT naming `name` and what it allows. */
export function expectRefusal(err: unknown, name: string, expected: Expected): void {
  expect(isSesameError(err, 'ERR_INVALID_ARGUMENT'), String(err)).toBe(true);
  expect((err as Error).message).toContain(`${name} must be ${allowedText(expected)}`);
}

/** Run `make` and assert it throws ERR_INVALID_ARGUMENT naming `name`. */
export function expectThrowsRefusal(make: () => unknown, name: string, expected: Expected): void {
  let err: unknown;
  try {
    make();
  } catch (e) {
    err = e;
  }
  expectRefusal(err, name, expected);
}

/** Await `attempt` and assert it rejects with ERR_INVALID_ARGUMENT naming `name`. */
export async function expectRejectsRefusal(
  attempt: () => Promise<unknown>,
  name: string,
  expected: Expected,
): Promise<void> {
  let err: unknown;
  try {
    await attempt();
  } catch (e) {
    err = e;
  }
  expectRefusal(err, name, expected);
}

/** Assert `err` (from an accepted option) is anything but an option refusal. */
export function expectNotRefused(err: unknown): void {
  if (err !== undefined) expect(isSesameError(err, 'ERR_INVALID_ARGUMENT'), String(err)).toBe(false);
}

export const TWO_31 = 2 ** 31;
export const TIMER_MAX = 2 ** 31 - 1;
export const SAFE = Number.MAX_SAFE_INTEGER;
