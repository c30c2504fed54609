/**
 * One datagram session's sealing state (docs/protocol-udp.md, "DATA" and "Receiving"): both
 * directions' keys, the send counter, the receive replay window and the session clock.
 *
 * Rules:
 * - Keys: EKM("sesame datagram c2s" / "sesame datagram s2c", session id) of the handshake's
 *   exporter (as DTLS-SRTP takes its keys from the TLS exporter, RFC 5764), then the native
 *   key/iv derivation. Both nonces and both key shares are in the transcript, so a server that
 *   restarted cannot be made to accept an old session's datagrams.
 * - Sealing: the counter starts at 1 and is never reused under a key; the nonce is iv XOR
 *   counter (aead.ts). A session is used up after `maxDatagramsPerSession` datagrams or
 *   {@link DATAGRAM_SEAL_LIMIT_BYTES} of plaintext, whichever comes first.
 * - Receive order: replay window check, freshness, AEAD open, then (only for an authentic
 *   datagram) the window update (RFC 6479). A forgery can neither mark a counter as seen nor
 *   move the window.
 * - Freshness does not depend on synchronized clocks: `time` is milliseconds since the session's
 *   origin (the client's ClientHello timestamp at the client, the hello's arrival at the server),
 *   and a receiver drops a datagram whose time is more than `maxDatagramAgeMs` from its own.
 */

import { sesameError } from '../../errors.js';
import { open, sealInPlace } from '../aead.js';
import { AEAD_TAG_BYTES } from '../constants.js';
import { trafficKeys } from '../key-schedule.js';
import { DEFAULT_REPLAY_WINDOW_BITS, MAX_WINDOW_COUNTER, ReplayWindow } from '../replay-window.js';
import type { DropReason } from './drop.js';
import {
  type DatagramCommonOptions,
  DEFAULT_DATAGRAM_PAYLOAD_BYTES,
  DEFAULT_MAX_DATAGRAM_AGE_MS,
} from './options.js';
import {
  DGRAM_COUNTER_AT,
  DGRAM_DATA,
  DGRAM_DATA_HEADER_BYTES,
  DGRAM_INNER_BYTES,
  DGRAM_OVERHEAD_BYTES,
  DGRAM_RESERVED_AT,
  DGRAM_SESSION_ID_AT,
  DGRAM_SESSION_ID_BYTES,
  DGRAM_TIME_AT,
  DGRAM_TYPE_AT,
  INNER_KIND_AT,
  INNER_REPLY_TO_AT,
} from './wire.js';

/**
 * Plaintext bytes a sender seals under one session key before the session is used up: 2^38, the
 * limit of version 1 (AES-GCM, RFC 8446 section 5.5), kept: far inside ChaCha20-Poly1305's.
 */
export const DATAGRAM_SEAL_LIMIT_BYTES = 2 ** 38;

/** Exporter label of the client-to-server datagram traffic secret. */
export const LABEL_DGRAM_C2S = 'sesame datagram c2s';
/** Exporter label of the server-to-client datagram traffic secret. */
export const LABEL_DGRAM_S2C = 'sesame datagram s2c';

const SECRET_BYTES = 32;
const MAX_COUNTER_BIG = BigInt(MAX_WINDOW_COUNTER);

/** A sealed DATA datagram's contents, once authentic. */
export interface OpenedDatagram {
  /** The kind (KIND_MESSAGE, KIND_CONFIRM, KIND_KEEPALIVE, KIND_CLOSE, or an unknown one). */
  readonly kind: number;
  /** The counter of the datagram this one answers, or 0. */
  readonly replyTo: number;
  /** The application payload. */
  readonly payload: Buffer;
  /** This datagram's counter. */
  readonly counter: number;
}

/** A sealed DATA datagram, ready to send, and the counter it carries. */
export interface SealedDatagram {
  /** The whole datagram. */
  readonly datagram: Buffer;
  /** Its counter: the peer's replies name it as their reply-to. */
  readonly counter: number;
}

/** What a {@link DatagramChannel} is made from. */
export interface DatagramChannelParams {
  /** The 8-byte session id. */
  readonly id: Buffer;
  /** This end's sending traffic secret (32 bytes). */
  readonly sendSecret: Buffer;
  /** The peer's sending traffic secret (32 bytes). */
  readonly receiveSecret: Buffer;
  /** The session clock's origin on this end, in ms since the epoch. */
  readonly originMs: number;
  /** Payload, freshness, window and usage limits. */
  readonly options: DatagramCommonOptions;
}

/** The two datagram traffic secrets of an established handshake, bound to the session id. */
export function datagramSecrets(
  conn: { exportKeyingMaterial(label: string, context?: Uint8Array): Buffer },
  id: Buffer,
): { c2s: Buffer; s2c: Buffer } {
  return {
    c2s: conn.exportKeyingMaterial(LABEL_DGRAM_C2S, id),
    s2c: conn.exportKeyingMaterial(LABEL_DGRAM_S2C, id),
  };
}

/**
 * The sealing state of one session: both directions' keys, the send counter, the receive
 * window and the session clock.
 */
export class DatagramChannel {
  /** The 8-byte session id. */
  readonly id: Buffer;
  /** Counters received so far (only authentic datagrams move it). */
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

  /** @throws LocalError ERR_INVALID_ARGUMENT for secrets or an id of the wrong size. */
  constructor(p: DatagramChannelParams) {
    if (
      p.sendSecret.length !== SECRET_BYTES ||
      p.receiveSecret.length !== SECRET_BYTES ||
      p.id.length !== DGRAM_SESSION_ID_BYTES
    ) {
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
  seal(kind: number, replyTo: number, payload: Uint8Array, nowMs: number): SealedDatagram {
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
    // Cleartext header, the additional data.
    out[DGRAM_TYPE_AT] = DGRAM_DATA;
    out.fill(0, DGRAM_RESERVED_AT, DGRAM_SESSION_ID_AT);
    this.id.copy(out, DGRAM_SESSION_ID_AT);
    out.writeBigUInt64BE(BigInt(counter), DGRAM_COUNTER_AT);
    out.writeBigUInt64BE(BigInt(this.elapsed(nowMs)), DGRAM_TIME_AT);
    // Plaintext kind || reply-to || payload, laid out where its ciphertext goes.
    const inner = DGRAM_DATA_HEADER_BYTES;
    out[inner + INNER_KIND_AT] = kind;
    out.writeBigUInt64BE(BigInt(replyTo), inner + INNER_REPLY_TO_AT);
    out.set(payload, inner + DGRAM_INNER_BYTES);
    const tagAt = out.length - AEAD_TAG_BYTES;
    sealInPlace(this.sendKey, this.sendIv, counter, out.subarray(0, inner), out, inner, tagAt);
    return { datagram: out, counter };
  }

  /**
   * Open a DATA datagram whose type, size and session id the caller checked. Returns the
   * contents, or why it was dropped. The window moves only for an authentic datagram.
   */
  open(d: Buffer, nowMs: number): OpenedDatagram | Exclude<DropReason, 'refused' | 'busy' | 'closed'> {
    const big = d.readBigUInt64BE(DGRAM_COUNTER_AT);
    if (big === 0n || big > MAX_COUNTER_BIG) return 'malformed';
    const counter = Number(big);
    const verdict = this.window.check(counter);
    if (verdict === 'duplicate') return 'replayed';
    if (verdict === 'too-old') return 'too-old';
    const t = d.readBigUInt64BE(DGRAM_TIME_AT);
    const age = this.elapsed(nowMs) - (t > MAX_COUNTER_BIG ? Number.POSITIVE_INFINITY : Number(t));
    if (!(Math.abs(age) <= this.maxAgeMs)) return 'stale';
    const plain = open(
      this.receiveKey,
      this.receiveIv,
      counter,
      d.subarray(0, DGRAM_DATA_HEADER_BYTES),
      d.subarray(DGRAM_DATA_HEADER_BYTES),
    );
    if (plain === undefined) return 'forged';
    this.window.update(counter);
    const replyTo = plain.readBigUInt64BE(INNER_REPLY_TO_AT);
    if (replyTo > MAX_COUNTER_BIG) return 'malformed';
    return {
      kind: plain[INNER_KIND_AT] as number,
      replyTo: Number(replyTo),
      payload: plain.subarray(DGRAM_INNER_BYTES),
      counter,
    };
  }
}
