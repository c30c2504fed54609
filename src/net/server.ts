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
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { Piscina } from 'piscina';
import {
  AUTH_REFUSAL_CODES,
  type ErrorCode,
  isSesameError,
  type SesameError,
  sesameError,
} from '../errors.js';
import type { ProtocolConnection, SessionInfo } from '../protocol/channel.js';
import { type PresharedKey, ServerConnection, ServerContext } from '../protocol/connection.js';
import { type Entropy, systemEntropy } from '../protocol/primitives.js';
import { type Address, formatAddress, parseAddress } from './address.js';
import {
  BaseRequestHandler,
  type ConnectionInfo,
  type HandlerServer,
  runHandler,
  type SessionHandler,
  type StreamHandlerClass,
} from './handlers.js';
import { Session, type SessionOptions } from './session.js';

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
  readonly maxMessageBytes?: number | undefined;
  readonly maxClockSkewMs?: number | undefined;
  readonly entropy?: Entropy | undefined;
  readonly now?: (() => number) | undefined;
}

export type { SessionHandler };

/** A worker-thread pool: `filename` is a module whose default export runs one task. */
export interface WorkerPoolOptions {
  readonly filename: string | URL;
  readonly minThreads?: number | undefined;
  readonly maxThreads?: number | undefined;
}

/** A wire profile on the server side: makes the sans-I/O connection for each accepted socket. */
export interface ServerProfile {
  readonly name: string;
  createConnection(): ProtocolConnection;
  /** Replace the accepted keys, for profiles that have several. */
  setKeys?(keys: Iterable<PresharedKey>): void;
}

/** The native profile over a {@link ServerContext}. */
export function nativeServerProfile(context: ServerContext): ServerProfile {
  return {
    name: 'native',
    createConnection: () => new ServerConnection(context),
    setKeys: (keys) => context.setKeys(keys),
  };
}

/** One authentication outcome, for logs and metrics. */
export type AuthEvent =
  | {
      readonly ok: true;
      readonly remote: string;
      readonly session: SessionInfo;
      readonly handshakeMs: number;
    }
  | { readonly ok: false; readonly remote: string; readonly code: ErrorCode; readonly reason: string };

export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_BACKLOG = 4096;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

function remoteOf(socket: Socket): string {
  if (socket.remoteAddress === undefined) return 'unix';
  return socket.remoteAddress.includes(':')
    ? `[${socket.remoteAddress}]:${socket.remotePort}`
    : `${socket.remoteAddress}:${socket.remotePort}`;
}

/**
 * A stream server (TCP or Unix socket) for any wire profile, native by default.
 *
 * Methods for the caller: `listen()`, `serveForever()`, `close()` (graceful; `shutdown()` is the
 * same), `setKeys()`, `runTask()`. Methods that may be overridden (or given as options):
 * `verifyRequest(info)`, `handleError(error, info)`, `handleTimeout(info)`.
 *
 * Events: `listening` (url), `auth` (AuthEvent), `refused` (ConnectionInfo) when verifyRequest
 * says no, `session-error` (SesameError, remote) for failures after authentication, `busy`
 * (remote) when over maxConnections, `handler-error` (unknown, ConnectionInfo) when a handler
 * throws, `timeout` (ConnectionInfo) when a session is closed for idleness.
 */
export class SesameServer extends EventEmitter implements HandlerServer {
  readonly options: ServerOptions;
  readonly profile: ServerProfile;
  private readonly server: Server;
  private readonly sessions = new Set<Session>();
  private address: Address;
  private shuttingDown: Promise<void> | undefined;
  private pool: Piscina | undefined;

  /** @throws LocalError ERR_INVALID_ADDRESS, ERR_INVALID_ARGUMENT (a malformed key id). */
  constructor(options: ServerOptions) {
    super();
    this.options = options;
    this.address = parseAddress(options.listen);
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

  /** Replace the accepted keys; established sessions continue. */
  setKeys(keys: Iterable<PresharedKey>): void {
    this.profile.setKeys?.(keys);
  }

  /**
   * Start listening. Resolves with the URL (the real port when 0 was asked for).
   * @throws (rejects) the listen error (EADDRINUSE, EACCES, ...) as ERR_INVALID_ADDRESS.
   */
  async listen(): Promise<string> {
    const poolOptions = this.options.workerPool;
    if (poolOptions !== undefined && this.pool === undefined) {
      this.pool = new Piscina({
        filename: poolOptions.filename.toString(),
        minThreads: poolOptions.minThreads,
        maxThreads: poolOptions.maxThreads,
      });
    }
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
    if (this.pool === undefined)
      throw sesameError('ERR_INVALID_STATE', 'the server has no workerPool option');
    return this.pool.run(task) as Promise<T>;
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
    await this.pool?.destroy();
    const a = this.address;
    if (a.kind === 'unix' && existsSync(a.path)) unlinkSync(a.path);
  }

  private accept(socket: Socket): void {
    const remote = remoteOf(socket);
    if (this.shuttingDown !== undefined) {
      socket.destroy();
      return;
    }
    if (this.sessions.size >= (this.options.maxConnections ?? DEFAULT_MAX_CONNECTIONS)) {
      socket.destroy();
      this.emit('busy', remote);
      return;
    }
    const session = new Session(socket, this.profile.createConnection(), 'server', this.options);
    this.sessions.add(session);
    const started = performance.now();
    session.closed.then(() => this.sessions.delete(session));
    session.ready.then(
      (info) => {
        this.emit('auth', {
          ok: true,
          remote,
          session: info,
          handshakeMs: performance.now() - started,
        } satisfies AuthEvent);
        void this.serve(session, remote);
      },
      (err: SesameError) => {
        this.emit('auth', { ok: false, remote, code: err.code, reason: err.message } satisfies AuthEvent);
      },
    );
  }

  private async serve(session: Session, remote: string): Promise<void> {
    const info: ConnectionInfo = {
      ...(session.info as SessionInfo),
      remote,
      remoteAddress: session.remoteAddress,
      remotePort: session.remotePort,
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
