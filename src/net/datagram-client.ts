/**
 * The client of authenticated datagrams (docs/protocol-udp.md): {@link connectUdp} runs the
 * handshake with retransmission (a NEW ClientHello per retry, then the FINISHED until the server
 * confirms) over a sans-I/O {@link DatagramClientEndpoint} and resolves with an open
 * {@link UdpSession}.
 *
 * Rules:
 * - A message is one datagram and its reply is one datagram: nothing is fragmented, retransmitted
 *   or reordered here. `request()` matches a reply to its request by the request's counter, so
 *   a lost or late datagram affects only its own request (ERR_REQUEST_TIMEOUT).
 * - A refused key looks the same as an absent server: a server never answers a datagram that
 *   fails authentication.
 */

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { isSesameError, type SesameError, sesameError } from '../errors.js';
import type { SessionInfo } from '../protocol/channel.js';
import type { PresharedKey } from '../protocol/connection.js';
import {
  DatagramClientEndpoint,
  type DatagramClientEvent,
  type DatagramPeer,
  formatPeer,
} from '../protocol/datagram/index.js';
import {
  CLIENT_HANDSHAKE_RULES,
  type ClientHandshakePolicy,
  checkOptions,
  DATAGRAM_CLIENT_LIMIT_RULES,
  type DatagramClientLimits,
  type Environment,
  type OptionRules,
  pickOptions,
} from '../protocol/options.js';
import { udpAddress } from './address.js';
import type { DropEvent } from './base-server.js';
import { environmentOf, timerRule } from './options.js';

/** Events of a {@link UdpSession}. */
export interface UdpSessionEvents {
  /** A server datagram that answers no waiting request (a late reply, or a second reply). */
  message: [data: Buffer, replyTo: number];
  /** A datagram that was not accepted. */
  drop: [event: DropEvent];
  /** The session ended (closed by either side, or failed). */
  close: [];
  /** The socket reported an error. */
  'socket-error': [error: Error];
}

/**
 * Options of {@link connectUdp}: the key, how the client handshakes, the datagram client limits,
 * the environment (default `systemEntropy` and `Date.now`), and the timers of the session.
 */
export interface UdpConnectOptions extends ClientHandshakePolicy, DatagramClientLimits, Partial<Environment> {
  /** The key to authenticate with: a well-formed id and a secret of at least 32 bytes. */
  readonly key: PresharedKey;
  /** Deadline for the whole handshake, in ms: 1 to 2^31 - 1 (default 10 s). */
  readonly handshakeTimeoutMs?: number | undefined;
  /**
   * First retransmission delay during the handshake, doubled each time up to 8x, in ms: 1 to
   * 2^31 - 1 (default 250 ms).
   */
  readonly retransmitMs?: number | undefined;
  /** Default `request()` timeout, in ms: 1 to 2^31 - 1 (default 5 s). */
  readonly requestTimeoutMs?: number | undefined;
  /** Send a keepalive after this long without sending, in ms: 0 (never) to 2^31 - 1 (default 60 s). */
  readonly keepaliveMs?: number | undefined;
}

/** Default of {@link UdpConnectOptions.handshakeTimeoutMs}. */
export const DEFAULT_UDP_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Default of {@link UdpConnectOptions.retransmitMs}. */
export const DEFAULT_RETRANSMIT_MS = 250;
/** Default of {@link UdpConnectOptions.requestTimeoutMs}. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
/** Default of {@link UdpConnectOptions.keepaliveMs}. */
export const DEFAULT_KEEPALIVE_MS = 60_000;

/** Rules of the {@link UdpConnectOptions} timers; the rest are checked by the endpoint. */
export const UDP_CONNECT_RULES: OptionRules<
  Pick<UdpConnectOptions, 'handshakeTimeoutMs' | 'retransmitMs' | 'requestTimeoutMs' | 'keepaliveMs'>
> = {
  handshakeTimeoutMs: timerRule(1),
  retransmitMs: timerRule(1),
  requestTimeoutMs: timerRule(1),
  keepaliveMs: timerRule(0),
};

interface Waiter {
  resolve(reply: Buffer): void;
  reject(err: SesameError): void;
  timer: NodeJS.Timeout;
}

/**
 * Open an authenticated datagram session to `url` (`udp://HOST:PORT`).
 * @throws (rejects) LocalError ERR_INVALID_ADDRESS, ERR_KEY_TOO_SHORT, ERR_INVALID_ARGUMENT;
 *   TransportError ERR_CONNECT_FAILED (no such host, or the port is closed),
 *   ERR_HANDSHAKE_TIMEOUT (no confirmed handshake in time: a refused key looks the same as an
 *   absent server, since a server never answers a datagram that fails authentication).
 */
export async function connectUdp(url: string, options: UdpConnectOptions): Promise<UdpSession> {
  const { host, port } = udpAddress(url);
  if (port === 0) throw sesameError('ERR_INVALID_ADDRESS', `cannot connect to port 0: ${url}`);
  checkOptions(options, UDP_CONNECT_RULES);
  const endpoint = new DatagramClientEndpoint({
    key: options.key,
    ...environmentOf(options),
    ...pickOptions<ClientHandshakePolicy>(options, CLIENT_HANDSHAKE_RULES),
    ...pickOptions<DatagramClientLimits>(options, DATAGRAM_CLIENT_LIMIT_RULES),
  });
  const first = endpoint.hello(); // throws for an unusable key before any I/O
  let address = host;
  let family = isIP(host);
  if (family === 0) {
    try {
      const found = await lookup(host);
      address = found.address;
      family = found.family;
    } catch (cause) {
      throw sesameError('ERR_CONNECT_FAILED', `cannot resolve ${host}`, { cause });
    }
  }
  const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (err) => {
      socket.close();
      reject(sesameError('ERR_CONNECT_FAILED', `cannot reach ${url}: ${err.message}`, { cause: err }));
    });
    socket.connect(port, address, () => {
      socket.removeAllListeners('error');
      resolve();
    });
  });
  const session = new UdpSession(socket, endpoint, url, { address, port }, options);
  await session.handshake(first);
  return session;
}

/**
 * One authenticated datagram session, client side.
 *
 * Events: `message` (Buffer, replyTo: number) for a server datagram that answers no waiting
 * request (a late reply, or a second reply); `drop` (DropEvent); `close` when the session
 * ended (closed by either side); `socket-error` (Error).
 */
export class UdpSession extends EventEmitter<UdpSessionEvents> {
  /** The URL given to {@link connectUdp}. */
  readonly url: string;
  /** `HOST:PORT` of the server. */
  readonly remote: string;
  private readonly socket: UdpSocket;
  private readonly endpoint: DatagramClientEndpoint;
  private readonly options: UdpConnectOptions;
  private readonly requests = new Map<number, Waiter>();
  private openInfo: SessionInfo | undefined;
  private failure: SesameError | undefined;
  private socketClosed = false;
  private readonly socketDone: Promise<void>;
  private lastSentMs = 0;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private onOpen: ((info: SessionInfo) => void) | undefined;
  private onHandshakeError: ((err: SesameError) => void) | undefined;
  private onPhase: (() => void) | undefined;

  /** @internal Use {@link connectUdp}. */
  constructor(
    socket: UdpSocket,
    endpoint: DatagramClientEndpoint,
    url: string,
    server: DatagramPeer,
    options: UdpConnectOptions,
  ) {
    super();
    this.socket = socket;
    this.endpoint = endpoint;
    this.url = url;
    this.remote = formatPeer(server);
    this.options = options;
    this.socketDone = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('close', () => {
      this.socketClosed = true;
    });
    socket.on('message', (msg) => this.onMessage(msg));
    socket.on('error', (err: NodeJS.ErrnoException) => this.onSocketError(err));
  }

  /** Session details: key id, principal, forward secrecy, channel binding. */
  get info(): SessionInfo {
    if (this.openInfo === undefined) throw sesameError('ERR_INVALID_STATE', 'handshake not complete');
    return this.openInfo;
  }

  /** The session id (16 hex characters). */
  get sessionId(): string {
    return this.endpoint.sessionId ?? '';
  }

  /** Why the session ended (closed by either side, or failed); undefined while it is usable. */
  get error(): SesameError | undefined {
    return this.failure;
  }

  /**
   * End the session now, without waiting: the CLOSE datagram is sent (best effort), waiting
   * requests fail with ERR_CLOSED and the socket is released, so nothing keeps the process alive.
   */
  destroy(): void {
    this.close().catch(() => {});
  }

  /** Whether the session has ended (closed by either side, or failed). */
  get closed(): boolean {
    return this.endpoint.state === 'Closed' || this.failure !== undefined;
  }

  /**
   * Send one message in one datagram, without waiting for a reply.
   * @throws LocalError ERR_DATAGRAM_TOO_LARGE over maxPayloadBytes, ERR_CLOSED once closed.
   */
  send(message: Uint8Array): void {
    this.checkUsable();
    this.transmit(this.endpoint.send(message).datagram);
  }

  /**
   * Send one message and wait for the reply to it (matched by the request's counter).
   * @throws (rejects) ERR_REQUEST_TIMEOUT when no reply comes within `timeoutMs` (the request is
   *   not retransmitted: a handler may not be idempotent); ERR_CLOSED when the session ends
   *   first; ERR_DATAGRAM_TOO_LARGE over maxPayloadBytes.
   */
  request(message: Uint8Array, timeoutMs?: number): Promise<Buffer> {
    let sealed: { datagram: Buffer; counter: number };
    try {
      this.checkUsable();
      sealed = this.endpoint.send(message);
    } catch (err) {
      return Promise.reject(err);
    }
    const ms = timeoutMs ?? this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(sealed.counter);
        reject(sesameError('ERR_REQUEST_TIMEOUT', `no reply within ${ms} ms`));
      }, ms);
      this.requests.set(sealed.counter, { resolve, reject, timer });
      this.transmit(sealed.datagram);
    });
  }

  /**
   * Close: tell the server (one authenticated CLOSE datagram, best effort), fail waiting
   * requests with ERR_CLOSED and release the socket.
   */
  async close(): Promise<void> {
    if (!this.socketClosed) {
      const datagram = this.endpoint.state === 'Closed' ? undefined : this.endpoint.close();
      if (datagram !== undefined) {
        await new Promise<void>((resolve) => this.socket.send(datagram, () => resolve()));
      }
      this.end(sesameError('ERR_CLOSED', 'session closed'));
    }
    await this.socketDone;
  }

  /** @internal Run the handshake with retransmission; resolves once the server confirmed. */
  handshake(first: Buffer): Promise<SessionInfo> {
    const deadlineMs = this.options.handshakeTimeoutMs ?? DEFAULT_UDP_HANDSHAKE_TIMEOUT_MS;
    const baseMs = this.options.retransmitMs ?? DEFAULT_RETRANSMIT_MS;
    return new Promise<SessionInfo>((resolve, reject) => {
      let delay = baseMs;
      let phase = this.endpoint.state;
      let retry: NodeJS.Timeout | undefined;
      const schedule = () => {
        retry = setTimeout(() => {
          try {
            if (this.endpoint.state === 'ExpectServerHello') this.transmit(this.endpoint.hello());
            else if (this.endpoint.finished !== undefined) this.transmit(this.endpoint.finished);
          } catch (err) {
            finish(isSesameError(err) ? err : sesameError('ERR_INVALID_STATE', String(err)));
            return;
          }
          delay = Math.min(delay * 2, baseMs * 8);
          schedule();
        }, delay);
      };
      const deadline = setTimeout(() => {
        const last = this.endpoint.lastHandshakeError;
        const why = last === undefined ? '' : ` (last refusal: ${last.message})`;
        finish(sesameError('ERR_HANDSHAKE_TIMEOUT', `handshake not confirmed after ${deadlineMs} ms${why}`));
      }, deadlineMs);
      const finish = (result: SessionInfo | SesameError) => {
        clearTimeout(retry);
        clearTimeout(deadline);
        this.onOpen = undefined;
        this.onHandshakeError = undefined;
        if (result instanceof Error) {
          this.end(result);
          reject(result);
        } else {
          resolve(result);
        }
      };
      this.onOpen = (info) => finish(info);
      this.onHandshakeError = (err) => finish(err);
      // A new phase (FINISHED after SERVER_HELLO) restarts the retransmission delay.
      this.onPhase = () => {
        if (this.endpoint.state !== phase) {
          phase = this.endpoint.state;
          delay = baseMs;
          clearTimeout(retry);
          schedule();
        }
      };
      this.transmit(first);
      schedule();
    });
  }

  private onMessage(msg: Buffer): void {
    if (this.socketClosed) return;
    for (const e of this.endpoint.receive(msg)) this.handle(e);
    this.onPhase?.();
  }

  private handle(e: DatagramClientEvent): void {
    switch (e.type) {
      case 'send':
        this.transmit(e.datagram);
        break;
      case 'open':
        this.openInfo = e.session;
        this.onPhase = undefined;
        this.startKeepalive();
        this.onOpen?.(e.session);
        break;
      case 'message': {
        const w = e.replyTo === 0 ? undefined : this.requests.get(e.replyTo);
        if (w !== undefined) {
          this.requests.delete(e.replyTo);
          clearTimeout(w.timer);
          w.resolve(e.data);
        } else {
          this.emit('message', e.data, e.replyTo);
        }
        break;
      }
      case 'close':
        this.end(sesameError('ERR_CLOSED', 'the server closed the session'));
        break;
      case 'drop':
        this.emit('drop', {
          reason: e.reason,
          remote: this.remote,
          code: e.error?.code,
          detail: e.detail,
        } satisfies DropEvent);
        break;
    }
  }

  private onSocketError(err: NodeJS.ErrnoException): void {
    // ECONNREFUSED (an ICMP port unreachable) during the handshake: nobody listens there.
    if (this.onHandshakeError !== undefined && err.code === 'ECONNREFUSED') {
      this.onHandshakeError(
        sesameError('ERR_CONNECT_FAILED', `nothing listens at ${this.url}`, { cause: err }),
      );
      return;
    }
    this.emit('socket-error', err);
  }

  private startKeepalive(): void {
    const ms = this.options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    if (ms <= 0) return;
    this.keepaliveTimer = setInterval(
      () => {
        if (this.closed || Date.now() - this.lastSentMs < ms) return;
        try {
          this.transmit(this.endpoint.keepalive());
        } catch {
          // A used-up session cannot send keepalives; requests will report it.
        }
      },
      Math.max(1, Math.floor(ms / 2)),
    );
    this.keepaliveTimer.unref();
  }

  private transmit(datagram: Buffer): void {
    if (this.socketClosed) return;
    this.lastSentMs = Date.now();
    this.socket.send(datagram, (err) => {
      if (err) this.emit('socket-error', err);
    });
  }

  private checkUsable(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** End the session for good: fail waiting requests, stop timers, close the socket. */
  private end(err: SesameError): void {
    if (this.failure === undefined) this.failure = err;
    if (this.endpoint.state !== 'Closed') this.endpoint.close();
    clearInterval(this.keepaliveTimer);
    for (const [counter, w] of this.requests) {
      this.requests.delete(counter);
      clearTimeout(w.timer);
      w.reject(err);
    }
    const wasOpen = !this.socketClosed;
    if (wasOpen) {
      this.socketClosed = true;
      this.socket.close();
      this.emit('close');
    }
  }
}
