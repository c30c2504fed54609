/**
 * Fuzz properties of the sans-I/O datagram endpoints (src/protocol/datagram/), run by
 * datagram.test.ts and `npm run fuzz`.
 *
 * A genuine exchange is recorded once (deterministic clock and randomness): the datagrams the
 * client sent the server (HELLO, FINISHED, messages, a keepalive, CLOSE) and those the server sent
 * the client (SERVER_HELLO, CONFIRM, replies, a push, CLOSE). Replayed into a fresh endpoint with
 * the same seeds, each stream reproduces the same session, so any change is the only thing that
 * differs. Invariants:
 *
 * - Every datagram, whatever its bytes and the endpoint's state, is either accepted or reported
 *   as exactly one typed `drop` (a documented reason; a handshake error with a documented code),
 *   and nothing throws.
 * - Nothing tampered is accepted: every datagram with an effect (an event other than `drop`) is
 *   byte for byte a genuine one of that direction, or, at a server, another client's authentic
 *   HELLO; every message delivered is one the genuine peer sent, with its counter and reply-to,
 *   and is delivered at most once.
 * - The server answers a datagram with at most as many bytes as it carried (amplification), and
 *   the client answers nothing but a SERVER_HELLO, with the genuine FINISHED.
 * - Junk neither disturbs the session nor moves its window: the genuine rest of the stream gives
 *   exactly the genuine events afterwards (unless the junk carried the visible session id and
 *   attempt of a handshake still in progress, which ends that attempt, as documented).
 */

import fc from 'fast-check';
import { ERROR_CODES, isSesameError } from '../../src/errors.js';
import {
  DatagramClientEndpoint,
  type DatagramClientEvent,
  type DatagramPeer,
  DatagramServerEndpoint,
  type DatagramServerEvent,
  DGRAM_ATTEMPT_AT,
  DGRAM_DATA,
  DGRAM_ENVELOPE_BYTES,
  DGRAM_FINISHED,
  DGRAM_FINISHED_BYTES,
  DGRAM_SERVER_HELLO,
  DGRAM_SESSION_ID_AT,
  type DropReason,
  deterministicEntropy,
} from '../../src/protocol/index.js';
import { ALL_MUTATIONS, bytesArb, mutate, mutationArb } from '../helpers/mutations.js';
import { FUZZ_NOW, invariant, KEY, type Mode, type Role, SERVER_KEYS } from './native.js';
import { defineProperty, type FuzzProperty } from './runner.js';

const PEER: DatagramPeer = { address: '192.0.2.1', port: 40000 };
const MESSAGES = ['first', '', 'a third, longer message', 'x'.repeat(100)];
const REASONS: ReadonlySet<DropReason> = new Set<DropReason>([
  'malformed',
  'unexpected',
  'refused',
  'busy',
  'unknown-session',
  'replayed',
  'too-old',
  'stale',
  'forged',
  'closed',
]);
const CODES: ReadonlySet<string> = new Set(ERROR_CODES);

const now = () => FUZZ_NOW;

function newServer(seed: string): DatagramServerEndpoint {
  return new DatagramServerEndpoint({
    keys: SERVER_KEYS,
    entropy: deterministicEntropy(seed),
    now,
    // Both modes are fuzzed; PSK-only handshakes are the cheap ones.
    requireForwardSecrecy: false,
  });
}

/** A client that has made its first HELLO (the one in the genuine stream, for the same seed). */
function newClient(mode: Mode, seed: string): { client: DatagramClientEndpoint; hello: Buffer } {
  const client = new DatagramClientEndpoint({
    key: KEY,
    forwardSecrecy: mode === 'x25519',
    entropy: deterministicEntropy(seed),
    now,
  });
  return { client, hello: client.hello() };
}

/** What makes a replayed endpoint reproduce a recorded one. */
type Seeds = Pick<Exchange, 'mode' | 'serverSeed' | 'clientSeed'>;

/** One genuine exchange, as the two streams of datagrams and what each end made of its stream. */
interface Exchange {
  readonly mode: Mode;
  readonly serverSeed: string;
  readonly clientSeed: string;
  readonly toServer: readonly Buffer[];
  readonly toClient: readonly Buffer[];
  /** Per datagram of `toServer`, the events of a fresh server fed the stream. */
  readonly serverTrace: readonly string[];
  /** Per datagram of `toClient`, the events of a fresh client fed the stream. */
  readonly clientTrace: readonly string[];
  readonly sessionId: string;
  readonly attempt: number;
}

function only<T>(items: readonly T[], what: string): T {
  invariant(items.length === 1, () => `expected one ${what}, got ${items.length}`);
  return items[0] as T;
}

function sends(events: readonly (DatagramServerEvent | DatagramClientEvent)[]): Buffer[] {
  return events.flatMap((e) => (e.type === 'send' ? [e.datagram] : []));
}

function record(mode: Mode, tag: string): Exchange {
  const serverSeed = `fuzz datagram server ${tag}`;
  const clientSeed = `fuzz datagram client ${tag}`;
  const server = newServer(serverSeed);
  const { client, hello } = newClient(mode, clientSeed);
  const toServer: Buffer[] = [hello];
  const toClient: Buffer[] = [];
  const serverHello = only(sends(server.receive(hello, PEER)), 'SERVER_HELLO');
  toClient.push(serverHello);
  const finished = only(sends(client.receive(serverHello)), 'FINISHED');
  toServer.push(finished);
  const confirm = only(sends(server.receive(finished, PEER)), 'CONFIRM');
  toClient.push(confirm);
  client.receive(confirm);
  invariant(client.state === 'Open', 'the genuine handshake did not open');
  const sessionId = client.sessionId as string;
  for (const m of MESSAGES) {
    const { datagram, counter } = client.send(Buffer.from(m));
    toServer.push(datagram);
    server.receive(datagram, PEER);
    const reply = server.reply(sessionId, counter, Buffer.from(m.split('').reverse().join(''))).datagram;
    toClient.push(reply);
    client.receive(reply);
  }
  const keepalive = client.keepalive();
  toServer.push(keepalive);
  server.receive(keepalive, PEER);
  toClient.push(server.reply(sessionId, 0, Buffer.from('push')).datagram);
  // Both ends close; neither CLOSE is delivered here: each stream is replayed on its own.
  toServer.push(client.close() as Buffer);
  toClient.push(only(server.closeAll(), 'CLOSE').datagram);
  const attempt = hello.readUInt32BE(DGRAM_ATTEMPT_AT);
  const seeds: Seeds = { mode, serverSeed, clientSeed };
  const serverTrace = replay('server', seeds, toServer);
  const clientTrace = replay('client', seeds, toClient);
  return { mode, serverSeed, clientSeed, toServer, toClient, serverTrace, clientTrace, sessionId, attempt };
}

/** One event as text, to compare outcomes. */
function describeEvent(e: DatagramServerEvent | DatagramClientEvent): string {
  switch (e.type) {
    case 'send':
      return `send ${e.datagram.toString('hex')}`;
    case 'established':
      return `established ${e.sessionId}`;
    case 'message':
      return 'sessionId' in e
        ? `message ${e.sessionId} ${e.counter} ${e.data.toString('hex')}`
        : `message ${e.counter} ${e.replyTo} ${e.data.toString('hex')}`;
    case 'session-end':
      return `session-end ${e.sessionId} ${e.why}`;
    case 'drop':
      return `drop ${e.reason}`;
    default:
      return e.type;
  }
}

/** A fresh endpoint for `role` fed `stream`; the events of each datagram, as text. */
function replay(role: Role, x: Seeds, stream: readonly Buffer[]): string[] {
  const feed = endpoint(role, x);
  return stream.map((d) => feed(d).map(describeEvent).join(', '));
}

/** A fresh endpoint for `role` of exchange `x`, as a function from one datagram to its events. */
function endpoint(role: Role, x: Seeds): (d: Buffer) => (DatagramServerEvent | DatagramClientEvent)[] {
  if (role === 'server') {
    const server = newServer(x.serverSeed);
    return (d) => server.receive(d, PEER);
  }
  const { client } = newClient(x.mode, x.clientSeed);
  return (d) => client.receive(d);
}

/**
 * The per-datagram rules: nothing throws, at most one drop and then nothing else, documented
 * reasons and codes, and the answers each role may make.
 */
function checkCall(
  role: Role,
  x: Exchange,
  input: Buffer,
  events: readonly (DatagramServerEvent | DatagramClientEvent)[],
): void {
  const drops = events.filter((e) => e.type === 'drop');
  invariant(drops.length <= 1, () => `${drops.length} drops for one datagram`);
  invariant(
    drops.length === 0 || events.length === 1,
    () => `a drop came with other events: ${events.map(describeEvent)}`,
  );
  for (const d of drops) {
    invariant(REASONS.has(d.reason), () => `undocumented drop reason ${d.reason}`);
    if (d.error !== undefined) {
      invariant(
        isSesameError(d.error) && CODES.has(d.error.code),
        () => `undocumented error ${String(d.error)}`,
      );
    }
  }
  for (const out of sends(events)) {
    if (role === 'server') {
      invariant(
        out.length <= input.length,
        () => `the server answered ${input.length} bytes with ${out.length}`,
      );
      continue;
    }
    // The client's only answer: FINISHED, echoing the SERVER_HELLO's envelope, with the genuine
    // ClientFinished (the ServerHello it answers verified, so it is the genuine one).
    const genuine = x.toServer[1] as Buffer;
    invariant(
      out[0] === DGRAM_FINISHED &&
        out.length === DGRAM_FINISHED_BYTES &&
        out
          .subarray(DGRAM_SESSION_ID_AT, DGRAM_ENVELOPE_BYTES)
          .equals(input.subarray(DGRAM_SESSION_ID_AT, DGRAM_ENVELOPE_BYTES)) &&
        out.subarray(DGRAM_ENVELOPE_BYTES).equals(genuine.subarray(DGRAM_ENVELOPE_BYTES)),
      'the client sent something other than the genuine ClientFinished in a FINISHED',
    );
  }
}

function isJunkFree(events: readonly (DatagramServerEvent | DatagramClientEvent)[]): boolean {
  return events.length === 1 && events[0]?.type === 'drop';
}

// ---------------------------------------------------------------------------------------------
// Exchanges, made once per process

const exchanges = new Map<string, Exchange>();
function exchange(mode: Mode, tag = 'genuine'): Exchange {
  const key = `${mode} ${tag}`;
  let x = exchanges.get(key);
  if (x === undefined) {
    x = record(mode, tag);
    exchanges.set(key, x);
  }
  return x;
}

const modeArb: fc.Arbitrary<Mode> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Mode>('psk') },
  { weight: 1, arbitrary: fc.constant<Mode>('x25519') },
);

function streamOf(x: Exchange, role: Role): readonly Buffer[] {
  return role === 'server' ? x.toServer : x.toClient;
}
function traceOf(x: Exchange, role: Role): readonly string[] {
  return role === 'server' ? x.serverTrace : x.clientTrace;
}

// ---------------------------------------------------------------------------------------------
// Arbitrary datagrams in every state

/** Where junk starts from: nothing, the genuine session id, or a genuine datagram's header. */
type JunkSpec =
  | { readonly kind: 'raw'; readonly bytes: Buffer }
  | {
      readonly kind: 'shaped';
      readonly type: number;
      readonly reserved: number;
      readonly id: 'genuine' | 'zero' | 'random';
      readonly randomId: Buffer;
      readonly attempt: 'genuine' | 'random';
      readonly rest: Buffer;
    }
  | { readonly kind: 'forged'; readonly unit: number; readonly keep: number; readonly seed: Buffer };

const junkArb: fc.Arbitrary<JunkSpec> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('raw' as const), bytes: bytesArb(200) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('shaped' as const),
      type: fc.integer({ min: 0, max: 5 }),
      reserved: fc.constantFrom(0, 0, 0, 1, 0x80),
      id: fc.constantFrom('genuine', 'genuine', 'zero', 'random'),
      randomId: bytesArb(8, 8),
      attempt: fc.constantFrom('genuine', 'random'),
      rest: fc.oneof(
        bytesArb(120),
        fc.integer({ min: 0, max: 200 }).map((n) => Buffer.alloc(n)),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('forged' as const),
      unit: fc.nat(),
      keep: fc.integer({ min: 0, max: 80 }),
      seed: bytesArb(32, 1),
    }),
  },
);

/** The bytes of a junk datagram; `forged` keeps a genuine datagram's start and fills the rest. */
function junkBytes(j: JunkSpec, x: Exchange): Buffer {
  switch (j.kind) {
    case 'raw':
      return j.bytes;
    case 'shaped': {
      const id =
        j.id === 'genuine' ? Buffer.from(x.sessionId, 'hex') : j.id === 'zero' ? Buffer.alloc(8) : j.randomId;
      const out = Buffer.concat([Buffer.alloc(DGRAM_ENVELOPE_BYTES), j.rest]);
      out[0] = j.type;
      out[2] = j.reserved;
      id.copy(out, DGRAM_SESSION_ID_AT);
      if (j.attempt === 'genuine') out.writeUInt32BE(x.attempt, DGRAM_ATTEMPT_AT);
      return out;
    }
    case 'forged': {
      const all = [...x.toServer, ...x.toClient];
      const genuine = all[j.unit % all.length] as Buffer;
      const out = Buffer.from(genuine);
      for (let i = Math.min(j.keep, out.length - 1), k = 0; i < out.length; i++, k++) {
        out[i] = (out[i] as number) ^ ((j.seed[k % j.seed.length] as number) | 1);
      }
      return out;
    }
  }
}

/** Whether `d` can end the handshake attempt in progress at `role` (it names the live attempt). */
function endsAttempt(role: Role, x: Exchange, d: Buffer): boolean {
  if (d.length < DGRAM_ENVELOPE_BYTES || d.readUInt32BE(DGRAM_ATTEMPT_AT) !== x.attempt) return false;
  if (role === 'client') return d[0] === DGRAM_SERVER_HELLO;
  return (
    d[0] === DGRAM_FINISHED &&
    d.length === DGRAM_FINISHED_BYTES &&
    d.toString('hex', DGRAM_SESSION_ID_AT, DGRAM_SESSION_ID_AT + 8) === x.sessionId
  );
}

function junkProperty(role: Role): FuzzProperty {
  return defineProperty(
    `datagram ${role}: arbitrary datagrams in every state are dropped with a reason and disturb nothing`,
    0,
    fc.record({
      mode: modeArb,
      prefix: fc.nat(),
      junk: fc.array(junkArb, { minLength: 1, maxLength: 4 }),
    }),
    ({ mode, prefix, junk }) => {
      const x = exchange(mode);
      const stream = streamOf(x, role);
      const trace = traceOf(x, role);
      const k = prefix % (stream.length + 1);
      const feed = endpoint(role, x);
      for (let i = 0; i < k; i++) {
        const d = stream[i] as Buffer;
        invariant(feed(d).map(describeEvent).join(', ') === trace[i], () => `genuine datagram ${i} changed`);
      }
      let attemptEnded = false;
      for (const j of junk) {
        const d = junkBytes(j, x);
        const events = feed(d);
        checkCall(role, x, d, events);
        invariant(isJunkFree(events), () => `junk was accepted: ${events.map(describeEvent)}`);
        // The attempt is live until the genuine SERVER_HELLO (client) or FINISHED (server).
        if (k === (role === 'client' ? 0 : 1) && endsAttempt(role, x, d)) attemptEnded = true;
      }
      if (attemptEnded) return;
      for (let i = k; i < stream.length; i++) {
        const d = stream[i] as Buffer;
        const got = feed(d).map(describeEvent).join(', ');
        invariant(
          got === trace[i],
          () => `after junk, genuine datagram ${i} gave "${got}", not "${trace[i]}"`,
        );
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Mutated genuine streams

const MUTATIONS = mutationArb(ALL_MUTATIONS);

function mutationProperty(role: Role): FuzzProperty {
  return defineProperty(
    `datagram ${role}: mutated genuine streams (bits, bytes, truncation, drops, duplicates, reorders, splices, reflections) accept only genuine datagrams, once`,
    0,
    fc.record({ mode: modeArb, mutations: fc.array(MUTATIONS, { minLength: 1, maxLength: 4 }) }),
    ({ mode, mutations }) => {
      const x = exchange(mode);
      const other = exchange(mode, 'other');
      const genuine = streamOf(x, role);
      const opposite = role === 'server' ? x.toClient : x.toServer;
      let units = [...genuine];
      for (const m of mutations) units = mutate(units, m, streamOf(other, role), opposite);
      // What may have an effect: the genuine datagrams and, at a server, another client's HELLO.
      const effective = new Set(genuine.map((d) => d.toString('hex')));
      if (role === 'server') effective.add((other.toServer[0] as Buffer).toString('hex'));
      // The envelope of a handshake datagram is not authenticated (docs/protocol-udp.md, section
      // 16): around a genuine handshake message it may be changed, and the answer follows it. A
      // changed session id then gives keys that open nothing, so nothing but that answer follows.
      const messages = new Set(
        [...genuine, ...(role === 'server' ? [other.toServer[0] as Buffer] : [])]
          .filter((d) => d[0] !== DGRAM_DATA)
          .map((d) => d.toString('hex', DGRAM_ENVELOPE_BYTES)),
      );
      const genuineEvents = new Set(traceOf(x, role).flatMap((t) => t.split(', ')));
      const delivered = new Set<string>();
      const feed = endpoint(role, x);
      const trace: string[] = [];
      for (const d of units) {
        const events = feed(d);
        checkCall(role, x, d, events);
        trace.push(events.map(describeEvent).join(', '));
        if (isJunkFree(events)) continue;
        // Any other outcome, a silent one included (a keepalive), is an effect.
        if (!effective.has(d.toString('hex'))) {
          invariant(
            events.length > 0 &&
              events.every((e) => e.type === 'send') &&
              d.length > DGRAM_ENVELOPE_BYTES &&
              messages.has(d.toString('hex', DGRAM_ENVELOPE_BYTES)),
            () => `a changed datagram had an effect: ${events.map(describeEvent)}`,
          );
        }
        for (const e of events) {
          if (e.type === 'send') continue; // answers: checked by checkCall
          const text = describeEvent(e);
          invariant(genuineEvents.has(text), () => `an event the genuine stream never gave: ${text}`);
          if (e.type === 'message' || e.type === 'session-end' || e.type === 'close') {
            invariant(!delivered.has(text), () => `delivered twice: ${text}`);
            delivered.add(text);
          }
        }
      }
      // An unchanged stream (a mutation can be a no-op) gives exactly the genuine events.
      if (units.length === genuine.length && units.every((d, i) => d.equals(genuine[i] as Buffer))) {
        const want = traceOf(x, role);
        invariant(
          trace.every((t, i) => t === want[i]),
          'the genuine stream gave other events',
        );
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------
// The suite and its CI counts (about 8 s in all on one idle core).

export const datagramProperties: readonly FuzzProperty[] = [
  { ...junkProperty('server'), runs: 8_000 },
  { ...junkProperty('client'), runs: 8_000 },
  { ...mutationProperty('server'), runs: 8_000 },
  { ...mutationProperty('client'), runs: 8_000 },
];
