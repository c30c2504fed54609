/**
 * The contract between a wire profile's sans-I/O connection and the socket layer. The native
 * protocol's {@link ClientConnection} and {@link ServerConnection} implement it, and so does every
 * compatibility profile, so one socket layer and one server framework serve them all.
 *
 * Rules every implementation keeps:
 * - `receive` never throws for bad input: it returns the events before the failure and then one
 *   `error` event; from then on every call throws that same error (sticky).
 * - `established` comes once, before any `message`; `close` means the peer will send no more.
 * - Output is only ever produced into `takeOutput()`; nothing here touches a socket or a timer.
 */

import type { SesameError } from '../errors.js';

/** What both ends learn when authentication completes. */
export interface SessionInfo {
  /** The wire profile: 'native', or a compatibility profile's name. */
  readonly profile: string;
  /** The key id used, when the profile names keys. */
  readonly keyId: string | undefined;
  /** Who holds that key, when known. */
  readonly principal: string | undefined;
  /** Whether ephemeral key shares were used (forward secrecy). */
  readonly forwardSecrecy: boolean;
  /**
   * 32 bytes, equal at both ends and unique to this connection, to bind application
   * authentication to the channel; undefined for profiles that authenticate only the start.
   */
  readonly channelBinding: Buffer | undefined;
}

/** What a {@link ProtocolConnection} reports as input arrives, in order; switch on `type`. */
export type ConnectionEvent =
  | {
      /** Authentication completed: once, before any `message`. */
      readonly type: 'established';
      /** What both ends learned. */
      readonly session: SessionInfo;
    }
  | {
      /** One complete application message, reassembled. */
      readonly type: 'message';
      /** The message's bytes. */
      readonly data: Buffer;
    }
  | {
      /** The peer sent a ping; a native connection has already queued the pong (unless closed). */
      readonly type: 'ping';
      /** The ping's payload (at most 64 bytes). */
      readonly payload: Buffer;
    }
  | {
      /** The peer answered a ping. */
      readonly type: 'pong';
      /** The payload of the ping it answers. */
      readonly payload: Buffer;
    }
  | {
      /** The peer will send nothing more (an authenticated close, or EOF where that is the profile's end). */
      readonly type: 'close';
    }
  | {
      /** The connection failed; it is the last event, and the transport must close. */
      readonly type: 'error';
      /** The sticky error, which every later call throws. */
      readonly error: SesameError;
    };

/** One end of a connection in any profile, driven by bytes in and bytes out. */
export interface ProtocolConnection {
  /**
   * The events that exist before any input: `established` for a profile that is open from the
   * start (`none`), nothing for the others. Call once, right after construction, before `receive`.
   */
  start(): ConnectionEvent[];
  /** Feed received bytes; returns the events they complete. */
  receive(data: Uint8Array): ConnectionEvent[];
  /** The transport reached end of input. */
  receiveEnd(): ConnectionEvent[];
  /** Queue one message (only once established). */
  send(message: Uint8Array): void;
  /** Queue whatever ends this direction cleanly (idempotent). */
  close(): void;
  /** The bytes to write, in order; the queue is emptied. */
  takeOutput(): Buffer[];
  /** Whether bytes are waiting to be taken with `takeOutput()`. */
  readonly hasOutput: boolean;
  /** Authenticated and not failed. */
  readonly isOpen: boolean;
  /** What authentication established; undefined before it completes. */
  readonly session: SessionInfo | undefined;
  /** The sticky error, once failed; undefined otherwise. */
  readonly error: SesameError | undefined;
  /** Fail from outside (timeout, socket error); returns the sticky error (the first wins). */
  fail(err: unknown): SesameError;
  /**
   * Keying material bound to this connection.
   * @throws LocalError ERR_INVALID_STATE before authentication or for profiles without an exporter.
   */
  exportKeyingMaterial(label: string, context?: Uint8Array): Buffer;
}
