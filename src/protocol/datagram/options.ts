/**
 * Datagram policy: the options of both endpoints, their defaults and their validation
 * (docs/protocol-udp.md, "Limits").
 *
 * Rules:
 * - Every limit has one default constant, here; an option left undefined takes it.
 * - Options are checked once, when an endpoint is constructed: a value out of range is a
 *   LocalError ERR_INVALID_ARGUMENT naming the option, never a silent clamp.
 */

import { sesameError } from '../../errors.js';
import type { PresharedKey } from '../connection.js';
import type { Entropy } from '../primitives.js';
import { DEFAULT_REPLAY_WINDOW_BITS, MAX_WINDOW_COUNTER, ReplayWindow } from '../replay-window.js';
import { MAX_DATAGRAM_PAYLOAD_BYTES } from './wire.js';

/** Largest application payload per datagram by default. */
export const DEFAULT_DATAGRAM_PAYLOAD_BYTES = 1200;
/** How far a datagram's time may be from the receiver's session clock. */
export const DEFAULT_MAX_DATAGRAM_AGE_MS = 30_000;
/** A server forgets a session silent for this long. */
export const DEFAULT_SESSION_IDLE_MS = 180_000;
/** A server forgets a handshake not finished within this long. */
export const DEFAULT_DATAGRAM_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Most sessions a server keeps at once. */
export const DEFAULT_MAX_DATAGRAM_SESSIONS = 10_000;
/** Most handshakes a server keeps waiting for FINISHED at once. */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 1024;
/** Most handshakes a server keeps waiting for FINISHED from one source address. */
export const DEFAULT_MAX_PENDING_PER_SOURCE = 32;
/** Handshake attempts (ClientHellos) a client keeps answerable at once. */
export const DEFAULT_MAX_ATTEMPTS = 8;
/** How many times a server re-sends CONFIRM for a retransmitted FINISHED. */
export const MAX_CONFIRM_RESENDS = 4;

/** Options both ends share. */
export interface DatagramCommonOptions {
  /** Randomness and ephemeral keys (use `systemEntropy` outside tests). */
  readonly entropy: Entropy;
  /** Wall clock in milliseconds since the epoch. */
  readonly now: () => number;
  /** Largest payload this end sends in one datagram (default 1200, at most 65,454). */
  readonly maxPayloadBytes?: number | undefined;
  /** Freshness bound on a datagram's time, in ms (default 30 s). */
  readonly maxDatagramAgeMs?: number | undefined;
  /** Replay window bitmap size (default 2048 bits). */
  readonly replayWindowBits?: number | undefined;
  /** Datagrams this end seals under one session before it is used up (default 2^53 - 1). */
  readonly maxDatagramsPerSession?: number | undefined;
}

/** Options of a `DatagramServerEndpoint`. */
export interface DatagramServerOptions extends DatagramCommonOptions {
  /** The keys clients may authenticate with. */
  readonly keys: Iterable<PresharedKey>;
  /** Refuse clients that do not use ephemeral X25519 (default true). */
  readonly requireForwardSecrecy?: boolean | undefined;
  /** How far a ClientHello's timestamp may be from `now()` (default 120 s). */
  readonly maxClockSkewMs?: number | undefined;
  /** Size of the cache of recent ClientHellos that refuses replayed hellos. */
  readonly replayCacheEntries?: number | undefined;
  /** Forget a session after this long without an authentic datagram from the client (default 180 s). */
  readonly sessionIdleMs?: number | undefined;
  /** Forget a handshake not finished within this long (default 10 s). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Most sessions at once (default 10,000). */
  readonly maxSessions?: number | undefined;
  /** Most handshakes waiting for FINISHED at once (default 1024). */
  readonly maxPendingHandshakes?: number | undefined;
  /** Most handshakes waiting for FINISHED from one source address (default 32). */
  readonly maxPendingPerSource?: number | undefined;
}

/** Options of a `DatagramClientEndpoint`. */
export interface DatagramClientOptions extends DatagramCommonOptions {
  /** The key this client authenticates with. */
  readonly key: PresharedKey;
  /** Ephemeral X25519 (default true). */
  readonly forwardSecrecy?: boolean | undefined;
  /** Handshake attempts kept answerable at once (default 8); older ones are forgotten. */
  readonly maxAttempts?: number | undefined;
}

/** @throws LocalError ERR_INVALID_ARGUMENT naming `name` unless `value` is undefined or a whole number in [min, max]. */
export function checkLimit(name: string, value: number | undefined, min: number, max: number): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min || value > max)) {
    throw sesameError('ERR_INVALID_ARGUMENT', `${name} must be a whole number from ${min} to ${max}`);
  }
}

/** @throws LocalError ERR_INVALID_ARGUMENT for an out-of-range option both ends share. */
export function checkCommon(o: DatagramCommonOptions): void {
  checkLimit('maxPayloadBytes', o.maxPayloadBytes, 1, MAX_DATAGRAM_PAYLOAD_BYTES);
  checkLimit('maxDatagramAgeMs', o.maxDatagramAgeMs, 1, 2 ** 31);
  checkLimit('maxDatagramsPerSession', o.maxDatagramsPerSession, 1, MAX_WINDOW_COUNTER);
  new ReplayWindow(o.replayWindowBits ?? DEFAULT_REPLAY_WINDOW_BITS); // validates the size
}

/** @throws LocalError ERR_INVALID_ARGUMENT for an out-of-range server option. */
export function checkServerOptions(o: DatagramServerOptions): void {
  checkCommon(o);
  checkLimit('sessionIdleMs', o.sessionIdleMs, 1, 2 ** 31);
  checkLimit('handshakeTimeoutMs', o.handshakeTimeoutMs, 1, 2 ** 31);
  checkLimit('maxSessions', o.maxSessions, 1, 2 ** 31);
  checkLimit('maxPendingHandshakes', o.maxPendingHandshakes, 1, 2 ** 31);
  checkLimit('maxPendingPerSource', o.maxPendingPerSource, 1, 2 ** 31);
}

/** @throws LocalError ERR_INVALID_ARGUMENT for an out-of-range client option. */
export function checkClientOptions(o: DatagramClientOptions): void {
  checkCommon(o);
  checkLimit('maxAttempts', o.maxAttempts, 1, 1024);
}
