/**
 * What the socket layer adds to the core's options (../protocol/options.ts): the defaults of the
 * environment, and the range of a timer.
 *
 * Rules:
 * - The net layer's option interfaces extend the core's policies and hand them down with
 *   `pickOptions`; their own numeric options have rules declared next to them, checked with the
 *   same `checkOptions` when a server is constructed or a client connects.
 * - A timer option allows 0 only where 0 means "none" (no deadline, no keepalive).
 */

import { type Environment, type OptionRule, wholeNumber } from '../protocol/options.js';
import { systemEntropy } from '../protocol/primitives.js';
// The crypto backend (libsodium or node:crypto, SESAME_CRYPTO) is installed in the core when the
// net layer loads, as the system entropy is its default here.
import './crypto-backend.js';

/** The longest delay a Node.js timer takes (2^31 - 1 ms); a longer one would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The rule of a delay in ms: from `min` (0 where 0 means none, else 1) to {@link MAX_TIMER_MS}. */
export function timerRule(min: 0 | 1): OptionRule {
  return wholeNumber(min, MAX_TIMER_MS);
}

/**
 * The environment of `options`, with the system's randomness and clock where none is given.
 * Only undefined takes the default: any other value goes to the core's check.
 */
export function environmentOf(options: Partial<Environment>): Environment {
  return {
    entropy: options.entropy === undefined ? systemEntropy : options.entropy,
    now: options.now === undefined ? Date.now : options.now,
  };
}
