/**
 * The skeleton every sans-I/O connection shares, native or compatible: the input queue, the
 * output queue, sticky failure, and the wrappers that turn a thrown error into the last event.
 * A profile adds its handshake and framing by implementing `consume` and `end`.
 *
 * Rules and invariants (the {@link ProtocolConnection} contract, kept here once):
 * - `receive` and `receiveEnd` never throw for bad input: whatever `consume`/`end` throws becomes
 *   the sticky error, reported as one `error` event after the events already produced.
 * - Failure is sticky: the first error wins, the input is dropped at once, and every later
 *   `receive`, `receiveEnd` or send throws that same error.
 * - Output only ever goes into the queue handed over by `takeOutput()`.
 * - The per-call path allocates only the events array: no closure, no extra array per call.
 */

import { isSesameError, type SesameError, sesameError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';
import type { ConnectionEvent, ProtocolConnection, SessionInfo } from './channel.js';

/** What native and compatibility connections share; a profile supplies its steps. */
export abstract class SansIoConnection implements ProtocolConnection {
  /** Received bytes not yet consumed by a step. */
  protected readonly input = new ByteQueue();
  private output: Buffer[] = [];
  private failure: SesameError | undefined;
  private started = false;

  /** Authenticated and not failed. */
  abstract get isOpen(): boolean;

  /** What authentication established; undefined before it completes. */
  abstract get session(): SessionInfo | undefined;

  /** The sticky error, once failed. */
  get error(): SesameError | undefined {
    return this.failure;
  }

  /**
   * Received bytes held until what they belong to completes (see {@link ProtocolConnection}):
   * the input queue plus what the current state keeps (message fragments, a partial line).
   */
  get bufferedBytes(): number {
    return this.input.length + this.heldBytes();
  }

  /** Whether bytes are waiting to be taken with `takeOutput()`. */
  get hasOutput(): boolean {
    return this.output.length > 0;
  }

  /**
   * The events that exist before any input: `established` for a profile that is open from the
   * start (`none`), nothing for the others. Call once, right after construction, before
   * `receive`; a second call returns nothing.
   * @throws SesameError the sticky error when the connection had already failed.
   */
  start(): ConnectionEvent[] {
    this.throwIfFailed();
    if (this.started) return [];
    this.started = true;
    const session = this.session;
    return session === undefined ? [] : [{ type: 'established', session }];
  }

  /**
   * Feed received bytes; returns the events they complete, in order. On bad input the last event
   * is `error` and the connection is failed. The connection may keep `data` (without copying)
   * until the records or frames in it are complete: do not change or reuse the buffer after
   * passing it in (Node sockets hand out a fresh buffer for every read).
   * @throws SesameError the sticky error when the connection had already failed.
   */
  receive(data: Uint8Array): ConnectionEvent[] {
    this.throwIfFailed();
    const events: ConnectionEvent[] = [];
    try {
      this.consume(data, events);
    } catch (err) {
      events.push({ type: 'error', error: this.fail(err) });
    }
    return events;
  }

  /**
   * The transport reached end of input; returns the events that completes, the last one `error`
   * when the input ended where the profile does not allow it (for the native protocol: nothing
   * after the peer's authenticated close, else ERR_TRUNCATED, or ERR_AUTH_REFUSED for a client
   * mid-handshake).
   * @throws SesameError the sticky error when the connection had already failed.
   */
  receiveEnd(): ConnectionEvent[] {
    this.throwIfFailed();
    const events: ConnectionEvent[] = [];
    try {
      this.end(events);
    } catch (err) {
      events.push({ type: 'error', error: this.fail(err) });
    }
    return events;
  }

  /** The bytes to write, in order; the queue is emptied. */
  takeOutput(): Buffer[] {
    const out = this.output;
    this.output = [];
    return out;
  }

  /**
   * Fail the connection from outside (a timeout, a socket error). Returns the sticky error: the
   * first failure wins.
   */
  fail(err: unknown): SesameError {
    if (this.failure !== undefined) return this.failure;
    // Anything not a SesameError is a bug here, reported as such rather than passed on raw.
    const error = this.explainFailure(
      isSesameError(err)
        ? err
        : sesameError('ERR_INVALID_STATE', `internal error: ${String(err)}`, { cause: err }),
    );
    this.failure = error;
    this.input.clear();
    this.release();
    return error;
  }

  /** Keying material bound to this connection (see {@link ProtocolConnection}). */
  abstract exportKeyingMaterial(label: string, context?: Uint8Array): Buffer;

  /** Queue one message (see {@link ProtocolConnection}). */
  abstract send(message: Uint8Array): void;

  /** Queue whatever ends this direction cleanly (see {@link ProtocolConnection}). */
  abstract close(): void;

  /** Take `data` in and append the events it completes; throw on bad input. */
  protected abstract consume(data: Uint8Array, events: ConnectionEvent[]): void;

  /** The transport ended: append what that completes; throw when it is not a clean end. */
  protected abstract end(events: ConnectionEvent[]): void;

  /** Received bytes the state keeps outside the input queue (message fragments, a partial line). */
  protected heldBytes(): number {
    return 0;
  }

  /** Drop the per-state data of a failed connection (called once, after the input is cleared). */
  protected abstract release(): void;

  /**
   * A more telling error for `error`, given the state, before it becomes sticky (the input is
   * still there to look at); default: as is.
   */
  protected explainFailure(error: SesameError): SesameError {
    return error;
  }

  /** Append `bytes` to the output. */
  protected queue(bytes: Buffer): void {
    this.output.push(bytes);
  }

  /** @throws SesameError the sticky error, once failed. */
  protected throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
