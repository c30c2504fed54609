/**
 * Forwarding: an authenticated session joined to a plain byte stream (a TCP or Unix socket), both
 * ways, so that an existing service is protected without changing it. The server end joins each
 * authenticated session to its own connection to a target ({@link forwardHandler}); the client
 * end joins each local connection to its own authenticated session ({@link ForwardListener}).
 *
 * Written once for every profile: only `Session`'s public API is used (`send()`/`drained()`,
 * `consume()`, `close()`), and a message is just the bytes one read or one record carried, so
 * native, spiped and `none --framing chunk` forward the same way.
 *
 * Rules and invariants:
 * - No framing: bytes leave in the order they came, cut wherever the reads cut them (a message is
 *   at most {@link FORWARD_CHUNK_BYTES}, one native record).
 * - Half-close end to end: the plain side's end of stream becomes the session's close (the native
 *   close record ends one direction only; spiped and `none` end with the transport's FIN), sent
 *   after every byte before it; the peer's close becomes a FIN on the plain side, after every
 *   byte before it. The other direction keeps flowing until it ends too, for as long as bytes
 *   move: the session's close wait is its idle timeout, re-armed by every byte
 *   (`closeWait: 'idle'`), not a fixed deadline from the half-close. A session that has closed
 *   both ways may still hold messages waiting for the plain side to drain: they are written
 *   first, and the FIN after them.
 * - This side stopping (the input ends without the peer's close: `stopReading()` for a revoked
 *   key with `--close-revoked`, the idle timeout, a shutdown) closes the whole pipe at once: the
 *   session sends its close after what it already queued, the plain side gets its FIN after what
 *   it was already given and is then closed; what the plain side sends after that is dropped.
 * - Back-pressure end to end: the plain socket stops being read while the session's output is
 *   over its high-water mark; the session stops delivering (and so reading) while the plain
 *   socket's output is over its mark. The session's own output does not stop it reading
 *   (`outputPausesInput: false`: the pipe is its only sender and waits for `drained()`), so two
 *   ends of a full-duplex transfer both over their marks still read each other and cannot
 *   deadlock. Neither side buffers more than its mark plus one read.
 * - A failure of either side ends only its own pipe: the other side is reset (a plain socket gets
 *   an RST; a session is destroyed without a close record, so the peer sees a truncation).
 */

import { createServer, type Server, type Socket } from 'node:net';
import { isSesameError, type SesameError, sesameError } from '../errors.js';
import { type Address, parseAddress } from './address.js';
import { connectStream } from './client.js';
import { type ConnectionInfo, type StreamHandlerClass, sessionHandler } from './handlers.js';
import { Roster, type Slotted } from './roster.js';
import type { Session, SessionOptions } from './session.js';

/** Most bytes sent as one message: one native record, so no peer's message limit is ever reached. */
export const FORWARD_CHUNK_BYTES = 16 * 1024;
/** Default deadline for connecting to a target, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/**
 * The session options a pipe needs (`joinStreams` sets them; a server may give them from the
 * start): the pipe waits for `drained()`, so the session's output need not pause its reading; and
 * a half-closed pipe flows for as long as bytes move.
 */
export const FORWARD_SESSION_OPTIONS = {
  outputPausesInput: false,
  closeWait: 'idle',
} as const satisfies Pick<SessionOptions, 'outputPausesInput' | 'closeWait'>;

/** What one pipe carried and how it ended. */
export interface PipeResult {
  /** Bytes read from the session and written to the plain side. */
  readonly bytesFromSession: number;
  /** Bytes read from the plain side and sent on the session. */
  readonly bytesToSession: number;
  /** Why the pipe failed; undefined when both directions ended cleanly. */
  readonly error: SesameError | undefined;
  /** Which side failed first, when one did. */
  readonly failedSide: 'session' | 'plain' | undefined;
}

/** Live counters of a pipe in progress, read by metrics. */
export interface PipeCounters {
  /** Called with each chunk's size as it moves from the session to the plain side. */
  fromSession?(bytes: number): void;
  /** Called with each chunk's size as it moves from the plain side to the session. */
  toSession?(bytes: number): void;
}

/**
 * A plain stream address a pipe can connect to: `tcp://HOST:PORT` or `unix:///path`.
 * @throws LocalError ERR_INVALID_ADDRESS for anything else (udp:// included).
 */
export function checkStreamAddress(url: string): string {
  const a = parseAddress(url);
  if (a.kind === 'udp')
    throw sesameError('ERR_INVALID_ADDRESS', `${url}: forwarding needs tcp:// or unix://`);
  return url;
}

/**
 * Connect to a plain target (half-open allowed: its FIN does not end our side).
 * @throws (rejects) TransportError ERR_CONNECT_FAILED naming the cause (ECONNREFUSED, ENOENT,
 *   a timeout after `timeoutMs`); LocalError ERR_INVALID_ADDRESS.
 */
export function connectTarget(url: string, timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<Socket> {
  // checkStreamAddress refused udp:// already.
  const a = parseAddress(checkStreamAddress(url)) as Exclude<Address, { kind: 'udp' }>;
  return connectStream(a, url, timeoutMs);
}

/** Reset a plain socket (RST where the platform allows), so its peer sees a failure, not an end. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function' && socket.readyState !== 'opening')
    socket.resetAndDestroy();
  else socket.destroy();
}

/**
 * Join `session` (authenticated) and `socket` (a plain byte stream, allowHalfOpen) both ways until
 * both directions have ended or one side failed. Resolves once both are closed; never rejects.
 */
export function joinStreams(
  session: Session,
  socket: Socket,
  counters: PipeCounters = {},
): Promise<PipeResult> {
  let fromSession = 0;
  let toSession = 0;
  session.setStreamOptions(FORWARD_SESSION_OPTIONS);
  let error: SesameError | undefined;
  let failedSide: 'session' | 'plain' | undefined;
  const fail = (side: 'session' | 'plain', err: SesameError): void => {
    if (error !== undefined) return;
    error = err;
    failedSide = side;
    if (side === 'plain') session.destroy(err);
    else reset(socket);
  };
  // The peer's close (every profile's clean end of input) as opposed to this side's stopReading().
  // An input that ended before the join (the peer's close may arrive while the target is being
  // connected) is taken for the peer's: its bytes are delivered, then the FIN, as always.
  let peerClosed = session.inputEnded;
  session.once('peer-close', () => {
    peerClosed = true;
  });
  // This side stops the pipe: close both ways, keep what was already handed over.
  // (The input has ended, so the session's close wait is its usual deadline.)
  let stopping = false;
  const stop = (): void => {
    stopping = true;
    void session.close();
    if (!socket.destroyed) socket.end(() => socket.destroy());
  };

  // session -> plain: one write per message; wait for the socket's drain before the next.
  let drainWaiter: (() => void) | undefined;
  const onDrain = (): void => {
    const w = drainWaiter;
    drainWaiter = undefined;
    w?.();
  };
  socket.on('drain', onDrain);
  // The messages one read of the session's socket carried (a 64 KiB read holds four 16 KiB
  // records) are handed over in one synchronous run: corked, they leave in one writev, not one
  // write system call each. The uncork runs once that run is over, before any I/O.
  let corked = false;
  const uncork = (): void => {
    corked = false;
    if (!socket.destroyed) socket.uncork();
  };
  const delivered = session.consume((m) => {
    fromSession += m.length;
    const count = counters.fromSession;
    if (count !== undefined) count(m.length);
    if (socket.destroyed) return;
    if (!corked) {
      corked = true;
      socket.cork();
      queueMicrotask(uncork);
    }
    if (socket.write(m)) return;
    // Over the mark: what is corked goes now, and the next message waits for the drain.
    uncork();
    return new Promise<void>((resolve) => {
      drainWaiter = resolve;
    });
  });
  delivered.then(
    () => {
      // The peer's close: every byte before it is written; now the FIN. Input that ended
      // otherwise is this side stopping (the 'peer-close' event comes before this callback).
      if (!peerClosed) stop();
      else if (!socket.destroyed) socket.end();
    },
    (err: unknown) => {
      fail('session', isSesameError(err) ? err : sesameError('ERR_CLOSED', String(err)));
    },
  );

  // plain -> session: pause the socket while the session's output is over its mark.
  const resume = (): void => {
    if (!socket.destroyed) socket.resume();
  };
  socket.on('data', (chunk: Buffer) => {
    if (stopping) return;
    toSession += chunk.length;
    counters.toSession?.(chunk.length);
    try {
      let ok = true;
      for (let at = 0; at < chunk.length; at += FORWARD_CHUNK_BYTES) {
        ok = session.send(chunk.subarray(at, at + FORWARD_CHUNK_BYTES));
      }
      if (!ok) {
        socket.pause();
        session.drained().then(resume, resume);
      }
    } catch (err) {
      fail('session', isSesameError(err) ? err : sesameError('ERR_CLOSED', String(err)));
    }
  });
  socket.on('end', () => {
    // Every byte before the FIN has been sent: the session's close ends this direction.
    void session.close();
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    fail(
      'plain',
      sesameError('ERR_CONNECTION_RESET', `plain side: ${err.code ?? err.message}`, { cause: err }),
    );
  });
  const socketClosed = new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
  socketClosed.then(() => {
    onDrain(); // a consumer waiting for a drain that will never come goes on (and drops the rest)
    // The plain side is gone without its end (a destroy, a reset): nothing more can go through.
    if (!stopping && session.phase !== 'closed' && !socket.readableEnded) {
      fail(
        'plain',
        error ?? sesameError('ERR_CONNECTION_RESET', 'the plain side closed without ending its stream'),
      );
    }
  });
  session.closed.then(async () => {
    if (session.error !== undefined) {
      fail('session', session.error);
      return;
    }
    // A session can close while messages it received still wait for the plain side to drain
    // (both directions ended at the peer, this side's writes behind): they go out first, and
    // only then does the plain side get its FIN.
    await delivered.catch(() => {});
    if (!socket.destroyed) {
      if (!socket.writableEnded) socket.end();
      // A plain side still open for reading (after an idle cut it may never end its stream):
      // nothing it sends can go anywhere now, so the socket is closed once its FIN is out.
      if (!socket.readableEnded) {
        if (socket.writableFinished) socket.destroy();
        else socket.once('finish', () => socket.destroy());
      }
    }
  });
  if (socket.destroyed)
    fail('plain', sesameError('ERR_CONNECTION_RESET', 'the plain side closed before the pipe started'));
  // A proxy must not add Nagle's delay to small writes the application already chose to make.
  if (socket.remoteAddress !== undefined && !socket.destroyed) socket.setNoDelay(true);
  socket.resume();
  return Promise.all([session.closed, socketClosed, delivered.catch(() => {})]).then(() => ({
    bytesFromSession: fromSession,
    bytesToSession: toSession,
    error,
    failedSide,
  }));
}

/** What a forwarding server reports about its pipes. */
export type PipeEvent =
  | {
      /** An authenticated session is joined to a new target connection. */
      readonly type: 'open';
      /** The session's peer and what it authenticated as. */
      readonly info: ConnectionInfo;
      /** The target URL. */
      readonly target: string;
    }
  | {
      /** The target could not be reached: the session is cut. */
      readonly type: 'target-error';
      /** The session's peer and what it authenticated as. */
      readonly info: ConnectionInfo;
      /** The target URL. */
      readonly target: string;
      /** ERR_CONNECT_FAILED with the cause. */
      readonly error: SesameError;
    }
  | {
      /** The pipe ended (both directions ended, or one side failed). */
      readonly type: 'closed';
      /** The session's peer and what it authenticated as. */
      readonly info: ConnectionInfo;
      /** The target URL. */
      readonly target: string;
      /** What it carried and how it ended (`fromSession`: towards the target). */
      readonly result: PipeResult;
      /** How long the pipe was open, in ms. */
      readonly ms: number;
    };

/** Options of {@link forwardHandler}. */
export interface ForwardOptions {
  /** Deadline for connecting to the target, in ms (default 10 s; 0: none). */
  readonly connectTimeoutMs?: number | undefined;
  /** Told of every pipe's open, close and target failure. */
  readonly onEvent?: ((event: PipeEvent) => void) | undefined;
  /** Live byte counts, for metrics. */
  readonly counters?: PipeCounters | undefined;
}

/**
 * The server end: a handler (for `SesameServer`, any profile) that joins each authenticated
 * session to its own new connection to `target`. A target that is down, refuses or does not
 * answer in time cuts the session at once (its peer sees a truncation) and is reported.
 * @throws LocalError ERR_INVALID_ADDRESS when `target` is not tcp:// or unix://.
 */
export function forwardHandler(target: string, options: ForwardOptions = {}): StreamHandlerClass {
  checkStreamAddress(target);
  const emit = options.onEvent ?? (() => {});
  return sessionHandler(async (session, info) => {
    const started = Date.now();
    let socket: Socket;
    try {
      socket = await connectTarget(target, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    } catch (err) {
      const error = isSesameError(err) ? err : sesameError('ERR_CONNECT_FAILED', String(err));
      emit({ type: 'target-error', info, target, error });
      session.destroy(error);
      return;
    }
    if (session.phase === 'closed') {
      socket.destroy();
      return;
    }
    emit({ type: 'open', info, target });
    const result = await joinStreams(session, socket, options.counters);
    emit({ type: 'closed', info, target, result, ms: Date.now() - started });
  });
}

/** What a {@link ForwardListener} reports about each local connection. */
export type LocalPipeEvent =
  | {
      /** A local connection is joined to a new authenticated session. */
      readonly type: 'open';
      /** The local peer (`HOST:PORT`, or `unix`). */
      readonly local: string;
    }
  | {
      /** No session could be opened for a local connection: it is reset. */
      readonly type: 'connect-error';
      /** The local peer. */
      readonly local: string;
      /** Why: a refusal, a timeout, a connect failure. */
      readonly error: SesameError;
    }
  | {
      /** The pipe ended. */
      readonly type: 'closed';
      /** The local peer. */
      readonly local: string;
      /** What it carried (`fromSession`: from the server end) and how it ended. */
      readonly result: PipeResult;
      /** How long the pipe was open, in ms. */
      readonly ms: number;
    };

/** Options of a {@link ForwardListener}. */
export interface ForwardListenerOptions {
  /** Where to listen: `tcp://HOST:PORT` (port 0: any free port) or `unix:///path`. */
  readonly listen: string;
  /** Opens one authenticated session (any profile) for one local connection. */
  readonly open: () => Promise<Session>;
  /** Told of every local connection's pipe. */
  readonly onEvent?: ((event: LocalPipeEvent) => void) | undefined;
  /** Live byte counts. */
  readonly counters?: PipeCounters | undefined;
}

function describeLocal(socket: Socket): string {
  const a = socket.remoteAddress;
  if (a === undefined) return 'unix';
  return a.includes(':') ? `[${a}]:${socket.remotePort}` : `${a}:${socket.remotePort}`;
}

/**
 * The client end: listens locally, and joins each local connection to its own authenticated
 * session. The local socket is not read until its session is open, so nothing is buffered while
 * authenticating; a session that cannot be opened resets the local connection and is reported.
 */
export class ForwardListener {
  private readonly options: ForwardListenerOptions;
  private readonly server: Server;
  /** Every local connection and its pipe while it runs (see roster.ts for why not a `Set`). */
  private readonly pipes = new Roster<LocalPipe>();

  /** @throws LocalError ERR_INVALID_ADDRESS when `listen` is not tcp:// or unix://. */
  constructor(options: ForwardListenerOptions) {
    checkStreamAddress(options.listen);
    this.options = options;
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      this.accept(socket),
    );
  }

  /** Local connections whose pipe is still running. */
  get open(): number {
    return this.pipes.size;
  }

  /**
   * Start listening; resolves with the URL really bound (the real port for port 0).
   * @throws (rejects) LocalError ERR_INVALID_ADDRESS when the address cannot be bound.
   */
  async listen(): Promise<string> {
    const a = parseAddress(this.options.listen);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          sesameError(
            'ERR_INVALID_ADDRESS',
            `cannot listen on ${this.options.listen}: ${err.code ?? err.message}`,
            {
              cause: err,
            },
          ),
        ),
      );
      if (a.kind === 'unix') this.server.listen(a.path, resolve);
      else if (a.kind === 'tcp') this.server.listen(a.port, a.host, resolve);
    });
    if (a.kind !== 'tcp') return this.options.listen;
    const bound = this.server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : a.port;
    return `tcp://${a.host.includes(':') ? `[${a.host}]` : a.host}:${port}`;
  }

  /**
   * Stop accepting, let open pipes finish for at most `graceMs`, then reset the rest. Resolves
   * once every pipe has ended.
   */
  async close(graceMs = 5_000): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const all = Promise.all(this.pipes.snapshot().map((p) => p.done));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    if ((await Promise.race([all, late])) === 'late') {
      for (const p of this.pipes.snapshot()) reset(p.socket);
      await all;
    }
    clearTimeout(timer);
    await stopped;
  }

  private accept(socket: Socket): void {
    const local = describeLocal(socket);
    const emit = this.options.onEvent ?? (() => {});
    const entry: LocalPipe = { socket, done: undefined, slot: -1 };
    this.pipes.add(entry);
    socket.on('error', () => {}); // reported through the pipe, or irrelevant before it starts
    const started = Date.now();
    entry.done = (async () => {
      let session: Session;
      try {
        session = await this.options.open();
      } catch (err) {
        emit({
          type: 'connect-error',
          local,
          error: isSesameError(err) ? err : sesameError('ERR_CONNECT_FAILED', String(err)),
        });
        reset(socket);
        return;
      }
      emit({ type: 'open', local });
      const result = await joinStreams(session, socket, this.options.counters);
      emit({ type: 'closed', local, result, ms: Date.now() - started });
    })().finally(() => this.pipes.delete(entry));
  }
}

/** A local connection of a {@link ForwardListener} and its pipe, as a member of its roster. */
interface LocalPipe extends Slotted {
  readonly socket: Socket;
  /** Settles when the pipe has ended (set right after the entry is made). */
  done: Promise<void> | undefined;
}
