/**
 * Request handlers: the application's side of a Sesame server, shaped like Python's
 * `socketserver` so that a service is one `handle()` (or one `respond()`) and the server does the
 * rest: accepting, authenticating, limits, timeouts, concurrency and shutdown.
 *
 * ```text
 *   socketserver                      Sesame
 *   ------------                      ------
 *   TCPServer                         SesameServer({ listen: 'tcp://HOST:PORT' })
 *   UnixStreamServer                  SesameServer({ listen: 'unix:///path' })
 *   UDPServer                         UdpServer({ listen: 'udp://HOST:PORT' })
 *   UnixDatagramServer                (none: Node has no Unix datagram sockets)
 *   ThreadingMixIn                    the default: every connection is served concurrently
 *   ForkingMixIn                      serveWorkers() / `sesame serve --workers N` (node:cluster)
 *   (CPU-heavy handlers)              workerPool option: a worker-thread pool (piscina)
 *   BaseRequestHandler                BaseRequestHandler: `request` is the authenticated Session
 *   StreamRequestHandler              StreamRequestHandler: messages in, `write()` out
 *   DatagramRequestHandler            DatagramRequestHandler: one datagram in, `write()` out
 * ```
 *
 * The extension contract.
 * - A service is one function, `respond(message, ctx)`: its return value (bytes, a string, or
 *   undefined for no reply) is sent back. Given as `handler`, the same function serves a stream
 *   server (each message of each connection, in order) and a datagram server (each datagram):
 *   the servers adapt it with {@link streamHandlerClass} and {@link datagramHandlerClass}.
 * - For more control, subclass: `handle()` (required for BaseRequestHandler), `setup()` and
 *   `finish()`; on a StreamRequestHandler or DatagramRequestHandler, `respond(message)` is
 *   usually enough. {@link sessionHandler} makes a class from a function of the whole session.
 * - Call: `write()`, `read()`, iterate `messages()`, `request.close()`; `server.runTask()` to run
 *   CPU-heavy work on the worker-thread pool.
 * - Leave alone: the constructor, `request`, `server`, `info`: the server sets them.
 *
 * Order: `setup()`, then `handle()`, then `finish()`, which runs even when `handle()` throws.
 * When they are done the server closes the connection (an authenticated close for the native
 * profile). An error thrown by any of them goes to the server's `handleError()` and ends only
 * this connection.
 */

import type { SessionInfo } from '../protocol/channel.js';
import { isPromiseLike, type Session } from './session.js';

/** What a handler knows about its peer. */
export interface ConnectionInfo extends SessionInfo {
  /** `HOST:PORT` (`[v6]:PORT`) of the peer, or `unix` for a Unix socket. */
  readonly remote: string;
  /** The peer's IP address ('' for a Unix socket). */
  readonly remoteAddress: string;
  /** The peer's port (undefined for a Unix socket). */
  readonly remotePort: number | undefined;
}

/**
 * What a handler is told about a peer: the session's fields named one by one (not spread, so
 * every ConnectionInfo has one hidden class) and where the peer is.
 */
export function connectionInfo(
  s: SessionInfo,
  remote: string,
  remoteAddress: string,
  remotePort: number | undefined,
): ConnectionInfo {
  return {
    profile: s.profile,
    keyId: s.keyId,
    principal: s.principal,
    forwardSecrecy: s.forwardSecrecy,
    channelBinding: s.channelBinding,
    remote,
    remoteAddress,
    remotePort,
  };
}

/**
 * A connection's details and its `reply()`, every field named: an object spread here gave each
 * connection's context a hidden class of its own (about 470 bytes of maps and descriptors per
 * held connection, in heap snapshots of an idle server).
 */
function requestContext(i: ConnectionInfo, reply: (data: Uint8Array | string) => void): RequestContext {
  return {
    profile: i.profile,
    keyId: i.keyId,
    principal: i.principal,
    forwardSecrecy: i.forwardSecrecy,
    channelBinding: i.channelBinding,
    remote: i.remote,
    remoteAddress: i.remoteAddress,
    remotePort: i.remotePort,
    reply,
  };
}

/** The server as handlers see it (implemented by SesameServer and UdpServer). */
export interface HandlerServer {
  /** Run `task` on the server's worker-thread pool (see the `workerPool` option). */
  runTask<T = unknown>(task: unknown): Promise<T>;
}

/** The reply of `respond()`: bytes or text to send back, or undefined for none. */
export type Reply = Uint8Array | string | undefined;

/** What a `respond()` function knows about the message in hand, and how it sends more. */
export interface RequestContext extends ConnectionInfo {
  /**
   * Send one more message (or datagram) back to the peer, besides the returned reply.
   * @throws the session's error once it failed; ERR_CLOSED once the session or server closed;
   *   for a datagram, ERR_DATAGRAM_TOO_LARGE over the payload limit.
   */
  reply(data: Uint8Array | string): void;
}

/**
 * A service: the reply to one message, over streams and datagrams alike. Return undefined for
 * no reply (and use `ctx.reply()` to send several).
 */
export type Respond = (
  message: Buffer,
  ctx: RequestContext,
  // biome-ignore lint/suspicious/noConfusingVoidType: a service that only calls ctx.reply() returns nothing
) => Reply | void | Promise<Reply | void>;

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/**
 * What every handler has: the request it serves, the server, the peer, and the
 * `setup()` / `handle()` / `finish()` lifecycle (`finish()` runs even when `handle()` throws).
 */
export abstract class RequestHandler<Request> {
  /** What is being served (socketserver's `request`). */
  readonly request: Request;
  /** The server that received it: use it for `runTask()`. */
  readonly server: HandlerServer;
  /** The peer's address and the authenticated session's details. */
  readonly info: ConnectionInfo;

  constructor(request: Request, server: HandlerServer, info: ConnectionInfo) {
    this.request = request;
    this.server = server;
    this.info = info;
  }

  /** The peer's `HOST:PORT` (socketserver's `client_address`). */
  get clientAddress(): string {
    return this.info.remote;
  }

  /** Runs before `handle()`. */
  setup(): void | Promise<void> {}

  /** Serves the request. */
  abstract handle(): void | Promise<void>;

  /** Runs after `handle()`, even when it threw. */
  finish(): void | Promise<void> {}
}

/** Serves one authenticated connection: `request` is the Session. */
export abstract class BaseRequestHandler extends RequestHandler<Session> {}

/** A handler over messages: read them (`read()`, `messages()`) and `write()` replies. */
export class StreamRequestHandler extends BaseRequestHandler {
  /** The next message, or undefined once the peer has closed. */
  read(): Promise<Buffer | undefined> {
    return this.request.next();
  }

  /** Every message until the peer closes. */
  messages(): AsyncIterable<Buffer> {
    return this.request;
  }

  /**
   * Send one message (text is sent as UTF-8).
   * @returns false when the output is over the high-water mark: wait for `this.request.drained()`.
   */
  write(data: Uint8Array | string): boolean {
    return this.request.send(toBytes(data));
  }

  private writeReply(reply: Reply): void {
    if (reply !== undefined) this.write(reply);
  }

  private ctx: RequestContext | undefined;

  /** The peer's details and `reply()`, as a {@link Respond} function sees them. */
  get context(): RequestContext {
    this.ctx ??= requestContext(this.info, (data) => void this.write(data));
    return this.ctx;
  }

  /** The reply to one message; the default echoes nothing (no reply). */
  respond(_message: Buffer): Reply | Promise<Reply> {
    return undefined;
  }

  /** By default: `respond()` to each message, in order, writing each reply. */
  handle(): Promise<void> {
    if (this.messages === StreamRequestHandler.prototype.messages) {
      // Messages straight from the session: no promise per message while respond() is synchronous.
      return this.request.consume((message) => this.respondTo(message));
    }
    return this.respondToEach();
  }

  /**
   * `respond()` to one message and write the reply: what the default `handle()` does with each
   * message.
   * @returns a promise when `respond()` returned one, settled once its reply is written.
   */
  respondTo(message: Buffer): Promise<void> | undefined {
    const reply = this.respond(message);
    if (isPromiseLike(reply))
      return Promise.resolve(reply as PromiseLike<Reply>).then((r) => this.writeReply(r));
    this.writeReply(reply);
    return undefined;
  }

  /** `handle()` over an overridden `messages()`. */
  private async respondToEach(): Promise<void> {
    for await (const message of this.messages()) {
      const reply = await this.respond(message);
      if (reply !== undefined) this.write(reply);
    }
  }
}

/** What a datagram server hands each DatagramRequestHandler. */
export interface DatagramRequest {
  /** The authenticated datagram's payload. */
  readonly packet: Buffer;
  /** Send one datagram back to the peer. */
  reply(data: Uint8Array): void;
}

/** A handler for one authenticated datagram (constructed per datagram, as in socketserver). */
export class DatagramRequestHandler extends RequestHandler<DatagramRequest> {
  /** The datagram's payload. */
  get packet(): Buffer {
    return this.request.packet;
  }

  /** Send one datagram back (text as UTF-8). */
  write(data: Uint8Array | string): void {
    this.request.reply(toBytes(data));
  }

  /** The reply to the datagram; the default sends none. */
  respond(_packet: Buffer): Reply | Promise<Reply> {
    return undefined;
  }

  /** By default: `respond()` to the packet and write the reply. */
  async handle(): Promise<void> {
    const reply = await this.respond(this.packet);
    if (reply !== undefined) this.write(reply);
  }
}

/** A class of stream handlers. */
export type StreamHandlerClass = new (
  request: Session,
  server: HandlerServer,
  info: ConnectionInfo,
) => BaseRequestHandler;
/** A class of datagram handlers. */
export type DatagramHandlerClass = new (
  request: DatagramRequest,
  server: HandlerServer,
  info: ConnectionInfo,
) => DatagramRequestHandler;

/** A function serving one whole session (see {@link sessionHandler}). */
export type SessionHandler = (session: Session, info: ConnectionInfo) => void | Promise<void>;

/** A handler class whose `handle()` is `serve(session, info)`: for code that drives the session itself. */
export function sessionHandler(serve: SessionHandler): StreamHandlerClass {
  return class extends BaseRequestHandler {
    handle(): void | Promise<void> {
      return serve(this.request, this.info);
    }
  };
}

function isClassOf(h: unknown, base: abstract new (...args: never[]) => unknown): boolean {
  return typeof h === 'function' && h.prototype instanceof base;
}

/** The class a stream server runs for each connection: the class given, or `respond` adapted. */
export function streamHandlerClass(handler: StreamHandlerClass | Respond): StreamHandlerClass {
  if (isClassOf(handler, BaseRequestHandler)) return handler as StreamHandlerClass;
  const respond = handler as Respond;
  return class extends StreamRequestHandler {
    override respond(message: Buffer): Reply | Promise<Reply> {
      // A service that returns nothing returns undefined: no reply.
      return respond(message, this.context) as Reply | Promise<Reply>;
    }
  };
}

/**
 * What a datagram server calls for each authentic datagram: `respond` as given, or the handler
 * class adapted (constructed per datagram, as in socketserver).
 */
export function datagramRespond<Ctx extends RequestContext>(
  handler: DatagramHandlerClass | ((message: Buffer, ctx: Ctx) => ReturnType<Respond>),
  server: HandlerServer,
): (message: Buffer, ctx: Ctx) => ReturnType<Respond> {
  if (!isClassOf(handler, DatagramRequestHandler))
    return handler as (message: Buffer, ctx: Ctx) => ReturnType<Respond>;
  const HandlerClass = handler as DatagramHandlerClass;
  return (message, ctx) =>
    runHandler(new HandlerClass({ packet: message, reply: ctx.reply }, server, ctx)).then(() => undefined);
}

/**
 * Whether serving `handler` is only handing each message of its session to `respondTo()`: a
 * StreamRequestHandler with `setup()`, `finish()`, `handle()` and `messages()` as defined here.
 * A server can then deliver the messages itself (`Session.consumeWith()`), with no promise or
 * suspended function per connection.
 */
export function respondsToEach(handler: RequestHandler<unknown>): handler is StreamRequestHandler {
  return (
    handler instanceof StreamRequestHandler &&
    handler.setup === RequestHandler.prototype.setup &&
    handler.finish === RequestHandler.prototype.finish &&
    handler.handle === StreamRequestHandler.prototype.handle &&
    handler.messages === StreamRequestHandler.prototype.messages
  );
}

/** Run a handler's `setup`, `handle` and `finish`, with `finish` always run. */
export function runHandler(handler: RequestHandler<unknown>): Promise<void> {
  const setup = handler.setup();
  if (setup === undefined && handler.finish === RequestHandler.prototype.finish) {
    // Nothing to wait for first and nothing to run after: handle()'s own promise will do (one
    // suspended async function less per connection).
    try {
      return Promise.resolve(handler.handle());
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return runAll(handler, setup);
}

async function runAll(handler: RequestHandler<unknown>, setup: void | Promise<void>): Promise<void> {
  await setup;
  try {
    await handler.handle();
  } finally {
    await handler.finish();
  }
}
