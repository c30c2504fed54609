/**
 * Reply builders of the echo and timestamp services.
 *
 * Rules:
 * - Replies are byte-exact with the original Python server, which answered
 *   `'[%s] %s' % (ctime(), data.decode('utf-8'))`: an ASCII prefix, then the message unchanged.
 * - Message bytes are never decoded or re-encoded, so they pass through exactly. (Where Python would
 *   fail on bytes that are not UTF-8, these are passed through as well.)
 * - Every reply is a fresh Buffer; the caller's message is never aliased or modified.
 */

import { ctime } from './ctime.js';

/**
 * `'[' + ctime(now) + '] '` in bytes, followed by `message` unchanged; `now` is shown in the
 * process's local time zone.
 *
 * @throws ERR_INVALID_ARGUMENT when `now` is an invalid date.
 */
export function timestampReply(message: Uint8Array, now: Date): Buffer {
  const prefix = Buffer.from(`[${ctime(now)}] `, 'utf8');
  return Buffer.concat([prefix, message]);
}

/** A copy of `message`. */
export function echoReply(message: Uint8Array): Buffer {
  return Buffer.from(message);
}
