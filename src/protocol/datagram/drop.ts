/**
 * Why a datagram was not accepted (docs/protocol-udp.md, "Receiving").
 *
 * Rules:
 * - Every datagram an endpoint does not accept produces exactly one `drop` event with one of
 *   these reasons; bad input never throws.
 * - Reasons say what a receiver may conclude without trusting the sender: only `forged` and
 *   `refused` come from a cryptographic check, and no reason is ever answered on the wire.
 */

import type { SesameError } from '../../errors.js';

/** Why a datagram was not accepted. */
export type DropReason =
  /** Cannot be parsed: size, type, reserved bytes, header, counter, kind. */
  | 'malformed'
  /** A valid type this end never accepts in its state (a HELLO at a client, a late SERVER_HELLO). */
  | 'unexpected'
  /** A handshake message refused: wrong or unknown key, stale, replayed hello... (`error` says which). */
  | 'refused'
  /** Over a session or pending-handshake limit. */
  | 'busy'
  /** No such session (never existed, expired, closed, or the server restarted). */
  | 'unknown-session'
  /** The counter was already received. */
  | 'replayed'
  /** The counter is behind the replay window. */
  | 'too-old'
  /** The time is outside the freshness bound. */
  | 'stale'
  /** Failed authentication (AEAD, or a ServerHello that does not verify). */
  | 'forged'
  /** This end is closed. */
  | 'closed';

/** The event reporting a datagram that was not accepted. */
export interface DatagramDrop {
  /** Always `drop`. */
  readonly type: 'drop';
  /** Why it was dropped. */
  readonly reason: DropReason;
  /** What failed, for logs. */
  readonly detail: string;
  /** The handshake error, for `refused` (and `forged` at a client). */
  readonly error?: SesameError | undefined;
}

/** A `drop` event. */
export function drop(reason: DropReason, detail: string, error?: SesameError): DatagramDrop {
  return { type: 'drop', reason, detail, error };
}
