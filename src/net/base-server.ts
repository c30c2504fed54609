/**
 * What every Sesame server shares, whatever carries its bytes: the lifecycle, the hooks, the
 * worker pool, the failed-login throttle, the counters and the events. A stream server
 * ({@link SesameServer}, TCP or Unix) and a datagram server ({@link UdpServer}) override only what
 * differs, as socketserver's `UDPServer` is its `TCPServer` with a few methods changed.
 *
 * ```text
 *                 BaseServer        listen / serveForever / close (= shutdown) with a deadline,
 *                     |             verifyRequest / handleError / handleTimeout, closeSessions,
 *          +----------+---------+   setKeys, runTask, stats, throttle, typed events
 *          |                    |
 *   SesameServer            UdpServer
 *   (stream-server.ts)      (datagram-server.ts)
 * ```
 *
 * The contract with a derived server.
 * - It implements: `url`, `bind()` (open the socket), `stopAccepting()`, `drain()` (resolves once
 *   every session has finished), `abort()` (after the shutdown deadline), `release()` (free the
 *   socket), `closeSessions()`, `setKeys()` and the two counters `openCount` / `addLive()`.
 * - It calls: `authenticated()` and `refused()` for every handshake outcome (they feed the
 *   throttle and emit `auth`), `admit()` before serving an authenticated peer (verifyRequest),
 *   `recordClosed()` with each finished session's counters, `isThrottled()` before handshake work.
 *
 * Shutdown order, for every kind: stop accepting, let sessions finish what they received (at most
 * `shutdownTimeoutMs`), abort what is left, release the socket, stop the worker pool.
 */

import { EventEmitter } from 'node:events';
import { type ErrorCode, type SesameError, sesameError } from '../errors.js';
import type { SessionInfo } from '../protocol/channel.js';
import type { PresharedKey } from '../protocol/connection.js';
import { checkOptions, ENVIRONMENT_RULES, type Environment, type OptionRules } from '../protocol/options.js';
import type { ConnectionInfo, HandlerServer } from './handlers.js';
import { timerRule } from './options.js';
import { TaskPool, type WorkerPoolOptions } from './pool.js';
import { FailureThrottle, THROTTLE_RULES, type ThrottleOptions } from './throttle.js';

/**
 * Options every server takes. The environment defaults to the system's: `now` (`Date.now`) serves
 * hello freshness and the login throttle, `entropy` (`systemEntropy`) the native handshakes.
 */
export interface BaseServerOptions extends Partial<Environment> {
  /** Where to listen: `tcp://HOST:PORT`, `unix:///path` or `udp://HOST:PORT`. */
  readonly listen: string;
  /** Decide whether to serve an authenticated peer (by address, key id, principal...). */
  readonly verifyRequest?: ((info: ConnectionInfo) => boolean | Promise<boolean>) | undefined;
  /** Per-source backoff after failed logins (see FailureThrottle for the defaults). */
  readonly throttle?: ThrottleOptions | undefined;
  /** A worker-thread pool for CPU-heavy handlers, used through `runTask()`. */
  readonly workerPool?: WorkerPoolOptions | undefined;
  /**
   * How long `close()` lets sessions finish before ending them, in ms: 0 (end them at once) to
   * 2^31 - 1 (default 10 s).
   */
  readonly shutdownTimeoutMs?: number | undefined;
}

/** Default of {@link BaseServerOptions.shutdownTimeoutMs}. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** Rules of the {@link BaseServerOptions} that are numbers or the environment. */
export const BASE_SERVER_RULES: OptionRules<
  Pick<BaseServerOptions, 'shutdownTimeoutMs' | 'now' | 'entropy'>
> = {
  ...ENVIRONMENT_RULES,
  shutdownTimeoutMs: timerRule(0),
};

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

/** The counters of one session, added to a server's totals when it ends. */
export interface TrafficTotals {
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
}

/** An authenticated session has ended: for logs and metrics. */
export interface SessionClosedEvent {
  /** `HOST:PORT` (`[v6]:PORT`) of the peer, or `unix` for a Unix socket. */
  readonly remote: string;
  /** The key id of the session, when the profile names keys. */
  readonly keyId: string | undefined;
  /** Who holds that key, when known. */
  readonly principal: string | undefined;
  /** How long the session lasted, in ms. */
  readonly durationMs: number;
  /** Wire bytes received. */
  readonly bytesIn: number;
  /** Wire bytes sent. */
  readonly bytesOut: number;
  /** Application messages received. */
  readonly messagesIn: number;
  /** Application messages sent. */
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

/** Why a datagram was not accepted (see docs/protocol-udp.md). */
export interface DropEvent {
  /** The drop's reason, e.g. `refused`, `forged`, `replayed`, `stale`, `closed`. */
  readonly reason: string;
  /** `HOST:PORT` (`[v6]:PORT`) the datagram came from. */
  readonly remote: string;
  /** The handshake error's code, for `refused` (and `forged` at a client). */
  readonly code?: ErrorCode | undefined;
  /** What was wrong, for the operator's log. */
  readonly detail: string;
}

/** A datagram session the server forgot. */
export interface SessionEndEvent {
  /** The session id (16 hex characters). */
  readonly sessionId: string;
  /** `closed` by either side, `idle` past the idle timeout, `exhausted` (counters used up). */
  readonly why: 'closed' | 'idle' | 'exhausted';
}

/**
 * Every event a server emits, with its arguments. Events marked "datagram" come only from a
 * {@link UdpServer}; "stream" only from a {@link SesameServer}.
 */
export interface ServerEvents {
  /** Listening, at this URL (the real port). */
  listening: [url: string];
  /** stream: a connection was accepted (before its handshake). */
  accepted: [remote: string];
  /** Every handshake outcome. */
  auth: [event: AuthEvent];
  /** verifyRequest said no to an authenticated peer. */
  refused: [info: ConnectionInfo];
  /** An authenticated session ended. */
  'session-closed': [event: SessionClosedEvent];
  /** stream: an authenticated session failed (its peer misbehaved, or the transport broke). */
  'session-error': [error: SesameError, remote: string];
  /** stream: over maxConnections, a connection was closed at once. */
  busy: [remote: string];
  /** A handler threw, or its reply could not be sent; only that session or datagram is affected. */
  'handler-error': [error: unknown, info: ConnectionInfo];
  /** A session was closed for idleness. */
  timeout: [info: ConnectionInfo];
  /**
   * stream: a trusted proxy connected for itself (PROXY v2 LOCAL, v1 UNKNOWN), or hung up right
   * after its PROXY header without a byte of handshake; with PROXY headers expected, also a
   * connection reset before its address could be read (`remote` is then `unknown`).
   */
  'health-check': [remote: string];
  /** datagram: a datagram that was not accepted. */
  drop: [event: DropEvent];
  /** datagram: a session was forgotten. */
  'session-end': [event: SessionEndEvent];
  /** datagram: the socket reported an error (the server keeps running). */
  'socket-error': [error: Error];
}

/**
 * The lifecycle every server shares.
 *
 * Methods for the caller: `listen()`, `serveForever()`, `close()` (graceful; `shutdown()` is the
 * same), `closeSessions()`, `setKeys()`, `stats()`, `runTask()`. Methods that may be overridden
 * (or given as options): `verifyRequest(info)`, `handleError(error, info)`, `handleTimeout(info)`.
 */
export abstract class BaseServer extends EventEmitter<ServerEvents> implements HandlerServer {
  /** Per-source backoff after failed logins. */
  readonly throttle: FailureThrottle;
  private readonly pool: TaskPool;
  private readonly settings: BaseServerOptions;
  private readonly closedTotals: TrafficTotals = { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 };
  private state: 'new' | 'listening' | 'closing' = 'new';
  private closing: Promise<void> | undefined;
  private closedSignal: { promise: Promise<void>; resolve(): void } | undefined;
  private stopped = false;

  /** @throws LocalError ERR_INVALID_ARGUMENT for an option out of range. */
  protected constructor(options: BaseServerOptions) {
    super();
    checkOptions(options, BASE_SERVER_RULES);
    if (options.throttle !== undefined) checkOptions(options.throttle, THROTTLE_RULES, 'throttle.');
    this.settings = options;
    this.pool = new TaskPool(options.workerPool);
    this.throttle = new FailureThrottle(options.throttle ?? {}, options.now ?? Date.now);
  }

  /** The URL the server listens on, with the real port once listening. */
  abstract get url(): string;

  /** Open now: connections or sessions, as {@link ServerStats.open} counts them. */
  protected abstract get openCount(): number;

  /** Open the socket. Rejects with the socket's own error. */
  protected abstract bind(): Promise<void>;

  /** Take no new connections or datagrams; ask open sessions to finish. */
  protected abstract stopAccepting(): void;

  /** Resolves once every session has finished what it received. */
  protected abstract drain(): Promise<void>;

  /** The shutdown deadline passed: end what is left at once. */
  protected abstract abort(): void;

  /** Free the socket (and its address, for a Unix socket). */
  protected abstract release(): Promise<void>;

  /** Add the counters of the sessions open now to `totals`. */
  protected abstract addLive(totals: TrafficTotals): void;

  /**
   * End the authenticated sessions that `predicate` picks, as a shutdown would: they finish what
   * they received, and close with an authenticated close.
   * @returns how many sessions were picked.
   */
  abstract closeSessions(predicate: (info: SessionInfo) => boolean): number;

  /** Replace the accepted keys; established sessions continue (see `closeSessions`). */
  abstract setKeys(keys: Iterable<PresharedKey>): void;

  /**
   * Start listening. Resolves with the URL (the real port when 0 was asked for).
   * @throws (rejects) LocalError ERR_ADDRESS_IN_USE when another socket holds the address;
   *   ERR_INVALID_ADDRESS when it cannot be bound otherwise (no permission, no such interface);
   *   ERR_INVALID_STATE when already listening or closed.
   */
  async listen(): Promise<string> {
    if (this.state !== 'new') {
      throw sesameError('ERR_INVALID_STATE', 'the server is already listening or closed');
    }
    this.state = 'listening';
    this.pool.start();
    try {
      await this.bind();
    } catch (cause) {
      this.state = 'new';
      const message = cause instanceof Error ? cause.message : String(cause);
      if ((cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') {
        throw sesameError('ERR_ADDRESS_IN_USE', `cannot listen on ${this.url}: the address is in use`, {
          cause,
        });
      }
      throw sesameError('ERR_INVALID_ADDRESS', `cannot listen on ${this.url}: ${message}`, { cause });
    }
    this.emit('listening', this.url);
    return this.url;
  }

  /**
   * Graceful shutdown: stop accepting, let sessions finish what they already received, close
   * them, wait at most shutdownTimeoutMs, end the rest, release the socket. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  /** Same as `close()` (socketserver's name). */
  shutdown(): Promise<void> {
    return this.close();
  }

  /** Listen, then resolve once the server has been closed (by `close()`, from anywhere). */
  async serveForever(): Promise<void> {
    await this.listen();
    await this.closedPromise();
  }

  /** Traffic so far: sessions open now plus every session that has ended. */
  stats(): ServerStats {
    const totals = { ...this.closedTotals };
    this.addLive(totals);
    return { open: this.openCount, ...totals };
  }

  /**
   * Run `task` on the worker-thread pool.
   * @throws LocalError ERR_INVALID_STATE when the server has no `workerPool`.
   */
  runTask<T = unknown>(task: unknown): Promise<T> {
    return this.pool.run<T>(task);
  }

  /** Whether to serve an authenticated peer; refused ones are closed at once. */
  verifyRequest(info: ConnectionInfo): boolean | Promise<boolean> {
    return this.settings.verifyRequest?.(info) ?? true;
  }

  /** Called with whatever a handler threw; only that session (or datagram) is affected. */
  handleError(error: unknown, info: ConnectionInfo): void {
    this.emit('handler-error', error, info);
  }

  /** Called when a session is closed for idleness. */
  handleTimeout(info: ConnectionInfo): void {
    this.emit('timeout', info);
  }

  /** Whether the server is shutting down (or has shut down). */
  protected get isClosing(): boolean {
    return this.state === 'closing';
  }

  /** How long `address` is still blocked by the failed-login backoff, in ms (0: not blocked). */
  protected throttledFor(address: string): number {
    return address === '' ? 0 : this.throttle.blockedFor(address);
  }

  /** A peer authenticated: clear its failures and report it. */
  protected authenticated(address: string, remote: string, session: SessionInfo, handshakeMs: number): void {
    if (address !== '') this.throttle.success(address);
    if (this.listenerCount('auth') > 0) this.emit('auth', { ok: true, remote, session, handshakeMs });
  }

  /**
   * A handshake failed or a peer was turned away: count it against the source (unless the
   * server itself ended it) and report it.
   */
  protected refused(address: string, remote: string, err: SesameError, countFailure = true): void {
    if (countFailure && address !== '' && err.code !== 'ERR_SHUTTING_DOWN') this.throttle.failure(address);
    if (this.listenerCount('auth') > 0)
      this.emit('auth', { ok: false, remote, code: err.code, reason: err.message });
  }

  /** verifyRequest, with its refusal reported as a `refused` event. */
  protected async admit(info: ConnectionInfo): Promise<boolean> {
    return this.admitNow(info);
  }

  /**
   * verifyRequest, with its refusal reported as a `refused` event: a boolean at once when
   * verifyRequest answers synchronously (the default does), so that admitting a peer costs no
   * promise; a promise only when verifyRequest returns one.
   */
  protected admitNow(info: ConnectionInfo): boolean | Promise<boolean> {
    const verdict = this.verifyRequest(info);
    if (typeof verdict === 'boolean') return this.admitted(verdict, info);
    return Promise.resolve(verdict).then((ok) => this.admitted(ok, info));
  }

  private admitted(ok: boolean, info: ConnectionInfo): boolean {
    if (ok) return true;
    this.emit('refused', info);
    return false;
  }

  /** Add a finished session's counters to the totals. */
  protected recordClosed(counters: Readonly<TrafficTotals>): void {
    const t = this.closedTotals;
    t.bytesIn += counters.bytesIn;
    t.bytesOut += counters.bytesOut;
    t.messagesIn += counters.messagesIn;
    t.messagesOut += counters.messagesOut;
  }

  private closedPromise(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.closedSignal === undefined) {
      let resolve = (): void => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.closedSignal = { promise, resolve };
    }
    return this.closedSignal.promise;
  }

  private async stop(): Promise<void> {
    const wasListening = this.state === 'listening';
    this.state = 'closing';
    if (wasListening) {
      this.stopAccepting();
      const ms = this.settings.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
      if (!(await finishesWithin(this.drain(), ms))) this.abort();
      await this.release();
    }
    await this.pool.destroy();
    this.stopped = true;
    this.closedSignal?.resolve();
  }
}

/** Whether `work` settles within `ms` (a timer that never outlives it). */
async function finishesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([work.then(() => true), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
