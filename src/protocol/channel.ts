/**
 * The contracts between the protocol core and the layers above it: what a wire profile's sans-I/O
 * connection offers the socket layer ({@link ProtocolConnection}, its {@link ConnectionEvent}s and
 * {@link SessionInfo}), how a server makes one per accepted socket ({@link ServerProfile}), and a
 * pre-shared key as the protocol sees it ({@link PresharedKey}). The native protocol's
 * connections implement them, and so does every compatibility profile, so one socket layer and one
 * server framework serve them all. This file holds types only: net and compat import it, and it
 * imports nothing but the error type.
 *
 * Rules every implementation keeps:
 * - `receive` never throws for bad input: it returns the events before the failure and then one
 *   `error` event; from then on every call throws that same error (sticky).
 * - `established` comes once, before any `message`; `close` means the peer will send no more.
 * - Output is only ever produced into `takeOutput()`; nothing here touches a socket or a timer.
 */

import type { SesameError } from '../errors.js';

/** A pre-shared key as the protocol sees it. */
export interface PresharedKey {
  /** 16 lowercase hex characters (8 bytes on the wire). */
  readonly id: string;
  /** Who holds the key; reported to the application, never sent. */
  readonly principal: string;
  /** At least PSK_MIN_BYTES (32) bytes. */
  readonly secret: Uint8Array;
  /** When true, a server refuses the key (ERR_KEY_REVOKED). */
  readonly revoked?: boolean | undefined;
  /** A server refuses the key before this instant (ERR_KEY_NOT_YET_VALID). */
  readonly notBefore?: Date | undefined;
  /** A server refuses the key from this instant on (ERR_KEY_EXPIRED). */
  readonly notAfter?: Date | undefined;
}

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
   * Received bytes held until what they belong to completes: a partial record or frame, the
   * fragments of a message, an unterminated line. The socket layer counts them against its
   * high-water mark and its server's memory budget. Absent means 0.
   */
  readonly bufferedBytes?: number;
  /**
   * Keying material bound to this connection.
   * @throws LocalError ERR_INVALID_STATE before authentication or for profiles without an exporter.
   */
  exportKeyingMaterial(label: string, context?: Uint8Array): Buffer;
}

/**
 * A wire profile on the server side: makes the sans-I/O connection for each accepted socket
 * (which the socket layer then starts with `start()`).
 */
export interface ServerProfile {
  /** The profile's name: `native`, or a compatibility profile's name. */
  readonly name: string;
  /** A new server-side connection for one accepted socket. */
  createConnection(): ProtocolConnection;
  /** Replace the accepted keys, for profiles that have several. */
  setKeys?(keys: Iterable<PresharedKey>): void;
}
