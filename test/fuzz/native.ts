/**
 * Harness for fuzzing the native protocol core: deterministic connections and transcripts, and
 * `drive()`, which feeds chunks to a connection and checks every invariant along the way.
 *
 * Everything here is deterministic (fixed clock, seeded randomness, fixed X25519 key pairs), so a
 * fresh server fed a transcript's client bytes reproduces the original handshake exactly: the
 * records of the transcript open, and any change made to them is the only thing that differs.
 */

import { createHash } from 'node:crypto';
import { ERROR_CODES, type ErrorCode, PeerError, type SesameError } from '../../src/errors.js';
import { ByteQueue } from '../../src/protocol/byte-queue.js';
import type { ConnectionEvent, ProtocolConnection } from '../../src/protocol/channel.js';
import {
  CLIENT_HELLO_X25519_BYTES,
  ClientConnection,
  DEFAULT_REPLAY_CACHE_ENTRIES,
  deterministicEntropy,
  type Entropy,
  MAX_RECORD_BODY_BYTES,
  MAX_RECORD_PAYLOAD_BYTES,
  type PresharedKey,
  RECORD_HEADER_BYTES,
  ServerConnection,
  ServerContext,
  type X25519KeyPair,
} from '../../src/protocol/index.js';
import { ReplayCache } from '../../src/protocol/replay-cache.js';

/** The fixed clock of every fuzzed connection. */
export const FUZZ_NOW = Date.UTC(2026, 10, 29, 19, 26, 43);
/** Reassembly limit of fuzzed connections: a few fragments, so the limit is reachable. */
export const FUZZ_MAX_MESSAGE_BYTES = 3 * MAX_RECORD_PAYLOAD_BYTES + 100;

export const KEY: PresharedKey = {
  id: '0123456789abcdef',
  principal: 'fuzz',
  secret: Buffer.alloc(32, 0x5a),
};
export const REVOKED: PresharedKey = {
  id: '1111111111111111',
  principal: 'revoked',
  secret: Buffer.alloc(32, 0x11),
  revoked: true,
};
export const EXPIRED: PresharedKey = {
  id: '2222222222222222',
  principal: 'expired',
  secret: Buffer.alloc(32, 0x22),
  notAfter: new Date(FUZZ_NOW - 1),
};
export const FUTURE: PresharedKey = {
  id: '3333333333333333',
  principal: 'future',
  secret: Buffer.alloc(32, 0x33),
  notBefore: new Date(FUZZ_NOW + 1),
};
/** Every key the fuzzed servers hold. */
export const SERVER_KEYS: readonly PresharedKey[] = [KEY, REVOKED, EXPIRED, FUTURE];

// Generating X25519 pairs from a seed is slow; each side reuses one fixed pair.
const SERVER_PAIR = deterministicEntropy('fuzz server share').x25519();
const CLIENT_PAIR = deterministicEntropy('fuzz client share').x25519();

/** The client's fixed X25519 public key (for reflection inputs). */
export const CLIENT_SHARE: Buffer = CLIENT_PAIR.publicKey;

function fixedEntropy(seed: string, pair: X25519KeyPair): Entropy {
  const d = deterministicEntropy(seed);
  // A copy each time: a connection wipes its ephemeral scalar once it has used it.
  return {
    bytes: (n) => d.bytes(n),
    x25519: () => ({ privateKey: Buffer.from(pair.privateKey), publicKey: pair.publicKey }),
  };
}

/** Deterministic entropy that can start over, for a server context reused across cases. */
class ReplayableEntropy implements Entropy {
  private stream: Entropy;
  constructor(
    private readonly seed: string,
    private readonly pair: X25519KeyPair,
  ) {
    this.stream = deterministicEntropy(seed);
  }
  bytes(n: number): Buffer {
    return this.stream.bytes(n);
  }
  x25519(): X25519KeyPair {
    // A copy each time: a connection wipes its ephemeral scalar once it has used it.
    return { privateKey: Buffer.from(this.pair.privateKey), publicKey: this.pair.publicKey };
  }
  /** Start over, then skip what a new context draws first (its dummy key). */
  restart(): void {
    this.stream = deterministicEntropy(this.seed);
    this.stream.bytes(32);
  }
}

export type Mode = 'psk' | 'x25519';
export type Role = 'server' | 'client';
export type NativeConnection = ServerConnection | ClientConnection;

// Building a context derives the secrets of every key, which costs more than most fuzz cases:
// one context per policy is reused, put back to its initial state (randomness and replay cache)
// before each use, so that every use behaves exactly as a new context.
const contexts = new Map<boolean, { ctx: ServerContext; entropy: ReplayableEntropy }>();

/** A server context in its initial state: same nonces and key share every time, empty replay cache. */
export function newServerContext(opts: { requireForwardSecrecy?: boolean } = {}): ServerContext {
  const requireForwardSecrecy = opts.requireForwardSecrecy ?? false;
  let entry = contexts.get(requireForwardSecrecy);
  if (entry === undefined) {
    const entropy = new ReplayableEntropy('fuzz server', SERVER_PAIR);
    const ctx = new ServerContext({
      keys: SERVER_KEYS,
      entropy,
      now: () => FUZZ_NOW,
      requireForwardSecrecy,
      maxMessageBytes: FUZZ_MAX_MESSAGE_BYTES,
    });
    entry = { ctx, entropy };
    contexts.set(requireForwardSecrecy, entry);
  }
  entry.entropy.restart();
  (entry.ctx as { replayCache: ReplayCache }).replayCache = new ReplayCache(DEFAULT_REPLAY_CACHE_ENTRIES);
  return entry.ctx;
}

/** A fresh server, identical every time. */
export function newServer(): ServerConnection {
  return new ServerConnection(newServerContext());
}

/** A fresh client, identical every time; its ClientHello is already taken from its output. */
export function newClient(mode: Mode, seed = 'fuzz client'): { client: ClientConnection; hello: Buffer } {
  const client = new ClientConnection({
    key: KEY,
    entropy: fixedEntropy(seed, CLIENT_PAIR),
    now: () => FUZZ_NOW,
    forwardSecrecy: mode === 'x25519',
    maxMessageBytes: FUZZ_MAX_MESSAGE_BYTES,
  });
  return { client, hello: Buffer.concat(client.takeOutput()) };
}

/** What one side sends in a transcript, unit by unit (a handshake message or a record each). */
export interface Transcript {
  readonly mode: Mode;
  /** Client to server: ClientHello, ClientFinished, then records. */
  readonly c2s: readonly Buffer[];
  /** Server to client: ServerHello, then records. */
  readonly s2c: readonly Buffer[];
  /** What a fresh server reports when fed all of c2s (established, messages, pings, close). */
  readonly serverTrace: readonly string[];
  readonly clientTrace: readonly string[];
}

function take(conn: NativeConnection): Buffer[] {
  return conn.takeOutput();
}

/**
 * A deterministic transcript with every record type: messages (empty, small, and one fragmented
 * across two records), ping, key updates (with and without a request), and close at the end.
 */
export function makeTranscript(mode: Mode, clientSeed = 'fuzz client'): Transcript {
  const server = newServer();
  const { client, hello } = newClient(mode, clientSeed);
  server.receive(hello);
  const [sh] = take(server) as [Buffer];
  client.receive(sh);
  const [cf] = take(client) as [Buffer];
  server.receive(cf);
  if (!server.isOpen || !client.isOpen) throw new Error('transcript handshake failed');

  server.send(Buffer.from('welcome'));
  server.ping(Buffer.from('server ping'));
  server.send(Buffer.alloc(300, 7));
  server.updateKeys(true);
  server.send(Buffer.alloc(0));
  const s2c = take(server);

  client.send(Buffer.from('hello'));
  client.ping(Buffer.from('client ping'));
  client.updateKeys(true);
  client.send(Buffer.alloc(MAX_RECORD_PAYLOAD_BYTES + 10, 0x42)); // a fragment and a record
  client.send(Buffer.alloc(0));
  client.updateKeys(false);
  client.send(Buffer.from('last'));
  client.close();
  const c2sRecords = take(client);

  // The server's own reactions (a pong, a key update answering the request), then its close.
  server.receive(Buffer.concat(c2sRecords));
  server.close();
  s2c.push(...take(server));

  const c2s = [hello, cf, ...c2sRecords];
  const s2cAll = [sh, ...s2c];
  const serverTrace = drive(newServer(), 'server', c2s, { end: true }).trace;
  const clientTrace = drive(newClient(mode, clientSeed).client, 'client', s2cAll, { end: true }).trace;
  return { mode, c2s, s2c: s2cAll, serverTrace, clientTrace };
}

// ---------------------------------------------------------------------------------------------
// Invariants

/** Every code a peer's bytes may make a server fail with (the end of input is checked apart). */
export const SERVER_INPUT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_MALFORMED_MESSAGE',
  'ERR_UNSUPPORTED_VERSION',
  'ERR_UNEXPECTED_MESSAGE',
  'ERR_AUTH_FAILED',
  'ERR_UNKNOWN_KEY',
  'ERR_KEY_REVOKED',
  'ERR_KEY_EXPIRED',
  'ERR_KEY_NOT_YET_VALID',
  'ERR_STALE_HELLO',
  'ERR_REPLAYED_HELLO',
  'ERR_BAD_KEY_SHARE',
  'ERR_FORWARD_SECRECY_REQUIRED',
  'ERR_RECORD_LENGTH',
  'ERR_RECORD_DECRYPT',
  'ERR_RECORD_TYPE',
  'ERR_MESSAGE_TOO_LARGE',
  'ERR_DATA_AFTER_CLOSE',
]);

/** Every code a peer's bytes may make a client fail with. */
export const CLIENT_INPUT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_MALFORMED_MESSAGE',
  'ERR_UNSUPPORTED_VERSION',
  'ERR_UNEXPECTED_MESSAGE',
  'ERR_REFLECTED_MESSAGE',
  'ERR_BAD_KEY_SHARE',
  'ERR_SERVER_AUTH_FAILED',
  'ERR_RECORD_LENGTH',
  'ERR_RECORD_DECRYPT',
  'ERR_RECORD_TYPE',
  'ERR_MESSAGE_TOO_LARGE',
  'ERR_DATA_AFTER_CLOSE',
]);

/** Largest whole unit a connection waits for: a full record. */
const RECORD_BYTES = RECORD_HEADER_BYTES + MAX_RECORD_BODY_BYTES;
/** Largest handshake message. */
const HANDSHAKE_BYTES = CLIENT_HELLO_X25519_BYTES;

/** An invariant failed: the message says which and with what. */
export class InvariantError extends Error {}

export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === 'string' ? message : message());
}

/** The bytes a ByteQueue holds: unread, and retained (whole chunks still referenced). */
export function queueUsage(queue: unknown): { unread: number; retained: number } {
  invariant(queue instanceof ByteQueue, 'the connection has no ByteQueue named "input" (internals changed?)');
  const chunks = (queue as unknown as { chunks?: unknown }).chunks;
  invariant(Array.isArray(chunks), 'the ByteQueue has no chunk list (internals changed?)');
  let retained = 0;
  for (const c of chunks as Buffer[]) retained += c.length;
  return { unread: queue.length, retained };
}

function inputQueue(conn: ProtocolConnection): unknown {
  return (conn as unknown as { input?: unknown }).input;
}

function describeEvent(e: ConnectionEvent): string {
  const digest = (b: Buffer) =>
    b.length <= 48 ? b.toString('hex') : `${b.length}:${createHash('sha1').update(b).digest('hex')}`;
  switch (e.type) {
    case 'established':
      return `established ${e.session.keyId ?? '-'} ${e.session.principal ?? '-'} fs=${e.session.forwardSecrecy}`;
    case 'message':
      return `message ${digest(e.data)}`;
    case 'ping':
    case 'pong':
      return `${e.type} ${digest(e.payload)}`;
    case 'close':
      return 'close';
    case 'error':
      return `error ${e.error.code}`;
  }
}

/** What driving a connection produced. */
export interface DriveResult {
  /** Every event but errors, described. */
  readonly trace: string[];
  /** The code the connection failed with, if it did. */
  readonly code: ErrorCode | undefined;
  /** Every byte the connection wrote after the prefix. */
  readonly output: Buffer;
  /** The bytes it wrote before it was established. */
  readonly outputBeforeEstablished: Buffer;
  readonly established: boolean;
  /** Bytes fed, in all. */
  readonly input: number;
}

export interface DriveOptions {
  /** Signal the end of input after the last chunk (when the connection has not failed). */
  readonly end?: boolean;
  /** Largest bytes a fragment buffer may hold (default FUZZ_MAX_MESSAGE_BYTES). */
  readonly maxMessageBytes?: number;
}

function checkSticky(conn: NativeConnection, err: SesameError): void {
  invariant(conn.error === err, 'the connection does not keep its error');
  const calls: [string, () => unknown][] = [
    ['receive', () => conn.receive(Buffer.alloc(1))],
    ['receiveEnd', () => conn.receiveEnd()],
    ['send', () => conn.send(Buffer.alloc(1))],
    ['close', () => conn.close()],
  ];
  for (const [name, call] of calls) {
    let thrown: unknown;
    try {
      call();
    } catch (e) {
      thrown = e;
    }
    invariant(thrown === err, `${name}() after a failure did not throw the same error object`);
  }
}

/**
 * Feed `chunks` to `conn` one `receive` at a time, checking after each call:
 *
 * - `receive` never throws while the connection is alive; after it failed, every call throws the
 *   same error object;
 * - an `error` event is the last event ever, and carries a PeerError whose code is in ERROR_CODES
 *   and in the codes documented for bad input at this role (never ERR_INVALID_STATE, which is
 *   what an unexpected internal exception becomes);
 * - `established` comes once, before anything else; nothing follows `close` but
 *   ERR_DATA_AFTER_CLOSE;
 * - memory: the input queue holds less than one whole unit (a record, or a handshake message
 *   before the handshake completes) unread, and retains no more than that plus one chunk; a
 *   fragmented message never exceeds the reassembly limit;
 * - the connection writes no more than it received plus one handshake message.
 */
export function drive(
  conn: NativeConnection,
  role: Role,
  chunks: readonly Buffer[],
  options: DriveOptions = {},
): DriveResult {
  const codes = role === 'server' ? SERVER_INPUT_CODES : CLIENT_INPUT_CODES;
  const maxMessage = options.maxMessageBytes ?? FUZZ_MAX_MESSAGE_BYTES;
  const trace: string[] = [];
  const output: Buffer[] = [];
  const before: Buffer[] = [];
  let established = conn.isOpen;
  let closed = conn.peerClosed;
  let failure: SesameError | undefined = conn.error;
  // Whatever the queue already retains counts as one earlier read.
  let largestChunk = queueUsage(inputQueue(conn)).retained;
  let input = 0;

  const check = (events: ConnectionEvent[], atEnd: boolean): void => {
    for (const [i, e] of events.entries()) {
      invariant(failure === undefined, 'an event after the error event');
      if (e.type === 'error') {
        invariant(i === events.length - 1, 'the error event is not the last');
        invariant(e.error instanceof PeerError, () => `error is not a PeerError: ${String(e.error)}`);
        invariant(ERROR_CODES.includes(e.error.code), `unknown error code ${e.error.code}`);
        const end: ErrorCode = role === 'client' && !established ? 'ERR_AUTH_REFUSED' : 'ERR_TRUNCATED';
        invariant(
          atEnd ? e.error.code === end : codes.has(e.error.code),
          () => `${role} failed with ${e.error.code} (${e.error.message})${atEnd ? ' at end of input' : ''}`,
        );
        failure = e.error;
        continue;
      }
      invariant(!atEnd, `a ${e.type} event at the end of input`);
      invariant(!closed, `a ${e.type} event after close`);
      if (e.type === 'established') {
        invariant(!established, 'established twice');
        invariant(
          e.session.keyId === KEY.id && e.session.principal === KEY.principal,
          'established with another key',
        );
        established = true;
      } else {
        invariant(established, `a ${e.type} event before the handshake completed`);
        if (e.type === 'close') closed = true;
      }
      trace.push(describeEvent(e));
    }
  };

  const collect = (): void => {
    for (const b of conn.takeOutput()) {
      output.push(b);
      if (!established) before.push(b);
    }
  };

  for (const chunk of chunks) {
    if (failure !== undefined) break;
    largestChunk = Math.max(largestChunk, chunk.length);
    input += chunk.length;
    let events: ConnectionEvent[];
    try {
      events = conn.receive(chunk);
    } catch (err) {
      throw new InvariantError(`receive() threw on a live connection: ${String(err)}`);
    }
    check(events, false);
    collect();
    if (failure === undefined) {
      const { unread, retained } = queueUsage(inputQueue(conn));
      const limit = established ? RECORD_BYTES - 1 : HANDSHAKE_BYTES - 1;
      invariant(unread <= limit, () => `${unread} bytes left unread (limit ${limit})`);
      invariant(
        retained <= unread + largestChunk,
        () => `the input queue retains ${retained} bytes for ${unread} unread (largest read ${largestChunk})`,
      );
      // The message being reassembled belongs to the Open state; no other state holds one.
      const state = (conn as unknown as { state?: { name?: unknown; fragmentBytes?: unknown } }).state;
      invariant(typeof state?.name === 'string', 'no state field (internals changed?)');
      const fragments = state.name === 'Open' ? state.fragmentBytes : 0;
      invariant(typeof fragments === 'number', 'no fragmentBytes in the Open state (internals changed?)');
      invariant(fragments <= maxMessage, `${fragments} fragment bytes held (limit ${maxMessage})`);
    } else {
      invariant(queueUsage(inputQueue(conn)).unread === 0, 'a failed connection still holds input');
    }
  }

  if (options.end === true && failure === undefined) {
    let events: ConnectionEvent[];
    try {
      events = conn.receiveEnd();
    } catch (err) {
      throw new InvariantError(`receiveEnd() threw on a live connection: ${String(err)}`);
    }
    const cleanEnd = closed && queueUsage(inputQueue(conn)).unread === 0;
    invariant(
      cleanEnd ? events.length === 0 : events.length === 1,
      () => `receiveEnd() gave ${events.length} events (peer closed cleanly: ${cleanEnd})`,
    );
    check(events, true);
    collect();
  }

  const out = Buffer.concat(output);
  const extra = role === 'server' ? HANDSHAKE_BYTES : 40;
  invariant(
    out.length <= input + extra,
    () => `${role} wrote ${out.length} bytes in reply to ${input} (amplification)`,
  );
  if (failure !== undefined) checkSticky(conn, failure);
  return {
    trace,
    code: failure?.code,
    output: out,
    outputBeforeEstablished: Buffer.concat(before),
    established,
    input,
  };
}

/** Two runs over the same bytes, cut differently, must agree on everything. */
export function sameOutcome(a: DriveResult, b: DriveResult): void {
  invariant(a.code === b.code, () => `outcome depends on how the input is cut: ${a.code} vs ${b.code}`);
  invariant(
    a.trace.length === b.trace.length && a.trace.every((t, i) => t === b.trace[i]),
    () => `events depend on how the input is cut:\n${a.trace.join('\n')}\nvs\n${b.trace.join('\n')}`,
  );
  invariant(a.output.equals(b.output), 'output depends on how the input is cut');
}

/** Nothing delivered that the genuine sender did not send, in that order: a prefix of `reference`. */
export function isPrefixOf(trace: readonly string[], reference: readonly string[]): void {
  invariant(
    trace.length <= reference.length,
    () => `more events than the genuine stream: ${trace.join(', ')}`,
  );
  for (const [i, t] of trace.entries()) {
    invariant(t === reference[i], () => `event ${i} is "${t}", the genuine stream has "${reference[i]}"`);
  }
}

/** Split `bytes` at `cuts` (any numbers; taken modulo the length, sorted; repeats give empty chunks). */
export function split(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const at = cuts.map((c) => c % (bytes.length + 1)).sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  out.push(bytes.subarray(from));
  return out;
}
