// The one duration and date syntax of the command line (src/cli/durations.ts).
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDate, parseDuration } from '../../src/cli/durations.js';

describe('durations', () => {
  it('reads every unit, compound forms, and bare milliseconds', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('1m30s250ms')).toBe(90_250);
    expect(parseDuration('2500')).toBe(2500);
    expect(parseDuration('0')).toBe(0);
  });

  it('refuses what is not a duration, naming the syntax', () => {
    for (const bad of ['', 'soon', '5 s', '-5s', '1.5h', '30m1h', '1h1h', '5x', 's', '1e3']) {
      expect(() => parseDuration(bad), bad).toThrow(InvalidArgumentError);
      expect(() => parseDuration(bad), bad).toThrow(/500ms, 5s, 24h, 1h30m or 7d/);
    }
    expect(() => parseDuration('999999999999999999d')).toThrow(/too long/);
  });

  it('formats defaults so that help shows what can be typed back', () => {
    for (const ms of [0, 1, 999, 1000, 10_000, 90_000, 300_000, 5_400_000, 86_400_000, 93_784_005]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
    expect(formatDuration(10_000)).toBe('10s');
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(1500)).toBe('1s500ms');
  });

  it('reads plain dates as midnight UTC and ISO dates with an offset; refuses impossible days', () => {
    expect(parseDate('2027-01-01').toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(parseDate('2028-02-29').toISOString()).toBe('2028-02-29T00:00:00.000Z');
    expect(parseDate('2027-01-01T12:30:00Z').toISOString()).toBe('2027-01-01T12:30:00.000Z');
    expect(parseDate('2027-01-01T12:30:00+02:00').toISOString()).toBe('2027-01-01T10:30:00.000Z');
    for (const bad of [
      '2027-02-29',
      '2027-13-01',
      '2027-00-10',
      '2027-04-31',
      'tomorrow',
      '2027-1-1',
      '2027-01-01T12:00',
    ]) {
      expect(() => parseDate(bad), bad).toThrow(InvalidArgumentError);
    }
  });
});
