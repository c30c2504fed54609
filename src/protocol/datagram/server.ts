/**
 * The server endpoint of datagram sessions (docs/protocol-udp.md, "Server"), without I/O: feed
 * it every datagram with its source, send what it says to send, and call `expire()` now and then.
 *
 * States of one client, named for what the server expects next from it:
 *   (no entry) --HELLO--> pending (expects FINISHED) --FINISHED--> session (expects DATA)
 * A pending handshake ends at `handshakeTimeoutMs`; a session ends on CLOSE, after `sessionIdleMs`
 * of silence, or when its key is used up.
 *
 * Rules:
 * - The handshake is the native one, run by {@link ServerConnection}: the mac1 gate runs before
 *   any costly work, unknown key ids cost what wrong keys cost, and stale or replayed hellos are
 *   refused.
 * - Amplification: an unauthenticated datagram is answered with at most as many bytes as it
 *   carried (a SERVER_HELLO is exactly as long as its HELLO; a CONFIRM is no longer than the
 *   FINISHED it answers), and everything else is answered not at all.
 * - Limits on sessions and pending handshakes (in all, and per source address) are checked
 *   before a handshake costs anything.
 * - A session follows its client's most recent authentic address (NAT rebinding).
 * - Every datagram that is not accepted produces one `drop` event; bad input never throws.
 */

import { sesameError } from '../../errors.js';
import { BoxedMap } from '../boxed-map.js';
import type { SessionInfo } from '../channel.js';
import { type PresharedKey, ServerConnection, ServerContext } from '../connection.js';
import { MSG_CLIENT_HELLO } from '../constants.js';
import { checkOptions, pickOptions, SERVER_HANDSHAKE_RULES, type ServerHandshakePolicy } from '../options.js';
import { constantTimeEqual } from '../primitives.js';
import { DatagramChannel, datagramSecrets } from './channel.js';
import { type DatagramDrop, drop } from './drop.js';
import {
  DATAGRAM_SERVER_RULES,
  type DatagramServerOptions,
  DEFAULT_DATAGRAM_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_DATAGRAM_SESSIONS,
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_MAX_PENDING_PER_SOURCE,
  DEFAULT_SESSION_IDLE_MS,
  MAX_CONFIRM_RESENDS,
} from './options.js';
import {
  attemptOf,
  type DatagramPeer,
  DGRAM_DATA,
  DGRAM_DATA_MIN_BYTES,
  DGRAM_FINISHED,
  DGRAM_FINISHED_BYTES,
  DGRAM_HELLO,
  DGRAM_SERVER_HELLO,
  DGRAM_SESSION_ID_BYTES,
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
  sessionKeyOf,
  toBuffer,
  ZERO_ID,
} from './wire.js';

/** What the server endpoint asks its socket layer to do, or reports. */
export type DatagramServerEvent =
  | ({
      /** Send `datagram` to `to`. */
      readonly type: 'send';
    } & OutgoingDatagram)
  | {
      /** A client finished its handshake. */
      readonly type: 'established';
      /** The new session's id (hex). */
      readonly sessionId: string;
      /** What both ends learned. */
      readonly session: SessionInfo;
      /** From HELLO to FINISHED, in ms. */
      readonly handshakeMs: number;
    }
  | {
      /** An authentic application message; reply with {@link DatagramServerEndpoint.reply} and `counter`. */
      readonly type: 'message';
      /** The session's id (hex). */
      readonly sessionId: string;
      /** The session's details. */
      readonly session: SessionInfo;
      /** The message's bytes. */
      readonly data: Buffer;
      /** The datagram's counter, which the reply names. */
      readonly counter: number;
    }
  | {
      /** A session ended: the client closed it, it was idle, or its key is used up. */
      readonly type: 'session-end';
      /** The session's id (hex). */
      readonly sessionId: string;
      /** Why it ended. */
      readonly why: 'closed' | 'idle' | 'exhausted';
    }
  | DatagramDrop;

/** A datagram to send, and where. */
export interface OutgoingDatagram {
  /** The whole datagram. */
  readonly datagram: Buffer;
  /** The peer to send it to. */
  readonly to: DatagramPeer;
}

/** A handshake that answered a HELLO and expects the client's FINISHED. */
interface Pending {
  readonly id: Buffer;
  readonly attempt: number;
  readonly conn: ServerConnection;
  readonly source: string;
  readonly createdMs: number;
  readonly originMs: number;
}

/** An established session, which expects DATA. */
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
  /** The handshake context: accepted keys and the replay cache of hellos. */
  readonly context: ServerContext;
  /** The options, without the keys: those live in the context, and a reload must drop them. */
  private readonly options: Omit<DatagramServerOptions, 'keys'>;
  // Boxed: a long-lived Map's replaced tables would keep every ended handshake and session alive
  // until the next full collection (boxed-map.ts).
  private readonly pending = new BoxedMap<string, Pending>();
  private readonly pendingPerSource = new Map<string, number>();
  /** In least-recently-active order: touched sessions are moved to the end. */
  private readonly sessions = new BoxedMap<string, ServerSession>();
  private readonly idleMs: number;
  private readonly handshakeMs: number;
  private readonly maxSessions: number;
  private readonly maxPending: number;
  private readonly maxPendingPerSource: number;

  /** @throws LocalError ERR_INVALID_ARGUMENT for a malformed key id or an out-of-range limit. */
  constructor(options: DatagramServerOptions) {
    checkOptions(options, DATAGRAM_SERVER_RULES);
    const { keys, ...rest } = options;
    this.options = rest;
    this.context = new ServerContext({
      keys,
      entropy: options.entropy,
      now: options.now,
      ...pickOptions<ServerHandshakePolicy>(options, SERVER_HANDSHAKE_RULES),
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

  /** Sessions established and not ended. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Handshakes waiting for FINISHED. */
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
  reply(sessionId: string, replyTo: number, data: Uint8Array): OutgoingDatagram {
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
   * End one session and forget it: returns its authenticated CLOSE datagram, or undefined when
   * there is nothing to send (no such session any more, or a used-up one: best effort).
   */
  closeSession(sessionId: string): OutgoingDatagram | undefined {
    const s = this.sessions.get(sessionId);
    if (s === undefined) return undefined;
    this.sessions.delete(sessionId);
    if (s.channel.exhausted) return undefined;
    return { datagram: s.channel.seal(KIND_CLOSE, 0, EMPTY, this.options.now()).datagram, to: s.remote };
  }

  /**
   * End every session: returns an authenticated CLOSE datagram for each (best effort; a used-up
   * session gets none) and forgets all sessions and handshakes.
   */
  closeAll(): OutgoingDatagram[] {
    const out: OutgoingDatagram[] = [];
    for (const id of [...this.sessions.keys()]) {
      const closed = this.closeSession(id);
      if (closed !== undefined) out.push(closed);
    }
    this.pending.clear();
    this.pendingPerSource.clear();
    return out;
  }

  /** HELLO: check the limits, run the ClientHello, answer with a SERVER_HELLO no longer than it. */
  private onHello(d: Buffer, from: DatagramPeer): DatagramServerEvent[] {
    const size = embeddedSize(d, MSG_CLIENT_HELLO);
    if (size === undefined || size !== d.length)
      return [drop('malformed', 'HELLO of a wrong size or header')];
    if (!sessionIdOf(d).equals(ZERO_ID)) return [drop('malformed', 'HELLO with a session id')];
    if (this.sessions.size >= this.maxSessions) return [drop('busy', `${this.maxSessions} sessions open`)];
    if (this.pending.size >= this.maxPending) return [drop('busy', `${this.maxPending} handshakes pending`)];
    const perSource = this.pendingPerSource.get(from.address) ?? 0;
    if (perSource >= this.maxPendingPerSource) {
      return [drop('busy', `${perSource} handshakes pending from ${from.address}`)];
    }
    const now = this.options.now();
    const conn = new ServerConnection(this.context);
    const result = conn.receive(messageOf(d));
    const failure = result.find((e) => e.type === 'error');
    if (failure !== undefined) return [drop('refused', failure.error.message, failure.error)];
    const [serverHello] = conn.takeOutput();
    if (serverHello === undefined) return [drop('malformed', 'incomplete ClientHello')];
    const id = this.newSessionId();
    const attempt = attemptOf(d);
    const reply = envelope(DGRAM_SERVER_HELLO, id, attempt, serverHello);
    // Amplification rule: never more bytes to an unauthenticated source than it sent.
    if (reply.length > d.length) return [drop('malformed', 'reply would be larger than the hello')];
    const key = id.toString('hex');
    this.pending.set(key, { id, attempt, conn, source: from.address, createdMs: now, originMs: now });
    this.pendingPerSource.set(from.address, perSource + 1);
    return [{ type: 'send', datagram: reply, to: from }];
  }

  /** FINISHED: verify the ClientFinished, open the session, and confirm it with a sealed CONFIRM. */
  private onFinished(d: Buffer, from: DatagramPeer): DatagramServerEvent[] {
    if (d.length !== DGRAM_FINISHED_BYTES) return [drop('malformed', 'FINISHED of a wrong size')];
    const key = sessionKeyOf(d);
    const p = this.pending.get(key);
    if (p === undefined) return this.onRepeatedFinished(key, d, from);
    if (attemptOf(d) !== p.attempt) return [drop('malformed', 'FINISHED for another attempt')];
    this.removePending(key, p);
    const result = p.conn.receive(messageOf(d));
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

  /** DATA: open it in its session, then follow the client's address and dispatch by kind. */
  private onData(d: Buffer, from: DatagramPeer): DatagramServerEvent[] {
    if (d.length < DGRAM_DATA_MIN_BYTES) return [drop('malformed', 'DATA too short')];
    const key = sessionKeyOf(d);
    const s = this.sessions.get(key);
    if (s === undefined) return [drop('unknown-session', `DATA for unknown session ${key}`)];
    const now = this.options.now();
    const opened = s.channel.open(d, now);
    if (typeof opened === 'string') return [drop(opened, `DATA ${opened} in session ${key}`)];
    // Authentic: the session is active, and the client may have moved (NAT rebinding).
    s.clientSpoke = true;
    s.lastSeenMs = now;
    s.remote = from;
    this.sessions.touch(key);
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
      const id = this.options.entropy.bytes(DGRAM_SESSION_ID_BYTES);
      const key = id.toString('hex');
      if (!id.equals(ZERO_ID) && !this.pending.has(key) && !this.sessions.has(key)) return id;
    }
    throw sesameError('ERR_INVALID_STATE', 'cannot draw an unused session id: broken entropy source');
  }
}
