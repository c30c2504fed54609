/**
 * Graceful stop for `sesame serve`: resolves on the first SIGINT or SIGTERM (logged); a second
 * one forces the exit. Install it before announcing "listening on", so that a script may stop the
 * server as soon as it reads that line.
 */

import type { Logger } from './logger.js';

export function untilStopSignal(log: Logger): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ event: 'shutdown', signal }, `${signal}: closing gracefully`);
      process.once(signal, () => process.exit(1)); // a second signal forces the exit
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
