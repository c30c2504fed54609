/**
 * A Sesame connection over a stream socket (TCP or Unix): pumps the socket through the sans-I/O
 * core and owns what the core must not: timers, backpressure and closing the socket.
 *
 * Phases, each named for what the session expects next:
 *
 * ```text
 *   handshaking --established--> open --peer's close, stopReading, idle--> input-ended
 *        |                        |                                           |    |
 *        | failure                | close(), failure         close(), failure |    | socket
 *        v                        v                                           |    | closed
 *      closing <------------------+-------------------------------------------+    |
 *        |  (a failure while closing stays in closing and tears the socket down)   |
 *        | socket closed                                                           |
 *        v                                                                         |
 *      closed <--------------------------------------------------------------------+
 * ```
 *
 * - `handshaking`: the core's handshake, under the handshake deadline. Left for `open` only by
 *   the core's `established` event, or for `closing` by a failure.
 * - `open`: messages both ways, under the idle timeout. A socket that closes here first gets the
 *   core's verdict, a clean end (to `input-ended`) or a failure (to `closing`), so `open` never
 *   moves straight to `closed`.
 * - `input-ended`: the peer will send no more (its close, or the end of stream where that is the
 *   profile's end) or this side stopped reading; queued messages can still be read and replies
 *   sent.
 * - `closing`: the socket is being released: gracefully (close record, half-close, wait for the
 *   peer's end, bounded by closeTimeoutMs, or by the idle timeout with `closeWait: 'idle'`) or,
 *   after a failure, at once. When the close started before the input ended, messages may still
 *   arrive until the peer's close (or `stopReading()`) ends it: the one fact the phase alone does
 *   not tell.
 * - `closed`: the socket has closed. Terminal.
 *
 * Every move goes through `moveTo`, which checks it against the diagram and does what entering
 * the phase does (timers, observer calls, settling waiters, events). The failure is sticky and
 * typed: the first wins, every pending and later read rejects with it, and `closed` resolves.
 *
 * Rules:
 * - Bytes flow socket -> `ProtocolConnection.receive` -> events; output is taken from the core and
 *   written in one corked batch, after the input that caused it or once per microtask for sends
 *   made outside input handling, so replies made in the same turn go out together.
 * - What the connection means comes only from the core: `established` from its events (profiles
 *   open from the start report it from `start()`), and the meaning of an end of stream, clean or
 *   truncated, from `receiveEnd()`, also when the socket closes without reporting one.
 * - Messages wait in a queue until read with `next()`, `for await` or `consume()` (`request()` is
 *   `send()` then `next()`). Reading from the socket pauses while that queue, or the socket's
 *   unsent output, is over its high-water mark, so a peer that sends fast or never reads cannot
 *   make this process buffer without bound. With `outputPausesInput: false` (every sender waits
 *   for `drained()`), only output the input made by itself pauses reading: full duplex cannot
 *   leave both ends waiting for each other to read.
 * - The close wait is a deadline (closeTimeoutMs), or with `closeWait: 'idle'` the socket's idle
 *   timeout while the peer's input has not ended, re-armed by every byte it sends.
 * - The idle timeout of `open` and `input-ended` is the socket's timeout (restarted by every read
 *   and write), unless the observer keeps it (`watchesIdle`: a server, which walks all its
 *   sessions on one timer instead of a timer per connection). Then the session only sets
 *   `idleActive` on every read and write, and the observer calls `idleExpired()`; either way the
 *   session ends the same.
 * - One object per connection on the hot path: shared socket listeners, promises only when asked
 *   for, no promise per message under `consume()`.
 */

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { type SesameError, sesameError } from '../errors.js';
import type { ConnectionEvent, ProtocolConnection, SessionInfo } from '../protocol/channel.js';
import { BOOLEAN_RULE, checkOptions, type OptionRules, wholeNumber } from '../protocol/options.js';
import { timerRule } from './options.js';

/** Timeouts and buffering of a {@link Session}, for clients and servers alike. */
export interface SessionOptions {
  /** Deadline for the whole handshake, in ms: 0 (none) to 2^31 - 1 (default 10 s). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Close an open session after this long without input, in ms: 0 (none) to 2^31 - 1 (default 5 min). */
  readonly idleTimeoutMs?: number | undefined;
  /**
   * How long `close()` waits for the peer's close before destroying the socket, in ms: 0 (no
   * wait) to 2^31 - 1 (default 5 s).
   */
  readonly closeTimeoutMs?: number | undefined;
  /**
   * Unread message bytes and unsent output bytes above which reading pauses: 1 to 2^53 - 1
   * (default 1 MiB).
   */
  readonly highWaterMarkBytes?: number | undefined;
  /**
   * Whether unsent output over the high-water mark pauses reading (default true). Set it to false
   * only when every sender waits for `drained()` after `send()` returns false (forwarding does):
   * then the output is bounded by its senders, and reading goes on while it waits, so two ends
   * that both send more than their marks keep reading each other instead of waiting for each
   * other. Output the core makes from input by itself (replies made while input is handled, pong,
   * a peer's key update) still pauses reading over the mark, so a peer that never reads cannot
   * grow it; unread input stays bounded by the mark and the server's input budget either way.
   */
  readonly outputPausesInput?: boolean | undefined;
  /**
   * How `close()` waits for the peer's end: `deadline` (default), at most closeTimeoutMs from the
   * close; `idle`, while the peer's input has not ended (this side half-closed, the peer still
   * sends), for as long as bytes keep arriving: the wait is cut after idleTimeoutMs without input
   * (closeTimeoutMs when there is no idle timeout), with ERR_IDLE_TIMEOUT. Once the input has
   * ended, the closeTimeoutMs deadline applies in both.
   */
  readonly closeWait?: 'deadline' | 'idle' | undefined;
}

/** Rules of {@link SessionOptions}, checked by the servers and by `openSession()`. */
export const SESSION_OPTION_RULES: OptionRules<SessionOptions> = {
  handshakeTimeoutMs: timerRule(0),
  idleTimeoutMs: timerRule(0),
  closeTimeoutMs: timerRule(0),
  highWaterMarkBytes: wholeNumber(1, Number.MAX_SAFE_INTEGER),
  outputPausesInput: BOOLEAN_RULE,
  closeWait: {
    kind: 'custom',
    allowed: '"deadline" or "idle"',
    test: (v) => v === 'deadline' || v === 'idle',
  },
};

/** Default of {@link SessionOptions.handshakeTimeoutMs}. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Default of {@link SessionOptions.idleTimeoutMs}. */
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
/** Default of {@link SessionOptions.closeTimeoutMs}. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/**
 * What one queued message counts for besides its bytes, so that a flood of empty or tiny messages
 * also reaches the high-water mark (an empty Buffer still costs memory).
 */
export const QUEUED_MESSAGE_OVERHEAD_BYTES = 128;
/** Default of {@link SessionOptions.highWaterMarkBytes}. */
export const DEFAULT_HIGH_WATER_MARK_BYTES = 1024 * 1024;

/** Where a {@link Session} is in its life; see the module header for the diagram. */
export type SessionPhase = 'handshaking' | 'open' | 'input-ended' | 'closing' | 'closed';

/** The moves the diagram allows: anything else is a bug in this file. */
const NEXT: Readonly<Record<SessionPhase, readonly SessionPhase[]>> = {
  handshaking: ['open', 'closing'],
  open: ['input-ended', 'closing'],
  'input-ended': ['closing', 'closed'],
  // closing -> closing: a failure during a graceful close tears the socket down at once.
  closing: ['closing', 'closed'],
  closed: [],
};

/**
 * What a {@link Session} emits, with its arguments. `error` is not among them: read a failure
 * from `closed`, `next()` or `error`.
 */
export interface SessionEvents {
  /** The handshake completed (once). */
  established: [info: SessionInfo];
  /** The session failed (once), with its sticky error. */
  failed: [error: SesameError];
  /** The output is back under the high-water mark after `send()` returned false. */
  drain: [];
  /** No input for idleTimeoutMs: the session stops reading and closes. */
  idle: [];
  /** The peer sent a ping (the core has answered it). */
  ping: [payload: Buffer];
  /** The peer answered a ping. */
  pong: [payload: Buffer];
  /** The peer will send nothing more. */
  'peer-close': [];
  /** The socket has closed, whatever the reason. */
  closed: [];
}

interface Waiter {
  resolve(message: Buffer | undefined): void;
  reject(err: SesameError): void;
  /** A `request()`: the end of input rejects it (ERR_CLOSED) instead of resolving undefined. */
  readonly request: boolean;
}

function closedBeforeReply(): SesameError {
  return sesameError('ERR_CLOSED', 'the peer closed the connection before replying');
}

/**
 * Where {@link Session.consumeWith} delivers a session's messages: each message in order, then
 * exactly one of `ended()` and `failed()`.
 */
export interface MessageSink {
  /**
   * One message. A returned promise holds later messages (still counted against the high-water
   * mark) until it settles; a throw or a rejection ends the delivery with `failed()`.
   */
  message(message: Buffer): unknown;
  /** The input ended and every message was delivered. */
  ended(): void;
  /** The session failed (its typed error), or `message()` threw or rejected (what it threw). */
  failed(error: unknown): void;
}

/** `consume()`'s sink: a callback and the promise it settles. */
class CallbackSink implements MessageSink {
  constructor(
    readonly message: (message: Buffer) => unknown,
    readonly ended: () => void,
    readonly failed: (error: unknown) => void,
  ) {}
}

/**
 * What the owner of many sessions (a server) is told about each, in place of a promise and a
 * listener per connection. Calls are synchronous, from inside the session's event handling.
 */
export interface SessionObserver {
  /** The handshake completed. */
  sessionEstablished(session: Session, info: SessionInfo): void;
  /** The handshake failed (not called for failures after it completed). */
  handshakeFailed(session: Session, error: SesameError): void;
  /** The socket closed, whatever the reason. */
  sessionClosed(session: Session): void;
  /**
   * The session is being closed for idleness (its idle timeout passed with no input), just
   * before its 'idle' event: a server learns it without a listener per connection.
   */
  sessionIdle?(session: Session): void;
  /**
   * The received bytes the core holds for this session (partial records, fragments, lines) went
   * up or down by `deltaBytes`; the sum over a server's sessions is what its memory budget bounds.
   * Reported after each read that changes it, and back to 0 when the session fails or closes.
   */
  inputHeld?(session: Session, deltaBytes: number): void;
  /**
   * Whether the observer keeps this session's idle timeout (a server, on one timer for all its
   * sessions). When true the session arms no socket timeout for `open`: it sets
   * {@link Session.idleActive} on every read and write and stamps {@link Session.idleSince} when
   * it opens, and the observer calls the session's `idleExpired()` once idleTimeoutMs has
   * passed without either.
   */
  readonly watchesIdle?: boolean;
}

const noop = (): void => {};

/** Whether `v` is a promise or another thenable (what `await` would wait for). */
export function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}

/** The session a socket belongs to, for the socket listeners all sessions share. */
const SESSION = Symbol('sesame.session');
type OwnedSocket = Socket & { [SESSION]: Session };

/** The session methods the shared socket listeners call (protected: not part of the API). */
interface SocketEvents {
  onData(chunk: Buffer): void;
  onEnd(): void;
  onSocketError(err: Error): void;
  onClose(): void;
  onIdle(): void;
  onDrain(): void;
}

function owner(socket: Socket): SocketEvents {
  return (socket as OwnedSocket)[SESSION] as unknown as SocketEvents;
}

function onSocketData(this: Socket, chunk: Buffer): void {
  owner(this).onData(chunk);
}

function onSocketEnd(this: Socket): void {
  owner(this).onEnd();
}

function onSocketError(this: Socket, err: Error): void {
  owner(this).onSocketError(err);
}

function onSocketClose(this: Socket): void {
  owner(this).onClose();
}

function onSocketTimeout(this: Socket): void {
  owner(this).onIdle();
}

function onSocketDrain(this: Socket): void {
  owner(this).onDrain();
}

/** Timer callback: the peer did not finish in time, so the socket goes without waiting. */
function destroySocket(socket: Socket): void {
  socket.destroy();
}

/**
 * An authenticated connection over a stream socket. Its {@link SessionEvents} are typed, so
 * listening for an event that does not exist is a compile error.
 */
export class Session extends EventEmitter<SessionEvents> {
  /** The stream socket (TCP or Unix); the session reads and writes it, so leave its data alone. */
  readonly socket: Socket;
  /** Which end this is: `client` (connected) or `server` (accepted). */
  readonly role: 'client' | 'server';
  /** Peer address as the socket reports it ('' for Unix sockets). */
  readonly remoteAddress: string;
  /** Peer port as the socket reports it (undefined for Unix sockets). */
  readonly remotePort: number | undefined;
  /** Bytes received on the socket (wire bytes). */
  bytesIn = 0;
  /** Messages received. */
  messagesIn = 0;
  /** Messages sent. */
  messagesOut = 0;
  /** When the session was created, in ms since the epoch. */
  readonly startedAt = Date.now();
  /**
   * Set on every read and write; for an observer that keeps the idle timeout (see
   * {@link SessionObserver.watchesIdle}), which clears it when it looks.
   */
  idleActive = false;
  /**
   * For an observer that keeps the idle timeout: when this session was last seen active, in
   * whole `performance.now()` milliseconds (the observer's stamps, and the session's at `open`).
   */
  idleSince = 0;

  private readonly conn: ProtocolConnection;
  private readonly options: SessionOptions;
  private readonly highWater: number;
  private state: SessionPhase = 'handshaking';
  /** The sticky failure; set together with the move to `closing` (or alone once `closed`). */
  private failure: SesameError | undefined;
  /** The failure that ended `handshaking`, if one did: what `ready` rejects with. */
  private handshakeFailure: SesameError | undefined;
  /** In `closing`: the input had ended too (the phase cannot tell, as a close may start first). */
  private closingInputEnded = false;
  private readonly messages: Buffer[] = [];
  private queuedBytes = 0;
  private readonly waiters: Waiter[] = [];
  private consumer: MessageSink | undefined;
  /** The consumer's last message() returned a promise not settled yet: later messages wait. */
  private consumerBusy = false;
  private flushScheduled = false;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private readyPromise: Promise<SessionInfo> | undefined;
  private readySettle: { resolve(info: SessionInfo): void; reject(err: SesameError): void } | undefined;
  private closedPromise: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;
  /** Inside onData: output is flushed when the input has been handled. */
  private inInput = false;
  /** Message bytes sent since the last flush (sealed, not yet handed to the socket). */
  private unflushedBytes = 0;
  /** send() returned false; `drain` is emitted once the output is back under the mark. */
  private needDrain = false;
  private readonly drainWaiters: { resolve(): void; reject(err: SesameError): void }[] = [];
  private readonly observer: SessionObserver | undefined;
  /** The core's held input as last reported to the observer. */
  private reportedHeld = 0;
  /** {@link SessionOptions.outputPausesInput}. */
  private outputPausesInput: boolean;
  /** {@link SessionOptions.closeWait} is `idle`. */
  private closeWaitIdle: boolean;
  /**
   * Input made output by itself (a reply while input was handled, a pong) since the output was last
   * under the mark: such output pauses reading even when senders' output does not.
   */
  private inputMadeOutput = false;
  /** In `closing`, waiting with the idle close wait (the socket's timeout), not a deadline. */
  private closeWaitingIdle = false;
  /** The socket's timeout listener is added (the first time the session arms that timeout). */
  private timeoutListened = false;

  constructor(
    socket: Socket,
    conn: ProtocolConnection,
    role: 'client' | 'server',
    options: SessionOptions = {},
    observer?: SessionObserver,
  ) {
    super();
    this.socket = socket;
    this.conn = conn;
    this.role = role;
    this.options = options;
    this.observer = observer;
    this.highWater = options.highWaterMarkBytes ?? DEFAULT_HIGH_WATER_MARK_BYTES;
    this.outputPausesInput = options.outputPausesInput ?? true;
    this.closeWaitIdle = options.closeWait === 'idle';
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort;

    // The listeners are shared by every session (no closures per connection); each finds its
    // session through the socket.
    (socket as OwnedSocket)[SESSION] = this;
    socket.setNoDelay(true);
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);

    const hsMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (hsMs > 0) {
      this.handshakeTimer = setTimeout(Session.onHandshakeTimeout, hsMs, this, hsMs);
      this.handshakeTimer.unref?.();
    }
    // What exists before any input (`established` for a profile open from the start) is handled
    // once the caller has had the chance to listen: no socket input can arrive before a microtask
    // runs. A session failed or closed by then has no use for it.
    const early = conn.start();
    if (early.length > 0) {
      queueMicrotask(() => {
        if (this.state === 'handshaking') this.handle(early);
      });
    }
    this.flush(); // a client's first flight
  }

  /**
   * Received bytes held until what they belong to completes (a partial record, the fragments of
   * a message, an unterminated line), as last reported to the server after a read.
   */
  get heldInputBytes(): number {
    return this.reportedHeld;
  }

  /** Where the session is in its life (see {@link SessionPhase}). */
  get phase(): SessionPhase {
    return this.state;
  }

  /**
   * Whether no more messages will be queued: the peer ended its input or this side stopped
   * reading (queued messages can still be read).
   */
  get inputEnded(): boolean {
    const p = this.state;
    return p === 'input-ended' || p === 'closed' || (p === 'closing' && this.closingInputEnded);
  }

  /** Resolves once authenticated; rejects with the typed error if the handshake fails. */
  get ready(): Promise<SessionInfo> {
    if (this.readyPromise === undefined) {
      if (this.handshakeFailure !== undefined) {
        this.readyPromise = Promise.reject(this.handshakeFailure);
      } else if (this.state !== 'handshaking') {
        this.readyPromise = Promise.resolve(this.conn.session as SessionInfo);
      } else {
        this.readyPromise = new Promise<SessionInfo>((resolve, reject) => {
          this.readySettle = { resolve, reject };
        });
      }
      this.readyPromise.catch(noop); // a failure is also reported through `closed`/`next()`
    }
    return this.readyPromise;
  }

  /** Resolves when the socket is closed, whatever the reason. */
  get closed(): Promise<void> {
    if (this.closedPromise === undefined) {
      this.closedPromise =
        this.state === 'closed'
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              this.resolveClosed = resolve;
            });
    }
    return this.closedPromise;
  }

  /** Session details once authenticated. */
  get info(): SessionInfo | undefined {
    return this.conn.session;
  }

  /** Bytes written to the socket so far (wire bytes). */
  get bytesOut(): number {
    return this.socket.bytesWritten;
  }

  /** The error the session failed with, if it did. */
  get error(): SesameError | undefined {
    return this.failure;
  }

  /** Keying material bound to this connection (see docs/protocol.md, "Exporter"). */
  exportKeyingMaterial(label: string, context?: Uint8Array): Buffer {
    return this.conn.exportKeyingMaterial(label, context);
  }

  /**
   * Send one message. Messages sent in the same tick leave together, sealed into as few records
   * as fit (docs/protocol.md, "Batch records"); until then the message's bytes are read where
   * they are, so do not change them before the next tick (as with a Node stream's `write()`).
   * @returns false when the output not yet taken by the kernel is over the high-water mark: the
   *   message is queued all the same, but a sender that streams should wait for `drained()` (or
   *   the `drain` event) before sending more, as with a Node stream's `write()`.
   * @throws the session's error once failed; LocalError ERR_INVALID_STATE before the handshake
   *   completes, ERR_CLOSED after `close()`.
   */
  send(message: Uint8Array): boolean {
    if (this.failure !== undefined) throw this.failure;
    this.conn.send(message);
    this.messagesOut++;
    this.unflushedBytes += message.length;
    this.scheduleFlush();
    if (this.socket.writableLength + this.unflushedBytes <= this.highWater) return true;
    this.needDrain = true;
    return false;
  }

  /**
   * Resolves once the output is back under the high-water mark (at once when `send()` has not
   * returned false since the last drain), or when the socket has closed.
   * @throws (rejects) the session's typed error when it fails first.
   */
  drained(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (!this.needDrain || this.socket.destroyed) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /**
   * The next message, or undefined once the input has ended and every message was read.
   * @throws (rejects) the session's typed error when it failed; LocalError ERR_INVALID_STATE
   *   while `consume()` is delivering the messages.
   */
  next(): Promise<Buffer | undefined> {
    if (this.consumer !== undefined) {
      return Promise.reject(sesameError('ERR_INVALID_STATE', 'messages of this session are being consumed'));
    }
    const m = this.takeMessage();
    if (m !== undefined) {
      this.queuedBytes -= m.length + QUEUED_MESSAGE_OVERHEAD_BYTES;
      this.updateFlow();
      return Promise.resolve(m);
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.inputEnded) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject, request: false }));
  }

  /**
   * Send `message` and wait for the next message from the peer: `send()`, then `next()`.
   * @throws (rejects) ERR_CLOSED when the peer closes first, or the session's error.
   */
  request(message: Uint8Array): Promise<Buffer> {
    // The usual case, nothing queued and nothing ended: one promise, settled by the waiter.
    if (
      this.consumer === undefined &&
      this.messages.length === 0 &&
      this.failure === undefined &&
      !this.inputEnded
    ) {
      try {
        this.send(message);
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise<Buffer>((resolve, reject) =>
        this.waiters.push({ resolve: resolve as Waiter['resolve'], reject, request: true }),
      );
    }
    return this.requestAfterNext(message);
  }

  /** `request()` when a message is queued, the input ended or the session failed: next(), then send(). */
  private async requestAfterNext(message: Uint8Array): Promise<Buffer> {
    const reply = this.next();
    try {
      this.send(message);
    } catch (err) {
      reply.catch(noop); // the send's error is the one to report
      throw err;
    }
    const m = await reply;
    if (m === undefined) throw closedBeforeReply();
    return m;
  }

  /**
   * Every message until the input ends, as repeated `next()` calls.
   * @throws (rejects) the session's typed error when it failed.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const m = await this.next();
      if (m === undefined) return;
      yield m;
    }
  }

  /**
   * Deliver every message to `onMessage`, in order, until the input ends: the callback form of
   * `for await (const m of session)`, with no promise per message. When `onMessage` returns a
   * promise, later messages wait in the queue (counted against the high-water mark) until it
   * settles.
   * @returns resolves once the input has ended and every message was delivered; rejects with the
   *   session's typed error, or with what `onMessage` threw or rejected with.
   * @throws LocalError ERR_INVALID_STATE when messages are already being consumed or awaited.
   */
  consume(onMessage: (message: Buffer) => unknown): Promise<void> {
    this.checkConsumable();
    return new Promise<void>((resolve, reject) =>
      this.consumeWith(new CallbackSink(onMessage, resolve, reject)),
    );
  }

  /**
   * `consume()` without its promise: every message goes to `sink.message()`, in order, then the
   * end to `sink.ended()` or `sink.failed()` (for a server holding many sessions, one object per
   * session instead of a promise and its callbacks).
   * @throws LocalError ERR_INVALID_STATE when messages are already being consumed or awaited.
   */
  consumeWith(sink: MessageSink): void {
    this.checkConsumable();
    this.consumer = sink;
    this.consumerBusy = false;
    this.drainConsumer();
  }

  private checkConsumable(): void {
    if (this.consumer !== undefined || this.waiters.length > 0) {
      throw sesameError('ERR_INVALID_STATE', 'messages of this session are already being read');
    }
  }

  /**
   * Close gracefully: send the close record, half-close, wait for the peer to finish (at most
   * closeTimeoutMs), then release the socket. During the handshake there is nothing to close
   * gracefully: the socket is dropped, and the core says what that hang-up means. Resolves when
   * the socket is closed.
   */
  close(): Promise<void> {
    if (this.socket.destroyed) return this.closed;
    if (this.state === 'open' || this.state === 'input-ended') this.moveTo('closing');
    else if (this.state === 'handshaking') this.socket.destroy();
    return this.closed;
  }

  /**
   * Stop reading new input: queued messages can still be read, then `next()` ends. While closing,
   * the socket is still read for the peer's end, but no one waits for more messages; during the
   * handshake this does nothing.
   */
  stopReading(): void {
    if (this.state === 'open') this.socket.pause();
    this.endInput();
  }

  /**
   * Change {@link SessionOptions.outputPausesInput} and {@link SessionOptions.closeWait} of a
   * session made elsewhere (a server's), for what will read and write it; they apply from now on
   * (a close wait already started keeps its kind).
   */
  setStreamOptions(options: Pick<SessionOptions, 'outputPausesInput' | 'closeWait'>): void {
    checkOptions(options, { outputPausesInput: BOOLEAN_RULE, closeWait: SESSION_OPTION_RULES.closeWait });
    if (options.outputPausesInput !== undefined) this.outputPausesInput = options.outputPausesInput;
    if (options.closeWait !== undefined) this.closeWaitIdle = options.closeWait === 'idle';
    this.updateFlow();
  }

  /** Fail the session with `err` and destroy the socket. */
  destroy(err?: SesameError): void {
    this.fail(err ?? sesameError('ERR_CLOSED', 'session destroyed'));
  }

  private static onHandshakeTimeout(session: Session, ms: number): void {
    session.fail(sesameError('ERR_HANDSHAKE_TIMEOUT', `handshake not complete after ${ms} ms`));
  }

  /**
   * The one place the phase changes: check the move against the diagram, then do what entering
   * the phase does. A failure is recorded (sticky) before the move to `closing` it causes.
   */
  private moveTo(next: SessionPhase): void {
    const from = this.state;
    if (!NEXT[from].includes(next)) {
      throw sesameError('ERR_INVALID_STATE', `internal error: a session cannot go from ${from} to ${next}`);
    }
    this.state = next;
    if (from === 'handshaking') {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = undefined;
    }
    switch (next) {
      case 'open': {
        const info = this.conn.session as SessionInfo;
        const idleMs = this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
        if (this.observer?.watchesIdle === true) this.idleSince = Math.ceil(performance.now());
        else if (idleMs > 0) this.armSocketTimeout(idleMs);
        this.readySettle?.resolve(info);
        this.readySettle = undefined;
        this.observer?.sessionEstablished(this, info);
        this.emit('established', info);
        break;
      }
      case 'input-ended':
        this.settleReaders();
        break;
      case 'closing':
        if (this.failure === undefined) this.startClose(from);
        else this.tearDown(from, this.failure);
        break;
      case 'closed':
        clearTimeout(this.handshakeTimer);
        clearTimeout(this.closeTimer);
        this.reportHeld(0);
        this.settleReaders();
        this.settleDrainWaiters();
        this.resolveClosed?.();
        this.observer?.sessionClosed(this);
        this.emit('closed');
        break;
      case 'handshaking':
        break; // never entered: the session starts in it
    }
  }

  /** Entering `closing` gracefully: send the close record, half-close, and wait for the peer's end. */
  private startClose(from: SessionPhase): void {
    this.closingInputEnded = from === 'input-ended';
    this.conn.close();
    this.flush();
    this.socket.end();
    if (this.closeWaitIdle && !this.closingInputEnded) {
      // The peer still sends: wait as long as it does. The socket's timeout is re-armed by every
      // byte (this side has sent its FIN, so only input moves it).
      this.closeWaitingIdle = true;
      const idleMs = this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
      this.armSocketTimeout(idleMs > 0 ? idleMs : (this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS));
    } else {
      this.startCloseDeadline();
    }
    if (this.closingInputEnded) this.socket.resume(); // read the peer's end even if reading was paused
  }

  /**
   * The socket's timeout, restarted by every read and write and reported to onIdle. Its listener
   * is added here, the first time: a server's session, whose idle timeout the server keeps, may
   * never need one.
   */
  private armSocketTimeout(ms: number): void {
    if (!this.timeoutListened) {
      this.timeoutListened = true;
      this.socket.on('timeout', onSocketTimeout);
    }
    this.socket.setTimeout(ms);
  }

  /** The close wait's deadline: the socket goes closeTimeoutMs from now if the peer has not ended it. */
  private startCloseDeadline(): void {
    if (this.closeWaitingIdle) {
      this.closeWaitingIdle = false;
      this.socket.setTimeout(0);
    }
    const ms = this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.closeTimer = setTimeout(destroySocket, ms, this.socket);
    this.closeTimer.unref?.();
  }

  /** Entering `closing` with a failure: report it, then release the socket without waiting. */
  private tearDown(from: SessionPhase, failure: SesameError): void {
    if (from === 'handshaking') {
      this.handshakeFailure = failure;
      this.readySettle?.reject(failure);
      this.readySettle = undefined;
      this.observer?.handshakeFailed(this, failure);
    }
    this.settleReaders();
    this.settleDrainWaiters();
    // A profile may have a last word to send (python-mp's #FAILURE#): write it, then end.
    const last = this.socket.destroyed ? [] : this.conn.takeOutput();
    if (last.length > 0) {
      for (const b of last) this.socket.write(b);
      this.socket.end();
      setTimeout(destroySocket, this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS, this.socket).unref();
    } else {
      this.socket.destroy();
    }
    this.emit('failed', failure);
  }

  /** Record the sticky failure (the first wins) and release the socket. */
  private fail(err: SesameError): void {
    if (this.failure !== undefined) return;
    this.failure = this.conn.fail(err);
    this.reportHeld(0); // the core dropped its input
    if (this.state !== 'closed') {
      this.moveTo('closing');
    } else {
      this.emit('failed', this.failure); // destroyed after the socket closed: nothing left to release
    }
  }

  /** The peer will send no more (or this side stopped listening): a move from `open`, a fact in `closing`. */
  private endInput(): void {
    if (this.state === 'open') {
      this.moveTo('input-ended');
    } else if (this.state === 'closing' && !this.closingInputEnded) {
      this.closingInputEnded = true;
      // Only the socket's end is missing now: an idle close wait becomes the usual deadline.
      if (this.closeWaitingIdle && this.failure === undefined) this.startCloseDeadline();
      this.settleReaders();
    }
  }

  protected onData(chunk: Buffer): void {
    this.idleActive = true;
    this.bytesIn += chunk.length;
    if (this.failure !== undefined) return;
    // Replies sent while this input is handled go out with the flush below, not a microtask.
    this.inInput = true;
    try {
      this.handle(this.conn.receive(chunk));
    } finally {
      this.inInput = false;
    }
    if (this.failure === undefined) this.reportHeld(this.conn.bufferedBytes ?? 0);
    if (this.conn.hasOutput) this.inputMadeOutput = true;
    this.flush();
  }

  protected onEnd(): void {
    if (this.failure !== undefined) return;
    this.handle(this.conn.receiveEnd());
  }

  protected onSocketError(err: Error): void {
    if (this.failure !== undefined) return;
    // A reset during a client's handshake is how a server refusal may arrive.
    if (this.role === 'client' && this.state === 'handshaking') {
      this.handle(this.conn.receiveEnd());
      return;
    }
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    this.fail(sesameError('ERR_CONNECTION_RESET', `socket error: ${code}`, { cause: err }));
  }

  protected onClose(): void {
    // The socket closed without an end of input (a reset, a timer, a destroy): what that means,
    // a clean end or a truncation, is the core's call, as for an end of stream.
    if (this.failure === undefined && !this.inputEnded) this.handle(this.conn.receiveEnd());
    this.moveTo('closed');
  }

  protected onIdle(): void {
    if (this.closeWaitingIdle && this.state === 'closing' && this.failure === undefined) {
      const ms = this.socket.timeout ?? 0;
      this.fail(sesameError('ERR_IDLE_TIMEOUT', `no input for ${ms} ms while waiting for the peer's end`));
      return;
    }
    this.idleExpired();
  }

  /**
   * No read or write for idleTimeoutMs while open or input-ended: the session stops reading and
   * closes, what its socket's timeout does. Called by an observer that keeps the idle timeout
   * (see {@link SessionObserver.watchesIdle}); nothing happens in any other phase.
   * @internal
   */
  idleExpired(): void {
    if (this.state !== 'open' && this.state !== 'input-ended') return;
    this.observer?.sessionIdle?.(this);
    this.emit('idle');
    this.endInput();
    void this.close();
  }

  private handle(events: ConnectionEvent[]): void {
    for (const e of events) {
      switch (e.type) {
        case 'established':
          this.moveTo('open');
          break;
        case 'message': {
          this.messagesIn++;
          const w = this.waiters.shift();
          if (w !== undefined) {
            w.resolve(e.data);
          } else {
            this.messages.push(e.data);
            this.queuedBytes += e.data.length + QUEUED_MESSAGE_OVERHEAD_BYTES;
          }
          break;
        }
        case 'close':
          this.endInput();
          this.emit('peer-close');
          break;
        case 'error':
          this.fail(e.error);
          return;
        case 'ping':
        case 'pong':
          this.emit(e.type, e.payload);
          break;
      }
    }
    if (this.consumer === undefined) this.updateFlow();
    else this.drainConsumer();
  }

  /**
   * The first queued message, if any. The emptied queue gives its element store back (V8 keeps
   * the capacity of an array emptied by shift(), about 150 bytes per idle connection).
   */
  private takeMessage(): Buffer | undefined {
    const m = this.messages.shift();
    if (m !== undefined && this.messages.length === 0) this.messages.length = 0;
    return m;
  }

  /** Hand queued messages to the consumer; end it once the input has ended or the session failed. */
  private drainConsumer(): void {
    const c = this.consumer;
    if (c === undefined) return;
    if (this.consumerBusy) {
      // Messages that arrive while the consumer waits count against the mark, as documented.
      this.updateFlow();
      return;
    }
    for (let m = this.takeMessage(); m !== undefined; m = this.takeMessage()) {
      this.queuedBytes -= m.length + QUEUED_MESSAGE_OVERHEAD_BYTES;
      let result: unknown;
      try {
        result = c.message(m);
      } catch (err) {
        this.consumer = undefined;
        c.failed(err);
        return;
      }
      if (isPromiseLike(result)) {
        this.consumerBusy = true;
        result.then(
          () => {
            this.consumerBusy = false;
            this.drainConsumer();
          },
          (err: unknown) => {
            this.consumer = undefined;
            c.failed(err);
          },
        );
        this.updateFlow();
        return;
      }
    }
    this.updateFlow();
    if (this.failure !== undefined) {
      this.consumer = undefined;
      c.failed(this.failure);
    } else if (this.inputEnded || this.socket.destroyed) {
      this.consumer = undefined;
      c.ended();
    }
  }

  /** Settle the consumer and every waiting `next()` that can be settled: with the failure, or as ended. */
  private settleReaders(): void {
    if (this.consumer !== undefined) this.drainConsumer();
    if (this.messages.length > 0) return;
    for (const w of this.waiters.splice(0)) {
      if (this.failure !== undefined) w.reject(this.failure);
      else if (this.inputEnded || this.socket.destroyed) {
        if (w.request) w.reject(closedBeforeReply());
        else w.resolve(undefined);
      }
    }
  }

  /** Tell the observer how much input the core holds now, when that changed. */
  private reportHeld(held: number): void {
    const delta = held - this.reportedHeld;
    if (delta === 0) return;
    this.reportedHeld = held;
    this.observer?.inputHeld?.(this, delta);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.inInput) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (!this.conn.hasOutput || this.socket.destroyed) return;
    const out = this.conn.takeOutput();
    this.unflushedBytes = 0;
    this.idleActive = true;
    // A sender told to wait hears back when this output has reached the kernel, even when the
    // socket's own buffer stays under its mark and it will emit no `drain` of its own.
    const written = this.needDrain ? () => this.onDrain() : undefined;
    const last = out.length - 1;
    if (last === 0) {
      this.socket.write(out[0] as Buffer, written);
    } else {
      this.socket.cork();
      for (let i = 0; i < last; i++) this.socket.write(out[i] as Buffer);
      this.socket.write(out[last] as Buffer, written);
      this.socket.uncork();
    }
    this.updateFlow();
  }

  /** The socket took its queued output: resume reading, and tell waiting senders. */
  protected onDrain(): void {
    this.updateFlow();
    if (this.needDrain && this.socket.writableLength + this.unflushedBytes <= this.highWater) {
      this.needDrain = false;
      for (const w of this.drainWaiters.splice(0)) w.resolve();
      this.emit('drain');
    }
  }

  /** Settle every drained() waiter: with the failure, or (closed) as done. */
  private settleDrainWaiters(): void {
    const failure = this.failure;
    for (const w of this.drainWaiters.splice(0)) {
      if (failure !== undefined) w.reject(failure);
      else w.resolve();
    }
  }

  /**
   * Pause reading while unread messages or unsent output are over the high-water mark; resume
   * below it, except in `input-ended`, where reading stays as it was left (paused by stopReading).
   * A partial message counts against the mark together with the queued ones, but cannot pause
   * reading alone: only more input completes it (the server's input budget bounds it instead).
   */
  private updateFlow(): void {
    if (this.socket.destroyed || this.failure !== undefined) return;
    const queued = this.queuedBytes;
    let outputOver = this.socket.writableLength > this.highWater;
    if (!outputOver) this.inputMadeOutput = false;
    else if (!this.outputPausesInput && !this.inputMadeOutput) outputOver = false;
    const over = (queued > 0 && queued + this.reportedHeld > this.highWater) || outputOver;
    if (over) {
      if (!this.socket.isPaused()) this.socket.pause();
    } else if (this.socket.isPaused() && this.state !== 'input-ended') {
      this.socket.resume();
    }
  }
}
