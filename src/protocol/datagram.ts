/**
 * Authenticated datagrams for the native protocol (docs/protocol-udp.md), without I/O.
 *
 * The native handshake (ClientHello, ServerHello, ClientFinished, unchanged) runs one message per
 * datagram inside a 16-byte envelope; then every datagram is sealed on its own with AES-256-GCM
 * under a per-direction key exported from the handshake, with an explicit 64-bit counter and a
 * session-relative timestamp in a cleartext header that is the AEAD's additional data.
 *
 *   envelope  = type (1) || 0 (3) || session id (8) || attempt (4)                16 bytes
 *   HELLO        (1) = envelope(session id 0) || ClientHello                      88 / 120 bytes
 *   SERVER_HELLO (2) = envelope(session id)   || ServerHello                      88 / 120 bytes
 *   FINISHED     (3) = envelope(session id)   || ClientFinished                   56 bytes
 *   DATA         (4) = type (1) || 0 (3) || session id (8) || counter (u64) || time ms (u64)
 *                      || AES-256-GCM(kind (1) || reply-to (u64) || payload) || tag (16)
 *
 * Rules:
 * - Nothing here touches a socket, a timer or the process: the clock and the randomness are
 *   passed in; bytes go in, events and bytes come out.
 * - The server reuses {@link ServerConnection} for the handshake, so the mac1 gate runs before
 *   any costly work, unknown key ids cost what wrong keys cost, and stale or replayed hellos are
 *   refused. It answers an unauthenticated datagram with at most as many bytes as it received
 *   (a SERVER_HELLO is exactly as long as its HELLO) and answers everything else not at all.
 * - Datagram keys: EKM("sesame datagram c2s" / "sesame datagram s2c", session id) of the
 *   handshake's exporter (as DTLS-SRTP takes its keys from the TLS exporter, RFC 5764), then the
 *   native key/iv derivation. Both nonces and both key shares are in the transcript, so a server
 *   that restarted cannot be made to accept an old session's datagrams.
 * - Receive order for DATA: session lookup, replay window check, freshness, AEAD open, then (only
 *   for an authentic datagram) the window update (RFC 6479). Nonce = iv XOR counter (RFC 8446
 *   section 5.3); a counter is never reused under a key.
 * - Freshness does not depend on synchronized clocks: `time` is milliseconds since the session's
 *   origin (the client's ClientHello timestamp at the client, the hello's arrival at the server),
 *   and a receiver drops a datagram whose time is more than `maxDatagramAgeMs` from its own.
 * - Every datagram that is not accepted produces one `drop` event with a reason; bad input never
 *   throws.
 */

import { createCipheriv, createDecipheriv } from 'node:crypto';
import { type SesameError, sesameError } from '../errors.js';
import type { SessionInfo } from './channel.js';
import { ClientConnection, type PresharedKey, ServerConnection, ServerContext } from './connection.js';
import {
  AEAD_ALGORITHM,
  AEAD_TAG_BYTES,
  CLIENT_FINISHED_BYTES,
  HANDSHAKE_HEADER_BYTES,
  MSG_CLIENT_HELLO,
  MSG_SERVER_HELLO,
} from './constants.js';
import { trafficKeys } from './key-schedule.js';
import { parseHeader } from './messages.js';
import { constantTimeEqual, type Entropy } from './primitives.js';
import { DEFAULT_REPLAY_WINDOW_BITS, MAX_WINDOW_COUNTER, ReplayWindow } from './replay-window.js';

// ---------------------------------------------------------------------------------------------
// Wire constants (docs/protocol-udp.md)
// ---------------------------------------------------------------------------------------------

/** Datagram types (byte 0). */
export const DGRAM_HELLO = 1;
export const DGRAM_SERVER_HELLO = 2;
export const DGRAM_FINISHED = 3;
export const DGRAM_DATA = 4;

/** Kinds of sealed DATA contents (first plaintext byte). */
export const KIND_MESSAGE = 1;
export const KIND_CONFIRM = 2;
export const KIND_KEEPALIVE = 3;
export const KIND_CLOSE = 4;

/** Envelope of the three handshake datagrams. */
export const DGRAM_ENVELOPE_BYTES = 16;
/** Cleartext header of a DATA datagram (the AEAD's additional data). */
export const DGRAM_DATA_HEADER_BYTES = 28;
/** Sealed prefix of a DATA datagram's plaintext: kind and reply-to. */
export const DGRAM_INNER_BYTES = 9;
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
/**
 * Plaintext bytes a sender seals under one session key before the session is used up: 2^38,
 * inside the AES-GCM limit of RFC 8446 section 5.5 (2^24.5 records of 2^14 bytes).
 */
export const DATAGRAM_SEAL_LIMIT_BYTES = 2 ** 38;

/** Exporter labels of the two datagram traffic secrets. */
export const LABEL_DGRAM_C2S = 'sesame datagram c2s';
export const LABEL_DGRAM_S2C = 'sesame datagram s2c';

// ---------------------------------------------------------------------------------------------
// Implementation limits (defaults; configurable)
// ---------------------------------------------------------------------------------------------

/** Largest application payload per datagram by default. */
export const DEFAULT_DATAGRAM_PAYLOAD_BYTES = 1200;
/** How far a datagram's time may be from the receiver's session clock. */
export const DEFAULT_MAX_DATAGRAM_AGE_MS = 30_000;
/** A server forgets a session silent for this long. */
export const DEFAULT_SESSION_IDLE_MS = 180_000;
/** A server forgets a handshake not finished within this long. */
export const DEFAULT_DATAGRAM_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_DATAGRAM_SESSIONS = 10_000;
export const DEFAULT_MAX_PENDING_HANDSHAKES = 1024;
export const DEFAULT_MAX_PENDING_PER_SOURCE = 32;
/** Handshake attempts (ClientHellos) a client keeps answerable at once. */
export const DEFAULT_MAX_ATTEMPTS = 8;
/** How many times a server re-sends CONFIRM for a retransmitted FINISHED. */
export const MAX_CONFIRM_RESENDS = 4;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** Where a datagram came from, or goes to. */
export interface DatagramPeer {
  readonly address: string;
  readonly port: number;
}

/** `HOST:PORT`, with brackets around an IPv6 host. */
export function formatPeer(p: DatagramPeer): string {
  return p.address.includes(':') ? `[${p.address}]:${p.port}` : `${p.address}:${p.port}`;
}

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

export interface DatagramDrop {
  readonly type: 'drop';
  readonly reason: DropReason;
  /** What failed, for logs. */
  readonly detail: string;
  /** The handshake error, for `refused` (and `forged` at a client). */
  readonly error?: SesameError | undefined;
}

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

// ---------------------------------------------------------------------------------------------
// One session's two directions
// ---------------------------------------------------------------------------------------------

const TWO_32 = 2 ** 32;
const MAX_COUNTER_BIG = BigInt(MAX_WINDOW_COUNTER);

/** A sealed DATA datagram's contents. */
interface Opened {
  readonly kind: number;
  readonly replyTo: number;
  readonly payload: Buffer;
  readonly counter: number;
}

interface ChannelParams {
  readonly id: Buffer;
  readonly sendSecret: Buffer;
  readonly receiveSecret: Buffer;
  readonly originMs: number;
  readonly options: DatagramCommonOptions;
}

function checkLimit(name: string, value: number | undefined, min: number, max: number): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min || value > max)) {
    throw sesameError('ERR_INVALID_ARGUMENT', `${name} must be a whole number from ${min} to ${max}`);
  }
}

function checkCommon(o: DatagramCommonOptions): void {
  checkLimit('maxPayloadBytes', o.maxPayloadBytes, 1, MAX_DATAGRAM_PAYLOAD_BYTES);
  checkLimit('maxDatagramAgeMs', o.maxDatagramAgeMs, 1, 2 ** 31);
  checkLimit('maxDatagramsPerSession', o.maxDatagramsPerSession, 1, MAX_WINDOW_COUNTER);
  new ReplayWindow(o.replayWindowBits ?? DEFAULT_REPLAY_WINDOW_BITS); // validates the size
}

/** iv XOR the big-endian 64-bit counter (RFC 8446 section 5.3). */
function nonceFor(iv: Buffer, counter: number): Buffer {
  const n = Buffer.from(iv);
  n.writeUInt32BE((n.readUInt32BE(4) ^ Math.floor(counter / TWO_32)) >>> 0, 4);
  n.writeUInt32BE((n.readUInt32BE(8) ^ counter) >>> 0, 8);
  return n;
}

/**
 * The sealing state of one session: both directions' keys, the send counter, the receive
 * window and the session clock.
 */
export class DatagramChannel {
  /** The 8-byte session id. */
  readonly id: Buffer;
  readonly window: ReplayWindow;
  private readonly sendKey: Buffer;
  private readonly sendIv: Buffer;
  private readonly receiveKey: Buffer;
  private readonly receiveIv: Buffer;
  private readonly originMs: number;
  private readonly maxAgeMs: number;
  private readonly maxPayload: number;
  private readonly maxDatagrams: number;
  private nextCounter = 1;
  private sealedBytes = 0;

  constructor(p: ChannelParams) {
    if (p.sendSecret.length !== 32 || p.receiveSecret.length !== 32 || p.id.length !== 8) {
      throw sesameError('ERR_INVALID_ARGUMENT', 'datagram secrets are 32 bytes and the session id 8');
    }
    this.id = Buffer.from(p.id);
    const send = trafficKeys(p.sendSecret);
    const receive = trafficKeys(p.receiveSecret);
    this.sendKey = send.key;
    this.sendIv = send.iv;
    this.receiveKey = receive.key;
    this.receiveIv = receive.iv;
    this.originMs = p.originMs;
    this.maxAgeMs = p.options.maxDatagramAgeMs ?? DEFAULT_MAX_DATAGRAM_AGE_MS;
    this.maxPayload = p.options.maxPayloadBytes ?? DEFAULT_DATAGRAM_PAYLOAD_BYTES;
    this.maxDatagrams = p.options.maxDatagramsPerSession ?? MAX_WINDOW_COUNTER;
    this.window = new ReplayWindow(p.options.replayWindowBits ?? DEFAULT_REPLAY_WINDOW_BITS);
  }

  /** The counter the next sealed datagram gets. */
  get counter(): number {
    return this.nextCounter;
  }

  /** Whether this end may seal no more datagrams under this session. */
  get exhausted(): boolean {
    return this.nextCounter > this.maxDatagrams || this.sealedBytes >= DATAGRAM_SEAL_LIMIT_BYTES;
  }

  /** Milliseconds since the session's origin on this end's clock (never negative). */
  elapsed(nowMs: number): number {
    return Math.max(0, Math.floor(nowMs - this.originMs));
  }

  /**
   * Seal one DATA datagram.
   * @throws LocalError ERR_DATAGRAM_TOO_LARGE for a payload over maxPayloadBytes; ERR_CLOSED when
   *   the session is used up (counter or byte limit): a new handshake is needed.
   */
  seal(
    kind: number,
    replyTo: number,
    payload: Uint8Array,
    nowMs: number,
  ): { datagram: Buffer; counter: number } {
    if (payload.length > this.maxPayload) {
      throw sesameError(
        'ERR_DATAGRAM_TOO_LARGE',
        `a datagram carries at most ${this.maxPayload} bytes; this message has ${payload.length}`,
      );
    }
    if (this.exhausted) {
      throw sesameError('ERR_CLOSED', 'the session has sealed all the datagrams its key allows; reconnect');
    }
    const counter = this.nextCounter++;
    this.sealedBytes += DGRAM_INNER_BYTES + payload.length;
    const out = Buffer.allocUnsafe(DGRAM_OVERHEAD_BYTES + payload.length);
    out[0] = DGRAM_DATA;
    out.fill(0, 1, 4);
    this.id.copy(out, 4);
    out.writeBigUInt64BE(BigInt(counter), 12);
    out.writeBigUInt64BE(BigInt(this.elapsed(nowMs)), 20);
    const inner = Buffer.allocUnsafe(DGRAM_INNER_BYTES);
    inner[0] = kind;
    inner.writeBigUInt64BE(BigInt(replyTo), 1);
    const cipher = createCipheriv(AEAD_ALGORITHM, this.sendKey, nonceFor(this.sendIv, counter), {
      authTagLength: AEAD_TAG_BYTES,
    });
    cipher.setAAD(out.subarray(0, DGRAM_DATA_HEADER_BYTES));
    let at = DGRAM_DATA_HEADER_BYTES;
    at += cipher.update(inner).copy(out, at);
    if (payload.length > 0) at += cipher.update(payload).copy(out, at);
    at += cipher.final().copy(out, at);
    cipher.getAuthTag().copy(out, at);
    return { datagram: out, counter };
  }

  /**
   * Open a DATA datagram whose type, size and session id the caller checked. Returns the
   * contents, or why it was dropped. The window moves only for an authentic datagram.
   */
  open(d: Buffer, nowMs: number): Opened | Exclude<DropReason, 'refused' | 'busy' | 'closed'> {
    const big = d.readBigUInt64BE(12);
    if (big === 0n || big > MAX_COUNTER_BIG) return 'malformed';
    const counter = Number(big);
    const verdict = this.window.check(counter);
    if (verdict === 'duplicate') return 'replayed';
    if (verdict === 'too-old') return 'too-old';
    const t = d.readBigUInt64BE(20);
    const age = this.elapsed(nowMs) - (t > MAX_COUNTER_BIG ? Number.POSITIVE_INFINITY : Number(t));
    if (!(Math.abs(age) <= this.maxAgeMs)) return 'stale';
    const tagAt = d.length - AEAD_TAG_BYTES;
    const decipher = createDecipheriv(AEAD_ALGORITHM, this.receiveKey, nonceFor(this.receiveIv, counter), {
      authTagLength: AEAD_TAG_BYTES,
    });
    decipher.setAAD(d.subarray(0, DGRAM_DATA_HEADER_BYTES));
    decipher.setAuthTag(d.subarray(tagAt));
    const head = decipher.update(d.subarray(DGRAM_DATA_HEADER_BYTES, tagAt));
    let plain: Buffer;
    try {
      const tail = decipher.final();
      plain = tail.length === 0 ? head : Buffer.concat([head, tail]);
    } catch {
      return 'forged';
    }
    this.window.update(counter);
    const replyTo = plain.readBigUInt64BE(1);
    if (replyTo > MAX_COUNTER_BIG) return 'malformed';
    return {
      kind: plain[0] as number,
      replyTo: Number(replyTo),
      payload: plain.subarray(DGRAM_INNER_BYTES),
      counter,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------------------------

function envelope(type: number, sessionId: Buffer, attempt: number, message: Buffer): Buffer {
  const out = Buffer.alloc(DGRAM_ENVELOPE_BYTES + message.length);
  out[0] = type;
  sessionId.copy(out, 4);
  out.writeUInt32BE(attempt, 12);
  message.copy(out, DGRAM_ENVELOPE_BYTES);
  return out;
}

/** Common checks: at least 4 bytes with the reserved bytes zero; returns the type or undefined. */
function datagramType(d: Buffer): number | undefined {
  if (d.length < DGRAM_ENVELOPE_BYTES || d[1] !== 0 || d[2] !== 0 || d[3] !== 0) return undefined;
  return d[0];
}

/**
 * The exact size of the handshake message in a HELLO or SERVER_HELLO datagram, or undefined
 * when the embedded header is not a valid one of `expected`.
 */
function embeddedSize(d: Buffer, expected: number): number | undefined {
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

const ZERO_ID = Buffer.alloc(8);

function drop(reason: DropReason, detail: string, error?: SesameError): DatagramDrop {
  return { type: 'drop', reason, detail, error };
}

function toBuffer(d: Uint8Array): Buffer {
  return Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.length);
}

/** The two datagram traffic secrets of an established handshake. */
function datagramSecrets(
  conn: { exportKeyingMaterial(label: string, context?: Uint8Array): Buffer },
  id: Buffer,
): { c2s: Buffer; s2c: Buffer } {
  return {
    c2s: conn.exportKeyingMaterial(LABEL_DGRAM_C2S, id),
    s2c: conn.exportKeyingMaterial(LABEL_DGRAM_S2C, id),
  };
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

export interface DatagramServerOptions extends DatagramCommonOptions {
  readonly keys: Iterable<PresharedKey>;
  /** Refuse clients that do not use ephemeral X25519 (default true). */
  readonly requireForwardSecrecy?: boolean | undefined;
  /** How far a ClientHello's timestamp may be from `now()` (default 120 s). */
  readonly maxClockSkewMs?: number | undefined;
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

export type DatagramServerEvent =
  /** Send `datagram` to `to`. */
  | { readonly type: 'send'; readonly datagram: Buffer; readonly to: DatagramPeer }
  /** A client finished its handshake. */
  | {
      readonly type: 'established';
      readonly sessionId: string;
      readonly session: SessionInfo;
      readonly handshakeMs: number;
    }
  /** An authentic application message; reply with {@link DatagramServerEndpoint.reply} and `counter`. */
  | {
      readonly type: 'message';
      readonly sessionId: string;
      readonly session: SessionInfo;
      readonly data: Buffer;
      readonly counter: number;
    }
  /** A session ended: the client closed it, it was idle, or its key is used up. */
  | {
      readonly type: 'session-end';
      readonly sessionId: string;
      readonly why: 'closed' | 'idle' | 'exhausted';
    }
  | DatagramDrop;

interface Pending {
  readonly id: Buffer;
  readonly attempt: number;
  readonly conn: ServerConnection;
  readonly source: string;
  readonly createdMs: number;
  readonly originMs: number;
}

interface ServerSession {
  readonly id: string;
  readonly info: SessionInfo;
  readonly channel: DatagramChannel;
  /** The FINISHED datagram that established the session, to recognize its retransmissions. */
  readonly finished: Buffer;
  confirmsLeft: number;
  /** Whether an authentic DATA datagram came from the client (then it has the CONFIRM). */
  clientSpoke: boolean;
  lastSeenMs: number;
  remote: DatagramPeer;
}

/**
 * The server side of datagram sessions: feed it every datagram with its source, send what it
 * says to send, and call {@link expire} now and then.
 */
export class DatagramServerEndpoint {
  readonly context: ServerContext;
  private readonly options: DatagramServerOptions;
  private readonly pending = new Map<string, Pending>();
  private readonly pendingPerSource = new Map<string, number>();
  /** In least-recently-active order: touched sessions are moved to the end. */
  private readonly sessions = new Map<string, ServerSession>();
  private readonly idleMs: number;
  private readonly handshakeMs: number;
  private readonly maxSessions: number;
  private readonly maxPending: number;
  private readonly maxPendingPerSource: number;

  /** @throws LocalError ERR_INVALID_ARGUMENT for a malformed key id or an out-of-range limit. */
  constructor(options: DatagramServerOptions) {
    checkCommon(options);
    checkLimit('sessionIdleMs', options.sessionIdleMs, 1, 2 ** 31);
    checkLimit('handshakeTimeoutMs', options.handshakeTimeoutMs, 1, 2 ** 31);
    checkLimit('maxSessions', options.maxSessions, 1, 2 ** 31);
    checkLimit('maxPendingHandshakes', options.maxPendingHandshakes, 1, 2 ** 31);
    checkLimit('maxPendingPerSource', options.maxPendingPerSource, 1, 2 ** 31);
    this.options = options;
    this.context = new ServerContext({
      keys: options.keys,
      entropy: options.entropy,
      now: options.now,
      requireForwardSecrecy: options.requireForwardSecrecy,
      maxClockSkewMs: options.maxClockSkewMs,
      replayCacheEntries: options.replayCacheEntries,
    });
    this.idleMs = options.sessionIdleMs ?? DEFAULT_SESSION_IDLE_MS;
    this.handshakeMs = options.handshakeTimeoutMs ?? DEFAULT_DATAGRAM_HANDSHAKE_TIMEOUT_MS;
    this.maxSessions = options.maxSessions ?? DEFAULT_MAX_DATAGRAM_SESSIONS;
    this.maxPending = options.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES;
    this.maxPendingPerSource = options.maxPendingPerSource ?? DEFAULT_MAX_PENDING_PER_SOURCE;
  }

  /** Replace the accepted keys; sessions already established continue. */
  setKeys(keys: Iterable<PresharedKey>): void {
    this.context.setKeys(keys);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** The session's info, or undefined when it does not exist (any more). */
  session(sessionId: string): SessionInfo | undefined {
    return this.sessions.get(sessionId)?.info;
  }

  /** Process one received datagram. Never throws for bad input. */
  receive(datagram: Uint8Array, from: DatagramPeer): DatagramServerEvent[] {
    const events: DatagramServerEvent[] = this.expire();
    const d = toBuffer(datagram);
    switch (datagramType(d)) {
      case DGRAM_HELLO:
        events.push(...this.onHello(d, from));
        break;
      case DGRAM_FINISHED:
        events.push(...this.onFinished(d, from));
        break;
      case DGRAM_DATA:
        events.push(...this.onData(d, from));
        break;
      case DGRAM_SERVER_HELLO:
        events.push(drop('unexpected', 'SERVER_HELLO sent to a server'));
        break;
      default:
        events.push(drop('malformed', `not a Sesame datagram (${d.length} bytes)`));
    }
    return events;
  }

  /**
   * Seal `data` as a reply to the client's datagram `replyTo` (0: not a reply). `to` is the
   * client's most recent address (a socket layer may prefer the request's source).
   * @throws LocalError ERR_DATAGRAM_TOO_LARGE over maxPayloadBytes; ERR_CLOSED when the session
   *   no longer exists or is used up.
   */
  reply(sessionId: string, replyTo: number, data: Uint8Array): { datagram: Buffer; to: DatagramPeer } {
    const s = this.sessions.get(sessionId);
    if (s === undefined) throw sesameError('ERR_CLOSED', `session ${sessionId} no longer exists`);
    if (s.channel.exhausted) {
      this.sessions.delete(sessionId);
      throw sesameError('ERR_CLOSED', `session ${sessionId} is used up; the client must reconnect`);
    }
    return {
      datagram: s.channel.seal(KIND_MESSAGE, replyTo, data, this.options.now()).datagram,
      to: s.remote,
    };
  }

  /** Forget handshakes past their deadline and sessions idle too long. */
  expire(): DatagramServerEvent[] {
    const now = this.options.now();
    const events: DatagramServerEvent[] = [];
    for (const [id, p] of this.pending) {
      if (now - p.createdMs < this.handshakeMs) break; // insertion order is creation order
      this.removePending(id, p);
    }
    for (const [id, s] of this.sessions) {
      if (now - s.lastSeenMs < this.idleMs) break; // least recently active first
      this.sessions.delete(id);
      events.push({ type: 'session-end', sessionId: id, why: 'idle' });
    }
    return events;
  }

  /**
   * End one session: returns its authenticated CLOSE datagram (best effort: a used-up session
   * gets none) and forgets it; undefined when there is no such session (any more).
   */
  closeSession(sessionId: string): { datagram: Buffer | undefined; to: DatagramPeer } | undefined {
    const s = this.sessions.get(sessionId);
    if (s === undefined) return undefined;
    this.sessions.delete(sessionId);
    const datagram = s.channel.exhausted
      ? undefined
      : s.channel.seal(KIND_CLOSE, 0, EMPTY, this.options.now()).datagram;
    return { datagram, to: s.remote };
  }

  /**
   * End every session: returns an authenticated CLOSE datagram for each (best effort; a used-up
   * session gets none) and forgets all sessions and handshakes.
   */
  closeAll(): { datagram: Buffer; to: DatagramPeer }[] {
    const out: { datagram: Buffer; to: DatagramPeer }[] = [];
    for (const id of [...this.sessions.keys()]) {
      const closed = this.closeSession(id);
      if (closed?.datagram !== undefined) out.push({ datagram: closed.datagram, to: closed.to });
    }
    this.pending.clear();
    this.pendingPerSource.clear();
    return out;
  }

  private onHello(d: Buffer, from: DatagramPeer): DatagramServerEvent[] {
    const size = embeddedSize(d, MSG_CLIENT_HELLO);
    if (size === undefined || size !== d.length)
      return [drop('malformed', 'HELLO of a wrong size or header')];
    if (!d.subarray(4, 12).equals(ZERO_ID)) return [drop('malformed', 'HELLO with a session id')];
    if (this.sessions.size >= this.maxSessions) return [drop('busy', `${this.maxSessions} sessions open`)];
    if (this.pending.size >= this.maxPending) return [drop('busy', `${this.maxPending} handshakes pending`)];
    const perSource = this.pendingPerSource.get(from.address) ?? 0;
    if (perSource >= this.maxPendingPerSource) {
      return [drop('busy', `${perSource} handshakes pending from ${from.address}`)];
    }
    const now = this.options.now();
    const conn = new ServerConnection(this.context);
    const result = conn.receive(Buffer.from(d.subarray(DGRAM_ENVELOPE_BYTES)));
    const failure = result.find((e) => e.type === 'error');
    if (failure !== undefined) return [drop('refused', failure.error.message, failure.error)];
    const [serverHello] = conn.takeOutput();
    if (serverHello === undefined) return [drop('malformed', 'incomplete ClientHello')];
    const id = this.newSessionId();
    const attempt = d.readUInt32BE(12);
    const reply = envelope(DGRAM_SERVER_HELLO, id, attempt, serverHello);
    // Amplification rule: never more bytes to an unauthenticated source than it sent.
    if (reply.length > d.length) return [drop('malformed', 'reply would be larger than the hello')];
    const key = id.toString('hex');
    this.pending.set(key, { id, attempt, conn, source: from.address, createdMs: now, originMs: now });
    this.pendingPerSource.set(from.address, perSource + 1);
    return [{ type: 'send', datagram: reply, to: from }];
  }

  private onFinished(d: Buffer, from: DatagramPeer): DatagramServerEvent[] {
    if (d.length !== DGRAM_FINISHED_BYTES) return [drop('malformed', 'FINISHED of a wrong size')];
    const key = d.subarray(4, 12).toString('hex');
    const p = this.pending.get(key);
    if (p === undefined) return this.onRepeatedFinished(key, d, from);
    if (d.readUInt32BE(12) !== p.attempt) return [drop('malformed', 'FINISHED for another attempt')];
    this.removePending(key, p);
    const result = p.conn.receive(Buffer.from(d.subarray(DGRAM_ENVELOPE_BYTES)));
    const failure = result.find((e) => e.type === 'error');
    if (failure !== undefined) return [drop('refused', failure.error.message, failure.error)];
    const established = result.find((e) => e.type === 'established');
    if (established === undefined) return [drop('malformed', 'incomplete ClientFinished')];
    if (this.sessions.size >= this.maxSessions) return [drop('busy', `${this.maxSessions} sessions open`)];
    const now = this.options.now();
    const secrets = datagramSecrets(p.conn, p.id);
    const channel = new DatagramChannel({
      id: p.id,
      sendSecret: secrets.s2c,
      receiveSecret: secrets.c2s,
      originMs: p.originMs,
      options: this.options,
    });
    const s: ServerSession = {
      id: key,
      info: established.session,
      channel,
      finished: Buffer.from(d),
      confirmsLeft: MAX_CONFIRM_RESENDS,
      clientSpoke: false,
      lastSeenMs: now,
      remote: from,
    };
    this.sessions.set(key, s);
    const events: DatagramServerEvent[] = [
      { type: 'established', sessionId: key, session: s.info, handshakeMs: now - p.createdMs },
    ];
    const confirm = channel.seal(KIND_CONFIRM, 0, EMPTY, now).datagram;
    if (confirm.length <= d.length) events.push({ type: 'send', datagram: confirm, to: from });
    return events;
  }

  /** A FINISHED for an established session: its CONFIRM was lost, so send another (bounded). */
  private onRepeatedFinished(key: string, d: Buffer, from: DatagramPeer): DatagramServerEvent[] {
    const s = this.sessions.get(key);
    if (s === undefined) return [drop('unknown-session', `FINISHED for unknown session ${key}`)];
    if (s.clientSpoke || s.confirmsLeft <= 0 || s.channel.exhausted || !constantTimeEqual(d, s.finished)) {
      return [drop('replayed', `FINISHED repeated for session ${key}`)];
    }
    s.confirmsLeft--;
    const confirm = s.channel.seal(KIND_CONFIRM, 0, EMPTY, this.options.now()).datagram;
    if (confirm.length > d.length) return [drop('malformed', 'reply would be larger than the FINISHED')];
    return [{ type: 'send', datagram: confirm, to: from }];
  }

  private onData(d: Buffer, from: DatagramPeer): DatagramServerEvent[] {
    if (d.length < DGRAM_DATA_MIN_BYTES) return [drop('malformed', 'DATA too short')];
    const key = d.subarray(4, 12).toString('hex');
    const s = this.sessions.get(key);
    if (s === undefined) return [drop('unknown-session', `DATA for unknown session ${key}`)];
    const now = this.options.now();
    const opened = s.channel.open(d, now);
    if (typeof opened === 'string') return [drop(opened, `DATA ${opened} in session ${key}`)];
    // Authentic: the session is active, and the client may have moved (NAT rebinding).
    s.clientSpoke = true;
    s.lastSeenMs = now;
    s.remote = from;
    this.sessions.delete(key);
    this.sessions.set(key, s);
    switch (opened.kind) {
      case KIND_MESSAGE:
        return [
          { type: 'message', sessionId: key, session: s.info, data: opened.payload, counter: opened.counter },
        ];
      case KIND_KEEPALIVE:
        return [];
      case KIND_CLOSE:
        this.sessions.delete(key);
        return [{ type: 'session-end', sessionId: key, why: 'closed' }];
      default:
        return [drop('malformed', `DATA of kind ${opened.kind} from a client`)];
    }
  }

  private removePending(key: string, p: Pending): void {
    this.pending.delete(key);
    const n = (this.pendingPerSource.get(p.source) ?? 1) - 1;
    if (n <= 0) this.pendingPerSource.delete(p.source);
    else this.pendingPerSource.set(p.source, n);
  }

  /** A random nonzero session id not in use (a collision is astronomically rare; bounded retries). */
  private newSessionId(): Buffer {
    for (let i = 0; i < 16; i++) {
      const id = this.options.entropy.bytes(8);
      const key = id.toString('hex');
      if (!id.equals(ZERO_ID) && !this.pending.has(key) && !this.sessions.has(key)) return id;
    }
    throw sesameError('ERR_INVALID_STATE', 'cannot draw an unused session id: broken entropy source');
  }
}

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

export interface DatagramClientOptions extends DatagramCommonOptions {
  readonly key: PresharedKey;
  /** Ephemeral X25519 (default true). */
  readonly forwardSecrecy?: boolean | undefined;
  /** Handshake attempts kept answerable at once (default 8); older ones are forgotten. */
  readonly maxAttempts?: number | undefined;
}

/** States, named for what the client waits for. */
export type DatagramClientState = 'ExpectServerHello' | 'ExpectConfirm' | 'Open' | 'Closed';

export type DatagramClientEvent =
  /** Send `datagram` to the server (the FINISHED after a verified SERVER_HELLO). */
  | { readonly type: 'send'; readonly datagram: Buffer }
  /** The server confirmed the handshake: the session is open. */
  | { readonly type: 'open'; readonly session: SessionInfo }
  /** An authentic message; `replyTo` is the counter of the client datagram it answers, or 0. */
  | { readonly type: 'message'; readonly data: Buffer; readonly replyTo: number; readonly counter: number }
  /** The server closed the session. */
  | { readonly type: 'close' }
  | DatagramDrop;

interface Attempt {
  readonly conn: ClientConnection;
  readonly originMs: number;
}

/**
 * The client side of one datagram session. Send {@link hello} (again, with a NEW ClientHello
 * each time, until a SERVER_HELLO verifies), then {@link finished} until `open`, then
 * {@link send}.
 */
export class DatagramClientEndpoint {
  private readonly options: DatagramClientOptions;
  private readonly attempts = new Map<number, Attempt>();
  private readonly maxAttempts: number;
  private stateValue: DatagramClientState = 'ExpectServerHello';
  private channel: DatagramChannel | undefined;
  private finishedDatagram: Buffer | undefined;
  private info: SessionInfo | undefined;
  /** The last handshake failure seen (a ServerHello that did not verify), for error reports. */
  lastHandshakeError: SesameError | undefined;

  /** @throws LocalError ERR_INVALID_ARGUMENT for an out-of-range limit. */
  constructor(options: DatagramClientOptions) {
    checkCommon(options);
    checkLimit('maxAttempts', options.maxAttempts, 1, 1024);
    this.options = options;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  }

  get state(): DatagramClientState {
    return this.stateValue;
  }

  /** Session details once the server verified the client (after `open`). */
  get session(): SessionInfo | undefined {
    return this.stateValue === 'Open' ? this.info : undefined;
  }

  /** The session id (hex) once a SERVER_HELLO verified. */
  get sessionId(): string | undefined {
    return this.channel?.id.toString('hex');
  }

  /** The FINISHED datagram to (re)send while waiting for the server's confirmation. */
  get finished(): Buffer | undefined {
    return this.stateValue === 'ExpectConfirm' ? this.finishedDatagram : undefined;
  }

  /**
   * A HELLO datagram for a new attempt (a fresh ClientHello: the server refuses a repeated one).
   * @throws LocalError ERR_INVALID_STATE once a SERVER_HELLO verified; ERR_KEY_TOO_SHORT,
   *   ERR_INVALID_ARGUMENT for an unusable key.
   */
  hello(): Buffer {
    if (this.stateValue !== 'ExpectServerHello') {
      throw sesameError('ERR_INVALID_STATE', 'the handshake is past ClientHello');
    }
    const originMs = this.options.now();
    const conn = new ClientConnection({
      key: this.options.key,
      forwardSecrecy: this.options.forwardSecrecy,
      entropy: this.options.entropy,
      now: () => originMs,
    });
    const [clientHello] = conn.takeOutput();
    let attempt = 0;
    for (let i = 0; i < 16 && (attempt === 0 || this.attempts.has(attempt)); i++) {
      attempt = this.options.entropy.bytes(4).readUInt32BE(0);
    }
    if (attempt === 0 || this.attempts.has(attempt)) {
      throw sesameError('ERR_INVALID_STATE', 'cannot draw an unused attempt id: broken entropy source');
    }
    while (this.attempts.size >= this.maxAttempts) {
      const oldest = this.attempts.keys().next();
      if (oldest.done) break;
      this.attempts.delete(oldest.value);
    }
    this.attempts.set(attempt, { conn, originMs });
    return envelope(DGRAM_HELLO, ZERO_ID, attempt, clientHello as Buffer);
  }

  /** Process one datagram from the server. Never throws for bad input. */
  receive(datagram: Uint8Array): DatagramClientEvent[] {
    const d = toBuffer(datagram);
    if (this.stateValue === 'Closed') return [drop('closed', 'session closed')];
    switch (datagramType(d)) {
      case DGRAM_SERVER_HELLO:
        return this.onServerHello(d);
      case DGRAM_DATA:
        return this.onData(d);
      case DGRAM_HELLO:
      case DGRAM_FINISHED:
        return [drop('unexpected', 'a client handshake datagram sent to a client')];
      default:
        return [drop('malformed', `not a Sesame datagram (${d.length} bytes)`)];
    }
  }

  /**
   * Seal one application message.
   * @throws LocalError ERR_INVALID_STATE before `open`, ERR_CLOSED after close (or when the
   *   session is used up), ERR_DATAGRAM_TOO_LARGE over maxPayloadBytes.
   */
  send(message: Uint8Array): { datagram: Buffer; counter: number } {
    return this.seal(KIND_MESSAGE, message);
  }

  /** An empty authenticated datagram that keeps the server from forgetting the session. */
  keepalive(): Buffer {
    return this.seal(KIND_KEEPALIVE, EMPTY).datagram;
  }

  /**
   * Close: returns the CLOSE datagram to send (undefined when there is no session to close).
   * Idempotent; nothing can be sent or received afterwards.
   */
  close(): Buffer | undefined {
    const wasOpen = this.stateValue === 'Open' || this.stateValue === 'ExpectConfirm';
    const channel = this.channel;
    this.stateValue = 'Closed';
    this.attempts.clear();
    if (!wasOpen || channel === undefined || channel.exhausted) return undefined;
    return channel.seal(KIND_CLOSE, 0, EMPTY, this.options.now()).datagram;
  }

  private seal(kind: number, payload: Uint8Array): { datagram: Buffer; counter: number } {
    if (this.stateValue === 'Closed') throw sesameError('ERR_CLOSED', 'session closed');
    const channel = this.channel;
    if (this.stateValue !== 'Open' || channel === undefined) {
      throw sesameError('ERR_INVALID_STATE', 'handshake not complete');
    }
    return channel.seal(kind, 0, payload, this.options.now());
  }

  private onServerHello(d: Buffer): DatagramClientEvent[] {
    if (this.stateValue !== 'ExpectServerHello') {
      return [drop('unexpected', 'SERVER_HELLO after the handshake chose one')];
    }
    const size = embeddedSize(d, MSG_SERVER_HELLO);
    if (size === undefined || size !== d.length) return [drop('malformed', 'SERVER_HELLO of a wrong size')];
    const id = d.subarray(4, 12);
    const attemptId = d.readUInt32BE(12);
    const attempt = this.attempts.get(attemptId);
    if (attempt === undefined)
      return [drop('unknown-session', `SERVER_HELLO for unknown attempt ${attemptId}`)];
    if (id.equals(ZERO_ID)) return [drop('malformed', 'SERVER_HELLO without a session id')];
    const result = attempt.conn.receive(Buffer.from(d.subarray(DGRAM_ENVELOPE_BYTES)));
    const failure = result.find((e) => e.type === 'error');
    if (failure !== undefined) {
      // This attempt is spent; others (and retransmissions) may still succeed.
      this.attempts.delete(attemptId);
      this.lastHandshakeError = failure.error;
      const reason = failure.error.fault === 'peer' && failure.error.code !== 'ERR_MALFORMED_MESSAGE';
      return [drop(reason ? 'forged' : 'malformed', failure.error.message, failure.error)];
    }
    const established = result.find((e) => e.type === 'established');
    const [clientFinished] = attempt.conn.takeOutput();
    if (established === undefined || clientFinished === undefined) {
      return [drop('malformed', 'incomplete ServerHello')];
    }
    const secrets = datagramSecrets(attempt.conn, id);
    this.channel = new DatagramChannel({
      id,
      sendSecret: secrets.c2s,
      receiveSecret: secrets.s2c,
      originMs: attempt.originMs,
      options: this.options,
    });
    this.info = established.session;
    this.finishedDatagram = envelope(DGRAM_FINISHED, id, attemptId, clientFinished);
    this.attempts.clear();
    this.stateValue = 'ExpectConfirm';
    return [{ type: 'send', datagram: this.finishedDatagram }];
  }

  private onData(d: Buffer): DatagramClientEvent[] {
    const channel = this.channel;
    if (channel === undefined) return [drop('unexpected', 'DATA before the handshake')];
    if (d.length < DGRAM_DATA_MIN_BYTES) return [drop('malformed', 'DATA too short')];
    if (!d.subarray(4, 12).equals(channel.id)) return [drop('unknown-session', 'DATA for another session')];
    const opened = channel.open(d, this.options.now());
    if (typeof opened === 'string') return [drop(opened, `DATA ${opened}`)];
    const events: DatagramClientEvent[] = [];
    // Any authentic datagram from the server proves it verified our FINISHED.
    if (this.stateValue === 'ExpectConfirm') {
      this.stateValue = 'Open';
      events.push({ type: 'open', session: this.info as SessionInfo });
    }
    switch (opened.kind) {
      case KIND_MESSAGE:
        events.push({
          type: 'message',
          data: opened.payload,
          replyTo: opened.replyTo,
          counter: opened.counter,
        });
        break;
      case KIND_CONFIRM:
      case KIND_KEEPALIVE:
        break;
      case KIND_CLOSE:
        this.stateValue = 'Closed';
        events.push({ type: 'close' });
        break;
      default:
        events.push(drop('malformed', `DATA of kind ${opened.kind} from the server`));
    }
    return events;
  }
}
