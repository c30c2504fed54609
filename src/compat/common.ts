/**
 * What the compatibility profiles share on top of the sans-I/O skeleton (src/protocol/sans-io.ts:
 * queues, sticky failure): the one-time `established` event, and the hand-over from the handshake
 * to a message framing.
 *
 * Rules (on top of the {@link ProtocolConnection} contract):
 * - No I/O: no sockets, timers, files or `process`. Randomness comes in through {@link Randomness};
 *   none of these protocols carries a time, so no clock is needed.
 * - A profile's handshake reads exact sizes or bounded frames; after it, a {@link Framing} turns
 *   bytes into messages and messages into bytes.
 * - A refusal that the protocol announces on the wire (python-mp's `#FAILURE#`) is queued as
 *   output and the error is held back until the transport ends (or until `fail()` is called from
 *   outside, e.g. by the handshake deadline), so that the socket layer writes the announcement
 *   before it closes the socket. Bytes received meanwhile are ignored.
 * - `established` is reported once: by `start()` for a profile open from construction (`none`),
 *   otherwise with the input that completes authentication.
 * - Secrets never appear in error messages.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';
import { type SesameError, sesameError } from '../errors.js';
import type { ConnectionEvent, SessionInfo } from '../protocol/channel.js';
import type { Entropy } from '../protocol/primitives.js';
import { SansIoConnection } from '../protocol/sans-io.js';

/** The randomness a compatibility profile needs: `systemEntropy` or a deterministic test source. */
export type Randomness = Pick<Entropy, 'bytes'>;

/** Which end of the connection. */
export type Role = 'client' | 'server';

/** Secrets shorter than this draw a warning: they can be guessed offline from one exchange. */
export const SHORT_SECRET_BYTES = 16;

/** Turns the bytes of an authenticated connection into messages, and messages into bytes. */
export interface Framing {
  /** Feed received bytes; complete messages are appended to `events` as `message` events. */
  push(data: Buffer, events: ConnectionEvent[]): void;
  /**
   * The transport ended: append a last message if the framing allows one (a final line without
   * its terminator).
   * @throws PeerError ERR_TRUNCATED when the input ends inside a frame.
   */
  end(events: ConnectionEvent[]): void;
  /** The bytes that carry `message`. @throws LocalError ERR_INVALID_ARGUMENT when it cannot be framed. */
  encode(message: Uint8Array): Buffer[];
  /** Received bytes held until their message completes (a partial line or frame). */
  readonly bufferedBytes: number;
}

/** A copy of `secret` after checking that it is usable. @throws LocalError ERR_KEY_TOO_SHORT when empty. */
export function checkSecret(secret: Uint8Array, profile: string): Buffer {
  if (secret.length === 0) throw sesameError('ERR_KEY_TOO_SHORT', `profile ${profile}: the secret is empty`);
  return Buffer.from(secret);
}

/** HMAC of `message` under `key` with the OpenSSL digest `algorithm`. */
export function hmac(algorithm: string, key: Uint8Array, message: Uint8Array): Buffer {
  return createHmac(algorithm, key).update(message).digest();
}

/** Constant-time equality (false at once when the lengths differ; lengths are not secret). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The SessionInfo of a compatibility profile: no key ids, no forward secrecy, no channel binding. */
export function compatSessionInfo(profile: string): SessionInfo {
  return {
    profile,
    keyId: undefined,
    principal: undefined,
    forwardSecrecy: false,
    channelBinding: undefined,
  };
}

/** The parts every compatibility profile shares, on top of the sans-I/O skeleton. */
export abstract class CompatConnection extends SansIoConnection {
  /** Which end this is. */
  readonly role: Role;
  /** The profile's name (`seed`, `seed-hex`, `python-mp` or `none`), as in {@link SessionInfo.profile}. */
  readonly profile: string;
  private refusal: SesameError | undefined;
  private info: SessionInfo | undefined;
  private framing: Framing | undefined;
  private closeSent = false;
  private ended = false;
  /** Bytes received since authentication (for profiles that infer a refusal from silence). */
  protected bytesReceived = 0;

  protected constructor(role: Role, profile: string) {
    super();
    this.role = role;
    this.profile = profile;
  }

  get isOpen(): boolean {
    return this.info !== undefined && this.error === undefined && this.refusal === undefined;
  }

  get session(): SessionInfo | undefined {
    return this.info;
  }

  /** Whether this end has closed its direction. */
  get closed(): boolean {
    return this.closeSent;
  }

  send(message: Uint8Array): void {
    this.throwIfFailed();
    if (!this.isOpen || this.framing === undefined) {
      throw sesameError('ERR_INVALID_STATE', 'handshake not complete');
    }
    if (this.closeSent) throw sesameError('ERR_CLOSED', 'connection closed for sending');
    for (const b of this.framing.encode(message)) this.queue(b);
  }

  /** Nothing goes on the wire: these profiles end a direction with the transport's end of stream. */
  close(): void {
    this.throwIfFailed();
    if (this.isOpen) this.closeSent = true;
  }

  /** A refusal announced on the wire is the failure, whatever ends the connection afterwards. */
  override fail(err: unknown): SesameError {
    return super.fail(this.refusal ?? err);
  }

  exportKeyingMaterial(_label: string, _context?: Uint8Array): Buffer {
    throw sesameError(
      'ERR_INVALID_STATE',
      `profile ${this.profile} authenticates only the start of the connection and has no exporter`,
    );
  }

  /** Consume handshake bytes from `input`; false when more are needed. */
  protected abstract stepHandshake(events: ConnectionEvent[]): boolean;

  /** The error for a transport that ends before authentication completes. */
  protected abstract endDuringHandshake(): SesameError;

  /** Called at a clean end of input once authenticated; throw to report it as a failure. */
  protected checkEnd(): void {}

  protected consume(data: Uint8Array, events: ConnectionEvent[]): void {
    // After a refusal the peer's bytes no longer matter: only its end of stream does.
    if (this.refusal !== undefined || this.ended || data.length === 0) return;
    if (this.framing === undefined) {
      this.input.push(data);
      while (this.framing === undefined && this.refusal === undefined) {
        if (!this.stepHandshake(events)) break;
      }
    } else {
      const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
      this.bytesReceived += chunk.length;
      this.framing.push(chunk, events);
    }
  }

  protected end(events: ConnectionEvent[]): void {
    if (this.ended) return;
    this.ended = true;
    if (this.refusal !== undefined) throw this.refusal;
    if (this.framing === undefined) throw this.endDuringHandshake();
    this.framing.end(events);
    this.checkEnd();
    events.push({ type: 'close' });
  }

  protected override heldBytes(): number {
    return this.framing?.bufferedBytes ?? 0;
  }

  protected release(): void {
    this.framing = undefined;
  }

  /**
   * Authentication is complete: switch to `framing`, report `established` into `events` and hand
   * the framing any bytes already buffered. Without `events` (in the constructor) the connection
   * is open from the start, and `start()` reports it. `info` replaces the default
   * {@link compatSessionInfo} for a profile that establishes more (spiped: forward secrecy).
   */
  protected authenticate(framing: Framing, events?: ConnectionEvent[], info?: SessionInfo): void {
    this.info = info ?? compatSessionInfo(this.profile);
    this.framing = framing;
    if (events === undefined) return;
    events.push({ type: 'established', session: this.info });
    if (this.input.length > 0) {
      const rest = this.input.take(this.input.length);
      this.bytesReceived += rest.length;
      framing.push(rest, events);
    }
  }

  /**
   * Queue `announcement` (the protocol's refusal message) and hold `error` back until the
   * transport ends or the connection is failed from outside.
   */
  protected refuse(announcement: Buffer, error: SesameError): void {
    this.queue(announcement);
    this.refusal = error;
    this.input.clear();
  }
}
