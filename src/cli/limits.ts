/**
 * The connection and input limits of a stream server as `serve` flags, for every profile:
 * `--max-connections` (declared with the other serve options), `--input-budget`,
 * `--max-handshakes-per-source`, `--max-connections-per-source`, `--first-byte-timeout`.
 *
 * Rules:
 * - Each flag sets the SesameServer option of the same meaning; its default is the server's own
 *   constant, shown in help in the syntax the flag takes.
 * - A value the server would refuse is refused here, as a bad argument naming the flag (exit 2),
 *   not at start-up.
 * - Like every serve option, each can come from the config file under its long name.
 */

import { type Command, InvalidArgumentError, Option } from 'commander';
import { MAX_TIMER_MS } from '../net/options.js';
import {
  DEFAULT_FIRST_BYTE_TIMEOUT_MS,
  DEFAULT_INPUT_BUDGET_BYTES,
  DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
  MAX_CONNECTION_COUNT,
  type ServerOptions,
} from '../net/stream-server.js';
import { formatDuration, parseDuration } from './durations.js';
import { formatSize, parseSize } from './sizes.js';

/** What the limit flags parse to (commander's option names). */
export interface ServerLimitOptions {
  maxConnections: number;
  inputBudget: number;
  maxHandshakesPerSource: number;
  maxConnectionsPerSource?: number | undefined;
  firstByteTimeout: number;
}

/** A positive whole number, as typed (`0`, `-1`, `1.5`, `1e3` are refused: exit 2). */
export function countArg(value: string): number {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError('expected a positive whole number');
  return Number(value);
}

/** A connection count up to the server's own bound, refused here (exit 2) rather than by the server. */
export function boundedCountArg(value: string): number {
  const n = countArg(value);
  if (n > MAX_CONNECTION_COUNT) throw new InvalidArgumentError(`at most ${MAX_CONNECTION_COUNT}`);
  return n;
}

/** A duration a timer can wait (0 to 2^31 - 1 ms), refused here (exit 2) rather than by the server. */
export function timerDurationArg(value: string): number {
  const ms = parseDuration(value);
  if (ms > MAX_TIMER_MS) throw new InvalidArgumentError(`at most ${formatDuration(MAX_TIMER_MS)}`);
  return ms;
}

/** The stream server's limits from `serve`'s flags (their defaults are the server's). */
export function serverLimits(
  opts: ServerLimitOptions,
): Pick<
  ServerOptions,
  | 'maxConnections'
  | 'inputBudgetBytes'
  | 'maxHandshakesPerSource'
  | 'maxConnectionsPerSource'
  | 'firstByteTimeoutMs'
> {
  return {
    maxConnections: opts.maxConnections,
    inputBudgetBytes: opts.inputBudget,
    maxHandshakesPerSource: opts.maxHandshakesPerSource,
    maxConnectionsPerSource: opts.maxConnectionsPerSource,
    firstByteTimeoutMs: opts.firstByteTimeout,
  };
}

/** The limits of a stream server as `serve` flags (after --max-connections): one place for every profile. */
export function addServerLimitOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--input-budget <size>',
        'most received input held across all connections until it completes (partial messages, unterminated lines); over it the newest holders are closed',
      )
        .default(DEFAULT_INPUT_BUDGET_BYTES, formatSize(DEFAULT_INPUT_BUDGET_BYTES))
        .argParser(parseSize),
    )
    .addOption(
      new Option(
        '--max-handshakes-per-source <n>',
        'most handshakes in progress at once from one address; more are closed at accept',
      )
        .default(DEFAULT_MAX_HANDSHAKES_PER_SOURCE)
        .argParser(boundedCountArg),
    )
    .addOption(
      new Option(
        '--max-connections-per-source <n>',
        'most connections open at once from one address (default: --max-connections)',
      ).argParser(boundedCountArg),
    )
    .addOption(
      new Option(
        '--first-byte-timeout <duration>',
        'close a connection that sends nothing this long after accept (0: only the handshake deadline)',
      )
        .default(DEFAULT_FIRST_BYTE_TIMEOUT_MS, formatDuration(DEFAULT_FIRST_BYTE_TIMEOUT_MS))
        .argParser(timerDurationArg),
    );
}
