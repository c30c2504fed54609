/**
 * A server of authenticated datagrams (docs/protocol-udp.md): the datagram half of
 * {@link BaseServer}. It feeds every received datagram to a sans-I/O
 * {@link DatagramServerEndpoint}, sends what it says to send, runs the handler for each authentic
 * message, and sweeps idle sessions.
 *
 * What differs from a stream server is only here: one socket for every peer, a session per
 * handshake rather than per connection, one handler call per datagram.
 *
 * Rules:
 * - The server sends nothing to a source that has not authenticated except the SERVER_HELLO,
 *   which is never longer than the HELLO it answers; every other unauthenticated datagram is
 *   dropped without an answer and reported as a `drop` event.
 * - A message is one datagram and its reply is one datagram; the reply goes where the request
 *   came from (as socketserver's `sendto(client_address)`).
 * - The hooks work as on streams: a source blocked by the failed-login backoff has its HELLOs
 *   dropped (`throttled`); `verifyRequest` is asked once per session, and its messages wait for
 *   the answer; a session refused, picked by `closeSessions()`, or ended by shutdown gets an
 *   authenticated CLOSE; an idle session is reported to `handleTimeout()`.
 * - What streams have and datagrams cannot: PROXY headers (a load balancer's header has no place
 *   in a datagram) and `--workers` (one UDP socket is one process's); the CLI refuses both.
 * - Node has no Unix datagram sockets (`dgram` speaks only udp4 and udp6), so there is no
 *   `unixgram://` transport.
 */

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { sesameError } from '../errors.js';
import { BoxedMap } from '../protocol/boxed-map.js';
import type { SessionInfo } from '../protocol/channel.js';
import type { PresharedKey } from '../protocol/connection.js';
import {
  type DatagramPeer,
  DatagramServerEndpoint,
  type DatagramServerEvent,
  DGRAM_HELLO,
  formatPeer,
} from '../protocol/datagram/index.js';
import {
  checkOptions,
  DATAGRAM_SERVER_LIMIT_RULES,
  type DatagramServerLimits,
  type OptionRules,
  pickOptions,
  SERVER_HANDSHAKE_RULES,
  type ServerHandshakePolicy,
} from '../protocol/options.js';
import { udpAddress } from './address.js';
import { BaseServer, type BaseServerOptions, type TrafficTotals } from './base-server.js';
import {
  type ConnectionInfo,
  connectionInfo,
  type DatagramHandlerClass,
  datagramRespond,
  type Reply,
  type RequestContext,
  type Respond,
} from './handlers.js';
import { environmentOf, timerRule } from './options.js';
import { isPromiseLike } from './session.js';

/** What a datagram handler knows about the message in hand, and how it answers. */
export interface DatagramContext extends RequestContext {
  /** The sender's UDP port. */
  readonly remotePort: number;
  /** The authenticated session: key id, principal, forward secrecy, channel binding. */
  readonly session: SessionInfo;
  /** The session id (16 hex characters). */
  readonly sessionId: string;
  /**
   * Send one datagram back as a reply to this message (the client's `request()` gets the first).
   * @throws LocalError ERR_DATAGRAM_TOO_LARGE over maxPayloadBytes; ERR_CLOSED when the session
   *   ended or the server closed.
   */
  reply(data: Uint8Array | string): void;
}

/** Serves one authentic datagram: a {@link Respond} function that may use the datagram context. */
export type DatagramHandler = (
  message: Buffer,
  ctx: DatagramContext,
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler that only calls ctx.reply() returns nothing
) => Reply | void | Promise<Reply | void>;

/**
 * Options of a {@link UdpServer}: what a server accepts in a handshake, the datagram server
 * limits, and what is the UDP server's own.
 */
export interface UdpServerOptions extends BaseServerOptions, ServerHandshakePolicy, DatagramServerLimits {
  /** Accepted keys; replace them later with `setKeys()`. */
  readonly keys: Iterable<PresharedKey>;
  /**
   * Serves each authentic datagram: a `respond(message, ctx)` function whose returned bytes are
   * the reply, or a DatagramRequestHandler subclass (constructed per datagram, as in socketserver).
   */
  readonly handler: DatagramHandler | DatagramHandlerClass;
  /** How often idle sessions and stale handshakes are swept, in ms: 1 to 2^31 - 1 (default 1 s). */
  readonly sweepIntervalMs?: number | undefined;
}

/** Default of {@link UdpServerOptions.sweepIntervalMs}. */
export const DEFAULT_SWEEP_INTERVAL_MS = 1000;

/** Rules of the {@link UdpServerOptions} a UDP server adds to {@link BaseServerOptions}. */
export const UDP_SERVER_RULES: OptionRules<
  Pick<UdpServerOptions, keyof ServerHandshakePolicy | keyof DatagramServerLimits | 'sweepIntervalMs'>
> = {
  ...SERVER_HANDSHAKE_RULES,
  ...DATAGRAM_SERVER_LIMIT_RULES,
  sweepIntervalMs: timerRule(1),
};

/** The server's record of one established session. */
interface Served {
  readonly info: ConnectionInfo;
  readonly startedAt: number;
  /** verifyRequest's answer: true, false, or still pending (messages wait for it). */
  verdict: boolean | Promise<boolean>;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
}

type MessageEvent = Extract<DatagramServerEvent, { type: 'message' }>;

function udpUrl(host: string, port: number): string {
  return host.includes(':') ? `udp://[${host}]:${port}` : `udp://${host}:${port}`;
}

/**
 * A server of authenticated datagrams. See {@link BaseServer} for the lifecycle and the hooks;
 * besides the shared events it emits `drop`, `session-end` and `socket-error`.
 */
export class UdpServer extends BaseServer {
  /** The options the server was constructed with, without the keys (see `setKeys`). */
  readonly options: Omit<UdpServerOptions, 'keys'>;
  private readonly endpoint: DatagramServerEndpoint;
  private readonly host: string;
  private port: number;
  private socket: UdpSocket | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private inflight = 0;
  private idle: (() => void)[] = [];
  private readonly traffic: TrafficTotals = { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 };
  /** Boxed, as the endpoint's sessions are (src/protocol/boxed-map.ts). */
  private readonly served = new BoxedMap<string, Served>();
  private readonly respond: DatagramHandler;

  /** @throws LocalError ERR_INVALID_ADDRESS, ERR_INVALID_ARGUMENT (a malformed key id or limit). */
  constructor(options: UdpServerOptions) {
    super(options);
    checkOptions(options, UDP_SERVER_RULES);
    const { keys, ...rest } = options;
    this.options = rest;
    this.respond = datagramRespond<DatagramContext>(options.handler, this);
    const a = udpAddress(options.listen);
    this.host = a.host;
    this.port = a.port;
    this.endpoint = new DatagramServerEndpoint({
      keys,
      ...environmentOf(options),
      ...pickOptions<ServerHandshakePolicy>(options, SERVER_HANDSHAKE_RULES),
      ...pickOptions<DatagramServerLimits>(options, DATAGRAM_SERVER_LIMIT_RULES),
    });
  }

  get url(): string {
    return udpUrl(this.host, this.port);
  }

  /** Sessions established and not yet forgotten. */
  get sessionCount(): number {
    return this.endpoint.sessionCount;
  }

  /** Handshakes waiting for FINISHED. */
  get pendingCount(): number {
    return this.endpoint.pendingCount;
  }

  protected get openCount(): number {
    return this.endpoint.sessionCount;
  }

  protected addLive(t: TrafficTotals): void {
    t.bytesIn += this.traffic.bytesIn;
    t.bytesOut += this.traffic.bytesOut;
    t.messagesIn += this.traffic.messagesIn;
    t.messagesOut += this.traffic.messagesOut;
  }

  setKeys(keys: Iterable<PresharedKey>): void {
    this.endpoint.setKeys(keys);
  }

  closeSessions(predicate: (info: SessionInfo) => boolean): number {
    let n = 0;
    for (const [id, s] of this.served) {
      if (predicate(s.info)) {
        void this.endSession(id, 'closed');
        n++;
      }
    }
    return n;
  }

  protected async bind(): Promise<void> {
    const socket = createSocket({ type: isIP(this.host) === 6 ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        socket.close();
        reject(err);
      };
      socket.once('error', onError);
      socket.bind({ address: this.host, port: this.port, exclusive: true }, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    this.socket = socket;
    socket.on('error', (err) => this.emit('socket-error', err));
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.port = socket.address().port;
    const every = this.options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.sweep = setInterval(() => this.dispatch(this.endpoint.expire(), undefined), every);
    this.sweep.unref();
  }

  protected stopAccepting(): void {
    clearInterval(this.sweep);
  }

  protected drain(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idle.push(resolve));
  }

  protected abort(): void {
    // Handlers still running will find the session closed when they reply (ERR_CLOSED).
  }

  protected async release(): Promise<void> {
    const socket = this.socket;
    if (socket === undefined) return;
    const closes = [...this.served.keys()].map((id) => this.endSession(id, 'closed'));
    // Sessions the server holds no record of (none in practice) still get their CLOSE.
    for (const { datagram, to } of this.endpoint.closeAll()) {
      closes.push(new Promise<void>((resolve) => this.transmit(datagram, to, resolve)));
    }
    await Promise.all(closes);
    this.socket = undefined;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    this.traffic.bytesIn += msg.length;
    const from: DatagramPeer = { address: rinfo.address, port: rinfo.port };
    if (this.isClosing) {
      this.emit('drop', { reason: 'closed', remote: formatPeer(from), detail: 'server closing' });
      return;
    }
    if (msg[0] === DGRAM_HELLO) {
      const blocked = this.throttledFor(from.address);
      if (blocked > 0) {
        const remote = formatPeer(from);
        const detail = `${remote} is blocked for ${blocked} ms after repeated failed logins`;
        this.refused(from.address, remote, sesameError('ERR_THROTTLED', detail), false);
        this.emit('drop', { reason: 'throttled', remote, code: 'ERR_THROTTLED', detail });
        return;
      }
    }
    this.dispatch(this.endpoint.receive(msg, from), from, msg.length);
  }

  private dispatch(events: DatagramServerEvent[], from: DatagramPeer | undefined, size = 0): void {
    const remote = from === undefined ? '' : formatPeer(from);
    for (const e of events) {
      switch (e.type) {
        case 'send':
          this.transmit(e.datagram, e.to);
          break;
        case 'established':
          if (from !== undefined) this.established(e.sessionId, e.session, from, e.handshakeMs);
          break;
        case 'message':
          if (from !== undefined) this.onAuthentic(e, from, size);
          break;
        case 'session-end':
          this.forget(e.sessionId, e.why);
          break;
        case 'drop':
          if (e.reason === 'refused' && e.error !== undefined && from !== undefined) {
            this.refused(from.address, remote, e.error);
          }
          this.emit('drop', { reason: e.reason, remote, code: e.error?.code, detail: e.detail });
          break;
      }
    }
  }

  private established(sessionId: string, s: SessionInfo, from: DatagramPeer, handshakeMs: number): void {
    const info = connectionInfo(s, formatPeer(from), from.address, from.port);
    const served: Served = {
      info,
      startedAt: Date.now(),
      verdict: true,
      bytesIn: 0,
      bytesOut: 0,
      messagesIn: 0,
      messagesOut: 0,
    };
    this.served.set(sessionId, served);
    this.authenticated(from.address, info.remote, s, handshakeMs);
    const verdict = this.admit(info).catch((err: unknown) => {
      this.handleError(err, info);
      return false;
    });
    served.verdict = verdict;
    verdict.then((ok) => {
      if (this.served.get(sessionId) !== served) return;
      served.verdict = ok;
      if (!ok) void this.endSession(sessionId, 'closed');
    });
  }

  private onAuthentic(e: MessageEvent, from: DatagramPeer, size: number): void {
    const served = this.served.get(e.sessionId);
    if (served === undefined) return;
    served.bytesIn += size;
    const verdict = served.verdict;
    if (verdict === true) {
      this.serve(e, from, served);
    } else if (verdict !== false) {
      this.inflight++;
      verdict.then((ok) => {
        if (ok && this.served.get(e.sessionId) === served) this.serve(e, from, served);
        this.done();
      });
    }
  }

  private serve(e: MessageEvent, from: DatagramPeer, served: Served): void {
    const info = served.info;
    const ctx: DatagramContext = {
      profile: info.profile,
      keyId: info.keyId,
      principal: info.principal,
      forwardSecrecy: info.forwardSecrecy,
      channelBinding: info.channelBinding,
      remote: formatPeer(from),
      remoteAddress: from.address,
      remotePort: from.port,
      session: e.session,
      sessionId: e.sessionId,
      reply: (data) => {
        if (this.socket === undefined) throw sesameError('ERR_CLOSED', 'server closed');
        const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
        const { datagram } = this.endpoint.reply(e.sessionId, e.counter, bytes);
        this.transmit(datagram, from);
        served.bytesOut += datagram.length;
        served.messagesOut++;
        this.traffic.messagesOut++;
      },
    };
    this.inflight++;
    served.messagesIn++;
    this.traffic.messagesIn++;
    let result: ReturnType<DatagramHandler>;
    try {
      result = this.respond(e.data, ctx);
    } catch (err) {
      this.handleError(err, ctx);
      this.done();
      return;
    }
    if (isPromiseLike(result)) {
      Promise.resolve(result).then(
        (r) => {
          this.sendResult(r, ctx);
          this.done();
        },
        (err: unknown) => {
          this.handleError(err, ctx);
          this.done();
        },
      );
    } else {
      this.sendResult(result, ctx);
      this.done();
    }
  }

  private sendResult(result: ReturnType<DatagramHandler>, ctx: DatagramContext): void {
    if (typeof result !== 'string' && !(result instanceof Uint8Array)) return;
    try {
      ctx.reply(result);
    } catch (err) {
      this.handleError(err, ctx);
    }
  }

  private done(): void {
    this.inflight--;
    if (this.inflight === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /**
   * End a session from this side: an authenticated CLOSE to its peer, then forget it. Resolves
   * once the CLOSE has been handed to the network.
   */
  private endSession(sessionId: string, why: 'closed'): Promise<void> {
    const closed = this.endpoint.closeSession(sessionId);
    this.forget(sessionId, why);
    if (closed === undefined) return Promise.resolve();
    const { datagram, to } = closed;
    return new Promise<void>((resolve) => this.transmit(datagram, to, resolve));
  }

  /** The endpoint forgot a session (or is about to): report it, with its counters. */
  private forget(sessionId: string, why: 'closed' | 'idle' | 'exhausted'): void {
    const served = this.served.get(sessionId);
    this.served.delete(sessionId);
    this.emit('session-end', { sessionId, why });
    if (served === undefined) return;
    if (why === 'idle') this.handleTimeout(served.info);
    if (this.listenerCount('session-closed') > 0) {
      this.emit('session-closed', {
        remote: served.info.remote,
        keyId: served.info.keyId,
        principal: served.info.principal,
        durationMs: Date.now() - served.startedAt,
        bytesIn: served.bytesIn,
        bytesOut: served.bytesOut,
        messagesIn: served.messagesIn,
        messagesOut: served.messagesOut,
        error: why === 'exhausted' ? 'ERR_CLOSED' : undefined,
      });
    }
  }

  private transmit(datagram: Buffer, to: DatagramPeer, sent?: () => void): void {
    const socket = this.socket;
    if (socket === undefined) {
      sent?.();
      return;
    }
    this.traffic.bytesOut += datagram.length;
    socket.send(datagram, to.port, to.address, (err) => {
      if (err) this.emit('socket-error', err);
      sent?.();
    });
  }
}
