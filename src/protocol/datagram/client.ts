/**
 * The client endpoint of one datagram session (docs/protocol-udp.md, "Client"), without I/O.
 *
 * States, named for what the client waits for:
 *   ExpectServerHello --verified SERVER_HELLO--> ExpectConfirm --authentic DATA--> Open
 *   any --close() or the server's CLOSE--> Closed
 *
 * Rules:
 * - Every HELLO carries a NEW ClientHello (the server refuses a repeated one) under a fresh
 *   random attempt id; up to `maxAttempts` attempts stay answerable, so a late SERVER_HELLO for
 *   an earlier retransmission still completes the handshake.
 * - A SERVER_HELLO that does not verify spends only its own attempt: an off-path attacker cannot
 *   end a handshake by racing the server.
 * - The client sends nothing sealed before the server proved it holds the key (a verified
 *   ServerHello), and no application data before the server proved it verified the client (any
 *   authentic DATA, normally its CONFIRM).
 * - Every datagram that is not accepted produces one `drop` event; bad input never throws.
 */

import { type SesameError, sesameError } from '../../errors.js';
import type { SessionInfo } from '../channel.js';
import { ClientConnection } from '../connection.js';
import { MSG_SERVER_HELLO } from '../constants.js';
import { checkOptions } from '../options.js';
import { DatagramChannel, datagramSecrets, type SealedDatagram } from './channel.js';
import { type DatagramDrop, drop } from './drop.js';
import { DATAGRAM_CLIENT_RULES, type DatagramClientOptions, DEFAULT_MAX_ATTEMPTS } from './options.js';
import {
  attemptOf,
  DGRAM_DATA,
  DGRAM_DATA_MIN_BYTES,
  DGRAM_FINISHED,
  DGRAM_HELLO,
  DGRAM_SERVER_HELLO,
  datagramType,
  EMPTY,
  embeddedSize,
  envelope,
  KIND_CLOSE,
  KIND_CONFIRM,
  KIND_KEEPALIVE,
  KIND_MESSAGE,
  messageOf,
  sessionIdOf,
  toBuffer,
  ZERO_ID,
} from './wire.js';

/** States, named for what the client waits for. */
export type DatagramClientState = 'ExpectServerHello' | 'ExpectConfirm' | 'Open' | 'Closed';

/** What the client endpoint asks its socket layer to do, or reports. */
export type DatagramClientEvent =
  | {
      /** Send `datagram` to the server (the FINISHED after a verified SERVER_HELLO). */
      readonly type: 'send';
      /** The datagram to send. */
      readonly datagram: Buffer;
    }
  | {
      /** The server confirmed the handshake: the session is open. */
      readonly type: 'open';
      /** What both ends learned. */
      readonly session: SessionInfo;
    }
  | {
      /** An authentic message from the server. */
      readonly type: 'message';
      /** The message's bytes. */
      readonly data: Buffer;
      /** The counter of the client datagram it answers, or 0. */
      readonly replyTo: number;
      /** Its own counter. */
      readonly counter: number;
    }
  | {
      /** The server closed the session. */
      readonly type: 'close';
    }
  | DatagramDrop;

/** One outstanding ClientHello: its connection and the session clock's origin. */
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
    checkOptions(options, DATAGRAM_CLIENT_RULES);
    this.options = options;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  }

  /** What the client waits for. */
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
  send(message: Uint8Array): SealedDatagram {
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

  private seal(kind: number, payload: Uint8Array): SealedDatagram {
    if (this.stateValue === 'Closed') throw sesameError('ERR_CLOSED', 'session closed');
    const channel = this.channel;
    if (this.stateValue !== 'Open' || channel === undefined) {
      throw sesameError('ERR_INVALID_STATE', 'handshake not complete');
    }
    return channel.seal(kind, 0, payload, this.options.now());
  }

  /** SERVER_HELLO: verify it against its attempt, derive the channel, answer with FINISHED. */
  private onServerHello(d: Buffer): DatagramClientEvent[] {
    if (this.stateValue !== 'ExpectServerHello') {
      return [drop('unexpected', 'SERVER_HELLO after the handshake chose one')];
    }
    const size = embeddedSize(d, MSG_SERVER_HELLO);
    if (size === undefined || size !== d.length) return [drop('malformed', 'SERVER_HELLO of a wrong size')];
    const id = sessionIdOf(d);
    const attemptId = attemptOf(d);
    const attempt = this.attempts.get(attemptId);
    if (attempt === undefined)
      return [drop('unknown-session', `SERVER_HELLO for unknown attempt ${attemptId}`)];
    if (id.equals(ZERO_ID)) return [drop('malformed', 'SERVER_HELLO without a session id')];
    const result = attempt.conn.receive(messageOf(d));
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

  /** DATA: open it; the first authentic one opens the session, then dispatch by kind. */
  private onData(d: Buffer): DatagramClientEvent[] {
    const channel = this.channel;
    if (channel === undefined) return [drop('unexpected', 'DATA before the handshake')];
    if (d.length < DGRAM_DATA_MIN_BYTES) return [drop('malformed', 'DATA too short')];
    if (!sessionIdOf(d).equals(channel.id)) return [drop('unknown-session', 'DATA for another session')];
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
