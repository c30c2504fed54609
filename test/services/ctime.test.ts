import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { isSesameError } from '../../src/errors.js';
import { ctime } from '../../src/services/ctime.js';
import { echoReply, timestampReply } from '../../src/services/timestamp.js';
import { prng } from '../helpers/prng.js';

// The reference is CPython itself: time.ctime() and the seed server's reply format.
const PY_CTIME = 'import json, sys, time\nprint(json.dumps([time.ctime(t) for t in json.load(sys.stdin)]))';
const PY_REPLY = [
  'import json, sys, time',
  'args = json.load(sys.stdin)',
  "data = bytes.fromhex(args['hex'])",
  "reply = '[%s] %s' % (time.ctime(args['t']), data.decode('utf-8'))",
  "print(reply.encode('utf-8').hex())",
].join('\n');

const ORIGINAL_TZ = process.env.TZ;

afterEach(() => {
  setTz(ORIGINAL_TZ);
});

/** Change the zone Node's Date uses (Node re-reads TZ when process.env.TZ is assigned or deleted). */
function setTz(zone: string | undefined): void {
  if (zone === undefined) delete process.env.TZ;
  else process.env.TZ = zone;
}

/** Run a Python snippet with `input` as JSON on stdin, in the same zone as this process now. */
function python(code: string, input: unknown): string {
  return execFileSync('python3', ['-c', code], {
    input: JSON.stringify(input),
    env: { ...process.env },
    encoding: 'utf8',
  }).trim();
}

function pythonCtime(seconds: readonly number[]): string[] {
  return JSON.parse(python(PY_CTIME, seconds)) as string[];
}

const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) =>
  Date.UTC(y, mo - 1, d, h, mi, s) / 1000;

/** Instants (in seconds) that stress the format in any zone from 1970 on. */
function interestingSeconds(): number[] {
  const out: number[] = [0, 1, 59, 60, 86399, 86400, 1525869851, 1795980403, 2147483647, 2147483648];
  // Every hour (and the seconds either side) across each year boundary: local midnight on
  // 1 January falls among these in every zone, whatever its offset.
  for (const year of [1971, 1999, 2000, 2026, 2038]) {
    for (let h = -15; h <= 15; h++) {
      const t = utc(year, 1, 1) + h * 3600;
      out.push(t - 1, t, t + 1);
    }
    out.push(utc(year, 1, 1) + 1800, utc(year, 1, 1) + 45 * 60);
  }
  // Leap days and the days around them, including 2000 (leap) and 2100 (not leap).
  for (const year of [1972, 2000, 2024, 2028, 2100]) {
    for (let d = -1; d <= 2; d++)
      out.push(utc(year, 2, 28 + d, 12, 34, 56), utc(year, 2, 28 + d, 23, 59, 59));
  }
  // Single-digit days of every month, morning and evening.
  for (let month = 1; month <= 12; month++) {
    for (let day = 1; day <= 9; day++)
      out.push(utc(2025, month, day, 3, 4, 5), utc(2025, month, day, 21, 9, 7));
  }
  // Daylight-saving changes (US, EU, Lord Howe's half hour) at the instant and around it.
  const changes = [
    utc(2024, 3, 10, 7),
    utc(2024, 11, 3, 6),
    utc(2026, 3, 8, 7),
    utc(2026, 11, 1, 6),
    utc(2024, 3, 31, 1),
    utc(2024, 10, 27, 1),
    utc(2026, 3, 29, 1),
    utc(2026, 10, 25, 1),
    utc(2024, 4, 6, 15),
    utc(2024, 10, 5, 15, 30),
    utc(1988, 4, 16, 18),
    utc(1988, 9, 10, 17),
  ];
  for (const t of changes)
    for (const d of [-3601, -3600, -1801, -1, 0, 1, 1799, 1800, 3599, 3600]) out.push(t + d);
  // Pseudo-random instants from 1970 to 2100.
  const random = prng(0x5e5a3e);
  for (let i = 0; i < 150; i++) out.push(Math.floor(random() * utc(2100, 1, 1)));
  return out;
}

function compareWithPython(seconds: readonly number[]): void {
  const expected = pythonCtime(seconds);
  const actual = seconds.map((t) => ctime(new Date(t * 1000)));
  const mismatches = seconds
    .map((t, i) => ({ t, expected: expected[i], actual: actual[i] }))
    .filter((m) => m.expected !== m.actual);
  expect(mismatches.slice(0, 5)).toEqual([]);
  expect(actual).toHaveLength(seconds.length);
}

describe('ctime', () => {
  it('follows process.env.TZ changes in this Node (the premise of the zone tests)', () => {
    setTz('UTC');
    const utcHours = new Date(0).getHours();
    setTz('Asia/Shanghai');
    const shanghaiHours = new Date(0).getHours();
    expect([utcHours, shanghaiHours]).toEqual([0, 8]);
    setTz('America/New_York');
    expect(new Date(0).getHours()).toBe(19);
  });

  it('formats known instants', () => {
    setTz('UTC');
    expect(ctime(new Date('2026-11-29T19:26:43Z'))).toBe('Sun Nov 29 19:26:43 2026');
    expect(ctime(new Date('1970-01-01T00:00:00Z'))).toBe('Thu Jan  1 00:00:00 1970');
    expect(ctime(new Date('2024-02-29T09:05:03.999Z'))).toBe('Thu Feb 29 09:05:03 2024');
    setTz('Asia/Shanghai');
    expect(ctime(new Date('2018-05-09T12:44:11Z'))).toBe('Wed May  9 20:44:11 2018');
    setTz('America/New_York');
    expect(ctime(new Date('2018-05-09T12:44:11Z'))).toBe('Wed May  9 08:44:11 2018');
  });

  it('matches python3 time.ctime() in the test process’s own zone', () => {
    setTz(ORIGINAL_TZ);
    compareWithPython(interestingSeconds());
  });

  it.each([
    'UTC',
    'Asia/Shanghai',
    'America/New_York',
    'Europe/London',
    'Australia/Lord_Howe',
    'Asia/Kathmandu',
    'America/St_Johns',
    'Pacific/Kiritimati',
  ])('matches python3 time.ctime() in %s', (zone) => {
    setTz(zone);
    compareWithPython(interestingSeconds());
  });

  it('matches python3 for fractional, negative and early instants (UTC)', () => {
    setTz('UTC');
    // Python floors fractional timestamps; years below 1000 are printed without padding.
    compareWithPython([
      0.5,
      1.999,
      -0.5,
      -1,
      -1.5,
      -86400 * 365.25 * 30,
      utc(1900, 2, 28, 23, 59, 59),
      utc(1900, 3, 1),
      utc(1600, 2, 29, 1, 2, 3),
      utc(999, 12, 31, 23, 59, 59),
      utc(1, 1, 4),
      utc(9999, 12, 31, 23, 59, 59),
    ]);
  });

  it('refuses an invalid date', () => {
    let err: unknown;
    try {
      ctime(new Date(Number.NaN));
    } catch (e) {
      err = e;
    }
    expect(isSesameError(err, 'ERR_INVALID_ARGUMENT')).toBe(true);
  });
});

describe('timestampReply', () => {
  const message = Buffer.from('百变星君', 'utf8');

  it.each(['UTC', 'Asia/Shanghai', 'America/New_York'])(
    'is byte-identical to the Python server in %s',
    (zone) => {
      setTz(zone);
      for (const t of [utc(2026, 11, 29, 19, 26, 43), utc(2018, 5, 9, 12, 44, 11), utc(2024, 3, 1, 23, 30)]) {
        const expected = python(PY_REPLY, { t, hex: message.toString('hex') });
        expect(timestampReply(message, new Date(t * 1000)).toString('hex')).toBe(expected);
      }
    },
  );

  it('prefixes the bracketed ctime and leaves the message bytes alone', () => {
    setTz('UTC');
    const now = new Date('2026-11-29T19:26:43Z');
    expect(timestampReply(message, now).toString('utf8')).toBe('[Sun Nov 29 19:26:43 2026] 百变星君');
    const raw = new Uint8Array([0xff, 0x00, 0xe7, 0x99]);
    const reply = timestampReply(raw, now);
    expect(reply.subarray(reply.length - raw.length)).toEqual(Buffer.from(raw));
    expect(timestampReply(new Uint8Array(0), now).toString()).toBe('[Sun Nov 29 19:26:43 2026] ');
  });

  it('returns a fresh buffer', () => {
    const input = Buffer.from('hi');
    const reply = timestampReply(input, new Date(0));
    input[0] = 0x78;
    expect(reply.subarray(-2).toString()).toBe('hi');
  });
});

describe('echoReply', () => {
  it('returns an equal copy', () => {
    const input = new Uint8Array([1, 2, 3]);
    const reply = echoReply(input);
    expect(reply).toEqual(Buffer.from([1, 2, 3]));
    input[0] = 9;
    expect(reply[0]).toBe(1);
    expect(Buffer.isBuffer(reply)).toBe(true);
  });
});
