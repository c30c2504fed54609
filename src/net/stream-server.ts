/**
 * A server for Sesame connections over TCP or a Unix stream socket, in any wire profile (native
 * by default): the stream half of {@link BaseServer}.
 *
 * Lifecycle of a connection: accept -> (PROXY header) -> handshake under a deadline -> verify ->
 * handler -> close. What differs from a datagram server is only here: accepting sockets, the
 * connection limit, PROXY headers, and a {@link Session} per connection.
 *
 * Rules:
 * - A connection is served only after the client proved it holds a key; nothing is written to
 *   an unauthenticated peer except the ServerHello.
 * - One connection's failure, slowness or silence affects no other: each has its own deadlines,
 *   idle timeout and backpressure; a handler that throws ends only its own connection.
 * - Over `maxConnections`, new sockets are closed at once (a `busy` event).
 * - Every authentication result is reported as an `auth` event with the reason code, for the
 *   operator's log; the peer only ever sees the connection close.
 * - The first-byte and handshake deadlines cost no timer per connection: every connection has
 *   the same ones, so each is a {@link FixedDeadlines} list (one timer for all). A connection
 *   leaves both when its handshake ends, so a closed connection is never kept alive by a
 *   deadline (a timer per connection held each one, socket and all, for the whole first-byte
 *   deadline after it closed). The server's sessions therefore get no handshake timer of their own.
 * - The idle timeout costs no timer per connection either: one interval walks the connections
 *   every eighth of the timeout; a session marks its own reads and writes, and one silent for the
 *   whole timeout is closed (never sooner, at most a quarter later), as its socket's timeout would.
 * - The connections and the deadline lists are kept without a JavaScript `Set` or `Map` (see
 *   roster.ts): through a long-lived one, every closed connection stayed reachable until the next
 *   full collection.
 */

import { existsSync, unlinkSync } from 'node:fs';
import { type BlockList, createConnection, createServer, type Server, type Socket } from 'node:net';
import { type ErrorCode, isSesameError, type SesameError, sesameError } from '../errors.js';
import type { PresharedKey, ServerProfile, SessionInfo } from '../protocol/channel.js';
import { nativeServerProfile, ServerContext } from '../protocol/connection.js';
import {
  checkOptions,
  type OptionRules,
  pickOptions,
  SERVER_POLICY_RULES,
  type ServerPolicy,
  wholeNumber,
} from '../protocol/options.js';
import type { ReplayCache } from '../protocol/replay-cache.js';
import { type Address, formatAddress, parseAddress } from './address.js';
import { BaseServer, type BaseServerOptions, type TrafficTotals } from './base-server.js';
import { FixedDeadlines } from './deadlines.js';
import {
  type ConnectionInfo,
  connectionInfo,
  type Respond,
  respondsToEach,
  runHandler,
  type StreamHandlerClass,
  type StreamRequestHandler,
  streamHandlerClass,
} from './handlers.js';
import { environmentOf, timerRule } from './options.js';
import { isTrusted, parseTrustedProxies, readProxyHeader } from './proxy.js';
import { Roster, type Slotted } from './roster.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  type MessageSink,
  SESSION_OPTION_RULES,
  Session,
  type SessionObserver,
  type SessionOptions,
} from './session.js';

/**
 * Options of a {@link SesameServer}: the server policy of the native profile, the
 * {@link SessionOptions} of every connection, and what is the stream server's own.
 */
export interface ServerOptions extends BaseServerOptions, SessionOptions, ServerPolicy {
  /** Accepted keys for the native profile; replace them later with `setKeys()`. */
  readonly keys?: Iterable<PresharedKey> | undefined;
  /**
   * Another wire profile instead of the native one (then `keys`, `entropy` and the
   * {@link ServerPolicy} options are unused).
   */
  readonly profile?: ServerProfile | undefined;
  /**
   * Serves each authenticated connection: a handler class (a BaseRequestHandler or
   * StreamRequestHandler subclass), or a `respond(message, ctx)` function whose return value is
   * each message's reply. The server closes the connection after.
   */
  readonly handler: StreamHandlerClass | Respond;
  /**
   * Expect a PROXY protocol header (v1 or v2) before the handshake and use the client address it
   * carries; connections from addresses outside `trustedProxies` are refused.
   */
  readonly proxyProtocol?: boolean | undefined;
  /** Addresses or CIDRs allowed to send PROXY headers (with `proxyProtocol`). */
  readonly trustedProxies?: readonly string[] | undefined;
  /** Most connections open at once, handshaking or not: 1 to 2^31 (default 10,000). */
  readonly maxConnections?: number | undefined;
  /** Listen backlog: 0 to 2^31 - 1 (default 4096; the kernel caps it at net.core.somaxconn). */
  readonly backlog?: number | undefined;
  /**
   * Budget for received input held across all connections until it completes (partial records,
   * message fragments, unterminated lines), in bytes: 1 to 2^53 - 1 (default 256 MiB). Over it,
   * the newest connections holding input are closed with ERR_INPUT_BUDGET until the total is
   * back under it; the others keep being served.
   */
  readonly inputBudgetBytes?: number | undefined;
  /**
   * Most handshakes in progress at once from one source address (after PROXY headers): 1 to
   * 2^31 (default 128). Over it, a new connection from that address is closed at accept
   * (ERR_SERVER_BUSY), so one source that never finishes its handshakes cannot take every slot.
   */
  readonly maxHandshakesPerSource?: number | undefined;
  /** Most connections open at once from one source address: 1 to 2^31 (default: maxConnections). */
  readonly maxConnectionsPerSource?: number | undefined;
  /**
   * Close a connection whose peer has sent no byte this long after accept, in ms: 0 (only the
   * handshake deadline) to 2^31 - 1 (default 3 s; never later than the handshake deadline).
   */
  readonly firstByteTimeoutMs?: number | undefined;
}

/** Default of {@link ServerOptions.maxConnections}. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Default of {@link ServerOptions.backlog}. */
export const DEFAULT_BACKLOG = 4096;
/** Default of {@link ServerOptions.inputBudgetBytes}: 16 peers each holding a 16 MiB message. */
export const DEFAULT_INPUT_BUDGET_BYTES = 256 * 1024 * 1024;
/**
 * Over the input budget, connections holding at least this much are closed first (a peer that
 * sends ordinary records holds less than one record, 16 KiB); smaller holders only if that is
 * not enough.
 */
export const INPUT_BUDGET_OFFENDER_BYTES = 64 * 1024;
/** Default of {@link ServerOptions.maxHandshakesPerSource}. */
export const DEFAULT_MAX_HANDSHAKES_PER_SOURCE = 128;
/** The most `maxConnections`, `maxHandshakesPerSource` and `maxConnectionsPerSource` may be. */
export const MAX_CONNECTION_COUNT = 2 ** 31;
/** Default of {@link ServerOptions.firstByteTimeoutMs}. */
export const DEFAULT_FIRST_BYTE_TIMEOUT_MS = 3_000;

/** Rules of the {@link ServerOptions} a stream server adds to {@link BaseServerOptions}. */
export const STREAM_SERVER_RULES: OptionRules<
  Pick<
    ServerOptions,
    | keyof SessionOptions
    | keyof ServerPolicy
    | 'maxConnections'
    | 'backlog'
    | 'inputBudgetBytes'
    | 'maxHandshakesPerSource'
    | 'maxConnectionsPerSource'
    | 'firstByteTimeoutMs'
  >
> = {
  ...SESSION_OPTION_RULES,
  ...SERVER_POLICY_RULES,
  maxConnections: wholeNumber(1, MAX_CONNECTION_COUNT),
  backlog: wholeNumber(0, 2 ** 31 - 1),
  inputBudgetBytes: wholeNumber(1, Number.MAX_SAFE_INTEGER),
  maxHandshakesPerSource: wholeNumber(1, MAX_CONNECTION_COUNT),
  maxConnectionsPerSource: wholeNumber(1, MAX_CONNECTION_COUNT),
  firstByteTimeoutMs: timerRule(0),
};

/** What one source address has open now. */
interface SourceCount {
  handshaking: number;
  open: number;
}

interface Peer {
  readonly address: string;
  readonly port: number | undefined;
}

/** `HOST:PORT`, `[v6]:PORT`, or `unix` for a Unix-socket peer. */
function formatPeer(peer: Peer): string {
  if (peer.address === '') return 'unix';
  return peer.address.includes(':') ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
}

/**
 * A stream server (TCP or Unix socket) for any wire profile, native by default. See
 * {@link BaseServer} for the lifecycle and the hooks.
 */
export class SesameServer extends BaseServer {
  /** The options the server was constructed with, without the keys (see `setKeys`). */
  readonly options: Omit<ServerOptions, 'keys'>;
  /** The wire profile serving every connection: `options.profile`, or native over the keys given. */
  readonly profile: ServerProfile;
  /**
   * The native profile's cache of recent ClientHello nonces (undefined with another profile):
   * `serve --workers` links the caches of its processes through it.
   * @internal
   */
  readonly replayCache: ReplayCache | undefined;
  private readonly server: Server;
  /** Every connection's record, handshaking or open (see roster.ts for why not a `Set`). */
  private readonly sessions = new Roster<Served>();
  private address: Address;
  private readonly handler: StreamHandlerClass;
  /** Sockets still sending their PROXY header. */
  private readonly pending = new Roster<PendingSocket>();
  private readonly trustedProxies: BlockList | undefined;
  private serverClosed: Promise<void> | undefined;
  /** Input held by every session's core now (the sum of their `inputHeld` reports). */
  private heldInput = 0;
  private readonly inputBudget: number;
  /** Connections and handshakes in progress per source address (Unix peers are not counted). */
  private readonly sources = new Map<string, SourceCount>();
  private readonly firstByteMs: number;
  /** Connections that have sent no byte yet, under the first-byte deadline (when it applies). */
  private readonly firstByteDeadlines: FixedDeadlines<Served> | undefined;
  /** Connections handshaking, under the handshake deadline (unless it is 0). */
  private readonly handshakeDeadlines: FixedDeadlines<Served> | undefined;
  /** What every session is given: the options, with the handshake deadline kept here instead. */
  private readonly sessionOptions: SessionOptions;
  /** What each connection's {@link Served} reports to (made once, not per connection). */
  private readonly hooks: ServerHooks = {
    established: (served, session, info) => this.onEstablished(served, session, info),
    failed: (served, session, err) => {
      this.handshakeEnded(served);
      // A trusted proxy's connection that ends right after its PROXY header, with no byte of a
      // handshake, is the proxy's health check (HAProxy's `check-send-proxy`): not a refusal.
      const hungUp = err.code === 'ERR_TRUNCATED' || err.code === 'ERR_CONNECTION_RESET';
      if (served.viaProxy && hungUp && session.bytesIn === 0) {
        this.emit('health-check', served.remote);
        return;
      }
      this.refused(served.peer.address, served.remote, err);
    },
    closed: (served, session) => this.onClosed(served, session),
    held: (delta) => this.onHeld(delta),
    // Reported once the connection has its ConnectionInfo (from the end of its handshake on).
    idle: (served) => {
      if (served.info !== undefined) this.handleTimeout(served.info);
    },
    handled: (_served, session) => void session.close(),
    handlerFailed: (served, session, err) => this.handlerFailed(session, served.info as ConnectionInfo, err),
    watchesIdle: () => this.idleMs > 0,
  };
  /** The idle timeout every session gets (0: none), kept here for all of them on one timer. */
  private readonly idleMs: number;
  private idleTimer: NodeJS.Timeout | undefined;

  /**
   * @throws LocalError ERR_INVALID_ADDRESS, ERR_INVALID_ARGUMENT (a malformed key id, an option
   *   out of range).
   */
  constructor(options: ServerOptions) {
    super(options);
    checkOptions(options, STREAM_SERVER_RULES);
    // The keys are handed to the profile and not kept here: after setKeys(), a removed key must
    // not stay reachable from the server.
    const { keys, ...rest } = options;
    this.options = rest;
    this.address = parseAddress(options.listen);
    if (this.address.kind === 'udp') {
      throw sesameError(
        'ERR_INVALID_ADDRESS',
        `${options.listen} is a datagram address: serve it with UdpServer`,
      );
    }
    this.handler = streamHandlerClass(options.handler);
    this.inputBudget = options.inputBudgetBytes ?? DEFAULT_INPUT_BUDGET_BYTES;
    const hsMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const fbMs = options.firstByteTimeoutMs ?? DEFAULT_FIRST_BYTE_TIMEOUT_MS;
    // Only a deadline shorter than the handshake's needs a timer of its own.
    this.firstByteMs = fbMs > 0 && (hsMs === 0 || fbMs < hsMs) ? fbMs : 0;
    if (this.firstByteMs > 0) {
      const ms = this.firstByteMs;
      this.firstByteDeadlines = new FixedDeadlines<Served>(ms, (served) => {
        const session = served.session;
        if (session.bytesIn === 0 && session.phase === 'handshaking') {
          session.destroy(sesameError('ERR_HANDSHAKE_TIMEOUT', `no byte received within ${ms} ms of accept`));
        }
      });
    }
    if (hsMs > 0) {
      this.handshakeDeadlines = new FixedDeadlines<Served>(hsMs, (served) => {
        const session = served.session;
        if (session.phase === 'handshaking') {
          session.destroy(sesameError('ERR_HANDSHAKE_TIMEOUT', `handshake not complete after ${hsMs} ms`));
        }
      });
    }
    this.sessionOptions = { ...rest, handshakeTimeoutMs: 0 };
    this.idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (options.proxyProtocol === true)
      this.trustedProxies = parseTrustedProxies(options.trustedProxies ?? []);
    if (options.profile !== undefined) {
      this.profile = options.profile;
    } else {
      const context = new ServerContext({
        keys: keys ?? [],
        ...environmentOf(options),
        ...pickOptions<ServerPolicy>(options, SERVER_POLICY_RULES),
      });
      this.profile = nativeServerProfile(context);
      this.replayCache = context.replayCache;
    }
    // noDelay: Node sets TCP_NODELAY on the accepted handle itself, so the session's own
    // setNoDelay finds it done (Nagle would hold a small reply until the peer's ACK).
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (socket) =>
      this.accept(socket),
    );
  }

  get url(): string {
    return formatAddress(this.address);
  }

  /** Received input held now by all connections until it completes (what the input budget bounds). */
  get heldInputBytes(): number {
    return this.heldInput;
  }

  /** Open connections (handshaking or authenticated). */
  get connectionCount(): number {
    return this.sessions.size;
  }

  protected get openCount(): number {
    return this.sessions.size;
  }

  protected addLive(t: TrafficTotals): void {
    for (const { session: s } of this.sessions) {
      t.bytesIn += s.bytesIn;
      t.bytesOut += s.bytesOut;
      t.messagesIn += s.messagesIn;
      t.messagesOut += s.messagesOut;
    }
  }

  closeSessions(predicate: (info: SessionInfo) => boolean): number {
    let n = 0;
    for (const { session: s } of this.sessions.snapshot()) {
      if (s.info !== undefined && predicate(s.info)) {
        s.stopReading();
        n++;
      }
    }
    return n;
  }

  setKeys(keys: Iterable<PresharedKey>): void {
    this.profile.setKeys?.(keys);
  }

  protected async bind(): Promise<void> {
    const backlog = this.options.backlog ?? DEFAULT_BACKLOG;
    const a = this.address;
    if (a.kind === 'unix') await removeStaleUnixSocket(a.path);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      const done = () => {
        this.server.off('error', reject);
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
    if (this.idleMs > 0 && this.idleTimer === undefined) {
      this.idleTimer = setInterval(() => this.sweepIdle(), Math.max(1, Math.floor(this.idleMs / IDLE_TICKS)));
      this.idleTimer.unref();
    }
  }

  protected stopAccepting(): void {
    this.serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const { socket } of this.pending.snapshot()) socket.destroy();
    for (const { session: s } of this.sessions.snapshot()) {
      if (s.info === undefined) s.destroy(sesameError('ERR_SHUTTING_DOWN', 'server shutting down'));
      else s.stopReading();
    }
  }

  protected async drain(): Promise<void> {
    await Promise.all(this.sessions.snapshot().map((served) => served.session.closed));
  }

  protected abort(): void {
    for (const { session } of this.sessions.snapshot())
      session.destroy(sesameError('ERR_SHUTTING_DOWN', 'shutdown timeout'));
  }

  protected async release(): Promise<void> {
    clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    this.firstByteDeadlines?.clear();
    this.handshakeDeadlines?.clear();
    await this.serverClosed;
    const a = this.address;
    if (a.kind === 'unix' && existsSync(a.path)) unlinkSync(a.path);
  }

  /**
   * The idle timeout of every open session, on one timer: a session seen active since the last
   * sweep is stamped with this sweep's time; one whose stamp is idleMs old has had no read or
   * write for at least idleMs, and ends as its socket's timeout would end it.
   */
  private sweepIdle(): void {
    const now = performance.now();
    const stamp = Math.ceil(now);
    const dueBefore = now - this.idleMs;
    const expired: Session[] = [];
    for (const { session: s } of this.sessions) {
      const phase = s.phase;
      if (phase !== 'open' && phase !== 'input-ended') continue;
      if (s.idleActive) {
        s.idleActive = false;
        s.idleSince = stamp;
      } else if (s.idleSince <= dueBefore) {
        expired.push(s);
      }
    }
    // Ended after the walk: ending one may change the roster.
    for (const s of expired) s.idleExpired();
  }

  private accept(socket: Socket): void {
    if (this.isClosing) {
      socket.destroy();
      return;
    }
    // The address is read once, here, and kept. A TCP peer without one reset the connection
    // before it could be read (a load balancer's health check that connects and resets, a port
    // scan): there is no one to serve or to refuse, and no address to blame, so it is closed
    // without a refusal (it is not "unix", nor untrusted). Behind a proxy it is reported as the
    // health check it almost always is.
    if (socket.remoteAddress === undefined && this.address.kind === 'tcp') {
      socket.destroy();
      if (this.trustedProxies !== undefined) this.emit('health-check', 'unknown');
      return;
    }
    const peer: Peer = { address: socket.remoteAddress ?? '', port: socket.remotePort };
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
    const waiting: PendingSocket = { socket, slot: -1 };
    this.pending.add(waiting);
    readProxyHeader(socket, this.options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS).then(
      ({ header, rest }) => {
        this.pending.delete(waiting);
        if (this.isClosing) {
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
        this.start(socket, client, rest, true);
      },
      (err: SesameError) => {
        this.pending.delete(waiting);
        socket.destroy();
        this.refuse(peer, err.code, err.message);
      },
    );
  }

  /** Start the handshake on `socket` for the client at `peer`; `rest` is input already read. */
  private start(socket: Socket, peer: Peer, rest: Buffer | undefined, viaProxy = false): void {
    const remote = formatPeer(peer);
    const throttled = this.throttledFor(peer.address);
    if (throttled > 0) {
      socket.destroy();
      this.refuse(
        peer,
        'ERR_THROTTLED',
        `${remote} is blocked for ${throttled} ms after repeated failed logins`,
      );
      return;
    }
    const refusal = this.overSourceCaps(peer.address);
    if (refusal !== undefined) {
      socket.destroy();
      this.refuse(peer, 'ERR_SERVER_BUSY', refusal);
      return;
    }
    const served = new Served(
      this.hooks,
      peer,
      remote,
      viaProxy,
      (observer) =>
        new Session(socket, this.profile.createConnection(), 'server', this.sessionOptions, observer),
    );
    const session = served.session;
    if (peer.address !== '') {
      const count = this.sources.get(peer.address) ?? { handshaking: 0, open: 0 };
      count.handshaking++;
      count.open++;
      this.sources.set(peer.address, count);
      served.counted = true;
    }
    if (session.phase === 'handshaking') {
      if (this.handshakeDeadlines !== undefined)
        served.handshakeTicket = this.handshakeDeadlines.add(served, served.started);
      if (this.firstByteDeadlines !== undefined)
        served.firstByteTicket = this.firstByteDeadlines.add(served, served.started);
    }
    if (rest !== undefined) {
      if (rest.length > 0) socket.unshift(rest);
      socket.resume();
    }
    this.sessions.add(served);
    if (this.listenerCount('accepted') > 0) this.emit('accepted', remote);
  }

  /** Why a new connection from `address` is over a per-source cap, or undefined when it is not. */
  private overSourceCaps(address: string): string | undefined {
    const count = address === '' ? undefined : this.sources.get(address);
    if (count === undefined) return undefined;
    const o = this.options;
    const maxHs = o.maxHandshakesPerSource ?? DEFAULT_MAX_HANDSHAKES_PER_SOURCE;
    if (count.handshaking >= maxHs)
      return `${address} already has ${count.handshaking} handshakes in progress`;
    const maxOpen = o.maxConnectionsPerSource ?? o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (count.open >= maxOpen) return `${address} already has ${count.open} connections open`;
    return undefined;
  }

  /**
   * The handshake of `served` ended (either way, or its connection closed): it has no deadline
   * left, and no longer counts against its source.
   */
  private handshakeEnded(served: Served): void {
    if (served.firstByteTicket >= 0) {
      this.firstByteDeadlines?.delete(served.firstByteTicket);
      served.firstByteTicket = -1;
    }
    if (served.handshakeTicket >= 0) {
      this.handshakeDeadlines?.delete(served.handshakeTicket);
      served.handshakeTicket = -1;
    }
    if (!served.counted || !served.handshaking) return;
    served.handshaking = false;
    const count = this.sources.get(served.peer.address);
    if (count !== undefined) count.handshaking--;
  }

  /** A refusal before any handshake work: reported, not counted against the source. */
  private refuse(peer: Peer, code: ErrorCode, reason: string): void {
    this.refused(peer.address, formatPeer(peer), sesameError(code, reason), false);
  }

  /** A session's held input changed: over the budget, close the newest holders until under it. */
  private onHeld(delta: number): void {
    this.heldInput += delta;
    if (delta <= 0 || this.heldInput <= this.inputBudget) return;
    const newestFirst = this.sessions
      .snapshot()
      .sort((a, b) => b.started - a.started)
      .map((served) => served.session);
    // Big holders first (the attack's shape), then anyone, until the total is back under budget.
    for (const least of [INPUT_BUDGET_OFFENDER_BYTES, 1]) {
      for (const s of newestFirst) {
        if (this.heldInput <= this.inputBudget) return;
        const held = s.heldInputBytes;
        if (held < least) continue;
        // destroy() reports the session's input as released at once, lowering heldInput.
        s.destroy(
          sesameError(
            'ERR_INPUT_BUDGET',
            `closed holding ${held} bytes of incomplete input: the server's ${this.inputBudget}-byte input budget is spent`,
          ),
        );
      }
    }
  }

  private onEstablished(served: Served, session: Session, info: SessionInfo): void {
    this.handshakeEnded(served);
    this.authenticated(served.peer.address, served.remote, info, performance.now() - served.started);
    void this.serve(session, served, info);
  }

  private onClosed(served: Served, session: Session): void {
    this.sessions.delete(served);
    this.handshakeEnded(served);
    if (served.counted) {
      const count = this.sources.get(served.peer.address);
      if (count !== undefined && --count.open === 0) this.sources.delete(served.peer.address);
    }
    this.recordClosed(session);
    const info = session.info;
    if (info !== undefined && this.listenerCount('session-closed') > 0) {
      this.emit('session-closed', {
        remote: served.remote,
        keyId: info.keyId,
        principal: info.principal,
        durationMs: Date.now() - session.startedAt,
        bytesIn: session.bytesIn,
        bytesOut: session.bytesOut,
        messagesIn: session.messagesIn,
        messagesOut: session.messagesOut,
        error: session.error?.code,
      });
    }
  }

  private serve(session: Session, served: Served, s: SessionInfo): void {
    const { peer, remote } = served;
    const info = connectionInfo(s, remote, peer.address, peer.port);
    served.info = info;
    let admitted: boolean | Promise<boolean>;
    try {
      admitted = this.admitNow(info);
    } catch (err) {
      this.handlerFailed(session, info, err);
      return;
    }
    // Waited for even when it is a boolean: the handler starts after the input that completed
    // the handshake has been handled, as it always has.
    Promise.resolve(admitted).then(
      (ok) => this.startHandler(session, served, info, ok),
      (err: unknown) => this.handlerFailed(session, info, err),
    );
  }

  private startHandler(session: Session, served: Served, info: ConnectionInfo, admitted: boolean): void {
    if (!admitted) {
      session.destroy(sesameError('ERR_REQUEST_REFUSED', `${info.remote} refused by verifyRequest`));
      return;
    }
    let handled: Promise<void>;
    try {
      const handler = new this.handler(session, this, info);
      if (respondsToEach(handler)) {
        // The usual handler: the session delivers its messages to the connection's record, which
        // hands them to the handler (no promise or suspended function per connection).
        served.handler = handler;
        session.consumeWith(served);
        return;
      }
      handled = runHandler(handler);
    } catch (err) {
      this.handlerFailed(session, info, err);
      return;
    }
    handled.then(
      () => void session.close(),
      (err: unknown) => this.handlerFailed(session, info, err),
    );
  }

  /** A handler (or verifyRequest) threw: report it and end that session alone. */
  private handlerFailed(session: Session, info: ConnectionInfo, err: unknown): void {
    if (isSesameError(err) && session.error === err) this.emit('session-error', err, info.remote);
    else this.handleError(err, info);
    session.destroy(isSesameError(err) ? err : sesameError('ERR_CLOSED', 'handler failed', { cause: err }));
  }
}

/**
 * Sweeps per idle timeout: a session is closed at least idleMs and at most idleMs plus two sweeps
 * (a quarter of idleMs) after its last read or write.
 */
const IDLE_TICKS = 8;

/** A socket still sending its PROXY header, as a member of the server's roster of them. */
interface PendingSocket extends Slotted {
  readonly socket: Socket;
}

/** The server's handlers for what its sessions report. */
interface ServerHooks {
  /** Whether the server keeps its sessions' idle timeout (see SessionObserver.watchesIdle). */
  watchesIdle(): boolean;
  established(served: Served, session: Session, info: SessionInfo): void;
  failed(served: Served, session: Session, err: SesameError): void;
  closed(served: Served, session: Session): void;
  held(deltaBytes: number): void;
  idle(served: Served): void;
  /** The handler of a served connection returned. */
  handled(served: Served, session: Session): void;
  /** The handler of a served connection threw or rejected (or its session failed). */
  handlerFailed(served: Served, session: Session, err: unknown): void;
}

/**
 * The server's record of one connection: who the peer is, where its session reports, and (for the
 * usual handler) where its messages go.
 */
class Served implements SessionObserver, MessageSink, Slotted {
  readonly started = performance.now();
  /** Index in the server's roster of connections (-1 once it left). */
  slot = -1;
  /** Tickets in the server's handshake and first-byte deadline lists (-1 when in neither). */
  handshakeTicket = -1;
  firstByteTicket = -1;
  /** Counted in the server's per-source table (not for Unix peers). */
  counted = false;
  /** Still counted as a handshake in progress. */
  handshaking = true;
  /** The connection's session, made by the constructor with this record as its observer. */
  readonly session: Session;
  /** What the handler is told about the peer, set when it is served (after the handshake). */
  info: ConnectionInfo | undefined = undefined;
  /** The handler the session's messages are delivered to, when it only responds to each. */
  handler: StreamRequestHandler | undefined = undefined;

  /**
   * `open` makes the session, given this record as its observer; every other field is set by
   * then.
   */
  constructor(
    private readonly hooks: ServerHooks,
    readonly peer: Peer,
    readonly remote: string,
    /** Came through a trusted proxy, after its PROXY header. */
    readonly viaProxy: boolean,
    open: (observer: Served) => Session,
  ) {
    this.session = open(this);
  }

  sessionEstablished(session: Session, info: SessionInfo): void {
    this.hooks.established(this, session, info);
  }

  handshakeFailed(session: Session, error: SesameError): void {
    this.hooks.failed(this, session, error);
  }

  sessionClosed(session: Session): void {
    this.hooks.closed(this, session);
  }

  inputHeld(_session: Session, deltaBytes: number): void {
    this.hooks.held(deltaBytes);
  }

  sessionIdle(): void {
    this.hooks.idle(this);
  }

  get watchesIdle(): boolean {
    return this.hooks.watchesIdle();
  }

  message(message: Buffer): unknown {
    return (this.handler as StreamRequestHandler).respondTo(message);
  }

  ended(): void {
    this.hooks.handled(this, this.session as Session);
  }

  failed(error: unknown): void {
    this.hooks.handlerFailed(this, this.session as Session, error);
  }
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
