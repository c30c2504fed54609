/**
 * The operator's log: pino, as JSON lines when stdout is not a terminal, readable lines when it
 * is. Writes are synchronous so that a line is out before the event it reports is acted upon
 * (scripts wait for "listening on"). Secrets never reach the logger: key ring entries print as
 * "[secret]", and only key ids and principals are logged.
 */

import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export function createLogger(options: { pretty?: boolean; level?: string } = {}): Logger {
  const level = options.level ?? process.env.SESAME_LOG_LEVEL ?? 'info';
  const usePretty = options.pretty ?? process.stdout.isTTY === true;
  if (usePretty) {
    return pino(
      { level, base: undefined },
      pretty({ sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss', hideObject: true }),
    );
  }
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 1, sync: true }));
}
