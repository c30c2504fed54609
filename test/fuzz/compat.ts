/**
 * Fuzzing the compatibility profiles' parsers (src/compat/): python-mp handshake and framing,
 * seed / seed-hex challenge-response, the none profile's line and chunk framings, and
 * `takeMpFrame` on its own.
 *
 * Invariants (on top of the ProtocolConnection contract): `receive` never throws on a live
 * connection; a failure is one `error` event carrying a PeerError with a documented code, and is
 * sticky; `established` comes once and first; buffers stay bounded (the handshake input by the
 * largest handshake frame, the framings by the message limit, retained chunks by one read more);
 * the outcome does not depend on how the input is cut (for chunk framings, the bytes delivered do
 * not); a server only authenticates a client whose stream starts with the genuine answer.
 */

import fc from 'fast-check';
import type { CompatConnection } from '../../src/compat/common.js';
import { MP_SHORT_LENGTH_MAX, takeMpFrame } from '../../src/compat/framing.js';
import { NoneConnection, type NoneFraming } from '../../src/compat/none.js';
import {
  MP_HANDSHAKE_MAX_BYTES,
  type MpChallengeFormat,
  PythonMpConnection,
} from '../../src/compat/python-mp.js';
import { SeedConnection, type SeedDigest } from '../../src/compat/seed.js';
import { ERROR_CODES, type ErrorCode, isSesameError, PeerError, type SesameError } from '../../src/errors.js';
import { ByteQueue } from '../../src/protocol/byte-queue.js';
import type { ConnectionEvent } from '../../src/protocol/channel.js';
import { deterministicEntropy } from '../../src/protocol/index.js';
import { bytesArb, mutate, mutationArb } from '../helpers/mutations.js';
import { InvariantError, invariant, queueUsage, split } from './native.js';
import { defineProperty, type FuzzProperty } from './runner.js';

type Role = 'server' | 'client';
type Profile = 'python-mp' | 'seed' | 'seed-hex' | 'none-line' | 'none-chunk';

/** Small limits, so that the limits are reachable by fuzzed inputs. */
const MAX_MESSAGE = 4096;
const MAX_CHUNK = 512;
const SECRET = Buffer.from('fuzzing secret');
const WRONG_SECRET = Buffer.from('another secret');

interface Config {
  readonly profile: Profile;
  /** python-mp: the challenge format each end issues; seed: the digest. */
  readonly variant: string;
  readonly secret?: Buffer;
}

function create(role: Role, c: Config): CompatConnection {
  const secret = c.secret ?? SECRET;
  switch (c.profile) {
    case 'python-mp':
      return new PythonMpConnection(role, {
        secret,
        entropy: deterministicEntropy(`mp ${role}`),
        challenge: c.variant as MpChallengeFormat,
        maxMessageBytes: MAX_MESSAGE,
      });
    case 'seed':
    case 'seed-hex':
      return new SeedConnection(role, {
        secret,
        digest: c.variant as SeedDigest,
        answer: c.profile === 'seed-hex' ? 'hex' : 'raw',
        entropy: deterministicEntropy(`seed ${role}`),
        maxMessageBytes: MAX_MESSAGE,
        maxChunkBytes: MAX_CHUNK,
      });
    case 'none-line':
    case 'none-chunk':
      return new NoneConnection(role, {
        framing: (c.profile === 'none-line' ? 'line' : 'chunk') satisfies NoneFraming,
        maxMessageBytes: MAX_MESSAGE,
        maxChunkBytes: MAX_CHUNK,
      });
  }
}

/** A fresh connection with what it writes at construction (a challenge) already taken. */
function fresh(role: Role, c: Config): { conn: CompatConnection; first: Buffer } {
  const conn = create(role, c);
  // Started as the contract asks: only `none`, open from construction, reports anything.
  const started = conn.start().map((e) => e.type);
  const openAtOnce = c.profile === 'none-line' || c.profile === 'none-chunk';
  invariant(
    started.join() === (openAtOnce ? 'established' : '') && conn.start().length === 0,
    () => `start() of ${c.profile} ${role} gave [${started.join()}]`,
  );
  return { conn, first: Buffer.concat(conn.takeOutput()) };
}

const INPUT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_MALFORMED_MESSAGE',
  'ERR_UNEXPECTED_MESSAGE',
  'ERR_AUTH_FAILED',
  'ERR_AUTH_REFUSED',
  'ERR_REFLECTED_MESSAGE',
  'ERR_MESSAGE_TOO_LARGE',
]);
const END_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_TRUNCATED',
  'ERR_AUTH_REFUSED',
  'ERR_AUTH_FAILED',
  'ERR_SERVER_AUTH_FAILED',
]);

/** Largest unread handshake input for a profile and role. */
function handshakeLimit(c: Config, role: Role): number {
  if (c.profile === 'python-mp') return 12 + MP_HANDSHAKE_MAX_BYTES - 1;
  if (c.profile === 'seed' || c.profile === 'seed-hex') return role === 'client' ? 31 : 127;
  return 0;
}

interface CompatResult {
  readonly events: string[];
  /** The message bytes delivered, concatenated. */
  readonly delivered: Buffer;
  readonly code: ErrorCode | undefined;
  readonly established: boolean;
  readonly output: Buffer;
}

function framingUsage(conn: CompatConnection): number {
  const framing = (conn as unknown as { framing?: unknown }).framing;
  if (framing === undefined) return 0;
  const f = framing as { input?: unknown; partBytes?: unknown };
  if (f.input !== undefined) return queueUsage(f.input).unread;
  if (typeof f.partBytes === 'number') return f.partBytes;
  return 0;
}

function checkSticky(conn: CompatConnection, err: SesameError): void {
  invariant(conn.error === err, 'the connection does not keep its error');
  for (const call of [
    () => conn.receive(Buffer.alloc(1)),
    () => conn.receiveEnd(),
    () => conn.send(Buffer.alloc(1)),
  ]) {
    let thrown: unknown;
    try {
      call();
    } catch (e) {
      thrown = e;
    }
    invariant(thrown === err, 'a call after the failure did not throw the same error object');
  }
}

/** Feed `chunks` to a compat connection, checking the invariants after every call. */
function driveCompat(
  conn: CompatConnection,
  c: Config,
  role: Role,
  chunks: readonly Buffer[],
  end: boolean,
): CompatResult {
  const events: string[] = [];
  const delivered: Buffer[] = [];
  const output: Buffer[] = [];
  // `established` was reported already when start() did (none) or an earlier drive authenticated.
  let established = conn.session !== undefined;
  let closed = false;
  let failure: SesameError | undefined = conn.error;
  let largest = queueUsage((conn as unknown as { input?: unknown }).input).retained;
  let input = 0;
  const check = (list: ConnectionEvent[], atEnd: boolean): void => {
    for (const [i, e] of list.entries()) {
      invariant(failure === undefined, 'an event after the error event');
      if (e.type === 'error') {
        invariant(i === list.length - 1, 'the error event is not the last');
        invariant(e.error instanceof PeerError, () => `error is not a PeerError: ${String(e.error)}`);
        invariant(ERROR_CODES.includes(e.error.code), `unknown code ${e.error.code}`);
        invariant(
          (atEnd ? END_CODES : INPUT_CODES).has(e.error.code),
          () =>
            `${c.profile} ${role} failed with ${e.error.code}${atEnd ? ' at end of input' : ''}: ${e.error.message}`,
        );
        failure = e.error;
        events.push(`error ${e.error.code}`);
        continue;
      }
      invariant(!closed, `a ${e.type} event after close`);
      if (e.type === 'established') {
        invariant(!established, 'established twice');
        established = true;
      } else {
        invariant(established, `a ${e.type} event before authentication`);
        if (e.type === 'close') {
          invariant(atEnd, 'close before the end of input');
          closed = true;
        }
        if (e.type === 'message') {
          invariant(e.data.length <= MAX_MESSAGE, () => `a ${e.data.length}-byte message over the limit`);
          delivered.push(e.data);
        }
      }
      events.push(e.type === 'message' ? `message ${e.data.toString('hex')}` : e.type);
    }
  };
  for (const chunk of chunks) {
    if (failure !== undefined) break;
    largest = Math.max(largest, chunk.length);
    input += chunk.length;
    let list: ConnectionEvent[];
    try {
      list = conn.receive(chunk);
    } catch (err) {
      throw new InvariantError(`receive() threw on a live connection: ${String(err)}`);
    }
    check(list, false);
    output.push(...conn.takeOutput());
    const { unread, retained } = queueUsage((conn as unknown as { input?: unknown }).input);
    if (failure === undefined) {
      const limit = conn.session === undefined ? handshakeLimit(c, role) : 0;
      invariant(unread <= limit, () => `${unread} handshake bytes unread (limit ${limit})`);
      invariant(retained <= unread + largest, () => `${retained} bytes retained for ${unread} unread`);
      const framed = framingUsage(conn);
      invariant(framed <= MAX_MESSAGE + 12, () => `the framing holds ${framed} bytes`);
    }
  }
  if (end && failure === undefined) {
    let list: ConnectionEvent[];
    try {
      list = conn.receiveEnd();
    } catch (err) {
      throw new InvariantError(`receiveEnd() threw on a live connection: ${String(err)}`);
    }
    check(list, true);
    output.push(...conn.takeOutput());
  }
  const out = Buffer.concat(output);
  invariant(out.length <= input + 256, () => `wrote ${out.length} bytes in reply to ${input}`);
  if (failure !== undefined) checkSticky(conn, failure);
  return { events, delivered: Buffer.concat(delivered), code: failure?.code, established, output: out };
}

function sameCompatOutcome(c: Config, a: CompatResult, b: CompatResult): void {
  invariant(a.code === b.code, () => `the outcome depends on the cuts: ${a.code} vs ${b.code}`);
  invariant(a.established === b.established, 'authentication depends on the cuts');
  invariant(a.delivered.equals(b.delivered), 'the bytes delivered depend on the cuts');
  invariant(a.output.equals(b.output), 'the output depends on the cuts');
  // Chunk framings deliver one message per read by design: only the bytes must agree.
  const chunked = c.profile === 'seed' || c.profile === 'seed-hex' || c.profile === 'none-chunk';
  if (!chunked) {
    invariant(
      a.events.length === b.events.length && a.events.every((e, i) => e === b.events[i]),
      () => `the events depend on the cuts:\n${a.events.join('\n')}\nvs\n${b.events.join('\n')}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Genuine transcripts

interface CompatTranscript {
  readonly c2s: readonly Buffer[];
  readonly s2c: readonly Buffer[];
}

const transcripts = new Map<string, CompatTranscript>();

/** Pump a genuine client and server of `c` through the handshake and a few messages each way. */
function compatTranscript(c: Config): CompatTranscript {
  const key = `${c.profile} ${c.variant}`;
  const known = transcripts.get(key);
  if (known !== undefined) return known;
  const server = create('server', c);
  const client = create('client', c);
  const c2s: Buffer[] = [];
  const s2c: Buffer[] = [];
  const pump = (): void => {
    for (let i = 0; i < 20; i++) {
      const a = client.takeOutput();
      const b = server.takeOutput();
      if (a.length === 0 && b.length === 0) return;
      for (const x of a) {
        c2s.push(x);
        server.receive(x);
      }
      for (const x of b) {
        s2c.push(x);
        client.receive(x);
      }
    }
  };
  pump();
  if (c.profile === 'none-line' || c.profile === 'none-chunk') {
    client.send(Buffer.from('hello\n'));
    pump();
  }
  invariant(server.isOpen && client.isOpen, () => `the genuine ${key} handshake failed`);
  client.send(Buffer.from('hello'));
  client.send(Buffer.alloc(300, 0x61));
  server.send(Buffer.from('welcome'));
  client.send(Buffer.from('bye'));
  pump();
  const t = { c2s, s2c };
  transcripts.set(key, t);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const cutsArb = fc.array(fc.nat(), { maxLength: 8 });

function mpFrame(payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeInt32BE(payload.length);
  return Buffer.concat([h, payload]);
}

const mpPayloadArb = fc.oneof(
  bytesArb(40),
  fc
    .constantFrom('#WELCOME#', '#FAILURE#', '#CHALLENGE#', '{sha256}', '{md5}', '{sha3_384}', '{nope}', '{')
    .map((s) => Buffer.from(s, 'latin1')),
  fc
    .tuple(
      fc.constantFrom(
        '',
        '{md5}',
        '{sha256}',
        '{sha384}',
        '{sha3_256}',
        '{sha3_384}',
        '{sha1}',
        '{',
        '{sha256',
      ),
      bytesArb(64),
    )
    .map(([p, b]) => Buffer.concat([Buffer.from(`#CHALLENGE#${p}`, 'latin1'), b])),
  fc
    .tuple(fc.constantFrom('{md5}', '{sha256}', '{sha384}', ''), bytesArb(64))
    .map(([p, b]) => Buffer.concat([Buffer.from(p, 'latin1'), b])),
);

/** One python-mp frame-shaped unit: right length, lying length, negative, or the long form. */
const mpUnitArb = fc.oneof(
  { weight: 4, arbitrary: mpPayloadArb.map(mpFrame) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: -5, max: MP_SHORT_LENGTH_MAX }), bytesArb(40)).map(([n, b]) => {
      const h = Buffer.alloc(4);
      h.writeInt32BE(n);
      return Buffer.concat([h, b]);
    }),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), bytesArb(40)).map(([n, b]) => {
      const h = Buffer.alloc(12);
      h.writeInt32BE(-1);
      h.writeBigUInt64BE(n, 4);
      return Buffer.concat([h, b]);
    }),
  },
);

const junkArb = fc.oneof(
  bytesArb(300),
  fc.array(mpUnitArb, { minLength: 1, maxLength: 4 }).map((u) => Buffer.concat(u)),
  fc
    .array(fc.oneof(bytesArb(40), fc.constantFrom(Buffer.from('\n'), Buffer.from('x'.repeat(600)))), {
      maxLength: 6,
    })
    .map((u) => Buffer.concat(u)),
);

const configArb: fc.Arbitrary<Config> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      profile: fc.constant<Profile>('python-mp'),
      variant: fc.constantFrom('legacy', 'md5', 'sha256', 'sha384', 'sha3_256', 'sha3_384'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      profile: fc.constantFrom<Profile>('seed', 'seed-hex'),
      variant: fc.constantFrom('md5', 'sha1', 'sha256', 'sha512'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      profile: fc.constantFrom<Profile>('none-line', 'none-chunk'),
      variant: fc.constant(''),
    }),
  },
);

// ---------------------------------------------------------------------------------------------
// Properties

function runCompat(
  role: Role,
  c: Config,
  prefix: number,
  tail: Buffer,
  cuts: readonly number[] | undefined,
  end: boolean,
): { result: CompatResult; head: Buffer } {
  const t = compatTranscript(c);
  const units = role === 'server' ? t.c2s : t.s2c;
  const k = prefix % (units.length + 1);
  const head = Buffer.concat(units.slice(0, k));
  const { conn } = fresh(role, c);
  if (head.length > 0) {
    const r = driveCompat(conn, c, role, [head], false);
    invariant(r.code === undefined, () => `the genuine prefix failed: ${r.code}`);
  }
  return { result: driveCompat(conn, c, role, cuts === undefined ? [tail] : split(tail, cuts), end), head };
}

const compatJunkProperty = defineProperty(
  'compat: arbitrary bytes and frames to python-mp, seed, seed-hex and none, in every state, whole and split',
  0,
  fc.record({
    config: configArb,
    role: fc.constantFrom<Role>('server', 'client'),
    prefix: fc.oneof(fc.constant(0), fc.nat()),
    junk: junkArb,
    cuts: cutsArb,
    end: fc.boolean(),
  }),
  ({ config, role, prefix, junk, cuts, end }) => {
    const whole = runCompat(role, config, prefix, junk, undefined, end);
    const parts = runCompat(role, config, prefix, junk, cuts, end);
    sameCompatOutcome(config, whole.result, parts.result);
  },
);

/** The mutations of a compatibility transcript (no second session to splice from). */
const unitMutationArb = mutationArb({ flip: 3, drop: 1, duplicate: 1, swap: 1, reflect: 1, truncate: 1 });

const compatMutationProperty = defineProperty(
  'compat: mutated genuine python-mp and seed transcripts; a server authenticates only the genuine answer',
  0,
  fc.record({
    config: configArb,
    role: fc.constantFrom<Role>('server', 'client'),
    wrongSecret: fc.boolean(),
    mutations: fc.array(unitMutationArb, { minLength: 0, maxLength: 3 }),
    cuts: cutsArb,
    end: fc.boolean(),
  }),
  ({ config, role, wrongSecret, mutations, cuts, end }) => {
    const t = compatTranscript(config);
    const units0 = role === 'server' ? t.c2s : t.s2c;
    let units = [...units0];
    for (const m of mutations) units = mutate(units, m, [], role === 'server' ? t.s2c : t.c2s);
    const bytes = Buffer.concat(units);
    // The receiving end may also hold another secret than the genuine sender.
    const c: Config = wrongSecret ? { ...config, secret: WRONG_SECRET } : config;
    const run = (cs: readonly number[] | undefined) =>
      driveCompat(fresh(role, c).conn, c, role, cs === undefined ? [bytes] : split(bytes, cs), end);
    const whole = run(undefined);
    sameCompatOutcome(c, whole, run(cuts));
    const authenticates =
      config.profile === 'python-mp' ||
      (role === 'server' && config.profile !== 'none-line' && config.profile !== 'none-chunk');
    if (authenticates && role === 'server' && whole.established) {
      const answer = units0[0] as Buffer;
      invariant(!wrongSecret, 'a server holding another secret authenticated the client');
      invariant(bytes.subarray(0, answer.length).equals(answer), 'the server authenticated a changed answer');
    }
    if (authenticates && wrongSecret && config.profile === 'python-mp') {
      invariant(!whole.established, `a python-mp ${role} holding another secret authenticated its peer`);
    }
  },
);

const mpFrameProperty = defineProperty(
  'compat: takeMpFrame on any bytes, pushed in any pieces, takes frames or throws a typed error',
  0,
  fc.record({
    units: fc.array(fc.oneof(mpUnitArb, bytesArb(20)), { maxLength: 5 }),
    cuts: cutsArb,
    max: fc.integer({ min: 0, max: 300 }),
  }),
  ({ units, cuts, max }) => {
    const bytes = Buffer.concat(units);
    const queue = new ByteQueue();
    let consumed = 0;
    for (const piece of split(bytes, cuts)) {
      queue.push(piece);
      for (;;) {
        const before = queue.length;
        let frame: Buffer | undefined;
        try {
          frame = takeMpFrame(queue, max);
        } catch (err) {
          invariant(
            isSesameError(err) &&
              err instanceof PeerError &&
              ['ERR_MESSAGE_TOO_LARGE', 'ERR_MALFORMED_MESSAGE'].includes(err.code),
            () => `takeMpFrame threw ${String(err)}`,
          );
          return;
        }
        if (frame === undefined) {
          invariant(queue.length === before, 'takeMpFrame consumed bytes without a frame');
          invariant(
            queue.length < 12 + max,
            () => `${queue.length} bytes waiting for a frame of at most ${max}`,
          );
          break;
        }
        invariant(frame.length <= max, 'a frame over the limit');
        const header = before - queue.length - frame.length;
        invariant(header === 4 || header === 12, `consumed a ${header}-byte header`);
        invariant(
          frame.equals(bytes.subarray(consumed + header, consumed + header + frame.length)),
          'frame bytes differ',
        );
        consumed += header + frame.length;
      }
    }
  },
);

export const compatProperties: readonly FuzzProperty[] = [
  { ...compatJunkProperty, runs: 80_000 },
  { ...compatMutationProperty, runs: 50_000 },
  { ...mpFrameProperty, runs: 250_000 },
];
