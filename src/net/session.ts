/**
 * A Sesame connection over a stream socket (TCP or Unix): pumps the socket through the sans-I/O
 * core and owns what the core must not: timers, backpressure and closing the socket.
 *
 * Rules:
 * - Bytes flow socket -> `Connection.receive` -> events; output is taken from the core and
 *   written in one corked batch, scheduled once per microtask so replies made in the same turn
 *   go out together.
 * - The handshake has a deadline; an open session has an idle timeout (both optional).
 * - Messages wait in a queue until read with `next()`, `for await` or `request()`. Reading from
 *   the socket pauses while that queue, or the socket's unsent output, is over its high-water
 *   mark, so a peer that sends fast or never reads cannot make this process buffer without bound.
 * - Any failure is final: the socket is destroyed, every pending and later read rejects with the
 *   same typed error, and `closed` resolves.
 * - `close()` sends the authenticated close record, half-closes the socket and waits for the
 *   peer's close (bounded by a timeout).
 */

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { type SesameError, sesameError } from '../errors.js';
import type { ConnectionEvent, ProtocolConnection, SessionInfo } from '../protocol/channel.js';

/** Timeouts and buffering of a {@link Session}, for clients and servers alike. */
export interface SessionOptions {
  /** Deadline for the whole handshake, in ms (default 10 s; 0: none). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Close an open session after this long without input, in ms (default 5 min; 0: none). */
  readonly idleTimeoutMs?: number | undefined;
  /** How long `close()` waits for the peer's close before destroying the socket, in ms (default 5 s). */
  readonly closeTimeoutMs?: number | undefined;
  /** Unread message bytes and unsent output bytes above which reading pauses (default 1 MiB). */
  readonly highWaterMarkBytes?: number | undefined;
}

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/**
 * What one queued message counts for besides its bytes, so that a flood of empty or tiny messages
 * also reaches the high-water mark (an empty Buffer still costs memory).
 */
export const QUEUED_MESSAGE_OVERHEAD_BYTES = 128;
export const DEFAULT_HIGH_WATER_MARK_BYTES = 1024 * 1024;

interface Waiter {
  resolve(message: Buffer | undefined): void;
  reject(err: SesameError): void;
}

/** A `consume()` in progress. */
interface Consumer {
  readonly onMessage: (message: Buffer) => unknown;
  resolve(): void;
  reject(err: unknown): void;
  /** onMessage returned a promise that has not settled yet: later messages wait in the queue. */
  busy: boolean;
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

/**
 * An authenticated connection. Events: `established` (SessionInfo), `error` is NOT emitted (read
 * the error from `closed`/`next()`); `failed` (SesameError) once, when the session fails;
 * `drain` when the output is back under the high-water mark after `send()` returned false.
 */
export class Session extends EventEmitter {
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

  private readonly conn: ProtocolConnection;
  private readonly options: SessionOptions;
  private readonly highWater: number;
  private readonly messages: Buffer[] = [];
  private queuedBytes = 0;
  private readonly waiters: Waiter[] = [];
  private peerDone = false;
  private failure: SesameError | undefined;
  private flushScheduled = false;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private closing = false;
  /** established, failed before it was, closed: what the lazily made promises report. */
  private authenticated = false;
  private handshakeFailure: SesameError | undefined;
  private socketClosed = false;
  private readyPromise: Promise<SessionInfo> | undefined;
  private readySettle: { resolve(info: SessionInfo): void; reject(err: SesameError): void } | undefined;
  private closedPromise: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;
  private consumer: Consumer | undefined;
  /** Inside onData: output is flushed when the input has been handled. */
  private inInput = false;
  /** Message bytes sent since the last flush (sealed, not yet handed to the socket). */
  private unflushedBytes = 0;
  /** send() returned false; `drain` is emitted once the output is back under the mark. */
  private needDrain = false;
  private readonly drainWaiters: { resolve(): void; reject(err: SesameError): void }[] = [];
  private readonly observer: SessionObserver | undefined;

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
    socket.on('timeout', onSocketTimeout);
    socket.on('drain', onSocketDrain);

    const hsMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (hsMs > 0) {
      this.handshakeTimer = setTimeout(Session.onHandshakeTimeout, hsMs, this, hsMs);
      this.handshakeTimer.unref?.();
    }
    this.flush(); // a client's ClientHello
    // Profiles without a handshake (`none`) are open from the start: report it once the caller
    // has had the chance to listen (no input can arrive before a microtask runs).
    const open = conn.isOpen ? conn.session : undefined;
    if (open !== undefined) queueMicrotask(() => this.handle([{ type: 'established', session: open }]));
  }

  /** Resolves once authenticated; rejects with the typed error if the handshake fails. */
  get ready(): Promise<SessionInfo> {
    if (this.readyPromise === undefined) {
      const info = this.authenticated ? this.conn.session : undefined;
      if (info !== undefined) {
        this.readyPromise = Promise.resolve(info);
      } else if (this.handshakeFailure !== undefined) {
        this.readyPromise = Promise.reject(this.handshakeFailure);
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
      this.closedPromise = this.socketClosed
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
   * Send one message.
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
   * The next message, or undefined once the peer has closed and every message was read.
   * @throws (rejects) the session's typed error when it failed.
   */
  next(): Promise<Buffer | undefined> {
    if (this.consumer !== undefined) {
      return Promise.reject(sesameError('ERR_INVALID_STATE', 'messages of this session are being consumed'));
    }
    const m = this.messages.shift();
    if (m !== undefined) {
      this.queuedBytes -= m.length + QUEUED_MESSAGE_OVERHEAD_BYTES;
      this.updateFlow();
      return Promise.resolve(m);
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.peerDone) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Send `message` and wait for the next message from the peer.
   * @throws (rejects) ERR_CLOSED when the peer closes first, or the session's error.
   */
  async request(message: Uint8Array): Promise<Buffer> {
    const reply = this.next();
    try {
      this.send(message);
    } catch (err) {
      reply.catch(() => {}); // the send's error is the one to report
      throw err;
    }
    const m = await reply;
    if (m === undefined) throw sesameError('ERR_CLOSED', 'the peer closed the connection before replying');
    return m;
  }

  /**
   * Every message until the peer closes, as repeated `next()` calls.
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
   * Deliver every message to `onMessage`, in order, until the peer closes: the callback form of
   * `for await (const m of session)`, with no promise per message. When `onMessage` returns a
   * promise, later messages wait in the queue (counted against the high-water mark) until it
   * settles.
   * @returns resolves once the peer has closed and every message was delivered; rejects with the
   *   session's typed error, or with what `onMessage` threw or rejected with.
   * @throws LocalError ERR_INVALID_STATE when messages are already being consumed or awaited.
   */
  consume(onMessage: (message: Buffer) => unknown): Promise<void> {
    if (this.consumer !== undefined || this.waiters.length > 0) {
      throw sesameError('ERR_INVALID_STATE', 'messages of this session are already being read');
    }
    return new Promise<void>((resolve, reject) => {
      this.consumer = { onMessage, resolve, reject, busy: false };
      this.drainConsumer();
    });
  }

  /**
   * Close gracefully: send the close record, half-close, wait for the peer to finish (at most
   * closeTimeoutMs), then release the socket. Resolves when the socket is closed.
   */
  close(): Promise<void> {
    if (this.closing || this.failure !== undefined || this.socket.destroyed) return this.closed;
    this.closing = true;
    if (this.conn.isOpen) {
      this.conn.close();
      this.flush();
      this.socket.end();
      const ms = this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
      this.closeTimer = setTimeout(() => this.socket.destroy(), ms);
      this.closeTimer.unref?.();
      if (this.peerDone) this.socket.resume(); // read the peer's FIN if reading was paused
    } else {
      this.socket.destroy();
    }
    return this.closed;
  }

  /** Stop reading new input: queued messages can still be read, then `next()` ends. */
  stopReading(): void {
    if (this.peerDone || this.failure !== undefined) return;
    this.socket.pause();
    this.peerDone = true;
    this.settleWaiters();
  }

  /** Fail the session with `err` and destroy the socket. */
  destroy(err?: SesameError): void {
    this.failWith(err ?? sesameError('ERR_CLOSED', 'session destroyed'));
  }

  private static onHandshakeTimeout(session: Session, ms: number): void {
    session.failWith(sesameError('ERR_HANDSHAKE_TIMEOUT', `handshake not complete after ${ms} ms`));
  }

  protected onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    if (this.failure !== undefined) return;
    // Replies sent while this input is handled go out with the flush below, not a microtask.
    this.inInput = true;
    try {
      this.handle(this.conn.receive(chunk));
    } finally {
      this.inInput = false;
    }
    this.flush();
  }

  protected onEnd(): void {
    if (this.failure !== undefined) return;
    this.handle(this.conn.receiveEnd());
    if (this.closing && !this.socket.writableEnded) this.socket.end();
  }

  protected onSocketError(err: Error): void {
    if (this.failure !== undefined) return;
    // A reset during a client's handshake is how a server refusal may arrive.
    if (this.role === 'client' && !this.conn.isOpen) {
      this.handle(this.conn.receiveEnd());
      return;
    }
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    this.failWith(sesameError('ERR_CONNECTION_RESET', `socket error: ${code}`, { cause: err }));
  }

  protected onClose(): void {
    this.socketClosed = true;
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.closeTimer);
    if (this.failure === undefined && !(this.peerDone && this.closing)) {
      if (!this.peerDone) {
        const err = this.conn.isOpen
          ? sesameError('ERR_TRUNCATED', 'connection closed without a close record')
          : this.role === 'client'
            ? sesameError('ERR_AUTH_REFUSED', 'the server closed the connection during the handshake')
            : sesameError('ERR_TRUNCATED', 'client hung up during the handshake');
        this.failWith(err);
      }
    }
    this.settleWaiters();
    this.settleDrainWaiters();
    this.resolveClosed?.();
    this.observer?.sessionClosed(this);
    this.emit('closed');
  }

  protected onIdle(): void {
    if (this.conn.isOpen) {
      this.emit('idle');
      this.peerDone = true;
      this.settleWaiters();
      void this.close();
    }
  }

  private handle(events: ConnectionEvent[]): void {
    for (const e of events) {
      switch (e.type) {
        case 'established':
          if (this.authenticated) break; // profiles open from the start may report it again
          clearTimeout(this.handshakeTimer);
          this.handshakeTimer = undefined;
          if ((this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS) > 0) {
            this.socket.setTimeout(this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
          }
          this.authenticated = true;
          this.readySettle?.resolve(e.session);
          this.readySettle = undefined;
          this.observer?.sessionEstablished(this, e.session);
          this.emit('established', e.session);
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
          this.peerDone = true;
          this.settleWaiters();
          this.emit('peer-close');
          break;
        case 'error':
          this.failWith(e.error);
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

  private failWith(err: SesameError): void {
    if (this.failure !== undefined) return;
    const failure = this.conn.fail(err);
    this.failure = failure;
    clearTimeout(this.handshakeTimer);
    if (!this.authenticated) {
      this.handshakeFailure = failure;
      this.readySettle?.reject(failure);
      this.readySettle = undefined;
      this.observer?.handshakeFailed(this, failure);
    }
    this.settleWaiters();
    this.settleDrainWaiters();
    // A profile may have a last word to send (python-mp's #FAILURE#): write it, then end.
    const last = this.socket.destroyed ? [] : this.conn.takeOutput();
    if (last.length > 0) {
      for (const b of last) this.socket.write(b);
      this.socket.end();
      setTimeout(
        () => this.socket.destroy(),
        this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS,
      ).unref();
    } else {
      this.socket.destroy();
    }
    this.emit('failed', failure);
  }

  /** Hand queued messages to the consumer; settle it once the peer is done or the session failed. */
  private drainConsumer(): void {
    const c = this.consumer;
    if (c === undefined || c.busy) return;
    for (let m = this.messages.shift(); m !== undefined; m = this.messages.shift()) {
      this.queuedBytes -= m.length + QUEUED_MESSAGE_OVERHEAD_BYTES;
      let result: unknown;
      try {
        result = c.onMessage(m);
      } catch (err) {
        this.consumer = undefined;
        c.reject(err);
        return;
      }
      if (isPromiseLike(result)) {
        c.busy = true;
        result.then(
          () => {
            c.busy = false;
            this.drainConsumer();
          },
          (err: unknown) => {
            this.consumer = undefined;
            c.reject(err);
          },
        );
        this.updateFlow();
        return;
      }
    }
    this.updateFlow();
    if (this.failure !== undefined) {
      this.consumer = undefined;
      c.reject(this.failure);
    } else if (this.peerDone || this.socket.destroyed) {
      this.consumer = undefined;
      c.resolve();
    }
  }

  private settleWaiters(): void {
    if (this.consumer !== undefined) this.drainConsumer();
    if (this.messages.length > 0) return;
    for (const w of this.waiters.splice(0)) {
      if (this.failure !== undefined) w.reject(this.failure);
      else if (this.peerDone || this.socket.destroyed) w.resolve(undefined);
    }
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

  /** Pause reading while unread messages or unsent output are over the high-water mark. */
  private updateFlow(): void {
    if (this.socket.destroyed || this.failure !== undefined) return;
    const over = this.queuedBytes > this.highWater || this.socket.writableLength > this.highWater;
    if (over) {
      if (!this.socket.isPaused()) this.socket.pause();
    } else if (this.socket.isPaused() && !(this.peerDone && !this.closing)) {
      this.socket.resume();
    }
  }
}
