/**
 * The one duration and date syntax of the command line and the config file.
 *
 * Rules:
 * - A duration is one or more `NUMBER UNIT` parts, largest unit first, each unit at most once:
 *   `500ms`, `5s`, `24h`, `1h30m`, `7d`. Units: `d`, `h`, `m`, `s`, `ms`. A bare whole number is
 *   milliseconds (what the options always took), so old scripts keep working.
 * - Help shows every default in the same syntax ({@link formatDuration}), so what help prints can
 *   be typed back.
 * - A date is an ISO 8601 date and time with an offset (`2027-01-01T00:00:00Z`) or a plain date
 *   (`2027-01-01`), which means midnight UTC of that day. Impossible dates (`2027-02-30`) are
 *   refused rather than rolled over.
 * - Parsers throw commander's InvalidArgumentError: the command line then names the option and
 *   exits 2.
 */

import { InvalidArgumentError } from 'commander';

/** Milliseconds in each duration unit, largest first (the order parts must come in). */
export const DURATION_UNITS: readonly (readonly [string, number])[] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1],
];

const PART = /(\d+)(ms|d|h|m|s)/y;

/** Examples shown when a duration is refused. */
const DURATION_HELP =
  'expected a duration such as 500ms, 5s, 24h, 1h30m or 7d (a bare number is milliseconds)';

/**
 * Milliseconds in `text`: `500ms`, `5s`, `1h30m`, `7d`, or a bare whole number of milliseconds.
 * @throws InvalidArgumentError when `text` is not a duration or exceeds 2^53-1 ms.
 */
export function parseDuration(text: string): number {
  const value = text.trim();
  if (/^\d+$/.test(value)) return checkedMs(Number(value));
  if (value === '') throw new InvalidArgumentError(DURATION_HELP);
  let total = 0;
  let lastUnit = -1;
  PART.lastIndex = 0;
  while (PART.lastIndex < value.length) {
    const at = PART.lastIndex;
    const m = PART.exec(value);
    if (m === null || m.index !== at) throw new InvalidArgumentError(DURATION_HELP);
    const unit = DURATION_UNITS.findIndex(([name]) => name === m[2]);
    if (unit <= lastUnit)
      throw new InvalidArgumentError(`${DURATION_HELP}; units go largest first, once each`);
    lastUnit = unit;
    total += Number(m[1]) * (DURATION_UNITS[unit]?.[1] ?? 1);
  }
  return checkedMs(total);
}

function checkedMs(ms: number): number {
  if (!Number.isSafeInteger(ms)) throw new InvalidArgumentError(`${DURATION_HELP}; this one is too long`);
  return ms;
}

/** `ms` in the duration syntax, exactly (`90000` -> `1m30s`, `0` -> `0`, `1500` -> `1s500ms`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  let rest = ms;
  let text = '';
  for (const [name, size] of DURATION_UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      text += `${n}${name}`;
      rest -= n * size;
    }
  }
  return text;
}

/**
 * The time in `text`: an ISO 8601 date and time with `Z` or an offset, or a plain `YYYY-MM-DD`
 * (midnight UTC).
 * @throws InvalidArgumentError for anything else, or a day that does not exist.
 */
export function parseDate(text: string): Date {
  const value = text.trim();
  const plain = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const full = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.exec(value);
  const parts = plain ?? full;
  if (parts === null) {
    throw new InvalidArgumentError(
      'expected a date (2027-01-01, midnight UTC) or a date and time (2027-01-01T12:00:00Z)',
    );
  }
  const [year, month, day] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const date = new Date(plain !== null ? `${value}T00:00:00Z` : value);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (Number.isNaN(date.getTime()) || month < 1 || month > 12 || day < 1 || day > daysInMonth) {
    throw new InvalidArgumentError(`${value} is not a day of the calendar`);
  }
  return date;
}
