/**
 * Attacks over real loopback sockets. Each case is refused with its documented code (read from
 * the server's `auth` events, the handler's errors and the client's errors) while a legitimate
 * client keeps being served by the same server in parallel.
 *
 * The attacker speaks from 127.0.0.2 (raw sockets, and the upstream side of a man-in-the-middle
 * relay written here that parses the genuine stream into handshake messages and records and can
 * change, drop, duplicate, hold back, reflect or splice them, or cut the connection); the
 * legitimate client connects directly from 127.0.0.1. The server's per-source throttling of failed
 * logins is turned off: these tests count refusals one by one.
 */

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type ErrorCode, isSesameError } from '../../src/errors.js';
import type { AuthEvent } from '../../src/net/base-server.js';
import { connect } from '../../src/net/client.js';
import { sessionHandler } from '../../src/net/handlers.js';
import type { Session } from '../../src/net/session.js';
import { type ServerOptions, SesameServer } from '../../src/net/stream-server.js';
import { ClientConnection, type PresharedKey, systemEntropy } from '../../src/protocol/index.js';
import { flipBit } from '../helpers/mutations.js';
import { makeKey } from '../helpers/pair.js';

const ATTACKER = '127.0.0.2';

const GOOD = makeKey('a1a1a1a1a1a1a1a1', 'legit', 0x11);
const REVOKED = makeKey('b2b2b2b2b2b2b2b2', 'revoked', 0x22, { revoked: true });
const EXPIRED = makeKey('c3c3c3c3c3c3c3c3', 'expired', 0x33, { notAfter: new Date(Date.now() - 60_000) });
const FUTURE = makeKey('d4d4d4d4d4d4d4d4', 'future', 0x44, { notBefore: new Date(Date.now() + 3_600_000) });
const UNKNOWN = makeKey('e5e5e5e5e5e5e5e5', 'nobody', 0x55);
/** The right key id with another secret. */
const WRONG = makeKey(GOOD.id, 'legit', 0x99);

type Mode = 'x25519' | 'psk';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Values that arrive by name, each awaited by name. */
/**
 * Values by key, each read once, in the order they were put. A connection's ephemeral port can be
 * reused by a later connection in the same test: `forget` its key when the new connection is
 * accepted, so that it cannot find the earlier connection's value.
 */
class Board<T> {
  private readonly values = new Map<string, T[]>();
  private readonly waiters = new Map<string, ((v: T) => void)[]>();

  put(key: string, value: T): void {
    const waiting = this.waiters.get(key);
    const w = waiting?.shift();
    if (waiting !== undefined && waiting.length === 0) this.waiters.delete(key);
    if (w !== undefined) {
      w(value);
      return;
    }
    this.values.set(key, [...(this.values.get(key) ?? []), value]);
  }

  forget(key: string): void {
    this.values.delete(key);
  }

  get(key: string): Promise<T> {
    const queued = this.values.get(key);
    const v = queued?.shift();
    if (queued !== undefined && queued.length === 0) this.values.delete(key);
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve) => {
      this.waiters.set(key, [...(this.waiters.get(key) ?? []), resolve]);
    });
  }
}

/** What the server's handler saw on one connection. */
interface Served {
  readonly messages: string[];
  error: ErrorCode | undefined;
}

interface Target {
  readonly server: SesameServer;
  readonly url: string;
  readonly port: number;
  /** The authentication result for a peer `ADDRESS:PORT`. */
  auth(remote: string): Promise<AuthEvent>;
  /** What the handler saw, once it has finished, for a peer that authenticated. */
  served(remote: string): Promise<Served>;
  /** Remotes that reached the handler. */
  readonly servedRemotes: Set<string>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startTarget(over: Partial<ServerOptions> = {}): Promise<Target> {
  const auths = new Board<AuthEvent>();
  const served = new Board<Served>();
  const servedRemotes = new Set<string>();
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [GOOD, REVOKED, EXPIRED, FUTURE],
    handshakeTimeoutMs: 5_000,
    throttle: { freeFailures: Number.MAX_SAFE_INTEGER },
    handler: sessionHandler(async (session: Session, info) => {
      servedRemotes.add(info.remote);
      const record: Served = { messages: [], error: undefined };
      try {
        for await (const m of session) {
          record.messages.push(m.toString());
          session.send(m);
        }
      } catch (err) {
        record.error = isSesameError(err) ? err.code : 'ERR_INVALID_STATE';
      } finally {
        served.put(info.remote, record);
      }
    }),
    ...over,
  });
  server.on('accepted', (remote: string) => {
    auths.forget(remote);
    served.forget(remote);
  });
  server.on('auth', (e: AuthEvent) => auths.put(e.remote, e));
  const url = await server.listen();
  cleanups.push(() => server.close());
  return {
    server,
    url,
    port: Number(/:(\d+)$/.exec(url)?.[1]),
    auth: (remote) => auths.get(remote),
    served: (remote) => served.get(remote),
    servedRemotes,
  };
}

/**
 * A legitimate client that keeps talking to the server for the whole test: one long session
 * with request after request, and a new connection every few requests.
 */
class LegitClient {
  ok = 0;
  readonly failures: unknown[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(url: string) {
    this.done = this.run(url);
  }

  private async run(url: string): Promise<void> {
    let session: Session | undefined;
    for (let i = 0; !this.stopped; i++) {
      try {
        session ??= await connect(url, { key: GOOD });
        const text = `legit ${i}`;
        const reply = await session.request(Buffer.from(text));
        if (reply.toString() !== text) throw new Error(`wrong reply ${reply.toString()}`);
        if (i % 8 === 7) {
          const fresh = await connect(url, { key: GOOD });
          const r = await fresh.request(Buffer.from(text));
          if (r.toString() !== text) throw new Error('wrong reply on a new connection');
          await fresh.close();
        }
        this.ok++;
      } catch (err) {
        this.failures.push(err);
        session = undefined;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await session?.close();
  }

  /** Stop, and check that every request was served. */
  async finish(): Promise<void> {
    this.stopped = true;
    await this.done;
    expect(this.failures).toEqual([]);
    expect(this.ok).toBeGreaterThan(0);
  }
}

/** Attacker connections that reached the handler (should be none in a refusal test). */
function attackersServed(target: Target): string[] {
  return [...target.servedRemotes].filter((r) => r.startsWith(`${ATTACKER}:`));
}

/** Start a target and a legitimate client on it; the client is checked at the end of the test. */
async function underAttack(
  over: Partial<ServerOptions> = {},
): Promise<{ target: Target; legit: LegitClient }> {
  const target = await startTarget(over);
  const legit = new LegitClient(target.url);
  return { target, legit };
}

interface Observed {
  readonly bytes: Buffer;
  readonly ended: boolean;
  readonly error: string | undefined;
}

/** Collect what a socket receives until it closes. */
function observe(socket: Socket): Promise<Observed> {
  const chunks: Buffer[] = [];
  let ended = false;
  let error: string | undefined;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('end', () => {
    ended = true;
    socket.end(); // half-open sockets: answer the peer's FIN so that the socket closes
  });
  socket.on('error', (e: NodeJS.ErrnoException) => {
    error = e.code ?? e.message;
  });
  return new Promise((resolve) =>
    socket.once('close', () => resolve({ bytes: Buffer.concat(chunks), ended, error })),
  );
}

/** A raw TCP connection from the attacker's address; resolves once connected. */
function rawConnect(port: number): Promise<{ socket: Socket; remote: string; observed: Promise<Observed> }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port, localAddress: ATTACKER, allowHalfOpen: true });
    const observed = observe(socket);
    socket.once('connect', () => resolve({ socket, remote: `${ATTACKER}:${socket.localPort}`, observed }));
    socket.once('error', reject);
  });
}

/** Run `fn` over `items` with at most `n` at once. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** A genuine ClientHello (and the client that made it), made now. */
function genuineHello(key: PresharedKey, mode: Mode): { client: ClientConnection; hello: Buffer } {
  const client = new ClientConnection({
    key,
    entropy: systemEntropy,
    now: Date.now,
    forwardSecrecy: mode === 'x25519',
  });
  return { client, hello: Buffer.concat(client.takeOutput()) };
}

/** The error a promise rejects with (undefined when it resolves). */
async function rejection(p: Promise<unknown>): Promise<{ code?: string } | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err as { code?: string };
  }
}

// ---------------------------------------------------------------------------------------------
// The man-in-the-middle relay

type Direction = 'c2s' | 's2c';

/** One handshake message or record of the genuine stream, as the relay cut it. */
interface Unit {
  readonly dir: Direction;
  /** 0 is the ClientHello (c2s) or ServerHello (s2c); c2s 1 is the ClientFinished; then records. */
  readonly index: number;
  readonly bytes: Buffer;
}

interface RelayControl {
  toServer(bytes: Buffer): void;
  toClient(bytes: Buffer): void;
  /** End both directions now (a FIN each way), forwarding nothing more. */
  cut(): void;
  /** Every genuine unit seen so far, both directions. */
  readonly units: Unit[];
}

/** Returns the bytes to forward instead of `unit` (none: drop it), or undefined to forward it. */
type Tamper = (unit: Unit, control: RelayControl) => Buffer[] | undefined;

/** Cuts one direction of a genuine stream into handshake messages and records. */
class Splitter {
  private buffered: Buffer = Buffer.alloc(0);
  private count = 0;

  constructor(private readonly dir: Direction) {}

  push(chunk: Buffer): Unit[] {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    const out: Unit[] = [];
    for (;;) {
      const size = this.nextSize();
      if (size === undefined || this.buffered.length < size) return out;
      out.push({ dir: this.dir, index: this.count++, bytes: this.buffered.subarray(0, size) });
      this.buffered = this.buffered.subarray(size);
    }
  }

  /** Whatever is left over (an incomplete unit). */
  rest(): Buffer {
    return this.buffered;
  }

  private nextSize(): number | undefined {
    const b = this.buffered;
    const hello = this.count === 0;
    const finished = this.dir === 'c2s' && this.count === 1;
    if (hello) return b.length < 8 ? undefined : (b[6] as number) & 1 ? 104 : 72;
    if (finished) return 40;
    return b.length < 2 ? undefined : 2 + b.readUInt16BE(0);
  }
}

class RelayConnection {
  readonly units: Unit[] = [];
  /** The attacker-side address the server sees: ADDRESS:PORT. */
  readonly remote: Promise<string>;
  private cutDone = false;

  constructor(
    private readonly down: Socket,
    private readonly up: Socket,
    tamper: Tamper,
  ) {
    this.remote = new Promise((resolve) => up.once('connect', () => resolve(`${ATTACKER}:${up.localPort}`)));
    const control: RelayControl = {
      toServer: (b) => this.write(up, b),
      toClient: (b) => this.write(down, b),
      cut: () => this.cut(),
      units: this.units,
    };
    const pipe = (from: Socket, to: Socket, dir: Direction): void => {
      const splitter = new Splitter(dir);
      from.on('data', (chunk: Buffer) => {
        for (const unit of splitter.push(chunk)) {
          this.units.push(unit);
          const out = tamper(unit, control) ?? [unit.bytes];
          for (const b of out) this.write(to, b);
        }
      });
      from.on('end', () => {
        const rest = splitter.rest();
        if (rest.length > 0) this.write(to, rest);
        if (!this.cutDone) to.end();
      });
      from.on('error', () => {
        if (!to.destroyed) to.resetAndDestroy();
      });
    };
    pipe(down, up, 'c2s');
    pipe(up, down, 's2c');
  }

  private write(to: Socket, bytes: Buffer): void {
    if (!this.cutDone && !to.destroyed && to.writable) to.write(bytes);
  }

  private cut(): void {
    if (this.cutDone) return;
    this.cutDone = true;
    this.down.end();
    this.up.end();
  }
}

/** A TCP man-in-the-middle on 127.0.0.1 whose upstream side speaks from 127.0.0.2. */
class Relay {
  readonly connections: RelayConnection[] = [];
  private readonly waiting: ((c: RelayConnection) => void)[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  url = '';

  private constructor(targetPort: number, tamper: () => Tamper) {
    this.server = createServer({ allowHalfOpen: true }, (down) => {
      const up = createConnection({
        host: '127.0.0.1',
        port: targetPort,
        localAddress: ATTACKER,
        allowHalfOpen: true,
      });
      for (const s of [down, up]) {
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
      }
      const conn = new RelayConnection(down, up, tamper());
      this.connections.push(conn);
      this.waiting.shift()?.(conn);
    });
  }

  /** Listen on 127.0.0.1; `tamper` makes the tamper function of each connection. */
  static async start(targetPort: number, tamper: () => Tamper = () => () => undefined): Promise<Relay> {
    const relay = new Relay(targetPort, tamper);
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    const address = relay.server.address();
    relay.url = `tcp://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    cleanups.push(() => relay.close());
    return relay;
  }

  /** The n-th connection (0-based) once accepted. */
  connection(n = 0): Promise<RelayConnection> {
    const c = this.connections[n];
    if (c !== undefined) return Promise.resolve(c);
    return new Promise((resolve) => {
      this.waiting.push((conn) => {
        if (this.connections.length - 1 === n) resolve(conn);
        else void this.connection(n).then(resolve);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Tamper with one unit only: `dir` unit `index` becomes what `change` returns. */
function onUnit(
  dir: Direction,
  index: number,
  change: (bytes: Buffer, control: RelayControl) => Buffer[],
): () => Tamper {
  return () => (unit, control) =>
    unit.dir === dir && unit.index === index ? change(unit.bytes, control) : undefined;
}

/**
 * A bit-flipped record, completed with zero bytes when the flip made its length field claim
 * more (within the bounds), so that the receiver gets a whole record to refuse.
 */
function flipRecord(record: Buffer, bit: number): Buffer[] {
  const out = flipBit(record, bit);
  const claimed = out.readUInt16BE(0);
  const actual = record.length - 2;
  if (bit < 16 && claimed > actual && claimed <= 16401) return [out, Buffer.alloc(claimed - actual)];
  return [out];
}

function recordCode(record: Buffer, bit: number): ErrorCode {
  if (bit >= 16) return 'ERR_RECORD_DECRYPT';
  const claimed = flipBit(record, bit).readUInt16BE(0);
  return claimed < 17 || claimed > 16401 ? 'ERR_RECORD_LENGTH' : 'ERR_RECORD_DECRYPT';
}

const AFTER_HANDSHAKE_END: readonly string[] = ['ERR_TRUNCATED', 'ERR_CONNECTION_RESET'];

// ---------------------------------------------------------------------------------------------
// The attacks

describe('attacks over loopback: refused with the documented code while a legitimate client is served', () => {
  it('wrong key, unknown key id, revoked, expired and not-yet-valid keys, stale clocks, PSK-only', async () => {
    const { target, legit } = await underAttack();
    const cases: [string, Parameters<typeof connect>[1], ErrorCode][] = [
      ['wrong key', { key: WRONG }, 'ERR_AUTH_FAILED'],
      ['unknown key id', { key: UNKNOWN }, 'ERR_UNKNOWN_KEY'],
      ['revoked key', { key: REVOKED }, 'ERR_KEY_REVOKED'],
      ['expired key', { key: EXPIRED }, 'ERR_KEY_EXPIRED'],
      ['not yet valid key', { key: FUTURE }, 'ERR_KEY_NOT_YET_VALID'],
      ['clock 10 min behind', { key: GOOD, now: () => Date.now() - 600_000 }, 'ERR_STALE_HELLO'],
      ['clock 10 min ahead', { key: GOOD, now: () => Date.now() + 600_000 }, 'ERR_STALE_HELLO'],
      ['no forward secrecy', { key: GOOD, forwardSecrecy: false }, 'ERR_FORWARD_SECRECY_REQUIRED'],
    ];
    for (const [what, options, code] of cases) {
      const relay = await Relay.start(target.port);
      const err = await rejection(connect(relay.url, options));
      expect(err?.code, what).toBe('ERR_AUTH_REFUSED');
      const remote = await (await relay.connection()).remote;
      expect(await target.auth(remote), what).toMatchObject({ ok: false, code });
      expect(target.servedRemotes.has(remote), what).toBe(false);
    }
    await legit.finish();
  });

  it('a replayed ClientHello: refused by the server that saw it; elsewhere it gets a ServerHello but cannot finish', async () => {
    const { target, legit } = await underAttack();
    // Record a genuine client's first flight through the relay.
    const relay = await Relay.start(target.port);
    const genuine = await connect(relay.url, { key: GOOD });
    expect((await genuine.request(Buffer.from('recorded'))).toString()).toBe('recorded');
    await genuine.close();
    const units = (await relay.connection()).units.filter((u) => u.dir === 'c2s');
    const [hello, finished] = [units[0]?.bytes as Buffer, units[1]?.bytes as Buffer];
    expect(hello).toHaveLength(104);

    // The same server: refused at once, without a byte in reply.
    const raw = await rawConnect(target.port);
    raw.socket.end(Buffer.concat([hello, finished]));
    expect((await raw.observed).bytes).toHaveLength(0);
    expect(await target.auth(raw.remote)).toMatchObject({ ok: false, code: 'ERR_REPLAYED_HELLO' });

    // Another server with the same key (its own replay cache): it answers with a fresh
    // ServerHello, and the recorded ClientFinished fails against it.
    const other = await startTarget();
    const raw2 = await rawConnect(other.port);
    raw2.socket.write(hello);
    const serverHello = await new Promise<Buffer>((resolve) => raw2.socket.once('data', resolve));
    expect(serverHello).toHaveLength(104);
    raw2.socket.end(finished);
    await raw2.observed;
    expect(await other.auth(raw2.remote)).toMatchObject({ ok: false, code: 'ERR_AUTH_FAILED' });
    expect(attackersServed(other)).toEqual([]);
    await legit.finish();
  });

  it('reflected messages: ClientHello to the client, ServerHello to the server, records to their sender, own nonce and share', async () => {
    const { target, legit } = await underAttack();

    // The client's own ClientHello sent back to it.
    const r1 = await Relay.start(
      target.port,
      onUnit('c2s', 0, (b, c) => {
        c.toClient(b);
        return [];
      }),
    );
    expect((await rejection(connect(r1.url, { key: GOOD })))?.code).toBe('ERR_UNEXPECTED_MESSAGE');

    // The ServerHello sent back to the server (in place of the ClientFinished).
    const r2 = await Relay.start(target.port, () => (unit, c) => {
      if (unit.dir === 's2c' && unit.index === 0) c.toServer(unit.bytes);
      if (unit.dir === 'c2s' && unit.index >= 1) return [];
      return undefined;
    });
    const s2 = await connect(r2.url, { key: GOOD });
    expect(AFTER_HANDSHAKE_END).toContain((await rejection(s2.request(Buffer.from('x'))))?.code);
    expect(await target.auth(await (await r2.connection()).remote)).toMatchObject({
      ok: false,
      code: 'ERR_UNEXPECTED_MESSAGE',
    });

    // The client's first record sent back to the client, in place of the server's reply.
    const r3 = await Relay.start(target.port, () => (unit, c) => {
      if (unit.dir === 'c2s' && unit.index === 2) c.toClient(unit.bytes);
      if (unit.dir === 's2c' && unit.index >= 1) return [];
      return undefined;
    });
    const s3 = await connect(r3.url, { key: GOOD });
    expect((await rejection(s3.request(Buffer.from('mirror'))))?.code).toBe('ERR_RECORD_DECRYPT');

    // The server's reply record sent back to the server.
    const r4 = await Relay.start(
      target.port,
      onUnit('s2c', 1, (b, c) => {
        c.toServer(b);
        return [];
      }),
    );
    const s4 = await connect(r4.url, { key: GOOD });
    expect(AFTER_HANDSHAKE_END).toContain((await rejection(s4.request(Buffer.from('bounce'))))?.code);
    const served4 = await target.served(await (await r4.connection()).remote);
    expect(served4).toEqual({ messages: ['bounce'], error: 'ERR_RECORD_DECRYPT' });

    // A server that answers with the client's own nonce and key share.
    const fake = createServer((s) => {
      s.once('data', (hello: Buffer) => {
        const sh = Buffer.alloc(104);
        hello.copy(sh, 0, 0, 8);
        sh[5] = 2;
        hello.copy(sh, 8, 24, 88); // Nc, then the client's share
        s.write(sh);
      });
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => fake.close(() => resolve())));
    const port = (fake.address() as { port: number }).port;
    expect((await rejection(connect(`tcp://127.0.0.1:${port}`, { key: GOOD })))?.code).toBe(
      'ERR_REFLECTED_MESSAGE',
    );
    await legit.finish();
  });

  for (const mode of ['x25519', 'psk'] as Mode[]) {
    it(`${mode}: every single-bit flip of a ClientHello, sent on raw sockets, is refused with its code and no reply`, async () => {
      const { target, legit } = await underAttack({ requireForwardSecrecy: mode === 'x25519' });
      const { hello } = genuineHello(GOOD, mode);
      expect(hello).toHaveLength(mode === 'x25519' ? 104 : 72);
      const expected = (byte: number, bit: number): ErrorCode => {
        if (byte < 4) return 'ERR_MALFORMED_MESSAGE';
        if (byte === 4) return 'ERR_UNSUPPORTED_VERSION';
        if (byte === 5) return 'ERR_UNEXPECTED_MESSAGE';
        // Clearing the X25519 flag shortens the hello (its "mac1" is then part of the share);
        // setting it makes the server wait for 32 more bytes, which never come.
        if (byte === 6 && bit === 0) return mode === 'x25519' ? 'ERR_AUTH_FAILED' : 'ERR_TRUNCATED';
        if (byte < 8) return 'ERR_MALFORMED_MESSAGE';
        if (byte < 16) return 'ERR_UNKNOWN_KEY';
        return 'ERR_AUTH_FAILED';
      };
      const bits = Array.from({ length: hello.length * 8 }, (_, i) => i);
      const wrong: string[] = [];
      await pool(bits, 32, async (bit) => {
        const raw = await rawConnect(target.port);
        raw.socket.end(flipBit(hello, bit));
        const seen = await raw.observed;
        const auth = await target.auth(raw.remote);
        const want = expected(bit >> 3, bit & 7);
        if (auth.ok || auth.code !== want || seen.bytes.length > 0) {
          wrong.push(
            `bit ${bit}: ${auth.ok ? 'accepted' : auth.code} (want ${want}), ${seen.bytes.length} bytes back`,
          );
        }
      });
      expect(wrong).toEqual([]);
      expect(attackersServed(target)).toEqual([]);
      await legit.finish();
    }, 180_000);

    it(`${mode}: every single-bit flip of the ServerHello (man in the middle) fails at the client`, async () => {
      const { target, legit } = await underAttack({ requireForwardSecrecy: mode === 'x25519' });
      const size = mode === 'x25519' ? 104 : 72;
      const expected = (byte: number): ErrorCode[] => {
        if (byte < 4) return ['ERR_MALFORMED_MESSAGE'];
        if (byte === 4) return ['ERR_UNSUPPORTED_VERSION'];
        if (byte === 5) return ['ERR_UNEXPECTED_MESSAGE'];
        if (byte < 8) return ['ERR_MALFORMED_MESSAGE'];
        // A changed key share may be a point X25519 refuses; otherwise the finished value fails.
        if (mode === 'x25519' && byte >= 40 && byte < 72)
          return ['ERR_SERVER_AUTH_FAILED', 'ERR_BAD_KEY_SHARE'];
        return ['ERR_SERVER_AUTH_FAILED'];
      };
      const wrong: string[] = [];
      await pool(
        Array.from({ length: size * 8 }, (_, i) => i),
        16,
        async (bit) => {
          const relay = await Relay.start(
            target.port,
            onUnit('s2c', 0, (b) => [flipBit(b, bit)]),
          );
          const err = await rejection(connect(relay.url, { key: GOOD, forwardSecrecy: mode === 'x25519' }));
          const auth = await target.auth(await (await relay.connection()).remote);
          const want = expected(bit >> 3);
          // The server then sees the client hang up during the handshake.
          if (
            err?.code === undefined ||
            !want.includes(err.code as ErrorCode) ||
            auth.ok ||
            !AFTER_HANDSHAKE_END.includes(auth.code)
          ) {
            wrong.push(`bit ${bit}: client ${err?.code}, server ${auth.ok ? 'ok' : auth.code}`);
          }
          await relay.close();
        },
      );
      expect(wrong).toEqual([]);
      expect(attackersServed(target)).toEqual([]);
      await legit.finish();
    }, 180_000);

    it(`${mode}: every single-bit flip of the ClientFinished (man in the middle) is refused by the server`, async () => {
      const { target, legit } = await underAttack({ requireForwardSecrecy: mode === 'x25519' });
      const expected = (byte: number): ErrorCode => {
        if (byte < 4) return 'ERR_MALFORMED_MESSAGE';
        if (byte === 4) return 'ERR_UNSUPPORTED_VERSION';
        if (byte === 5) return 'ERR_UNEXPECTED_MESSAGE';
        if (byte < 8) return 'ERR_MALFORMED_MESSAGE';
        return 'ERR_AUTH_FAILED';
      };
      const wrong: string[] = [];
      await pool(
        Array.from({ length: 40 * 8 }, (_, i) => i),
        16,
        async (bit) => {
          const relay = await Relay.start(
            target.port,
            onUnit('c2s', 1, (b) => [flipBit(b, bit)]),
          );
          // The client is done once the server proved itself; it learns of the refusal on its
          // first read, and the server never hands it anything.
          const session = await connect(relay.url, { key: GOOD, forwardSecrecy: mode === 'x25519' });
          const err = await rejection(session.request(Buffer.from('after a forged finish')));
          const remote = await (await relay.connection()).remote;
          const auth = await target.auth(remote);
          if (
            !AFTER_HANDSHAKE_END.includes(err?.code ?? '') ||
            auth.ok ||
            auth.code !== expected(bit >> 3) ||
            target.servedRemotes.has(remote)
          ) {
            wrong.push(`bit ${bit}: client ${err?.code}, server ${auth.ok ? 'ok' : auth.code}`);
          }
          await relay.close();
        },
      );
      expect(wrong).toEqual([]);
      await legit.finish();
    }, 180_000);
  }

  for (const dir of ['c2s', 's2c'] as Direction[]) {
    it(`every single-bit flip of a small record ${dir === 'c2s' ? 'to the server' : 'to the client'} is refused`, async () => {
      const { target, legit } = await underAttack();
      // "hi" in one record: 2 + 1 + 2 + 16 = 21 bytes, 168 bits.
      const index = dir === 'c2s' ? 2 : 1;
      const wrong: string[] = [];
      await pool(
        Array.from({ length: 21 * 8 }, (_, i) => i),
        16,
        async (bit) => {
          let original: Buffer | undefined;
          const relay = await Relay.start(
            target.port,
            onUnit(dir, index, (b) => {
              original = b;
              return flipRecord(b, bit);
            }),
          );
          const session = await connect(relay.url, { key: GOOD });
          const err = await rejection(session.request(Buffer.from('hi')));
          session.destroy();
          const remote = await (await relay.connection()).remote;
          const served = await target.served(remote);
          const record = original as Buffer;
          const want = recordCode(record, bit);
          const ok =
            record.length === 21 &&
            (dir === 'c2s'
              ? AFTER_HANDSHAKE_END.includes(err?.code ?? '') &&
                served.error === want &&
                served.messages.length === 0
              : err?.code === want && AFTER_HANDSHAKE_END.includes(served.error ?? ''));
          if (!ok) wrong.push(`bit ${bit}: client ${err?.code}, server ${served.error} (want ${want})`);
          await relay.close();
        },
      );
      expect(wrong).toEqual([]);
      await legit.finish();
    }, 180_000);
  }

  it('records dropped, duplicated, reordered, or spliced in from another connection', async () => {
    const { target, legit } = await underAttack();
    /**
     * Send three messages through a relay with `tamper`, each in a record of its own (messages
     * flushed together would share one batch record), without waiting for the replies: after
     * each, until its reply has passed the relay, the session has failed, or 1 s; what each end saw.
     */
    const exchange = async (tamper: () => Tamper) => {
      const relay = await Relay.start(target.port, tamper);
      const session = await connect(relay.url, { key: GOOD });
      const conn = await relay.connection();
      const replies = () => conn.units.filter((u) => u.dir === 's2c').length - 1; // after ServerHello
      for (const [i, m] of ['one', 'two', 'three'].entries()) {
        if (session.error !== undefined) break;
        session.send(Buffer.from(m));
        for (let t = 0; t < 100 && replies() <= i && session.error === undefined; t++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      const got: string[] = [];
      let err: { code?: string } | undefined;
      try {
        for (let i = 0; i < 3; i++) got.push(((await session.next()) as Buffer).toString());
      } catch (e) {
        err = e as { code?: string };
      }
      if (err === undefined) await session.close();
      else session.destroy();
      const served = await target.served(await (await relay.connection()).remote);
      await relay.close();
      return { got, err: err?.code, served, relay };
    };

    // Dropped: the next record is opened under the wrong sequence number.
    const dropped = await exchange(onUnit('c2s', 2, () => []));
    expect(dropped.served).toEqual({ messages: [], error: 'ERR_RECORD_DECRYPT' });
    expect(AFTER_HANDSHAKE_END).toContain(dropped.err);

    // Duplicated: delivered once, refused the second time. (Whether the reply to "one" leaves
    // before the server fails depends on how the records are cut into reads.)
    const duplicated = await exchange(onUnit('c2s', 2, (b) => [b, b]));
    expect(duplicated.served).toEqual({ messages: ['one'], error: 'ERR_RECORD_DECRYPT' });
    expect(['', 'one']).toContain(duplicated.got.join(','));

    // Reordered: "two" before "one".
    const reordered = await exchange(() => {
      let held: Buffer | undefined;
      return (unit) => {
        if (unit.dir !== 'c2s') return undefined;
        if (unit.index === 2) {
          held = unit.bytes;
          return [];
        }
        if (unit.index === 3) return [unit.bytes, held as Buffer];
        return undefined;
      };
    });
    expect(reordered.served).toEqual({ messages: [], error: 'ERR_RECORD_DECRYPT' });

    // Spliced: the first record of another connection with the same key, in place of this one's.
    const donor = await exchange(() => () => undefined);
    expect(donor.served).toEqual({ messages: ['one', 'two', 'three'], error: undefined });
    const foreign = donor.relay.connections[0]?.units.find((u) => u.dir === 'c2s' && u.index === 2)
      ?.bytes as Buffer;
    const spliced = await exchange(onUnit('c2s', 2, () => [foreign]));
    expect(spliced.served).toEqual({ messages: [], error: 'ERR_RECORD_DECRYPT' });

    // The same towards the client: a reply dropped or duplicated.
    const replyDropped = await exchange(onUnit('s2c', 1, () => []));
    expect(replyDropped.got).toEqual([]);
    expect(replyDropped.err).toBe('ERR_RECORD_DECRYPT');
    const replyDuplicated = await exchange(onUnit('s2c', 1, (b) => [b, b]));
    expect(replyDuplicated.got).toEqual(['one']);
    expect(replyDuplicated.err).toBe('ERR_RECORD_DECRYPT');
    await legit.finish();
  });

  it('truncation without an authenticated close is detected at both ends', async () => {
    const { target, legit } = await underAttack();

    // Cut right after the first request reached the server and its reply came back.
    const r1 = await Relay.start(
      target.port,
      onUnit('s2c', 1, (b, c) => {
        setImmediate(() => c.cut());
        return [b];
      }),
    );
    const s1 = await connect(r1.url, { key: GOOD });
    expect((await s1.request(Buffer.from('before the cut'))).toString()).toBe('before the cut');
    expect((await rejection(s1.next()))?.code).toBe('ERR_TRUNCATED');
    expect(await target.served(await (await r1.connection()).remote)).toEqual({
      messages: ['before the cut'],
      error: 'ERR_TRUNCATED',
    });

    // Cut in the middle of a record.
    const r2 = await Relay.start(
      target.port,
      onUnit('c2s', 2, (b, c) => {
        c.toServer(b.subarray(0, 10));
        c.cut();
        return [];
      }),
    );
    const s2 = await connect(r2.url, { key: GOOD });
    expect((await rejection(s2.request(Buffer.from('cut in half'))))?.code).toBe('ERR_TRUNCATED');
    expect(await target.served(await (await r2.connection()).remote)).toEqual({
      messages: [],
      error: 'ERR_TRUNCATED',
    });

    // The client's close record dropped and the connection ended: the server still knows.
    const r3 = await Relay.start(target.port, () => (unit, c) => {
      if (unit.dir === 'c2s' && unit.index === 3) {
        c.cut();
        return [];
      }
      return undefined;
    });
    const s3 = await connect(r3.url, { key: GOOD });
    expect((await s3.request(Buffer.from('last words'))).toString()).toBe('last words');
    await s3.close();
    expect(await target.served(await (await r3.connection()).remote)).toEqual({
      messages: ['last words'],
      error: 'ERR_TRUNCATED',
    });
    await legit.finish();
  });

  it('downgrades: a stripped key share, another version, changed or unknown flags', async () => {
    const { target, legit } = await underAttack({ requireForwardSecrecy: false });
    const refused = async (tamper: () => Tamper, client: ErrorCode, server: readonly string[]) => {
      const relay = await Relay.start(target.port, tamper);
      const err = await rejection(connect(relay.url, { key: GOOD }).then((s) => s.request(Buffer.from('x'))));
      const auth = await target.auth(await (await relay.connection()).remote);
      expect(err?.code).toBe(client);
      expect(server).toContain(auth.ok ? 'ok' : auth.code);
      await relay.close();
    };
    // The X25519 share stripped and the flag cleared: a well-formed PSK-only hello whose mac1 no
    // longer verifies (the flag is covered by mac1), even on a server that allows PSK-only.
    await refused(
      onUnit('c2s', 0, (b) => {
        const h = Buffer.concat([b.subarray(0, 56), b.subarray(88)]);
        h[6] = 0;
        return [h];
      }),
      'ERR_AUTH_REFUSED',
      ['ERR_AUTH_FAILED'],
    );
    // Version 1 (AES-256-GCM records) is no longer spoken, like any version but 2.
    for (const version of [0, 1, 3, 255]) {
      await refused(
        onUnit('c2s', 0, (b) => {
          const h = Buffer.from(b);
          h[4] = version;
          return [h];
        }),
        'ERR_AUTH_REFUSED',
        ['ERR_UNSUPPORTED_VERSION'],
      );
    }
    await refused(
      onUnit('c2s', 0, (b) => {
        const h = Buffer.from(b);
        h[6] = 0x03;
        return [h];
      }),
      'ERR_AUTH_REFUSED',
      ['ERR_MALFORMED_MESSAGE'],
    );
    // The ServerHello's flag cleared (and its share dropped) on the way back.
    await refused(
      onUnit('s2c', 0, (b) => {
        const h = Buffer.concat([b.subarray(0, 40), b.subarray(72)]);
        h[6] = 0;
        return [h];
      }),
      'ERR_MALFORMED_MESSAGE',
      AFTER_HANDSHAKE_END,
    );
    // The ClientFinished's flag cleared.
    const relay = await Relay.start(
      target.port,
      onUnit('c2s', 1, (b) => {
        const h = Buffer.from(b);
        h[6] = 0;
        return [h];
      }),
    );
    const session = await connect(relay.url, { key: GOOD });
    expect(AFTER_HANDSHAKE_END).toContain((await rejection(session.request(Buffer.from('x'))))?.code);
    expect(await target.auth(await (await relay.connection()).remote)).toMatchObject({
      ok: false,
      code: 'ERR_MALFORMED_MESSAGE',
    });
    await legit.finish();
  });
});

describe('no oracle between an unknown key id and a wrong key', () => {
  it('the server sends the same thing on the wire for both: nothing, then a close', async () => {
    const { target, legit } = await underAttack();
    const observations: Record<'unknown' | 'wrong', string[]> = { unknown: [], wrong: [] };
    for (let i = 0; i < 40; i++) {
      const kind = i % 2 === 0 ? 'unknown' : 'wrong';
      const { hello } = genuineHello(kind === 'unknown' ? UNKNOWN : WRONG, 'x25519');
      const raw = await rawConnect(target.port);
      raw.socket.write(hello);
      const seen = await raw.observed;
      const auth = await target.auth(raw.remote);
      expect(auth).toMatchObject({
        ok: false,
        code: kind === 'unknown' ? 'ERR_UNKNOWN_KEY' : 'ERR_AUTH_FAILED',
      });
      observations[kind].push(`${seen.bytes.toString('hex')}|ended=${seen.ended}|error=${seen.error ?? '-'}`);
    }
    expect(new Set(observations.unknown)).toEqual(new Set(['|ended=true|error=-']));
    expect(new Set(observations.wrong)).toEqual(new Set(['|ended=true|error=-']));
    await legit.finish();
  });
});
