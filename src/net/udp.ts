/**
 * Authenticated UDP (docs/protocol-udp.md): the socket side of the sans-I/O datagram endpoints.
 *
 * - {@link UdpServer} feeds every received datagram to a {@link DatagramServerEndpoint}, sends what
 *   it says to send, runs the handler for each authentic message, and sweeps idle sessions.
 * - {@link connectUdp} runs the handshake with retransmission (a NEW ClientHello per retry, then
 *   the FINISHED until the server confirms) and resolves with an open {@link UdpSession}.
 *
 * Rules:
 * - The server sends nothing to a source that has not authenticated except the SERVER_HELLO,
 *   which is never longer than the HELLO it answers; every other unauthenticated datagram is
 *   dropped without an answer and reported as a `drop` event.
 * - A message is one datagram and its reply is one datagram: nothing is fragmented, retransmitted
 *   or reordered here. `request()` matches a reply to its request by the request's counter, so
 *   a lost or late datagram affects only its own request (ERR_REQUEST_TIMEOUT).
 * - Node has no Unix datagram sockets (`dgram` speaks only udp4 and udp6), so there is no
 *   `unixgram://` transport.
 */

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { type ErrorCode, isSesameError, type SesameError, sesameError } from '../errors.js';
import type { SessionInfo } from '../protocol/channel.js';
import type { PresharedKey } from '../protocol/connection.js';
import {
  DatagramClientEndpoint,
  type DatagramClientEvent,
  type DatagramPeer,
  DatagramServerEndpoint,
  type DatagramServerEvent,
  type DropReason,
  formatPeer,
} from '../protocol/datagram/index.js';
import { type Entropy, systemEntropy } from '../protocol/primitives.js';
import { parseAddress } from './address.js';
import {
  type ConnectionInfo,
  type DatagramHandlerClass,
  DatagramRequestHandler,
  type HandlerServer,
  runHandler,
} from './handlers.js';
import { TaskPool, type WorkerPoolOptions } from './pool.js';
import type { AuthEvent, ServerStats } from './server.js';
import { isPromiseLike } from './session.js';

/** What a datagram handler knows about the message in hand, and how it answers. */
export interface DatagramContext {
  /** `HOST:PORT` (`[v6]:PORT`) the datagram came from. */
  readonly remote: string;
  /** The sender's IP address. */
  readonly remoteAddress: string;
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
  reply(data: Uint8Array): void;
}

/** Serves one authentic datagram; a returned Uint8Array is sent back as the reply. */
export type DatagramHandler = (
  message: Buffer,
  ctx: DatagramContext,
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler that only calls ctx.reply() returns void
) => Uint8Array | undefined | void | Promise<Uint8Array | undefined | void>;

/** Options of a {@link UdpServer}. */
export interface UdpServerOptions {
  /** `udp://HOST:PORT` (port 0: any free port; IPv6 hosts in brackets). */
  readonly listen: string;
  /** Accepted keys; replace them later with `setKeys()`. */
  readonly keys: Iterable<PresharedKey>;
  /**
   * Serves each authentic datagram: a DatagramRequestHandler subclass (constructed per datagram,
   * as in socketserver), or a function whose returned bytes are the reply.
   */
  readonly handler: DatagramHandler | DatagramHandlerClass;
  /** A worker-thread pool for CPU-heavy handlers, used through `runTask()`. */
  readonly workerPool?: WorkerPoolOptions | undefined;
  /** Refuse PSK-only clients (default true). */
  readonly requireForwardSecrecy?: boolean | undefined;
  /** Largest reply payload (default 1200 bytes, at most 65,454). */
  readonly maxPayloadBytes?: number | undefined;
  /** Forget a session after this long without an authentic datagram (default 180 s). */
  readonly sessionIdleMs?: number | undefined;
  /** Forget a handshake not finished within this long (default 10 s). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Freshness bound on a datagram's time (default 30 s). */
  readonly maxDatagramAgeMs?: number | undefined;
  /** How far a ClientHello's timestamp may be from the server's clock (default 120 s). */
  readonly maxClockSkewMs?: number | undefined;
  /** Most sessions at once (default 10,000). */
  readonly maxSessions?: number | undefined;
  /** Most handshakes waiting for FINISHED (default 1024). */
  readonly maxPendingHandshakes?: number | undefined;
  /** Most handshakes waiting for FINISHED from one address (default 32). */
  readonly maxPendingPerSource?: number | undefined;
  /** Replay window bitmap size (default 2048 bits). */
  readonly replayWindowBits?: number | undefined;
  /** How long `close()` waits for running handlers, in ms (default 10 s). */
  readonly shutdownTimeoutMs?: number | undefined;
  /** How often idle sessions and stale handshakes are swept, in ms (default 1 s). */
  readonly sweepIntervalMs?: number | undefined;
  /** Randomness and ephemeral keys (default `systemEntropy`). */
  readonly entropy?: Entropy | undefined;
  /** Wall clock in ms since the epoch, for freshness checks and expiry (default `Date.now`). */
  readonly now?: (() => number) | undefined;
}

/** A datagram that was not accepted. */
export interface UdpDropEvent {
  readonly reason: DropReason;
  readonly remote: string;
  /** The handshake error's code, for `refused` (and `forged` at a client). */
  readonly code?: ErrorCode | undefined;
  readonly detail: string;
}

/** A session the server forgot. */
export interface UdpSessionEndEvent {
  readonly sessionId: string;
  readonly why: 'closed' | 'idle' | 'exhausted';
}

export const DEFAULT_UDP_SHUTDOWN_TIMEOUT_MS = 10_000;
export const DEFAULT_SWEEP_INTERVAL_MS = 1000;

function udpAddress(url: string): { host: string; port: number } {
  const a = parseAddress(url);
  if (a.kind !== 'udp') throw sesameError('ERR_INVALID_ADDRESS', `expected udp://HOST:PORT, got ${url}`);
  return { host: a.host, port: a.port };
}

function udpUrl(host: string, port: number): string {
  return host.includes(':') ? `udp://[${host}]:${port}` : `udp://${host}:${port}`;
}

/**
 * A server of authenticated datagrams.
 *
 * Events: `listening` (url); `auth` (AuthEvent) for every handshake outcome; `drop`
 * (UdpDropEvent) for every datagram not accepted; `session-end` (UdpSessionEndEvent);
 * `handler-error` (unknown, DatagramContext) when a handler throws or its reply cannot be sent;
 * `socket-error` (Error).
 */
export class UdpServer extends EventEmitter implements HandlerServer {
  /** The options the server was constructed with. */
  readonly options: UdpServerOptions;
  private readonly endpoint: DatagramServerEndpoint;
  private readonly host: string;
  private port: number;
  private socket: UdpSocket | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private inflight = 0;
  private idle: (() => void)[] = [];
  private accepting = true;
  private closing: Promise<void> | undefined;
  private readonly pool: TaskPool;
  private readonly traffic = { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 };
  private readonly handle: DatagramHandler;

  /** @throws LocalError ERR_INVALID_ADDRESS, ERR_INVALID_ARGUMENT (a malformed key id or limit). */
  constructor(options: UdpServerOptions) {
    super();
    this.options = options;
    this.pool = new TaskPool(options.workerPool);
    const handler = options.handler;
    this.handle = isDatagramHandlerClass(handler)
      ? (message, ctx) =>
          runHandler(new handler({ packet: message, reply: ctx.reply }, this, connectionInfo(ctx)))
      : handler;
    const a = udpAddress(options.listen);
    this.host = a.host;
    this.port = a.port;
    this.endpoint = new DatagramServerEndpoint({
      keys: options.keys,
      entropy: options.entropy ?? systemEntropy,
      now: options.now ?? Date.now,
      requireForwardSecrecy: options.requireForwardSecrecy,
      maxPayloadBytes: options.maxPayloadBytes,
      sessionIdleMs: options.sessionIdleMs,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      maxDatagramAgeMs: options.maxDatagramAgeMs,
      maxClockSkewMs: options.maxClockSkewMs,
      maxSessions: options.maxSessions,
      maxPendingHandshakes: options.maxPendingHandshakes,
      maxPendingPerSource: options.maxPendingPerSource,
      replayWindowBits: options.replayWindowBits,
    });
  }

  /** The URL the server listens on, with the real port once listening. */
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

  /** Replace the accepted keys; established sessions continue. */
  setKeys(keys: Iterable<PresharedKey>): void {
    this.endpoint.setKeys(keys);
  }

  /** Traffic so far (wire bytes, authentic messages and replies); `open` counts sessions. */
  stats(): ServerStats {
    return { open: this.endpoint.sessionCount, ...this.traffic };
  }

  /**
   * Run `task` on the worker-thread pool.
   * @throws LocalError ERR_INVALID_STATE when the server has no `workerPool`.
   */
  runTask<T = unknown>(task: unknown): Promise<T> {
    return this.pool.run<T>(task);
  }

  /**
   * Bind the socket. Resolves with the URL (the real port when 0 was asked for).
   * @throws (rejects) ERR_INVALID_ADDRESS when the address cannot be bound; ERR_INVALID_STATE
   *   when already listening or closed.
   */
  async listen(): Promise<string> {
    if (this.socket !== undefined || this.closing !== undefined) {
      throw sesameError('ERR_INVALID_STATE', 'the server is already listening or closed');
    }
    this.pool.start();
    const socket = createSocket({ type: isIP(this.host) === 6 ? 'udp6' : 'udp4' });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        this.socket = undefined;
        socket.close();
        reject(
          sesameError('ERR_INVALID_ADDRESS', `cannot listen on ${this.url}: ${err.message}`, { cause: err }),
        );
      };
      socket.once('error', onError);
      socket.bind({ address: this.host, port: this.port, exclusive: true }, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    socket.on('error', (err) => this.emit('socket-error', err));
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.port = socket.address().port;
    const every = this.options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.sweep = setInterval(() => this.dispatch(this.endpoint.expire(), undefined), every);
    this.sweep.unref();
    this.emit('listening', this.url);
    return this.url;
  }

  /**
   * Stop: drop new datagrams, wait for running handlers (at most shutdownTimeoutMs), send each
   * session an authenticated CLOSE, and release the socket.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.accepting = false;
    clearInterval(this.sweep);
    const socket = this.socket;
    if (socket === undefined) return;
    if (this.inflight > 0) {
      const ms = this.options.shutdownTimeoutMs ?? DEFAULT_UDP_SHUTDOWN_TIMEOUT_MS;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idle.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, ms);
        }),
      ]);
      clearTimeout(timer);
    }
    await Promise.all(
      this.endpoint
        .closeAll()
        .map(
          ({ datagram, to }) =>
            new Promise<void>((resolve) => socket.send(datagram, to.port, to.address, () => resolve())),
        ),
    );
    this.socket = undefined;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    await this.pool.destroy();
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    this.traffic.bytesIn += msg.length;
    const from: DatagramPeer = { address: rinfo.address, port: rinfo.port };
    if (!this.accepting) {
      this.emit('drop', {
        reason: 'closed',
        remote: formatPeer(from),
        detail: 'server closing',
      } satisfies UdpDropEvent);
      return;
    }
    this.dispatch(this.endpoint.receive(msg, from), from);
  }

  private dispatch(events: DatagramServerEvent[], from: DatagramPeer | undefined): void {
    const remote = from === undefined ? '' : formatPeer(from);
    for (const e of events) {
      switch (e.type) {
        case 'send':
          this.transmit(e.datagram, e.to);
          break;
        case 'established':
          this.emit('auth', {
            ok: true,
            remote,
            session: e.session,
            handshakeMs: e.handshakeMs,
          } satisfies AuthEvent);
          break;
        case 'message':
          if (from !== undefined) this.serve(e, from);
          break;
        case 'session-end':
          this.emit('session-end', { sessionId: e.sessionId, why: e.why } satisfies UdpSessionEndEvent);
          break;
        case 'drop':
          if (e.reason === 'refused' && e.error !== undefined) {
            this.emit('auth', {
              ok: false,
              remote,
              code: e.error.code,
              reason: e.error.message,
            } satisfies AuthEvent);
          }
          this.emit('drop', {
            reason: e.reason,
            remote,
            code: e.error?.code,
            detail: e.detail,
          } satisfies UdpDropEvent);
          break;
      }
    }
  }

  private transmit(datagram: Buffer, to: DatagramPeer): void {
    const socket = this.socket;
    if (socket === undefined) return;
    this.traffic.bytesOut += datagram.length;
    socket.send(datagram, to.port, to.address, (err) => {
      if (err) this.emit('socket-error', err);
    });
  }

  private serve(e: Extract<DatagramServerEvent, { type: 'message' }>, from: DatagramPeer): void {
    const ctx: DatagramContext = {
      remote: formatPeer(from),
      remoteAddress: from.address,
      remotePort: from.port,
      session: e.session,
      sessionId: e.sessionId,
      reply: (data) => {
        if (this.socket === undefined) throw sesameError('ERR_CLOSED', 'server closed');
        // The reply goes where the request came from (as socketserver's sendto(client_address)).
        this.transmit(this.endpoint.reply(e.sessionId, e.counter, data).datagram, from);
        this.traffic.messagesOut++;
      },
    };
    this.inflight++;
    this.traffic.messagesIn++;
    let result: ReturnType<DatagramHandler>;
    try {
      result = this.handle(e.data, ctx);
    } catch (err) {
      this.handlerFailed(err, ctx);
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
          this.handlerFailed(err, ctx);
          this.done();
        },
      );
    } else {
      this.sendResult(result, ctx);
      this.done();
    }
  }

  private sendResult(result: unknown, ctx: DatagramContext): void {
    if (!(result instanceof Uint8Array)) return;
    try {
      ctx.reply(result);
    } catch (err) {
      this.handlerFailed(err, ctx);
    }
  }

  private handlerFailed(err: unknown, ctx: DatagramContext): void {
    this.emit('handler-error', err, ctx);
  }

  private done(): void {
    this.inflight--;
    if (this.inflight === 0) for (const resolve of this.idle.splice(0)) resolve();
  }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/** Options of {@link connectUdp}. */
export interface UdpConnectOptions {
  /** The key to authenticate with: a well-formed id and a secret of at least 32 bytes. */
  readonly key: PresharedKey;
  /** Ephemeral X25519 (default true). */
  readonly forwardSecrecy?: boolean | undefined;
  /** Deadline for the whole handshake, in ms (default 10 s). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** First retransmission delay during the handshake, doubled each time up to 8x (default 250 ms). */
  readonly retransmitMs?: number | undefined;
  /** Default `request()` timeout, in ms (default 5 s). */
  readonly requestTimeoutMs?: number | undefined;
  /** Send a keepalive after this long without sending, in ms (default 60 s; 0: never). */
  readonly keepaliveMs?: number | undefined;
  /** Largest message payload (default 1200 bytes, at most 65,454). */
  readonly maxPayloadBytes?: number | undefined;
  /** Freshness bound on a datagram's time (default 30 s). */
  readonly maxDatagramAgeMs?: number | undefined;
  /** Replay window bitmap size: a power of two from 64 to 65536 (default 2048 bits). */
  readonly replayWindowBits?: number | undefined;
  /** Randomness and ephemeral keys (default `systemEntropy`). */
  readonly entropy?: Entropy | undefined;
  /** Wall clock in ms since the epoch, for timestamps and freshness checks (default `Date.now`). */
  readonly now?: (() => number) | undefined;
}

export const DEFAULT_UDP_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_RETRANSMIT_MS = 250;
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
export const DEFAULT_KEEPALIVE_MS = 60_000;

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
  const endpoint = new DatagramClientEndpoint({
    key: options.key,
    forwardSecrecy: options.forwardSecrecy,
    entropy: options.entropy ?? systemEntropy,
    now: options.now ?? Date.now,
    maxPayloadBytes: options.maxPayloadBytes,
    maxDatagramAgeMs: options.maxDatagramAgeMs,
    replayWindowBits: options.replayWindowBits,
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
 * request (a late reply, or a second reply); `drop` (UdpDropEvent); `close` when the session
 * ended (closed by either side); `socket-error` (Error).
 */
export class UdpSession extends EventEmitter {
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
        } satisfies UdpDropEvent);
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

function isDatagramHandlerClass(h: DatagramHandler | DatagramHandlerClass): h is DatagramHandlerClass {
  return typeof h === 'function' && h.prototype instanceof DatagramRequestHandler;
}

/** What a datagram handler class is told about its peer. */
function connectionInfo(ctx: DatagramContext): ConnectionInfo {
  return { ...ctx.session, remote: ctx.remote, remoteAddress: ctx.remoteAddress, remotePort: ctx.remotePort };
}
