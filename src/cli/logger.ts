/**
 * The operator's log: pino, as JSON lines or readable ("pretty") lines.
 *
 * Rules:
 * - The level comes from `--log-level`, else `SESAME_LOG_LEVEL`, else `info`; the format from
 *   `--log-format`, else JSON when stdout is not a terminal and pretty when it is. An unknown
 *   level or format is a bad argument (exit 2) that names where it came from: a typo in the
 *   environment must not silently log everything or nothing.
 * - A JSON line carries `level` as a name (`"info"`), `time` as an ISO 8601 UTC timestamp, `pid`,
 *   `event` and `msg`, as docs/operations.md shows. Every line has an `event`: a call that names
 *   none gets `event: "message"`, so a log shipper can always route on it.
 * - Writes are synchronous so that a line is out before the event it reports is acted upon
 *   (scripts wait for "listening on").
 * - Secrets never reach the logger: key ring entries print as "[secret]", and only key ids and
 *   principals are logged.
 */

import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import { UsageError } from './usage.js';

export type { Logger };

/** The levels `--log-level` and `SESAME_LOG_LEVEL` accept, most verbose first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
/** A log level name. */
export type LogLevel = (typeof LOG_LEVELS)[number];
/** The formats `--log-format` accepts. */
export const LOG_FORMATS = ['json', 'pretty'] as const;
/** A log format name. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** How to log, as the command line gives it (either may be absent). */
export interface LogSettings {
  /** `--log-level`; absent: `SESAME_LOG_LEVEL`, then `info`. */
  readonly logLevel?: string | undefined;
  /** `--log-format`; absent: JSON unless stdout is a terminal. */
  readonly logFormat?: string | undefined;
}

/** A bad `--log-level`, `--log-format` or `SESAME_LOG_LEVEL`: the command line exits 2. */
export class LogSettingsError extends UsageError {}

/**
 * The level to log at: `logLevel`, else the environment's `SESAME_LOG_LEVEL`, else `info`.
 * @throws LogSettingsError naming the source when the value is not one of {@link LOG_LEVELS}.
 */
export function resolveLogLevel(
  logLevel: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): LogLevel {
  const fromEnv = env.SESAME_LOG_LEVEL;
  const [value, source] =
    logLevel !== undefined
      ? [logLevel, '--log-level']
      : fromEnv !== undefined && fromEnv !== ''
        ? [fromEnv, 'SESAME_LOG_LEVEL']
        : ['info', 'the default'];
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new LogSettingsError(
      `${source} ${JSON.stringify(value)} is not a log level; use one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  return value as LogLevel;
}

/**
 * The logger `settings` ask for.
 * @throws LogSettingsError for an unknown level or format.
 */
export function createLogger(settings: LogSettings = {}): Logger {
  const level = resolveLogLevel(settings.logLevel);
  const format = settings.logFormat ?? (process.stdout.isTTY === true ? 'pretty' : 'json');
  if (!(LOG_FORMATS as readonly string[]).includes(format)) {
    throw new LogSettingsError(`--log-format ${JSON.stringify(format)}: use json or pretty`);
  }
  // The call's own fields win over the mixin's (pino's default merge), so `event` is only a fallback.
  const mixin = () => ({ event: 'message' });
  if (format === 'pretty') {
    return pino(
      { level, base: undefined, mixin },
      pretty({
        sync: true,
        colorize: process.stdout.isTTY === true,
        translateTime: 'SYS:HH:MM:ss',
        hideObject: true,
      }),
    );
  }
  return pino(
    {
      level,
      base: { pid: process.pid },
      mixin,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 1, sync: true }),
  );
}
