/**
 * The datagram wire format (docs/protocol-udp.md, "Datagrams"): types, kinds, sizes, field
 * offsets, and building and reading envelopes and DATA headers.
 *
 *   envelope  = type (1) || 0 (3) || session id (8) || attempt (4)                16 bytes
 *   HELLO        (1) = envelope(session id 0) || ClientHello                      88 / 120 bytes
 *   SERVER_HELLO (2) = envelope(session id)   || ServerHello                      88 / 120 bytes
 *   FINISHED     (3) = envelope(session id)   || ClientFinished                   56 bytes
 *   DATA         (4) = type (1) || 0 (3) || session id (8) || counter (u64) || time ms (u64)
 *                      || AEAD(kind (1) || reply-to (u64) || payload) || tag (16)
 *
 * Rules:
 * - Every datagram starts with its type and three zero bytes, then the 8-byte session id; the
 *   handshake datagrams then carry the attempt, DATA its counter and time. Offsets are named
 *   here and nowhere else.
 * - Reading never throws: a datagram of the wrong shape reads as `undefined`, and its receiver
 *   drops it as `malformed`.
 * - The cleartext DATA header is the AEAD's additional data, so every field of it is
 *   authenticated even though it is not encrypted.
 */

import { AEAD_TAG_BYTES, CLIENT_FINISHED_BYTES, HANDSHAKE_HEADER_BYTES } from '../constants.js';
import { parseHeader } from '../messages.js';

// Datagram types (byte 0).
/** Datagram type: a client's HELLO (session id 0) carrying a ClientHello. */
export const DGRAM_HELLO = 1;
/** Datagram type: the server's SERVER_HELLO carrying the new session id and a ServerHello. */
export const DGRAM_SERVER_HELLO = 2;
/** Datagram type: the client's FINISHED carrying its ClientFinished. */
export const DGRAM_FINISHED = 3;
/** Datagram type: a sealed DATA datagram of an established session. */
export const DGRAM_DATA = 4;

// Kinds of sealed DATA contents (first plaintext byte).
/** DATA kind: an application message. */
export const KIND_MESSAGE = 1;
/** DATA kind: the server's confirmation that it verified the client's FINISHED. */
export const KIND_CONFIRM = 2;
/** DATA kind: an empty datagram that keeps the session from going idle. */
export const KIND_KEEPALIVE = 3;
/** DATA kind: the sender ends the session. */
export const KIND_CLOSE = 4;

// Field offsets shared by every datagram.
/** Offset of the type byte. */
export const DGRAM_TYPE_AT = 0;
/** Offset of the three reserved bytes, which are zero. */
export const DGRAM_RESERVED_AT = 1;
/** Offset of the 8-byte session id. */
export const DGRAM_SESSION_ID_AT = 4;
/** Size of a session id. */
export const DGRAM_SESSION_ID_BYTES = 8;
/** Offset of the u32 attempt in a HELLO, SERVER_HELLO or FINISHED envelope. */
export const DGRAM_ATTEMPT_AT = DGRAM_SESSION_ID_AT + DGRAM_SESSION_ID_BYTES; // 12
/** Envelope of the three handshake datagrams; the handshake message follows it. */
export const DGRAM_ENVELOPE_BYTES = DGRAM_ATTEMPT_AT + 4; // 16
/** Offset of the u64 counter in a DATA header. */
export const DGRAM_COUNTER_AT = DGRAM_SESSION_ID_AT + DGRAM_SESSION_ID_BYTES; // 12
/** Offset of the u64 session time (ms) in a DATA header. */
export const DGRAM_TIME_AT = DGRAM_COUNTER_AT + 8; // 20
/** Cleartext header of a DATA datagram (the AEAD's additional data); the ciphertext follows it. */
export const DGRAM_DATA_HEADER_BYTES = DGRAM_TIME_AT + 8; // 28

// Field offsets inside the sealed plaintext of DATA.
/** Offset of the kind in a DATA plaintext. */
export const INNER_KIND_AT = 0;
/** Offset of the u64 reply-to counter in a DATA plaintext. */
export const INNER_REPLY_TO_AT = 1;
/** Sealed prefix of a DATA datagram's plaintext: kind and reply-to; the payload follows it. */
export const DGRAM_INNER_BYTES = INNER_REPLY_TO_AT + 8; // 9

// Sizes.
/** Bytes a DATA datagram adds to its payload: 28 + 9 + 16 = 53. */
export const DGRAM_OVERHEAD_BYTES = DGRAM_DATA_HEADER_BYTES + DGRAM_INNER_BYTES + AEAD_TAG_BYTES;
/** Shortest DATA datagram (empty payload). */
export const DGRAM_DATA_MIN_BYTES = DGRAM_OVERHEAD_BYTES;
/** FINISHED datagram size. */
export const DGRAM_FINISHED_BYTES = DGRAM_ENVELOPE_BYTES + CLIENT_FINISHED_BYTES;
/** Largest UDP payload over IPv4 (65,535 - 8 - 20). */
export const MAX_UDP_PAYLOAD_BYTES = 65_507;
/** Largest application payload one datagram can carry: 65,507 - 53. */
export const MAX_DATAGRAM_PAYLOAD_BYTES = MAX_UDP_PAYLOAD_BYTES - DGRAM_OVERHEAD_BYTES;

/** The session id of a HELLO, which has none yet. */
export const ZERO_ID = Buffer.alloc(DGRAM_SESSION_ID_BYTES);
/** An empty payload (CONFIRM, KEEPALIVE, CLOSE). */
export const EMPTY = Buffer.alloc(0);

/** Where a datagram came from, or goes to. */
export interface DatagramPeer {
  /** The IP address, as the socket reports it. */
  readonly address: string;
  /** The UDP port. */
  readonly port: number;
}

/** `HOST:PORT`, with brackets around an IPv6 host. */
export function formatPeer(p: DatagramPeer): string {
  return p.address.includes(':') ? `[${p.address}]:${p.port}` : `${p.address}:${p.port}`;
}

/** A Buffer view of `d` (no copy). */
export function toBuffer(d: Uint8Array): Buffer {
  return Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.length);
}

/** Common checks: at least an envelope long with the reserved bytes zero; returns the type or undefined. */
export function datagramType(d: Buffer): number | undefined {
  if (
    d.length < DGRAM_ENVELOPE_BYTES ||
    d[DGRAM_RESERVED_AT] !== 0 ||
    d[DGRAM_RESERVED_AT + 1] !== 0 ||
    d[DGRAM_RESERVED_AT + 2] !== 0
  ) {
    return undefined;
  }
  return d[DGRAM_TYPE_AT];
}

/** The session id field (a view). */
export function sessionIdOf(d: Buffer): Buffer {
  return d.subarray(DGRAM_SESSION_ID_AT, DGRAM_SESSION_ID_AT + DGRAM_SESSION_ID_BYTES);
}

/** The session id field in hex, the key sessions are stored under. */
export function sessionKeyOf(d: Buffer): string {
  return d.toString('hex', DGRAM_SESSION_ID_AT, DGRAM_SESSION_ID_AT + DGRAM_SESSION_ID_BYTES);
}

/** The attempt field of a handshake envelope. */
export function attemptOf(d: Buffer): number {
  return d.readUInt32BE(DGRAM_ATTEMPT_AT);
}

/** The handshake message inside an envelope, copied (the connection may keep it). */
export function messageOf(d: Buffer): Buffer {
  return Buffer.from(d.subarray(DGRAM_ENVELOPE_BYTES));
}

/** A handshake datagram: the envelope of `type`, `sessionId` and `attempt`, then `message`. */
export function envelope(type: number, sessionId: Buffer, attempt: number, message: Buffer): Buffer {
  const out = Buffer.alloc(DGRAM_ENVELOPE_BYTES + message.length);
  out[DGRAM_TYPE_AT] = type;
  sessionId.copy(out, DGRAM_SESSION_ID_AT);
  out.writeUInt32BE(attempt, DGRAM_ATTEMPT_AT);
  message.copy(out, DGRAM_ENVELOPE_BYTES);
  return out;
}

/**
 * The exact size of the handshake message in a HELLO or SERVER_HELLO datagram, or undefined
 * when the embedded header is not a valid one of `expected`.
 */
export function embeddedSize(d: Buffer, expected: number): number | undefined {
  if (d.length < DGRAM_ENVELOPE_BYTES + HANDSHAKE_HEADER_BYTES) return undefined;
  try {
    const { size } = parseHeader(
      d.subarray(DGRAM_ENVELOPE_BYTES, DGRAM_ENVELOPE_BYTES + HANDSHAKE_HEADER_BYTES),
      expected,
    );
    return DGRAM_ENVELOPE_BYTES + size;
  } catch {
    return undefined;
  }
}
