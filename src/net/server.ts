/**
 * A server for native Sesame connections over TCP or a Unix stream socket.
 *
 * Lifecycle: `listen()` -> accept -> handshake (with a deadline) -> `handler(session)` -> close.
 * `close()` is graceful: stop accepting, drop connections still in their handshake, let each
 * handler finish the messages it already received, send close records, then wait (bounded) for
 * the sockets to close.
 *
 * Rules:
 * - A connection is served only after the client proved it holds a key; nothing is written to
 *   an unauthenticated peer except the ServerHello.
 * - One connection's failure, slowness or silence affects no other: each has its own deadline,
 *   idle timer and backpressure; a handler that throws ends only its own connection.
 * - Over `maxConnections`, new sockets are closed at once (ERR_SERVER_BUSY is reported).
 * - Every authentication result is reported as an `auth` event with the reason code, for the
 *   operator's log; the peer only ever sees the connection close.
 */

import { EventEmitter } from 'node:events';
import { existsSync, unlinkSync } from 'node:fs';
import { BlockList, createConnection, createServer, isIP, type Server, type Socket } from 'node:net';
import {
  AUTH_REFUSAL_CODES,
  type ErrorCode,
  isSesameError,
  type SesameError,
  sesameError,
} from '../errors.js';
import type { PresharedKey, ServerProfile, SessionInfo } from '../protocol/channel.js';
import { nativeServerProfile, ServerContext } from '../protocol/connection.js';
import { type Entropy, systemEntropy } from '../protocol/primitives.js';
import { type ProxyHeader, parseProxyHeader } from '../protocol/proxy-header.js';
import { type Address, formatAddress, parseAddress } from './address.js';
import {
  BaseRequestHandler,
  type ConnectionInfo,
  type HandlerServer,
  runHandler,
  type SessionHandler,
  type StreamHandlerClass,
} from './handlers.js';
import { TaskPool, type WorkerPoolOptions } from './pool.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  Session,
  type SessionObserver,
  type SessionOptions,
} from './session.js';
import { FailureThrottle, type ThrottleOptions } from './throttle.js';

/** Options of a {@link SesameServer}; the {@link SessionOptions} apply to every connection. */
export interface ServerOptions extends SessionOptions {
  /** Where to listen: `tcp://HOST:PORT` or `unix:///path`. */
  readonly listen: string;
  /** Accepted keys for the native profile; replace them later with `setKeys()`. */
  readonly keys?: Iterable<PresharedKey> | undefined;
  /** Another wire profile instead of the native one (then `keys` and the native options are unused). */
  readonly profile?: ServerProfile | undefined;
  /**
   * Serves each authenticated connection: a handler class (BaseRequestHandler or
   * StreamRequestHandler subclass) or a plain function. The server closes the connection after.
   */
  readonly handler: StreamHandlerClass | SessionHandler;
  /** Decide whether to serve an authenticated connection (by address, key id, principal...). */
  readonly verifyRequest?: ((info: ConnectionInfo) => boolean | Promise<boolean>) | undefined;
  /**
   * Expect a PROXY protocol header (v1 or v2) before the handshake and use the client address it
   * carries; connections from addresses outside `trustedProxies` are refused.
   */
  readonly proxyProtocol?: boolean | undefined;
  /** Addresses or CIDRs allowed to send PROXY headers (with `proxyProtocol`). */
  readonly trustedProxies?: readonly string[] | undefined;
  /** Per-source backoff after failed logins (see FailureThrottle for the defaults). */
  readonly throttle?: ThrottleOptions | undefined;
  /** A worker-thread pool for CPU-heavy handlers, used through `runTask()`. */
  readonly workerPool?: WorkerPoolOptions | undefined;
  /** Refuse PSK-only clients (default true). */
  readonly requireForwardSecrecy?: boolean | undefined;
  /** Most connections open at once, handshaking or not (default 10,000). */
  readonly maxConnections?: number | undefined;
  /** Listen backlog (default 4096; the kernel caps it at net.core.somaxconn). */
  readonly backlog?: number | undefined;
  /** How long `close()` lets sessions finish before destroying them, in ms (default 10 s). */
  readonly shutdownTimeoutMs?: number | undefined;
  /** Native profile: largest message accepted after reassembly, in bytes (default 16 MiB). */
  readonly maxMessageBytes?: number | undefined;
  /** Native profile: how far a ClientHello's timestamp may be from `now()`, in ms (default 120 s). */
  readonly maxClockSkewMs?: number | undefined;
  /** Native profile: randomness and ephemeral keys (default `systemEntropy`). */
  readonly entropy?: Entropy | undefined;
  /** Wall clock in ms since the epoch, for hello freshness and the login throttle (default `Date.now`). */
  readonly now?: (() => number) | undefined;
}

export type { SessionHandler, WorkerPoolOptions };
export { nativeServerProfile, type ServerProfile };

/** Traffic counters of a server (wire bytes, application messages). */
export interface ServerStats {
  /** Open now: connections (handshaking or not) for a stream server, sessions for a UDP server. */
  readonly open: number;
  /** Wire bytes received. */
  readonly bytesIn: number;
  /** Wire bytes sent. */
  readonly bytesOut: number;
  /** Application messages received. */
  readonly messagesIn: number;
  /** Application messages sent (replies, for a UDP server). */
  readonly messagesOut: number;
}

/** An authenticated session has closed: for logs and metrics. */
export interface SessionClosedEvent {
  readonly remote: string;
  readonly keyId: string | undefined;
  readonly principal: string | undefined;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  /** The error code it failed with, if it did not end cleanly. */
  readonly error: ErrorCode | undefined;
}

/** One authentication outcome, for logs and metrics. */
export type AuthEvent =
  | {
      /** The peer authenticated. */
      readonly ok: true;
      /** `HOST:PORT` (`[v6]:PORT`) of the peer, or `unix` for a Unix socket. */
      readonly remote: string;
      /** What the handshake established: profile, key id, principal, forward secrecy. */
      readonly session: SessionInfo;
      /** Time from the start of the handshake to authentication, in ms (fractional for streams). */
      readonly handshakeMs: number;
    }
  | {
      /** The peer was refused, or its handshake failed. */
      readonly ok: false;
      /** `HOST:PORT` (`[v6]:PORT`) of the peer, or `unix` for a Unix socket. */
      readonly remote: string;
      /** Why, e.g. ERR_AUTH_FAILED, ERR_UNKNOWN_KEY, ERR_THROTTLED, ERR_HANDSHAKE_TIMEOUT. */
      readonly code: ErrorCode;
      /** The error message, for the operator's log (never contains secrets). */
      readonly reason: string;
    };

export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_BACKLOG = 4096;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

interface Peer {
  readonly address: string;
  readonly port: number | undefined;
}

/** `HOST:PORT`, `[v6]:PORT`, or `unix` for a Unix-socket peer. */
function formatPeer(peer: Peer): string {
  if (peer.address === '') return 'unix';
  return peer.address.includes(':') ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
}

/** A BlockList of the CIDRs (or single addresses) given. @throws LocalError ERR_INVALID_ARGUMENT. */
export function parseTrustedProxies(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', prefix] = cidr.split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : Number(prefix);
    if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        `trusted proxy ${JSON.stringify(cidr)} is not an address or CIDR`,
      );
    }
    list.addSubnet(address, bits, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

function isTrusted(list: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return list.check(mapped[1] as string, 'ipv4') || list.check(address, 'ipv6');
  return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** Read a PROXY header from `socket`; the socket is left paused, `rest` is what followed it. */
function readProxyHeader(socket: Socket, timeoutMs: number): Promise<{ header: ProxyHeader; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (err: SesameError | undefined, value?: { header: ProxyHeader; rest: Buffer }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.pause();
      if (err !== undefined) reject(err);
      else resolve(value as { header: ProxyHeader; rest: Buffer });
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      try {
        const parsed = parseProxyHeader(buffered);
        if (parsed !== undefined)
          finish(undefined, { header: parsed.header, rest: buffered.subarray(parsed.length) });
      } catch (err) {
        finish(err as SesameError);
      }
    };
    const onEnd = () => finish(sesameError('ERR_TRUNCATED', 'connection ended before the PROXY header'));
    const timer = setTimeout(
      () => finish(sesameError('ERR_HANDSHAKE_TIMEOUT', `no PROXY header after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
  });
}

/**
 * A stream server (TCP or Unix socket) for any wire profile, native by default.
 *
 * Methods for the caller: `listen()`, `serveForever()`, `close()` (graceful; `shutdown()` is the
 * same), `setKeys()`, `runTask()`. Methods that may be overridden (or given as options):
 * `verifyRequest(info)`, `handleError(error, info)`, `handleTimeout(info)`.
 *
 * Events: `listening` (url), `accepted` (remote), `auth` (AuthEvent), `session-closed`
 * (SessionClosedEvent) when an authenticated session ends, `refused` (ConnectionInfo) when verifyRequest
 * says no, `session-error` (SesameError, remote) for failures after authentication, `busy`
 * (remote) when over maxConnections, `handler-error` (unknown, ConnectionInfo) when a handler
 * throws, `timeout` (ConnectionInfo) when a session is closed for idleness, `health-check`
 * (proxy address) when a trusted proxy connects for itself (PROXY v2 LOCAL, v1 UNKNOWN).
 */
export class SesameServer extends EventEmitter implements HandlerServer {
  /** The options the server was constructed with. */
  readonly options: ServerOptions;
  /** The wire profile serving every connection: `options.profile`, or native over `options.keys`. */
  readonly profile: ServerProfile;
  private readonly server: Server;
  private readonly sessions = new Set<Session>();
  private address: Address;
  private shuttingDown: Promise<void> | undefined;
  private readonly pool: TaskPool;
  private readonly closedTotals = { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 };
  /** Sockets still sending their PROXY header. */
  private readonly pending = new Set<Socket>();
  private readonly trustedProxies: BlockList | undefined;
  /** Per-source backoff after failed logins. */
  readonly throttle: FailureThrottle;
  /** What each connection's {@link Served} reports to (made once, not per connection). */
  private readonly hooks: ServerHooks = {
    established: (served, session, info) => this.onEstablished(served, session, info),
    failed: (served, err) => this.onHandshakeFailed(served, err),
    closed: (served, session) => this.onClosed(served, session),
  };

  /** @throws LocalError ERR_INVALID_ADDRESS, ERR_INVALID_ARGUMENT (a malformed key id). */
  constructor(options: ServerOptions) {
    super();
    this.options = options;
    this.address = parseAddress(options.listen);
    if (this.address.kind === 'udp') {
      throw sesameError(
        'ERR_INVALID_ADDRESS',
        `${options.listen} is a datagram address: serve it with DatagramServer`,
      );
    }
    this.pool = new TaskPool(options.workerPool);
    this.throttle = new FailureThrottle(options.throttle ?? {}, options.now ?? Date.now);
    if (options.proxyProtocol === true)
      this.trustedProxies = parseTrustedProxies(options.trustedProxies ?? []);
    if (options.profile !== undefined) {
      this.profile = options.profile;
    } else {
      const context = new ServerContext({
        keys: options.keys ?? [],
        entropy: options.entropy ?? systemEntropy,
        now: options.now ?? Date.now,
        requireForwardSecrecy: options.requireForwardSecrecy,
        maxMessageBytes: options.maxMessageBytes,
        maxClockSkewMs: options.maxClockSkewMs,
      });
      this.profile = nativeServerProfile(context);
    }
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) =>
      this.accept(socket),
    );
  }

  /** The URL the server listens on, with the real port once listening. */
  get url(): string {
    return formatAddress(this.address);
  }

  /** Open connections (handshaking or authenticated). */
  get connectionCount(): number {
    return this.sessions.size;
  }

  /** Traffic so far: sessions open now plus every session that has closed. */
  stats(): ServerStats {
    const t = { ...this.closedTotals };
    for (const s of this.sessions) {
      t.bytesIn += s.bytesIn;
      t.bytesOut += s.bytesOut;
      t.messagesIn += s.messagesIn;
      t.messagesOut += s.messagesOut;
    }
    return { open: this.sessions.size, ...t };
  }

  /**
   * End the authenticated sessions that `predicate` picks, as a shutdown would: they stop reading,
   * their handlers finish what they received, and they close with a close record.
   * @returns how many sessions were picked.
   */
  closeSessions(predicate: (info: SessionInfo) => boolean): number {
    let n = 0;
    for (const s of this.sessions) {
      if (s.info !== undefined && predicate(s.info)) {
        s.stopReading();
        n++;
      }
    }
    return n;
  }

  /** Replace the accepted keys; established sessions continue. */
  setKeys(keys: Iterable<PresharedKey>): void {
    this.profile.setKeys?.(keys);
  }

  /**
   * Start listening. Resolves with the URL (the real port when 0 was asked for).
   * @throws (rejects) the listen error (EADDRINUSE, EACCES, ...) as ERR_INVALID_ADDRESS.
   */
  async listen(): Promise<string> {
    this.pool.start();
    const backlog = this.options.backlog ?? DEFAULT_BACKLOG;
    const a = this.address;
    if (a.kind === 'unix') await removeStaleUnixSocket(a.path);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        reject(
          sesameError('ERR_INVALID_ADDRESS', `cannot listen on ${this.url}: ${err.message}`, { cause: err }),
        );
      };
      this.server.once('error', onError);
      const done = () => {
        this.server.off('error', onError);
        resolve();
      };
      if (a.kind === 'unix') this.server.listen({ path: a.path, backlog }, done);
      else this.server.listen({ host: a.host, port: a.port, backlog }, done);
    });
    if (a.kind === 'tcp') {
      const bound = this.server.address();
      if (bound !== null && typeof bound === 'object')
        this.address = { kind: 'tcp', host: a.host, port: bound.port };
    }
    this.emit('listening', this.url);
    return this.url;
  }

  /**
   * Graceful shutdown: stop accepting, end handshakes in progress, let handlers finish what they
   * already received, close every session, wait at most shutdownTimeoutMs, then destroy the rest.
   */
  close(): Promise<void> {
    this.shuttingDown ??= this.stop();
    return this.shuttingDown;
  }

  /** Same as `close()` (socketserver's name). */
  shutdown(): Promise<void> {
    return this.close();
  }

  /** Listen, then resolve once the server has been closed. */
  async serveForever(): Promise<void> {
    await this.listen();
    await new Promise<void>((resolve) => this.server.once('close', () => resolve()));
    await this.shuttingDown;
  }

  /**
   * Run `task` on the worker-thread pool.
   * @throws LocalError ERR_INVALID_STATE when the server has no `workerPool`.
   */
  runTask<T = unknown>(task: unknown): Promise<T> {
    return this.pool.run<T>(task);
  }

  /** Whether to serve an authenticated connection; refused ones are closed at once. */
  verifyRequest(info: ConnectionInfo): boolean | Promise<boolean> {
    return this.options.verifyRequest?.(info) ?? true;
  }

  /** Called with whatever a handler threw; only that connection ends. */
  handleError(error: unknown, info: ConnectionInfo): void {
    this.emit('handler-error', error, info);
  }

  /** Called when a session is closed for idleness. */
  handleTimeout(info: ConnectionInfo): void {
    this.emit('timeout', info);
  }

  private async stop(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) {
      if (s.info === undefined) s.destroy(sesameError('ERR_SHUTTING_DOWN', 'server shutting down'));
      else s.stopReading();
    }
    const all = Promise.all([...this.sessions].map((s) => s.closed));
    const ms = this.options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    });
    if ((await Promise.race([all, timeout])) === 'timeout') {
      for (const s of this.sessions) s.destroy(sesameError('ERR_SHUTTING_DOWN', 'shutdown timeout'));
    }
    clearTimeout(timer);
    await stopped;
    await this.pool.destroy();
    const a = this.address;
    if (a.kind === 'unix' && existsSync(a.path)) unlinkSync(a.path);
  }

  private accept(socket: Socket): void {
    const peer: Peer = { address: socket.remoteAddress ?? '', port: socket.remotePort };
    if (this.shuttingDown !== undefined) {
      socket.destroy();
      return;
    }
    if (this.sessions.size + this.pending.size >= (this.options.maxConnections ?? DEFAULT_MAX_CONNECTIONS)) {
      socket.destroy();
      this.emit('busy', formatPeer(peer));
      return;
    }
    if (this.trustedProxies === undefined) {
      this.start(socket, peer, undefined);
      return;
    }
    // Behind a load balancer: only trusted proxies may speak, and they speak a PROXY header first.
    if (!isTrusted(this.trustedProxies, peer.address)) {
      socket.destroy();
      this.refuse(peer, 'ERR_PROXY_UNTRUSTED', `PROXY header from untrusted address ${peer.address}`);
      return;
    }
    this.pending.add(socket);
    readProxyHeader(socket, this.options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS).then(
      ({ header, rest }) => {
        this.pending.delete(socket);
        if (this.shuttingDown !== undefined) {
          socket.destroy();
          return;
        }
        if (header.command === 'local') {
          // The proxy's own connection (a health check): nothing to serve, nothing to count.
          socket.destroy();
          this.emit('health-check', formatPeer(peer));
          return;
        }
        const client =
          header.source === undefined ? peer : { address: header.source.address, port: header.source.port };
        this.start(socket, client, rest);
      },
      (err: SesameError) => {
        this.pending.delete(socket);
        socket.destroy();
        this.refuse(peer, err.code, err.message);
      },
    );
  }

  /** Start the handshake on `socket` for the client at `peer`; `rest` is input already read. */
  private start(socket: Socket, peer: Peer, rest: Buffer | undefined): void {
    const remote = formatPeer(peer);
    const throttled = peer.address === '' ? 0 : this.throttle.blockedFor(peer.address);
    if (throttled > 0) {
      socket.destroy();
      this.refuse(
        peer,
        'ERR_THROTTLED',
        `${remote} is blocked for ${throttled} ms after repeated failed logins`,
      );
      return;
    }
    const served = new Served(this.hooks, peer, remote);
    const session = new Session(socket, this.profile.createConnection(), 'server', this.options, served);
    if (rest !== undefined) {
      if (rest.length > 0) socket.unshift(rest);
      socket.resume();
    }
    this.sessions.add(session);
    if (this.listenerCount('accepted') > 0) this.emit('accepted', remote);
  }

  private onEstablished(served: Served, session: Session, info: SessionInfo): void {
    const { peer, remote } = served;
    if (peer.address !== '') this.throttle.success(peer.address);
    if (this.listenerCount('auth') > 0) {
      this.emit('auth', {
        ok: true,
        remote,
        session: info,
        handshakeMs: performance.now() - served.started,
      } satisfies AuthEvent);
    }
    void this.serve(session, served);
  }

  private onHandshakeFailed(served: Served, err: SesameError): void {
    const { peer, remote } = served;
    if (peer.address !== '' && err.code !== 'ERR_SHUTTING_DOWN') this.throttle.failure(peer.address);
    this.emit('auth', { ok: false, remote, code: err.code, reason: err.message } satisfies AuthEvent);
  }

  private onClosed(served: Served, session: Session): void {
    this.sessions.delete(session);
    const t = this.closedTotals;
    t.bytesIn += session.bytesIn;
    t.bytesOut += session.bytesOut;
    t.messagesIn += session.messagesIn;
    t.messagesOut += session.messagesOut;
    if (session.info !== undefined && this.listenerCount('session-closed') > 0) {
      this.emit('session-closed', {
        remote: served.remote,
        keyId: session.info.keyId,
        principal: session.info.principal,
        durationMs: Date.now() - session.startedAt,
        bytesIn: session.bytesIn,
        bytesOut: session.bytesOut,
        messagesIn: session.messagesIn,
        messagesOut: session.messagesOut,
        error: session.error?.code,
      } satisfies SessionClosedEvent);
    }
  }

  private refuse(peer: Peer, code: ErrorCode, reason: string): void {
    this.emit('auth', { ok: false, remote: formatPeer(peer), code, reason } satisfies AuthEvent);
  }

  private async serve(session: Session, served: Served): Promise<void> {
    const { peer, remote } = served;
    const s = session.info as SessionInfo;
    // Fields named one by one, not spread: see ProtocolConnection's SessionInfo.
    const info: ConnectionInfo = {
      profile: s.profile,
      keyId: s.keyId,
      principal: s.principal,
      forwardSecrecy: s.forwardSecrecy,
      channelBinding: s.channelBinding,
      remote,
      remoteAddress: peer.address,
      remotePort: peer.port,
    };
    try {
      if (!(await this.verifyRequest(info))) {
        this.emit('refused', info);
        session.destroy(sesameError('ERR_REQUEST_REFUSED', `${remote} refused by verifyRequest`));
        return;
      }
      session.on('idle', () => this.handleTimeout(info));
      const handler = this.options.handler;
      if (isHandlerClass(handler)) await runHandler(new handler(session, this, info));
      else await handler(session, info);
    } catch (err) {
      if (isSesameError(err) && session.error === err) this.emit('session-error', err, remote);
      else this.handleError(err, info);
      session.destroy(isSesameError(err) ? err : sesameError('ERR_CLOSED', 'handler failed', { cause: err }));
      return;
    }
    await session.close();
  }
}

/** The server's handlers for what its sessions report. */
interface ServerHooks {
  established(served: Served, session: Session, info: SessionInfo): void;
  failed(served: Served, err: SesameError): void;
  closed(served: Served, session: Session): void;
}

/** The server's record of one connection: who the peer is, and where its session reports. */
class Served implements SessionObserver {
  readonly started = performance.now();

  constructor(
    private readonly hooks: ServerHooks,
    readonly peer: Peer,
    readonly remote: string,
  ) {}

  sessionEstablished(session: Session, info: SessionInfo): void {
    this.hooks.established(this, session, info);
  }

  handshakeFailed(_session: Session, error: SesameError): void {
    this.hooks.failed(this, error);
  }

  sessionClosed(session: Session): void {
    this.hooks.closed(this, session);
  }
}

function isHandlerClass(h: StreamHandlerClass | SessionHandler): h is StreamHandlerClass {
  return typeof h === 'function' && h.prototype instanceof BaseRequestHandler;
}

/** Whether a refusal code means the peer failed to authenticate (as opposed to a fault). */
export function isAuthRefusal(code: ErrorCode): boolean {
  return AUTH_REFUSAL_CODES.has(code);
}

// A Unix socket file left by a process that died keeps later servers from binding. Remove it
// only when nothing answers on it.
async function removeStaleUnixSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!alive) unlinkSync(path);
}
