/**
 * Datagram endpoint options: their defaults, and the policies each endpoint takes
 * (docs/protocol-udp.md, "Limits").
 *
 * Rules:
 * - Every limit has one default constant, here; an option left undefined takes it.
 * - The limits and their ranges are declared once, in ../options.ts; an endpoint checks its
 *   options there when it is constructed.
 */

import type { PresharedKey } from '../connection.js';
import {
  CLIENT_HANDSHAKE_RULES,
  type ClientHandshakePolicy,
  DATAGRAM_CLIENT_LIMIT_RULES,
  DATAGRAM_SERVER_LIMIT_RULES,
  type DatagramClientLimits,
  type DatagramLimits,
  type DatagramServerLimits,
  ENVIRONMENT_RULES,
  type Environment,
  type OptionRules,
  SERVER_HANDSHAKE_RULES,
  type ServerHandshakePolicy,
} from '../options.js';

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

/** Options both ends share: the environment and the common limits. */
export interface DatagramCommonOptions extends Environment, DatagramLimits {}

/** Options of a `DatagramServerEndpoint`. */
export interface DatagramServerOptions extends Environment, ServerHandshakePolicy, DatagramServerLimits {
  /** The keys clients may authenticate with. */
  readonly keys: Iterable<PresharedKey>;
}

/** Options of a `DatagramClientEndpoint`. */
export interface DatagramClientOptions extends Environment, ClientHandshakePolicy, DatagramClientLimits {
  /** The key this client authenticates with. */
  readonly key: PresharedKey;
}

/** Rules of every {@link DatagramServerOptions} field but `keys`. */
export const DATAGRAM_SERVER_RULES: OptionRules<Omit<DatagramServerOptions, 'keys'>> = {
  ...ENVIRONMENT_RULES,
  ...SERVER_HANDSHAKE_RULES,
  ...DATAGRAM_SERVER_LIMIT_RULES,
};

/** Rules of every {@link DatagramClientOptions} field but `key`. */
export const DATAGRAM_CLIENT_RULES: OptionRules<Omit<DatagramClientOptions, 'key'>> = {
  ...ENVIRONMENT_RULES,
  ...CLIENT_HANDSHAKE_RULES,
  ...DATAGRAM_CLIENT_LIMIT_RULES,
};
