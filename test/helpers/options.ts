/**
 * What each option must allow, written out independently of the rule tables in src/, and the
 * values that probe it: for a whole number, one below and one above its range and the usual
 * non-integers; for a flag, non-booleans; the boundary values that must be accepted.
 */
import { expect } from 'vitest';
import { isSesameError } from '../../src/errors.js';
import { deterministicEntropy, MAX_DATAGRAM_PAYLOAD_BYTES } from '../../src/protocol/index.js';
import { NOW } from './pair.js';

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

/**
 * The core's policies (src/protocol/options.ts), which every layer above extends: one expectation
 * each, shared by the tests of the core and of the net layer.
 */
export const ENVIRONMENT: ExpectedTable = {
  entropy: {
    allowed: 'an Entropy',
    bad: [{}, 5, null, 'random'],
    good: [deterministicEntropy('other')],
  },
  now: { allowed: 'a function returning milliseconds', bad: [NOW, null, 'now'], good: [() => NOW] },
};
/** The record layer's policy. */
export const RECORD: ExpectedTable = {
  maxMessageBytes: { min: 1, max: 2 ** 31 - 1 },
  keyUpdateAfterRecords: { min: 2, max: SAFE },
};
/** The server's handshake policy. */
export const SERVER_HANDSHAKE: ExpectedTable = {
  requireForwardSecrecy: 'boolean',
  maxClockSkewMs: { min: 0, max: TWO_31 },
  replayCacheEntries: { min: 1, max: 2 ** 24 },
};
/** The limits both datagram ends share. */
export const DATAGRAM: ExpectedTable = {
  maxPayloadBytes: { min: 1, max: MAX_DATAGRAM_PAYLOAD_BYTES },
  maxDatagramAgeMs: { min: 1, max: TWO_31 },
  replayWindowBits: {
    allowed: 'a power of two from 64 to 65536',
    bad: [32, 63, 100, 65535, 131072, Number.NaN, 1.5, -5, Number.POSITIVE_INFINITY, '2048'],
    good: [64, 65536],
  },
  maxDatagramsPerSession: { min: 1, max: SAFE },
};
