/**
 * Session phases (handshaking, open, input-ended, closing, closed) over real loopback sockets,
 * the core's start() that reports profiles open from the start, and the typed event map.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NoneConnection } from '../../src/compat/none.js';
import { isSesameError, type SesameError, sesameError } from '../../src/errors.js';
import { Session, type SessionObserver, type SessionPhase } from '../../src/net/session.js';
import type { ProtocolConnection, SessionInfo } from '../../src/protocol/channel.js';
import { ServerConnection } from '../../src/protocol/connection.js';
import { makeClient, makeServerContext } from '../helpers/pair.js';

const listeners: Server[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
});

/** Resolve with what `p` resolves to, or reject after `ms`. */
function within<T>(p: Promise<T>, ms = 5_000): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`not settled in ${ms} ms`)), ms).unref()),
  ]);
}

/** Two connected loopback sockets, both half-open capable as the server and client make them. */
async function socketPair(): Promise<{ client: Socket; server: Socket }> {
  const listener = createServer({ allowHalfOpen: true });
  listeners.push(listener);
  const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const address = listener.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const client = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port: address.port, allowHalfOpen: true }, () =>
      resolve(s),
    );
    s.once('error', reject);
  });
  return { client, server: await accepted };
}

/** Every phase a session goes through, as seen after each of its events and at the start. */
function phaseLog(s: Session): SessionPhase[] {
  const log: SessionPhase[] = [s.phase];
  const note = (): void => {
    if (log.at(-1) !== s.phase) log.push(s.phase);
  };
  s.on('established', note);
  s.on('peer-close', note);
  s.on('failed', note);
  s.on('closed', note);
  return log;
}

/** What an observer was told, in order. */
class Recorder implements SessionObserver {
  readonly calls: string[] = [];
  sessionEstablished(_s: Session, info: SessionInfo): void {
    this.calls.push(`established ${info.profile}`);
  }
  handshakeFailed(_s: Session, error: SesameError): void {
    this.calls.push(`failed ${error.code}`);
  }
  sessionClosed(s: Session): void {
    this.calls.push(`closed ${s.phase}`);
  }
}

/** A native client session and its server session on loopback, both established. */
async function nativePair(
  observer?: SessionObserver,
): Promise<{ client: Session; server: Session; serverLog: SessionPhase[]; clientLog: SessionPhase[] }> {
  const sockets = await socketPair();
  const server = new Session(
    sockets.server,
    new ServerConnection(makeServerContext()),
    'server',
    {},
    observer,
  );
  const client = new Session(sockets.client, makeClient(), 'client');
  const serverLog = phaseLog(server);
  const clientLog = phaseLog(client);
  await within(Promise.all([client.ready, server.ready]));
  return { client, server, serverLog, clientLog };
}

describe('Session phases', () => {
  it('walks handshaking -> open -> input-ended -> closing -> closed when the peer closes first', async () => {
    const recorder = new Recorder();
    const { client, server, serverLog } = await nativePair(recorder);
    expect(server.phase).toBe('open');
    expect(server.inputEnded).toBe(false);
    client.send(Buffer.from('no reply expected'));
    const peerClose = new Promise<void>((resolve) => server.once('peer-close', resolve));
    void client.close();
    expect(client.phase).toBe('closing'); // at once: the close record is on its way
    await within(peerClose);
    expect(server.phase).toBe('input-ended');
    expect(server.inputEnded).toBe(true);
    expect((await within(server.next()))?.toString()).toBe('no reply expected');
    expect(await within(server.next())).toBeUndefined();
    await within(server.close());
    await within(client.closed);
    expect(serverLog).toEqual(['handshaking', 'open', 'input-ended', 'closed']);
    expect(server.phase).toBe('closed');
    expect(client.phase).toBe('closed');
    expect(server.error).toBeUndefined();
    expect(client.error).toBeUndefined();
    expect(recorder.calls).toEqual(['established native', 'closed closed']);
  });

  it('a close that starts before the input ended still reads the peer, and ends cleanly', async () => {
    const { client, server } = await nativePair();
    void server.close();
    expect(server.phase).toBe('closing');
    expect(server.inputEnded).toBe(false);
    client.send(Buffer.from('late but welcome'));
    expect((await within(server.next()))?.toString()).toBe('late but welcome');
    expect(await within(client.next())).toBeUndefined(); // the server's close record
    expect(client.phase).toBe('input-ended');
    const waiting = server.next();
    await client.close();
    expect(await within(waiting)).toBeUndefined();
    await within(server.closed);
    expect(server.error).toBeUndefined();
    expect(client.error).toBeUndefined();
  });

  it('stopReading() ends the input: queued messages first, then next() ends; nothing during the handshake', async () => {
    const sockets = await socketPair();
    const server = new Session(sockets.server, new ServerConnection(makeServerContext()), 'server');
    server.stopReading();
    expect(server.phase).toBe('handshaking');
    const client = new Session(sockets.client, makeClient(), 'client');
    await within(Promise.all([client.ready, server.ready]));
    client.send(Buffer.from('one'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    server.stopReading();
    expect(server.phase).toBe('input-ended');
    expect(server.socket.isPaused()).toBe(true);
    expect((await within(server.next()))?.toString()).toBe('one');
    expect(await within(server.next())).toBeUndefined();
    await within(Promise.all([server.close(), client.next().then(() => client.close())]));
    expect(server.error).toBeUndefined();
  });

  it('idle: the session stops reading and closes (open -> input-ended -> closing -> closed)', async () => {
    const sockets = await socketPair();
    const server = new Session(sockets.server, new ServerConnection(makeServerContext()), 'server', {
      idleTimeoutMs: 100,
    });
    const client = new Session(sockets.client, makeClient(), 'client');
    const phasesAtIdle: SessionPhase[] = [];
    server.on('idle', () => phasesAtIdle.push(server.phase));
    await within(Promise.all([client.ready, server.ready]));
    expect(await within(client.next())).toBeUndefined(); // the server's close record
    expect(phasesAtIdle).toEqual(['open']);
    expect(server.phase).toBe('closing');
    expect(server.inputEnded).toBe(true);
    await within(client.close());
    await within(server.closed);
    expect(server.error).toBeUndefined();
  });

  it('a failure is sticky: closing at once with the typed error, failed emitted once, then closed', async () => {
    const { client, server } = await nativePair();
    const failed: string[] = [];
    client.on('failed', (e) => failed.push(e.code));
    const reading = client.next();
    client.destroy(sesameError('ERR_CONNECTION_RESET', 'test ends it'));
    expect(client.phase).toBe('closing');
    client.destroy(sesameError('ERR_CLOSED', 'second'));
    await expect(within(reading)).rejects.toMatchObject({ code: 'ERR_CONNECTION_RESET' });
    await within(client.closed);
    expect(client.phase).toBe('closed');
    expect(client.error?.code).toBe('ERR_CONNECTION_RESET');
    expect(failed).toEqual(['ERR_CONNECTION_RESET']);
    expect(() => client.send(Buffer.from('x'))).toThrow(client.error as SesameError);
    // the peer saw an end of stream without a close record: the core calls it a truncation
    const seen = await within(
      server.next().then(
        () => 'resolved',
        (e: unknown) => (isSesameError(e) ? e.code : String(e)),
      ),
    );
    expect(seen).toMatch(/^(ERR_TRUNCATED|ERR_CONNECTION_RESET)$/);
    await within(server.closed);
  });

  it('a handshake that fails moves handshaking -> closing -> closed and tells the observer once', async () => {
    const sockets = await socketPair();
    const recorder = new Recorder();
    const server = new Session(
      sockets.server,
      new ServerConnection(makeServerContext()),
      'server',
      { handshakeTimeoutMs: 100 },
      recorder,
    );
    const log = phaseLog(server);
    const ready = server.ready.then(
      () => 'resolved',
      (e: unknown) => (isSesameError(e) ? e.code : String(e)),
    );
    expect(await within(ready)).toBe('ERR_HANDSHAKE_TIMEOUT');
    await within(server.closed);
    expect(log).toEqual(['handshaking', 'closing', 'closed']);
    expect(recorder.calls).toEqual(['failed ERR_HANDSHAKE_TIMEOUT', 'closed closed']);
    sockets.client.destroy();
  });

  it('a socket that closes without an end of input gets the core verdict: truncated for native', async () => {
    const { server } = await nativePair();
    server.socket.destroy(); // no end of stream was seen, and the session was not failed
    await within(server.closed);
    expect(server.error?.code).toBe('ERR_TRUNCATED');
    expect(server.error?.message).toBe('connection ended without a close record'); // the core's words
  });

  it('a socket that closes without an end of input gets the core verdict: a clean end for none', async () => {
    const sockets = await socketPair();
    const session = new Session(sockets.server, new NoneConnection('server'), 'server');
    const peerClosed = new Promise<void>((resolve) => session.once('peer-close', resolve));
    await within(session.ready);
    session.socket.destroy();
    await within(peerClosed);
    await within(session.closed);
    expect(session.error).toBeUndefined();
    expect(await session.next()).toBeUndefined();
    sockets.client.destroy();
  });
});

describe('profiles open from the start', () => {
  it('the core reports established from start(), once, and never again with input', () => {
    expect(makeClient().start()).toEqual([]);
    expect(new ServerConnection(makeServerContext()).start()).toEqual([]);
    const none: ProtocolConnection = new NoneConnection('server');
    const first = none.start();
    expect(first).toEqual([{ type: 'established', session: none.session }]);
    expect(none.session?.profile).toBe('none');
    expect(none.start()).toEqual([]);
    expect(none.receive(Buffer.from('hi')).map((e) => e.type)).toEqual(['message']);
    expect(none.receiveEnd().map((e) => e.type)).toEqual(['close']);
  });

  it('a none session is established after the constructor returns, once, with listeners attached', async () => {
    const sockets = await socketPair();
    const recorder = new Recorder();
    const server = new Session(sockets.server, new NoneConnection('server'), 'server', {}, recorder);
    const client = new Session(sockets.client, new NoneConnection('client'), 'client');
    expect(server.phase).toBe('handshaking'); // not yet: the caller can still listen
    expect(recorder.calls).toEqual([]);
    let established = 0;
    server.on('established', () => established++);
    expect((await within(server.ready)).profile).toBe('none');
    await within(client.ready);
    expect(server.phase).toBe('open');
    client.send(Buffer.from('ping'));
    expect((await within(server.next()))?.toString()).toBe('ping');
    server.send(Buffer.from('pong'));
    expect((await within(client.next()))?.toString()).toBe('pong');
    await within(Promise.all([client.close(), server.close()]));
    expect(established).toBe(1);
    expect(recorder.calls).toEqual(['established none', 'closed closed']);
    expect(server.error).toBeUndefined();
    expect(client.error).toBeUndefined();
  });
});

describe('typed session events', () => {
  it('names and arguments are checked at compile time', async () => {
    const { client, server } = await nativePair();
    const seen: string[] = [];
    client.on('pong', (payload: Buffer) => seen.push(payload.toString()));
    // @ts-expect-error: no such event
    client.on('pang', () => {});
    // @ts-expect-error: `failed` carries a SesameError, not a number
    client.on('failed', (_e: number) => {});
    await within(Promise.all([client.close(), server.next().then(() => server.close())]));
    expect(seen).toEqual([]);
  });
});
