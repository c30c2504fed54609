/**
 * The fuzz properties, shared by the vitest files in this directory and by `npm run fuzz`.
 *
 * The invariant everywhere: whatever bytes or text come in, a parser either accepts them or fails
 * with the documented typed error (a SesameError whose code is in ERROR_CODES and is one the
 * documentation gives for that input), never with another exception, and its memory stays
 * bounded (see `drive()` in native.ts for the exact bounds). On top of that, per parser:
 *
 * - native protocol: the outcome does not depend on how the input is cut into reads; whatever a
 *   connection delivers from a tampered stream is a prefix of what the genuine sender sent; a
 *   server writes nothing but one ServerHello before the client has authenticated; for
 *   structured ClientHellos and ServerHellos the exact refusal code is predicted from the fields.
 * - key ring: accepted text gives valid entries and survives serialize/parse unchanged; refused
 *   text gives ERR_KEYRING_INVALID whose message quotes no value from the file (secrets included).
 * - compatibility profiles: see compat.ts.
 * - datagram endpoints: see datagram.ts.
 */

import fc from 'fast-check';
import type { ErrorCode } from '../../src/errors.js';
import { isSesameError, LocalError } from '../../src/errors.js';
import { isKeyId, type KeyEntry, KeyRing, principalProblem, Secret } from '../../src/keyring/keyring.js';
import {
  DEFAULT_MAX_CLOCK_SKEW_MS,
  deterministicEntropy,
  ServerConnection,
} from '../../src/protocol/index.js';
import { pskSecrets } from '../../src/protocol/key-schedule.js';
import { hmacSha256, x25519 } from '../../src/protocol/primitives.js';
import { ALL_MUTATIONS, bytesArb, mutate, mutationArb } from '../helpers/mutations.js';
import {
  CLIENT_SHARE,
  type DriveResult,
  drive,
  EXPIRED,
  FUTURE,
  FUZZ_NOW,
  invariant,
  isPrefixOf,
  KEY,
  type Mode,
  makeTranscript,
  newClient,
  newServer,
  newServerContext,
  REVOKED,
  type Role,
  SERVER_KEYS,
  sameOutcome,
  split,
  type Transcript,
} from './native.js';
import { defineProperty, type FuzzProperty } from './runner.js';

// ---------------------------------------------------------------------------------------------
// Shared arbitraries

/** Where to cut an input into reads (taken modulo its length; repeats give empty reads). */
const cutsArb = fc.array(fc.nat(), { maxLength: 8 });
/** PSK-only handshakes are several times cheaper, so they get most of the cases. */
const modeArb: fc.Arbitrary<Mode> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Mode>('psk') },
  { weight: 1, arbitrary: fc.constant<Mode>('x25519') },
);

/** X25519 points of small order: agreement with any of them gives zero and must be refused. */
const LOW_ORDER_POINTS: readonly Buffer[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000080',
].map((h) => Buffer.from(h, 'hex'));

const PROBE_PAIR = deterministicEntropy('fuzz share probe').x25519();

/** Whether X25519 refuses `share` (an all-zero result). */
function refusedShare(share: Buffer): boolean {
  try {
    x25519(PROBE_PAIR.privateKey, share);
    return false;
  } catch {
    return true;
  }
}

// Transcripts are built once per process: the genuine streams every mutation starts from.
let transcripts: Record<Mode, Transcript> | undefined;
let foreignTranscripts: Record<Mode, Transcript> | undefined;
function transcript(mode: Mode): Transcript {
  transcripts ??= { psk: makeTranscript('psk'), x25519: makeTranscript('x25519') };
  return transcripts[mode];
}
/** Another connection with the same key (another client nonce): its records use other keys. */
function foreignTranscript(mode: Mode): Transcript {
  foreignTranscripts ??= {
    psk: makeTranscript('psk', 'fuzz other client'),
    x25519: makeTranscript('x25519', 'fuzz other client'),
  };
  return foreignTranscripts[mode];
}

function unitsOf(t: Transcript, role: Role): readonly Buffer[] {
  return role === 'server' ? t.c2s : t.s2c;
}

// ---------------------------------------------------------------------------------------------
// Native protocol: any bytes, in any state

interface StatefulRun {
  readonly results: [DriveResult, DriveResult];
}

/**
 * A fresh connection for `role` is fed the first `prefix` genuine units of the transcript (so it
 * is in any state: expecting a hello, expecting ClientFinished, open, mid-key-update, after the
 * peer's close), optionally closes its own direction, and is then fed `tail`, cut at `cuts`.
 */
function runStateful(
  role: Role,
  t: Transcript,
  prefix: number,
  localClose: boolean,
  tail: Buffer,
  cuts: readonly number[] | undefined,
  end: boolean,
): StatefulRun {
  const units = unitsOf(t, role);
  const k = prefix % (units.length + 1);
  const conn = role === 'server' ? newServer() : newClient(t.mode).client;
  const first = drive(conn, role, k === 0 ? [] : [Buffer.concat(units.slice(0, k))]);
  invariant(first.code === undefined, () => `the genuine prefix of ${k} units failed: ${first.code}`);
  if (localClose && conn.isOpen) {
    conn.close();
    conn.takeOutput();
  }
  const second = drive(conn, role, cuts === undefined ? [tail] : split(tail, cuts), { end });
  return { results: [first, second] };
}

function checkStateful(
  role: Role,
  t: Transcript,
  whole: StatefulRun,
  parts: StatefulRun,
  genuine: boolean,
): void {
  sameOutcome(whole.results[1], parts.results[1]);
  const [first, second] = whole.results;
  const trace = [...first.trace, ...second.trace];
  if (genuine) isPrefixOf(trace, role === 'server' ? t.serverTrace : t.clientTrace);
  if (role === 'server') {
    // Before the client proves it holds the key, the server writes at most one ServerHello: the
    // genuine one, or the one answering the other connection's (authentic) ClientHello.
    const established = first.established || second.established;
    const out = Buffer.concat([first.output, second.output]);
    if (!established) {
      invariant(
        out.length === 0 ||
          out.equals(t.s2c[0] as Buffer) ||
          out.equals(foreignTranscript(t.mode).s2c[0] as Buffer),
        () => `an unauthenticated server wrote ${out.length} bytes other than a ServerHello`,
      );
    }
  } else {
    invariant(
      first.outputBeforeEstablished.length === 0 && second.outputBeforeEstablished.length === 0,
      'the client wrote before the server proved it holds the key',
    );
  }
}

const statefulArb = fc.record({
  mode: modeArb,
  prefix: fc.nat(),
  localClose: fc.boolean(),
  cuts: cutsArb,
  end: fc.boolean(),
});

/** Record-shaped junk: a valid length field and random bytes as the body. */
const junkRecordArb = bytesArb(200, 17).map((body) => {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(body.length);
  return Buffer.concat([h, body]);
});

/** Any bytes: raw, handshake-header-shaped, or a run of record-shaped units. */
const junkArb = fc.oneof(
  { weight: 2, arbitrary: bytesArb(300) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        magic: fc.oneof(
          { weight: 4, arbitrary: fc.constant(Buffer.from('SESM')) },
          { weight: 1, arbitrary: bytesArb(4, 4) },
        ),
        version: fc.constantFrom(2, 2, 2, 0, 1, 3, 255),
        type: fc.integer({ min: 0, max: 4 }),
        flags: fc.constantFrom(0, 1, 1, 2, 3, 0x80, 0xff),
        reserved: fc.constantFrom(0, 0, 0, 1),
        body: bytesArb(140),
      })
      .map((h) => Buffer.concat([h.magic, Buffer.of(h.version, h.type, h.flags, h.reserved), h.body])),
  },
  {
    weight: 1,
    arbitrary: fc.array(junkRecordArb, { minLength: 1, maxLength: 4 }).map((rs) => Buffer.concat(rs)),
  },
);

/** Any bytes to a connection in any state (after a genuine prefix of the transcript). */
function junkProperty(role: Role): FuzzProperty {
  return defineProperty(
    `${role}: arbitrary bytes in every state, whole and split`,
    0,
    fc.record({ state: statefulArb, junk: junkArb }),
    ({ state, junk }) => {
      const t = transcript(state.mode);
      const whole = runStateful(role, t, state.prefix, state.localClose, junk, undefined, state.end);
      const parts = runStateful(role, t, state.prefix, state.localClose, junk, state.cuts, state.end);
      checkStateful(role, t, whole, parts, true);
    },
  );
}

/** Any bytes to a fresh connection: the cheapest case, so it carries most of the count. */
function freshJunkProperty(role: Role): FuzzProperty {
  return defineProperty(
    `${role}: arbitrary bytes to a fresh connection, whole and split`,
    0,
    fc.record({ mode: modeArb, junk: junkArb, cuts: cutsArb, end: fc.boolean() }),
    ({ mode, junk, cuts, end }) => {
      const t = transcript(mode);
      const whole = runStateful(role, t, 0, false, junk, undefined, end);
      const parts = runStateful(role, t, 0, false, junk, cuts, end);
      checkStateful(role, t, whole, parts, true);
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Native protocol: mutated genuine transcripts

/** Every mutation, splices of another connection's units and reflections included. */
const NATIVE_MUTATIONS = mutationArb(ALL_MUTATIONS);

function mutationProperty(role: Role): FuzzProperty {
  return defineProperty(
    `${role}: mutated genuine transcripts (bits, bytes, drops, duplicates, reorders, splices, reflections, truncation)`,
    0,
    fc.record({ state: statefulArb, mutations: fc.array(NATIVE_MUTATIONS, { minLength: 1, maxLength: 4 }) }),
    ({ state, mutations }) => {
      const t = transcript(state.mode);
      const units = unitsOf(t, role);
      const k = state.prefix % (units.length + 1);
      const foreign = unitsOf(foreignTranscript(state.mode), role);
      const opposite = role === 'server' ? t.s2c : t.c2s;
      let tail = units.slice(k);
      for (const m of mutations) tail = mutate(tail, m, foreign, opposite);
      const bytes = Buffer.concat(tail);
      const whole = runStateful(role, t, k, state.localClose, bytes, undefined, state.end);
      const parts = runStateful(role, t, k, state.localClose, bytes, state.cuts, state.end);
      checkStateful(role, t, whole, parts, true);
      // An unchanged stream (a mutation can be a no-op) must give exactly the genuine events.
      if (bytes.equals(Buffer.concat(units.slice(k))) && state.end) {
        const [first, second] = whole.results;
        const reference = role === 'server' ? t.serverTrace : t.clientTrace;
        invariant(second.code === undefined, () => `the genuine stream failed with ${second.code}`);
        invariant(
          first.trace.length + second.trace.length === reference.length,
          'the genuine stream lost events',
        );
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Native protocol: structured ClientHellos with a predicted outcome

type KeyChoice = 'valid' | 'revoked' | 'expired' | 'future' | 'unknown';
const KEYS_BY_CHOICE = { valid: KEY, revoked: REVOKED, expired: EXPIRED, future: FUTURE } as const;
const GATES = new Map(SERVER_KEYS.map((k) => [k.id, pskSecrets(k.secret).gate]));
const WRONG_GATE = pskSecrets(Buffer.alloc(32, 0xee)).gate;
const SKEW = DEFAULT_MAX_CLOCK_SKEW_MS;

const helloArb = fc.record({
  flags: fc.constantFrom(0, 1, 1),
  key: fc.constantFrom<KeyChoice>('valid', 'valid', 'valid', 'revoked', 'expired', 'future', 'unknown'),
  unknownId: bytesArb(8, 8).filter((b) => !GATES.has(b.toString('hex'))),
  mac: fc.constantFrom('genuine', 'genuine', 'genuine', 'wrong key', 'random'),
  randomMac: bytesArb(16, 16),
  timestamp: fc.oneof(
    { weight: 6, arbitrary: fc.constant(BigInt(FUZZ_NOW)) },
    { weight: 2, arbitrary: fc.integer({ min: -2 * SKEW, max: 2 * SKEW }).map((d) => BigInt(FUZZ_NOW + d)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(-SKEW - 1, -SKEW, SKEW, SKEW + 1).map((d) => BigInt(FUZZ_NOW + d)),
    },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  ),
  nonce: bytesArb(32, 32),
  share: fc.oneof(
    { weight: 4, arbitrary: fc.constant(CLIENT_SHARE) },
    { weight: 2, arbitrary: bytesArb(32, 32) },
    { weight: 1, arbitrary: fc.constantFrom(...LOW_ORDER_POINTS) },
  ),
  requireForwardSecrecy: fc.boolean(),
  replay: fc.boolean(),
  trailing: fc.oneof(bytesArb(60), junkArb),
  cuts: cutsArb,
});
type HelloSpec = typeof helloArb extends fc.Arbitrary<infer T> ? T : never;

function buildHello(s: HelloSpec): Buffer {
  const size = s.flags === 1 ? 104 : 72;
  const b = Buffer.alloc(size);
  b.write('SESM', 0, 'latin1');
  b[4] = 2; // protocol version 2
  b[5] = 1;
  b[6] = s.flags;
  const id = s.key === 'unknown' ? s.unknownId : Buffer.from(KEYS_BY_CHOICE[s.key].id, 'hex');
  id.copy(b, 8);
  b.writeBigUInt64BE(s.timestamp, 16);
  s.nonce.copy(b, 24);
  if (s.flags === 1) s.share.copy(b, 56);
  let mac: Buffer;
  if (s.mac === 'random' || s.key === 'unknown') mac = s.randomMac;
  else {
    const gate = s.mac === 'genuine' ? (GATES.get(id.toString('hex')) as Buffer) : WRONG_GATE;
    mac = hmacSha256(gate, b.subarray(0, size - 16));
  }
  mac.copy(b, size - 16, 0, 16);
  return b;
}

/** The documented outcome of a ClientHello (docs/protocol.md, 7.1), in the order of the checks. */
function expectedHello(s: HelloSpec): ErrorCode | 'accept' {
  if (s.key === 'unknown') return 'ERR_UNKNOWN_KEY';
  if (s.mac !== 'genuine') return 'ERR_AUTH_FAILED';
  if (s.key === 'revoked') return 'ERR_KEY_REVOKED';
  if (s.key === 'expired') return 'ERR_KEY_EXPIRED';
  if (s.key === 'future') return 'ERR_KEY_NOT_YET_VALID';
  const ts = s.timestamp > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(s.timestamp);
  if (Math.abs(FUZZ_NOW - ts) > SKEW) return 'ERR_STALE_HELLO';
  if (s.replay) return 'ERR_REPLAYED_HELLO';
  if (s.flags === 0 && s.requireForwardSecrecy) return 'ERR_FORWARD_SECRECY_REQUIRED';
  if (s.flags === 1 && refusedShare(s.share)) return 'ERR_BAD_KEY_SHARE';
  return 'accept';
}

const structuredHelloProperty = defineProperty(
  'server: structured ClientHellos (keys, validity, clock, replay, mode, shares) give the documented code',
  0,
  helloArb,
  (s) => {
    const hello = buildHello(s);
    const bytes = Buffer.concat([hello, s.trailing]);
    const run = (cuts: readonly number[] | undefined): DriveResult => {
      const ctx = newServerContext({ requireForwardSecrecy: s.requireForwardSecrecy });
      // A replay: the same hello reached this server once before, on another connection.
      if (s.replay) new ServerConnection(ctx).receive(hello);
      const conn = new ServerConnection(ctx);
      return drive(conn, 'server', cuts === undefined ? [bytes] : split(bytes, cuts), { end: true });
    };
    const whole = run(undefined);
    sameOutcome(whole, run(s.cuts));
    const want = expectedHello(s);
    if (want === 'accept') {
      invariant(
        whole.output.length === hello.length,
        () => `an acceptable hello got ${whole.output.length} bytes`,
      );
      invariant(!whole.established, 'established without ClientFinished');
    } else {
      invariant(whole.code === want, () => `expected ${want}, got ${whole.code}`);
      invariant(whole.output.length === 0, 'the server wrote to a client it refused');
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Native protocol: structured ServerHellos with a predicted outcome

const serverHelloArb = fc.record({
  mode: modeArb,
  flags: fc.constantFrom('same', 'same', 'same', 'other'),
  nonce: fc.constantFrom('genuine', 'genuine', 'random', 'reflected'),
  randomNonce: bytesArb(32, 32),
  share: fc.constantFrom('genuine', 'genuine', 'random', 'reflected', 'low order'),
  randomShare: bytesArb(32, 32),
  lowOrder: fc.nat({ max: LOW_ORDER_POINTS.length - 1 }),
  fin: fc.constantFrom('genuine', 'genuine', 'random'),
  randomFin: bytesArb(32, 32),
  trailing: fc.oneof(bytesArb(60), junkArb),
  cuts: cutsArb,
});
type ServerHelloSpec = typeof serverHelloArb extends fc.Arbitrary<infer T> ? T : never;

const structuredServerHelloProperty = defineProperty(
  'client: structured ServerHellos (flags, reflected nonce or share, low-order shares, finished) give the documented code',
  0,
  serverHelloArb,
  (s: ServerHelloSpec) => {
    const t = transcript(s.mode);
    const genuine = t.s2c[0] as Buffer;
    const { hello } = newClient(s.mode);
    const sh = Buffer.from(genuine);
    const x = s.mode === 'x25519';
    if (s.flags === 'other') sh[6] = (sh[6] as number) ^ 1;
    if (s.nonce === 'random') s.randomNonce.copy(sh, 8);
    if (s.nonce === 'reflected') hello.copy(sh, 8, 24, 56);
    if (x) {
      if (s.share === 'random') s.randomShare.copy(sh, 40);
      if (s.share === 'reflected') CLIENT_SHARE.copy(sh, 40);
      if (s.share === 'low order') (LOW_ORDER_POINTS[s.lowOrder] as Buffer).copy(sh, 40);
    }
    if (s.fin === 'random') s.randomFin.copy(sh, genuine.length - 32);
    const bytes = Buffer.concat([sh, s.trailing]);
    const run = (cuts: readonly number[] | undefined) =>
      drive(newClient(s.mode).client, 'client', cuts === undefined ? [bytes] : split(bytes, cuts), {
        end: true,
      });
    const whole = run(undefined);
    sameOutcome(whole, run(s.cuts));
    let want: ErrorCode | 'accept';
    if (s.flags === 'other') want = 'ERR_MALFORMED_MESSAGE';
    else if (sh.subarray(8, 40).equals(hello.subarray(24, 56))) want = 'ERR_REFLECTED_MESSAGE';
    else if (x && sh.subarray(40, 72).equals(CLIENT_SHARE)) want = 'ERR_REFLECTED_MESSAGE';
    else if (x && refusedShare(sh.subarray(40, 72))) want = 'ERR_BAD_KEY_SHARE';
    else if (!sh.equals(genuine)) want = 'ERR_SERVER_AUTH_FAILED';
    else want = 'accept';
    if (want === 'accept') {
      invariant(whole.established, () => `the genuine ServerHello did not authenticate: ${whole.code}`);
    } else {
      invariant(whole.code === want, () => `expected ${want}, got ${whole.code}`);
      invariant(whole.output.length === 0, 'the client answered a ServerHello it refused');
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Key ring

const idArb = bytesArb(8, 8).map((b) => b.toString('hex'));
const principalArb = fc
  .oneof(
    fc.constantFrom('alice', 'bob', 'backup job', 'Zoë', '百变星君', 'x'.repeat(128)),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
  )
  .filter((p) => principalProblem(p) === undefined);
const dateArb = fc.date({
  min: new Date('0000-01-01T00:00:00.000Z'),
  max: new Date('9999-12-31T23:59:59.999Z'),
  noInvalidDate: true,
});
const entryArb: fc.Arbitrary<KeyEntry> = fc
  .record({
    id: idArb,
    principal: principalArb,
    secret: bytesArb(64, 1),
    created: dateArb,
    window: fc.tuple(fc.option(dateArb), fc.option(dateArb)),
    revoked: fc.boolean(),
  })
  .map(({ id, principal, secret, created, window: [a, b], revoked }) => {
    let notBefore = a ?? undefined;
    let notAfter = b ?? undefined;
    if (notBefore !== undefined && notAfter !== undefined) {
      if (notBefore.getTime() === notAfter.getTime()) notAfter = undefined;
      else if (notBefore.getTime() > notAfter.getTime()) [notBefore, notAfter] = [notAfter, notBefore];
    }
    return { id, principal, secret: new Secret(secret), created, notBefore, notAfter, revoked };
  });
const ringArb = fc
  .uniqueArray(entryArb, { selector: (e) => e.id, maxLength: 4 })
  .map((es) => new KeyRing(es));

/** Values that are nearly valid for each field: the edges of the format. */
const NEAR_VALID: Record<string, readonly unknown[]> = {
  id: ['0123456789ABCDEF', '0123456789abcde', '0123456789abcdef0', 'g123456789abcdef', 123, null, ''],
  principal: ['', 'x'.repeat(129), 'a\u0000b', 'a\u202eb', 'a\u2028b', '\ud800', 'tab\there', 'é', 7],
  secret: ['', 'AAA', 'AA==', 'AB==', 'A===', 'AAAA', 'AA-_', ' AAAA', 'AAAA\n', 'QUJD', 0, []],
  created: [
    '2026-02-29T00:00:00Z',
    '2024-02-29T00:00:00Z',
    '2026-01-01T00:00:00',
    '2026-01-01T24:00:00Z',
    '2026-01-01T23:59:60Z',
    '2026-01-01T00:00:00+24:00',
    '2026-01-01T00:00:00-23:59',
    '2026-01-01 00:00:00Z',
    '2026-01-01T00:00:00.1234567890Z',
    '2026-13-01T00:00:00Z',
    '0000-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999999999+00:00',
    1795980403000,
    '',
  ],
  revoked: ['false', 0, 1, null, true, false],
};
NEAR_VALID.notBefore = NEAR_VALID.created as unknown[];
NEAR_VALID.notAfter = NEAR_VALID.created as unknown[];
const FIELDS = ['id', 'principal', 'secret', 'created', 'notBefore', 'notAfter', 'revoked'];

type DocEdit =
  | { readonly op: 'delete'; readonly entry: number; readonly field: number }
  | { readonly op: 'near'; readonly entry: number; readonly field: number; readonly pick: number }
  | { readonly op: 'set'; readonly entry: number; readonly field: number; readonly value: unknown }
  | { readonly op: 'add'; readonly entry: number; readonly name: string; readonly value: unknown }
  | { readonly op: 'dup'; readonly entry: number }
  | { readonly op: 'version'; readonly value: unknown }
  | { readonly op: 'top'; readonly name: string; readonly value: unknown };

const jsonArb = fc.jsonValue({ maxDepth: 2 });
const docEditArb: fc.Arbitrary<DocEdit> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), entry: fc.nat(), field: fc.nat() }),
  fc.record({ op: fc.constant('near' as const), entry: fc.nat(), field: fc.nat(), pick: fc.nat() }),
  fc.record({ op: fc.constant('set' as const), entry: fc.nat(), field: fc.nat(), value: jsonArb }),
  fc.record({ op: fc.constant('add' as const), entry: fc.nat(), name: fc.string(), value: jsonArb }),
  fc.record({ op: fc.constant('dup' as const), entry: fc.nat() }),
  fc.record({
    op: fc.constant('version' as const),
    value: fc.oneof(jsonArb, fc.constantFrom(0, 2, 1.5, '1')),
  }),
  fc.record({ op: fc.constant('top' as const), name: fc.string(), value: jsonArb }),
);

type TextEdit =
  | { readonly op: 'delete'; readonly at: number; readonly length: number }
  | { readonly op: 'insert'; readonly at: number; readonly text: string }
  | { readonly op: 'copy'; readonly at: number; readonly length: number; readonly to: number };
const textEditArb: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 12 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.oneof(
      fc.string({ unit: 'binary', maxLength: 6 }),
      fc.constantFrom('"', ',', '}', ']', '{', '\\', 'null'),
    ),
  }),
  fc.record({
    op: fc.constant('copy' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 60 }),
    to: fc.nat(),
  }),
);

function editDoc(doc: { version: unknown; keys: Record<string, unknown>[] }, e: DocEdit): void {
  if (e.op === 'version') {
    doc.version = e.value;
    return;
  }
  if (e.op === 'top') {
    (doc as Record<string, unknown>)[e.name] = e.value;
    return;
  }
  if (doc.keys.length === 0) return;
  const entry = doc.keys[e.entry % doc.keys.length] as Record<string, unknown>;
  switch (e.op) {
    case 'delete':
      delete entry[FIELDS[e.field % FIELDS.length] as string];
      return;
    case 'near': {
      const field = FIELDS[e.field % FIELDS.length] as string;
      const choices = NEAR_VALID[field] as readonly unknown[];
      entry[field] = choices[e.pick % choices.length];
      return;
    }
    case 'set':
      entry[FIELDS[e.field % FIELDS.length] as string] = e.value;
      return;
    case 'add':
      entry[e.name] = e.value;
      return;
    case 'dup':
      doc.keys.push({ ...entry });
      return;
  }
}

function editText(text: string, e: TextEdit): string {
  const at = e.at % (text.length + 1);
  switch (e.op) {
    case 'delete':
      return text.slice(0, at) + text.slice(at + e.length);
    case 'insert':
      return text.slice(0, at) + e.text + text.slice(at);
    case 'copy': {
      const to = e.to % (text.length + 1);
      return text.slice(0, to) + text.slice(at, at + e.length) + text.slice(to);
    }
  }
}

/** Every string in a JSON value (keys and values), recursively. */
function stringsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) stringsIn(v, out);
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      stringsIn(v, out);
    }
  }
  return out;
}

const RING_WORDS = /^(version|keys|id|principal|secret|created|notBefore|notAfter|revoked)$/;

/**
 * KeyRing.parse either gives a ring of valid entries that survives serialize/parse unchanged, or
 * throws LocalError ERR_KEYRING_INVALID whose message quotes none of `quotable` (values of the
 * file: secrets, principals, dates, unknown field names) except well-formed key ids.
 */
function checkParse(text: string, quotable: readonly string[]): void {
  let ring: KeyRing;
  try {
    ring = KeyRing.parse(text);
  } catch (err) {
    invariant(
      isSesameError(err, 'ERR_KEYRING_INVALID') && err instanceof LocalError,
      () => `KeyRing.parse threw ${String(err)} (${(err as { code?: string }).code ?? 'no code'})`,
    );
    for (const s of quotable) {
      if (s.length < 6 || isKeyId(s) || RING_WORDS.test(s) || /^[\d.]+$/.test(s)) continue;
      invariant(
        !err.message.includes(s),
        () => `the error message quotes a value of the file: ${err.message}`,
      );
    }
    return;
  }
  for (const e of ring.list()) {
    invariant(isKeyId(e.id), 'accepted a malformed key id');
    invariant(principalProblem(e.principal) === undefined, 'accepted an invalid principal');
    invariant(e.secret.length > 0, 'accepted an empty secret');
    invariant(!Number.isNaN(e.created.getTime()), 'accepted an invalid date');
    if (e.notBefore !== undefined && e.notAfter !== undefined) {
      invariant(e.notAfter.getTime() > e.notBefore.getTime(), 'accepted notAfter <= notBefore');
    }
  }
  const again = ring.serialize();
  invariant(KeyRing.parse(again).serialize() === again, 'serialize/parse does not round-trip');
}

const keyringTextProperty = defineProperty(
  'key ring: arbitrary text and arbitrary JSON parse or give ERR_KEYRING_INVALID',
  0,
  fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.json({ maxDepth: 4 }),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ version: 1, keys: [v] })),
    fc.record({ version: jsonArb, keys: jsonArb }).map((v) => JSON.stringify(v)),
  ),
  (text) => {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      doc = undefined;
    }
    checkParse(text, doc === undefined ? [] : stringsIn(doc));
  },
);

const keyringMutationProperty = defineProperty(
  'key ring: mutated valid key rings parse or give ERR_KEYRING_INVALID, never quoting a value',
  0,
  fc.record({
    ring: ringArb,
    docEdits: fc.array(docEditArb, { maxLength: 3 }),
    textEdits: fc.array(textEditArb, { maxLength: 2 }),
    indent: fc.constantFrom(0, 2),
  }),
  ({ ring, docEdits, textEdits, indent }) => {
    const text0 = ring.serialize();
    // The genuine text round-trips exactly.
    invariant(KeyRing.parse(text0).serialize() === text0, 'a valid key ring does not round-trip');
    const doc = JSON.parse(text0) as { version: unknown; keys: Record<string, unknown>[] };
    const quotable = stringsIn(doc);
    for (const e of docEdits) editDoc(doc, e);
    quotable.push(...stringsIn(doc));
    let text = JSON.stringify(doc, null, indent);
    for (const e of textEdits) text = editText(text, e);
    checkParse(text, quotable);
  },
);

// ---------------------------------------------------------------------------------------------
// The suites and their CI counts (about 10^6 cases in all, with compat.ts).

function withRuns(p: FuzzProperty, runs: number): FuzzProperty {
  return { ...p, runs };
}

export const serverProperties: readonly FuzzProperty[] = [
  withRuns(freshJunkProperty('server'), 200_000),
  withRuns(junkProperty('server'), 12_000),
  withRuns(mutationProperty('server'), 12_000),
  withRuns(structuredHelloProperty, 40_000),
];

export const clientProperties: readonly FuzzProperty[] = [
  withRuns(freshJunkProperty('client'), 150_000),
  withRuns(junkProperty('client'), 12_000),
  withRuns(mutationProperty('client'), 12_000),
  withRuns(structuredServerHelloProperty, 30_000),
];

export const keyringProperties: readonly FuzzProperty[] = [
  withRuns(keyringTextProperty, 150_000),
  withRuns(keyringMutationProperty, 40_000),
];

export { compatProperties } from './compat.js';
