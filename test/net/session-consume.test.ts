/**
 * Session.consume (the callback form of `for await`), the promises made on demand, and the
 * handler path built on consume, over real loopback sockets.
 */
import { createConnection, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isSesameError, sesameError } from '../../src/errors.js';
import { connect } from '../../src/net/client.js';
import {
  BaseRequestHandler,
  respondsToEach,
  type SessionHandler,
  type StreamHandlerClass,
  StreamRequestHandler,
  sessionHandler,
  streamHandlerClass,
} from '../../src/net/handlers.js';
import { type MessageSink, Session } from '../../src/net/session.js';
import { SesameServer } from '../../src/net/stream-server.js';
import { KEY_A, makeClient } from '../helpers/pair.js';

const servers: SesameServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A server whose handler is `handler`, or `serve(session)` for a function. */
async function start(handler: StreamHandlerClass | SessionHandler): Promise<string> {
  const handlerClass =
    handler.prototype instanceof BaseRequestHandler
      ? (handler as StreamHandlerClass)
      : sessionHandler(handler as SessionHandler);
  const server = new SesameServer({ listen: 'tcp://127.0.0.1:0', keys: [KEY_A], handler: handlerClass });
  servers.push(server);
  return server.listen();
}

/** Resolve with what `fn` resolves to, or reject after `ms`. */
function within<T>(p: Promise<T>, ms = 5_000): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`not settled in ${ms} ms`)), ms).unref()),
  ]);
}

async function readAll(s: Session): Promise<string[]> {
  const out: string[] = [];
  for await (const m of s) out.push(m.toString());
  return out;
}

describe('Session.consume', () => {
  it('delivers every message in order and resolves when the peer closes', async () => {
    let outcome: Promise<string[]> | undefined;
    const url = await start(async (session) => {
      const seen: string[] = [];
      outcome = session.consume((m) => void seen.push(m.toString())).then(() => seen);
      await outcome;
    });
    const c = await connect(url, { key: KEY_A });
    for (let i = 0; i < 50; i++) c.send(Buffer.from(`m${i}`));
    await c.close();
    expect(await within(outcome as Promise<string[]>)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
  });

  it('holds later messages while a returned promise is pending, and keeps their order', async () => {
    const url = await start(async (session) => {
      let n = 0;
      await session.consume((m) => {
        n++;
        // Every other reply is made asynchronously, after a delay longer than the next message.
        if (n % 2 === 1) {
          return new Promise<void>((resolve) =>
            setTimeout(() => {
              session.send(Buffer.from(`slow ${m.toString()}`));
              resolve();
            }, 20),
          );
        }
        session.send(Buffer.from(`fast ${m.toString()}`));
        return undefined;
      });
    });
    const c = await connect(url, { key: KEY_A });
    for (const m of ['a', 'b', 'c', 'd']) c.send(Buffer.from(m));
    const replies: string[] = [];
    for (let i = 0; i < 4; i++) replies.push(((await within(c.next())) as Buffer).toString());
    expect(replies).toEqual(['slow a', 'fast b', 'slow c', 'fast d']);
    await c.close();
  });

  it('rejects with what the callback throws, and the server then ends the connection', async () => {
    const url = await start(async (session) => {
      await session.consume((m) => {
        if (m.toString() === 'boom') throw new Error('handler failed');
        session.send(m);
      });
    });
    const c = await connect(url, { key: KEY_A });
    expect((await c.request(Buffer.from('ok'))).toString()).toBe('ok');
    c.send(Buffer.from('boom'));
    const err = await within(
      c.next().then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    expect(isSesameError(err) ? err.code : String(err)).toMatch(/ERR_TRUNCATED|ERR_CONNECTION_RESET/);
  });

  it('rejects with the session error when the peer vanishes, and next() refuses while consuming', async () => {
    let result: Promise<unknown> | undefined;
    let nextWhileConsuming: Promise<unknown> | undefined;
    const url = await start(async (session) => {
      result = session
        .consume(() => {})
        .then(
          () => 'resolved',
          (e: unknown) => (isSesameError(e) ? e.code : String(e)),
        );
      nextWhileConsuming = session.next().then(
        () => 'resolved',
        (e: unknown) => (isSesameError(e) ? e.code : String(e)),
      );
      await result;
    });
    const c = await connect(url, { key: KEY_A });
    c.send(Buffer.from('x'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    c.socket.destroy(); // no close record
    expect(await within(result as Promise<unknown>)).toBe('ERR_TRUNCATED');
    expect(await within(nextWhileConsuming as Promise<unknown>)).toBe('ERR_INVALID_STATE');
  });
});

/** A sink that records what it is given, and the end it gets. */
class RecordingSink implements MessageSink {
  readonly seen: string[] = [];
  readonly ends: string[] = [];
  constructor(private readonly onMessage: (m: Buffer) => unknown = () => undefined) {}
  message(m: Buffer): unknown {
    this.seen.push(m.toString());
    return this.onMessage(m);
  }
  ended(): void {
    this.ends.push('ended');
  }
  failed(error: unknown): void {
    this.ends.push(isSesameError(error) ? error.code : String(error));
  }
}

describe('Session.consumeWith', () => {
  it('delivers every message in order, then ended() once, and refuses a second reader', async () => {
    let second: unknown;
    let handled: Promise<void> | undefined;
    let sink = new RecordingSink();
    const url = await start(async (session) => {
      // While a message is delivered, the sink is the session's reader: another is refused.
      sink = new RecordingSink(() => {
        if (second !== undefined) return;
        try {
          session.consumeWith(new RecordingSink());
          second = 'accepted';
        } catch (err) {
          second = err;
        }
      });
      handled = new Promise<void>((resolve) => {
        sink.ended = () => {
          sink.ends.push('ended');
          resolve();
        };
      });
      session.consumeWith(sink);
      await handled; // then the server closes the session
    });
    const c = await connect(url, { key: KEY_A });
    for (let i = 0; i < 50; i++) c.send(Buffer.from(`m${i}`));
    await within(c.close());
    await within(handled as Promise<void>);
    expect(sink.seen).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    expect(sink.ends).toEqual(['ended']);
    expect(second).toMatchObject({ code: 'ERR_INVALID_STATE' });
  });

  it('holds later messages while message() has a promise pending, and reports a rejection with failed()', async () => {
    let sink: RecordingSink | undefined;
    const url = await start(async (session) => {
      sink = new RecordingSink((m) => {
        const text = m.toString();
        if (text === 'bad') return Promise.reject(new Error('rejected'));
        if (text === 'slow')
          return new Promise<void>((resolve) =>
            setTimeout(() => {
              session.send(Buffer.from('slow done'));
              resolve();
            }, 30),
          );
        session.send(m);
        return undefined;
      });
      session.consumeWith(sink);
      await session.closed;
    });
    const c = await connect(url, { key: KEY_A });
    for (const m of ['slow', 'after']) c.send(Buffer.from(m));
    expect(((await within(c.next())) as Buffer).toString()).toBe('slow done');
    expect(((await within(c.next())) as Buffer).toString()).toBe('after');
    c.send(Buffer.from('bad'));
    c.send(Buffer.from('never'));
    await within(
      new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if ((sink?.ends.length ?? 0) > 0) {
            clearInterval(poll);
            resolve();
          }
        }, 5);
      }),
    );
    expect(sink?.ends).toEqual(['Error: rejected']);
    expect(sink?.seen).toEqual(['slow', 'after', 'bad']);
    c.socket.destroy();
  });

  it('reports the session error with failed() when the peer vanishes', async () => {
    const sink = new RecordingSink();
    let closed: Promise<void> | undefined;
    const url = await start(async (session) => {
      session.consumeWith(sink);
      closed = session.closed;
      await closed;
    });
    const c = await connect(url, { key: KEY_A });
    c.send(Buffer.from('x'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    c.socket.destroy(); // no close record
    await new Promise((resolve) => setTimeout(resolve, 50));
    await within(closed as Promise<void>);
    expect(sink.seen).toEqual(['x']);
    expect(sink.ends).toEqual(['ERR_TRUNCATED']);
  });
});

describe('the server delivering messages to a handler itself', () => {
  it('applies to a handler that only responds, and not to one with its own setup, finish, handle or messages', () => {
    const session = {} as Session;
    const server = { runTask: () => Promise.reject(new Error('unused')) };
    const info = {
      profile: 'native',
      keyId: undefined,
      principal: undefined,
      forwardSecrecy: true,
      channelBinding: undefined,
      remote: 'unix',
      remoteAddress: '',
      remotePort: undefined,
    };
    const plain = streamHandlerClass((m) => m);
    expect(respondsToEach(new plain(session, server, info))).toBe(true);
    class WithSetup extends StreamRequestHandler {
      override setup(): void {}
    }
    class WithFinish extends StreamRequestHandler {
      override finish(): void {}
    }
    class WithHandle extends StreamRequestHandler {
      override handle(): Promise<void> {
        return Promise.resolve();
      }
    }
    class WithMessages extends StreamRequestHandler {
      override messages(): AsyncIterable<Buffer> {
        return this.request;
      }
    }
    for (const C of [WithSetup, WithFinish, WithHandle, WithMessages]) {
      expect(respondsToEach(new C(session, server, info))).toBe(false);
    }
  });

  it('reports what respond() throws to handler-error, closes that connection only, and keeps serving', async () => {
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      keys: [KEY_A],
      handler: (m: Buffer) => {
        if (m.toString() === 'boom') throw new Error('respond failed');
        return m.toString() === 'later' ? Promise.resolve(Buffer.from('late reply')) : m;
      },
    });
    servers.push(server);
    const errors: string[] = [];
    server.on('handler-error', (err: unknown, info: { remote: string }) =>
      errors.push(`${(err as Error).message} ${info.remote.startsWith('127.0.0.1:')}`),
    );
    const url = await server.listen();
    const a = await connect(url, { key: KEY_A });
    const b = await connect(url, { key: KEY_A });
    expect((await within(a.request(Buffer.from('later')))).toString()).toBe('late reply');
    a.send(Buffer.from('boom'));
    const outcome = await within(
      a.next().then(
        () => 'resolved',
        (e: unknown) => (isSesameError(e) ? e.code : String(e)),
      ),
    );
    expect(outcome).toMatch(/ERR_TRUNCATED|ERR_CONNECTION_RESET/);
    expect(errors).toEqual(['respond failed true']);
    expect((await within(b.request(Buffer.from('still here')))).toString()).toBe('still here');
    await b.close();
  });
});

describe('Session promises made on demand', () => {
  it('ready and closed read after the fact are already settled', async () => {
    const url = await start(async (session) => {
      for await (const m of session) session.send(m);
    });
    const c = await connect(url, { key: KEY_A });
    // ready was awaited inside connect(); a fresh read after that resolves with the same info
    expect((await within(c.ready)).principal).toBe('alice');
    await c.close();
    expect(c.socket.destroyed).toBe(true);
    await within(c.closed, 1_000);
  });

  it('ready rejects with the failure when it is first read after the handshake failed', async () => {
    const url = await start(async () => {});
    const port = Number(url.slice(url.lastIndexOf(':') + 1));
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
    });
    const session = new Session(socket, makeClient(), 'client');
    session.destroy(sesameError('ERR_HANDSHAKE_TIMEOUT', 'given up'));
    const err = await within(
      session.ready.then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    expect(isSesameError(err) && err.code).toBe('ERR_HANDSHAKE_TIMEOUT');
    await within(session.closed, 1_000);
    // and read once more, after the close: the same answers
    await within(session.closed, 1_000);
    await expect(session.ready).rejects.toMatchObject({ code: 'ERR_HANDSHAKE_TIMEOUT' });
  });

  it('a handler class still answers every message (the consume path) under pipelining', async () => {
    const { echoService } = await import('../../src/services/handlers.js');
    const url = await start(streamHandlerClass(echoService));
    const c = await connect(url, { key: KEY_A });
    const sent = Array.from({ length: 200 }, (_, i) => `p${i}`);
    for (const m of sent) c.send(Buffer.from(m));
    const got: string[] = [];
    for (let i = 0; i < sent.length; i++) got.push(((await within(c.next())) as Buffer).toString());
    expect(got).toEqual(sent);
    await c.close();
    expect(await readAll(c)).toEqual([]);
  });
});

describe('Session backpressure for senders', () => {
  const HWM = 64 * 1024;
  const chunk = Buffer.alloc(32 * 1024, 0x61);

  /** A server whose handler reads nothing until `open()`, then counts the bytes it gets. */
  async function gated(): Promise<{ url: string; open(): void; total: Promise<number> }> {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let done!: (n: number) => void;
    const total = new Promise<number>((resolve) => {
      done = resolve;
    });
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      keys: [KEY_A],
      highWaterMarkBytes: HWM,
      handler: sessionHandler(async (session) => {
        await gate;
        let n = 0;
        await session.consume((m) => {
          n += m.length;
        });
        done(n);
      }),
    });
    servers.push(server);
    return { url: await server.listen(), open, total };
  }

  it('send() returns false over the mark; drained() and `drain` come once the peer reads', async () => {
    const { url, open, total } = await gated();
    try {
      const c = await connect(url, { key: KEY_A, highWaterMarkBytes: HWM });
      expect(await within(c.drained())).toBeUndefined(); // nothing pending yet
      let drainEvents = 0;
      c.on('drain', () => drainEvents++);
      // Send until the output stays over the mark: the kernel's socket buffers take the first
      // megabytes, then nothing moves while the server reads nothing.
      let sent = 0;
      let stuck: Promise<void> | undefined;
      while (stuck === undefined && sent < 8192) {
        while (c.send(chunk) && sent < 8192) sent++;
        sent++;
        const d = c.drained();
        const moved = await Promise.race([
          d.then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 100)),
        ]);
        if (!moved) stuck = d;
      }
      expect(stuck).toBeDefined();
      const eventsBefore = drainEvents;
      open();
      await within(stuck as Promise<void>);
      expect(drainEvents).toBe(eventsBefore + 1);
      await c.close();
      expect(await within(total)).toBe(sent * chunk.length);
    } finally {
      open();
    }
  });

  it('drained() also resolves when the socket takes the output without a drain of its own', async () => {
    // A mark under the socket's own (16 KiB): the socket accepts the write at once and never
    // emits `drain`; the session still tells the sender.
    const url = await start(async (session) => {
      await session.consume(() => {});
    });
    const c = await connect(url, { key: KEY_A, highWaterMarkBytes: 4 * 1024 });
    expect(c.send(Buffer.alloc(8 * 1024, 0x62))).toBe(false);
    await within(c.drained(), 2_000);
    expect(c.send(Buffer.alloc(100))).toBe(true);
    await c.close();
  });

  it('drained() rejects with the session error when the connection dies first', async () => {
    const { url, open } = await gated();
    setTimeout(open, 200).unref();
    const c = await connect(url, { key: KEY_A, highWaterMarkBytes: HWM });
    let sent = 0;
    while (c.send(chunk) && sent < 4096) {
      sent++;
      if (sent % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const outcome = c.drained().then(
      () => 'resolved',
      (e: unknown) => (isSesameError(e) ? e.code : String(e)),
    );
    c.destroy(sesameError('ERR_CONNECTION_RESET', 'test ends it'));
    expect(await within(outcome)).toBe('ERR_CONNECTION_RESET');
  });
});
