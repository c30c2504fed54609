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

/**
 * An authenticated connection. Events: `established` (SessionInfo), `error` is NOT emitted (read
 * the error from `closed`/`next()`); `failed` (SesameError) once, when the session fails.
 */
export class Session extends EventEmitter {
  /** The stream socket (TCP or Unix); the session reads and writes it, so leave its data alone. */
  readonly socket: Socket;
  /** Which end this is: `client` (connected) or `server` (accepted). */
  readonly role: 'client' | 'server';
  /** Resolves once authenticated; rejects with the typed error if the handshake fails. */
  readonly ready: Promise<SessionInfo>;
  /** Resolves when the socket is closed, whatever the reason. */
  readonly closed: Promise<void>;
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
  private resolveReady!: (info: SessionInfo) => void;
  private rejectReady!: (err: SesameError) => void;
  private closing = false;

  constructor(
    socket: Socket,
    conn: ProtocolConnection,
    role: 'client' | 'server',
    options: SessionOptions = {},
  ) {
    super();
    this.socket = socket;
    this.conn = conn;
    this.role = role;
    this.options = options;
    this.highWater = options.highWaterMarkBytes ?? DEFAULT_HIGH_WATER_MARK_BYTES;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort;
    this.ready = new Promise<SessionInfo>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {}); // a failure is also reported through `closed`/`next()`
    this.closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));

    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.onSocketError(err));
    socket.on('close', () => this.onClose());
    socket.on('timeout', () => this.onIdle());
    socket.on('drain', () => this.updateFlow());

    const hsMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (hsMs > 0) {
      this.handshakeTimer = setTimeout(
        () => this.failWith(sesameError('ERR_HANDSHAKE_TIMEOUT', `handshake not complete after ${hsMs} ms`)),
        hsMs,
      );
      this.handshakeTimer.unref?.();
    }
    this.flush(); // a client's ClientHello
    // Profiles without a handshake (`none`) are open from the start.
    const open = conn.isOpen ? conn.session : undefined;
    if (open !== undefined) this.handle([{ type: 'established', session: open }]);
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
   * @throws the session's error once failed; LocalError ERR_INVALID_STATE before the handshake
   *   completes, ERR_CLOSED after `close()`.
   */
  send(message: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    this.conn.send(message);
    this.messagesOut++;
    this.scheduleFlush();
  }

  /**
   * The next message, or undefined once the peer has closed and every message was read.
   * @throws (rejects) the session's typed error when it failed.
   */
  next(): Promise<Buffer | undefined> {
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

  private onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    if (this.failure !== undefined) return;
    this.handle(this.conn.receive(chunk));
    this.flush();
  }

  private onEnd(): void {
    if (this.failure !== undefined) return;
    this.handle(this.conn.receiveEnd());
    if (this.closing && !this.socket.writableEnded) this.socket.end();
  }

  private onSocketError(err: Error): void {
    if (this.failure !== undefined) return;
    // A reset during a client's handshake is how a server refusal may arrive.
    if (this.role === 'client' && !this.conn.isOpen) {
      this.handle(this.conn.receiveEnd());
      return;
    }
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    this.failWith(sesameError('ERR_CONNECTION_RESET', `socket error: ${code}`, { cause: err }));
  }

  private onClose(): void {
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
    this.emit('closed');
  }

  private onIdle(): void {
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
          clearTimeout(this.handshakeTimer);
          this.handshakeTimer = undefined;
          if ((this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS) > 0) {
            this.socket.setTimeout(this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
          }
          this.resolveReady(e.session);
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
    this.updateFlow();
  }

  private failWith(err: SesameError): void {
    if (this.failure !== undefined) return;
    const failure = this.conn.fail(err);
    this.failure = failure;
    clearTimeout(this.handshakeTimer);
    this.rejectReady(failure);
    this.settleWaiters();
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

  private settleWaiters(): void {
    if (this.messages.length > 0) return;
    for (const w of this.waiters.splice(0)) {
      if (this.failure !== undefined) w.reject(this.failure);
      else if (this.peerDone || this.socket.destroyed) w.resolve(undefined);
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (!this.conn.hasOutput || this.socket.destroyed) return;
    const out = this.conn.takeOutput();
    if (out.length === 1) {
      this.socket.write(out[0] as Buffer);
    } else {
      this.socket.cork();
      for (const b of out) this.socket.write(b);
      this.socket.uncork();
    }
    this.updateFlow();
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
