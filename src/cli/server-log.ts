/**
 * The operator's log of a server: one event per connection accepted, authenticated, refused and
 * closed, plus failures. Refusals are rate-limited (a flood of bad handshakes must not flood the
 * log): at most `refusalsPerSecond` lines a second, then one line saying how many were left out.
 * Accept lines are limited the same way, separately (`acceptedPerSecond`): a flood of handshakes
 * that will be refused is first a flood of accepts, and the log must grow sublinearly under it.
 * Only key ids, principals, codes and addresses are logged, never key material.
 */

import type { EventEmitter } from 'node:events';
import { isSesameError } from '../errors.js';
import type { ServerEvents } from '../net/base-server.js';
import type { Logger } from './logger.js';

export interface ServerLogOptions {
  /** Refusal lines per second before they are summarised (default 20). */
  readonly refusalsPerSecond?: number | undefined;
  /** Log each accepted connection (default true). */
  readonly accepted?: boolean | undefined;
  /** Accept lines per second before they are summarised (default 100). */
  readonly acceptedPerSecond?: number | undefined;
  /** Log authentication results here (default true; false when the caller words them itself). */
  readonly auth?: boolean | undefined;
}

/** Send every event `server` reports to `log`. */
export function logServerEvents(
  server: EventEmitter<ServerEvents>,
  log: Logger,
  options: ServerLogOptions = {},
): void {
  const refusal = rateLimited(options.refusalsPerSecond ?? 20, (count) =>
    log.warn({ event: 'refused-suppressed', count }, `${count} more refusals were not logged`),
  );
  const accepted = rateLimited(options.acceptedPerSecond ?? 100, (count) =>
    log.info({ event: 'accepted-suppressed', count }, `${count} more accepted connections were not logged`),
  );

  if (options.accepted ?? true) {
    server.on('accepted', (remote) =>
      accepted(() => log.info({ event: 'accepted', remote }, `accepted ${remote}`)),
    );
  }
  server.on('auth', (e) => {
    if (options.auth === false) return;
    if (e.ok) {
      const s = e.session;
      log.info(
        {
          event: 'authenticated',
          remote: e.remote,
          keyId: s.keyId,
          principal: s.principal,
          profile: s.profile,
          forwardSecrecy: s.forwardSecrecy,
        },
        s.keyId === undefined
          ? `authenticated ${e.remote} (${s.profile})`
          : `authenticated ${e.remote} with key ${s.keyId} (${s.principal ?? '-'})`,
      );
    } else {
      refusal(() =>
        log.warn(
          { event: 'refused', remote: e.remote, code: e.code, reason: e.reason },
          `refused ${e.remote}: ${e.code}`,
        ),
      );
    }
  });
  server.on('busy', (remote) =>
    refusal(() =>
      log.warn({ event: 'refused', remote, code: 'ERR_SERVER_BUSY' }, `refused ${remote}: ERR_SERVER_BUSY`),
    ),
  );
  server.on('refused', (info) =>
    refusal(() =>
      log.warn(
        { event: 'refused', remote: info.remote, code: 'ERR_REQUEST_REFUSED', keyId: info.keyId },
        `refused ${info.remote}: ERR_REQUEST_REFUSED`,
      ),
    ),
  );
  server.on('session-closed', (e) =>
    log.info(
      {
        event: 'closed',
        remote: e.remote,
        keyId: e.keyId,
        durationMs: e.durationMs,
        bytesIn: e.bytesIn,
        bytesOut: e.bytesOut,
        messagesIn: e.messagesIn,
        messagesOut: e.messagesOut,
        code: e.error,
      },
      `closed ${e.remote} after ${e.durationMs} ms (${e.messagesIn} in, ${e.messagesOut} out)${e.error === undefined ? '' : `: ${e.error}`}`,
    ),
  );
  server.on('session-error', (err, remote) =>
    log.warn(
      { event: 'session-error', remote, code: err.code },
      `connection from ${remote} failed: ${err.code}`,
    ),
  );
  server.on('handler-error', (err, info) => {
    // A typed error is an expected outcome (a reply over the datagram limit): one line with its
    // code, no stack trace. Anything else is a bug in the service, logged with its stack.
    if (isSesameError(err)) {
      log.warn(
        { event: 'handler-error', remote: info.remote, code: err.code },
        `service could not answer ${info.remote}: ${err.message} (${err.code})`,
      );
      return;
    }
    log.error({ event: 'handler-error', err }, `service handler failed: ${String(err)}`);
  });
  server.on('timeout', (info) =>
    log.info(
      { event: 'timeout', remote: info.remote, code: 'ERR_IDLE_TIMEOUT' },
      `closed idle connection ${info.remote}`,
    ),
  );
}

/**
 * At most `perSecond` calls of `write` per one-second window; the calls left out are counted and
 * reported through `summarise` when the next window opens with a line to write.
 */
function rateLimited(perSecond: number, summarise: (count: number) => void): (write: () => void) => void {
  let windowStart = 0;
  let inWindow = 0;
  let suppressed = 0;
  return (write) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      if (suppressed > 0) summarise(suppressed);
      windowStart = now;
      inWindow = 0;
      suppressed = 0;
    }
    if (inWindow < perSecond) {
      inWindow++;
      write();
    } else {
      suppressed++;
    }
  };
}
