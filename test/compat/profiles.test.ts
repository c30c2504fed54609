// The compatibility profiles' sans-I/O connections, driven in memory: handshakes, exact wire
// bytes, framings and their limits, refusals and the errors each side reports.
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type CompatConnection,
  compatServerProfile,
  createCompatConnection,
  LineFraming,
  MP_CHALLENGE_FORMATS,
  MP_DIGESTS,
  type MpChallengeFormat,
  MpFraming,
  mpAnswer,
  mpCheckAnswer,
  mpHeader,
  NoneConnection,
  PythonMpConnection,
  SEED_DIGESTS,
  SeedConnection,
} from '../../src/compat/index.js';
import { sesameError } from '../../src/errors.js';
import type { ConnectionEvent, ProtocolConnection, ServerProfile } from '../../src/protocol/channel.js';
import { deterministicEntropy } from '../../src/protocol/primitives.js';
import { xorByte } from '../helpers/mutations.js';

const PY = join(import.meta.dirname, '..', 'interop', 'python');
const SECRET = Buffer.from('芝麻开门', 'utf8');
const OTHER = Buffer.from('老衲洗头用飘柔', 'utf8');

interface Ends {
  client: ProtocolConnection;
  server: ProtocolConnection;
  clientEvents: ConnectionEvent[];
  serverEvents: ConnectionEvent[];
  /** Everything each side wrote, concatenated. */
  fromClient: Buffer[];
  fromServer: Buffer[];
}

/** Move output both ways until nothing moves, optionally one byte at a time. */
function pump(e: Ends, byteByByte = false): void {
  const feed = (to: ProtocolConnection, events: ConnectionEvent[], chunk: Buffer) => {
    if (to.error !== undefined) return;
    if (!byteByByte) events.push(...to.receive(chunk));
    else for (const b of chunk) if (to.error === undefined) events.push(...to.receive(Buffer.of(b)));
  };
  for (let rounds = 0; rounds < 50; rounds++) {
    const c = e.client.takeOutput();
    const s = e.server.takeOutput();
    if (c.length === 0 && s.length === 0) return;
    for (const chunk of c) {
      e.fromClient.push(chunk);
      feed(e.server, e.serverEvents, chunk);
    }
    for (const chunk of s) {
      e.fromServer.push(chunk);
      feed(e.client, e.clientEvents, chunk);
    }
  }
  throw new Error('pump did not settle');
}

function ends(client: ProtocolConnection, server: ProtocolConnection, byteByByte = false): Ends {
  const e: Ends = { client, server, clientEvents: [], serverEvents: [], fromClient: [], fromServer: [] };
  pump(e, byteByByte);
  return e;
}

const types = (events: ConnectionEvent[]) => events.map((e) => e.type);
const texts = (events: ConnectionEvent[]) =>
  events.flatMap((e) => (e.type === 'message' ? [e.data.toString('utf8')] : []));
const errorOf = (events: ConnectionEvent[]) => {
  const last = events.at(-1);
  return last?.type === 'error' ? last.error : undefined;
};

describe('seed and seed-hex', () => {
  for (const answer of ['raw', 'hex'] as const) {
    for (const digest of SEED_DIGESTS) {
      it(`${answer} ${digest}: the exact challenge and answer, then chunks both ways`, () => {
        const entropy = deterministicEntropy(`seed ${answer} ${digest}`);
        const challenge = deterministicEntropy(`seed ${answer} ${digest}`).bytes(32);
        const e = ends(
          new SeedConnection('client', { secret: SECRET, digest, answer }),
          new SeedConnection('server', { secret: SECRET, digest, answer, entropy }),
        );
        const mac = createHmac(digest, SECRET).update(challenge).digest();
        expect(Buffer.concat(e.fromServer)).toEqual(challenge);
        expect(Buffer.concat(e.fromClient)).toEqual(
          answer === 'hex' ? Buffer.from(mac.toString('hex')) : mac,
        );
        expect(types(e.clientEvents)).toEqual(['established']);
        expect(types(e.serverEvents)).toEqual(['established']);
        const info = e.server.session;
        expect(info).toEqual({
          profile: answer === 'hex' ? 'seed-hex' : 'seed',
          keyId: undefined,
          principal: undefined,
          forwardSecrecy: false,
          channelBinding: undefined,
        });
        e.client.send(Buffer.from('time'));
        pump(e);
        expect(texts(e.serverEvents)).toEqual(['time']);
        e.server.send(Buffer.from('[Thu May 10 22:00:19 2018] time'));
        pump(e);
        expect(texts(e.clientEvents)).toEqual(['[Thu May 10 22:00:19 2018] time']);
      });
    }
  }

  it('works when every byte arrives on its own, and the answer may come with the first chunk', () => {
    const server = new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('x') });
    const e = ends(new SeedConnection('client', { secret: SECRET }), server, true);
    expect(types(e.serverEvents)).toEqual(['established']);
    const client = new SeedConnection('client', { secret: SECRET });
    const server2 = new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('y') });
    client.receive(Buffer.concat(server2.takeOutput()));
    client.send(Buffer.from('hello'));
    const events = server2.receive(Buffer.concat(client.takeOutput()));
    expect(types(events)).toEqual(['established', 'message']);
    expect(texts(events)).toEqual(['hello']);
  });

  it('a server delivers at most 1024 bytes per message, as recv(1024)', () => {
    const e = ends(
      new SeedConnection('client', { secret: SECRET }),
      new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('z') }),
    );
    e.client.send(Buffer.alloc(2500, 0x61));
    pump(e);
    const sizes = e.serverEvents.flatMap((ev) => (ev.type === 'message' ? [ev.data.length] : []));
    expect(sizes).toEqual([1024, 1024, 452]);
  });

  it('a wrong secret or digest: the server fails with ERR_AUTH_FAILED and writes nothing more', () => {
    for (const client of [
      new SeedConnection('client', { secret: OTHER }),
      new SeedConnection('client', { secret: SECRET, digest: 'sha512' }),
    ]) {
      const server = new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('w') });
      const e = ends(client, server);
      expect(errorOf(e.serverEvents)?.code).toBe('ERR_AUTH_FAILED');
      expect(e.server.takeOutput()).toEqual([]);
      expect(errorOf(e.serverEvents)?.message).not.toContain(SECRET.toString('hex'));
      // Sticky: every later call throws the same error.
      const err = e.server.error;
      expect(() => e.server.receive(Buffer.of(1))).toThrow(err);
      expect(e.server.fail(new Error('later'))).toBe(err);
      // The client learns it from the end of stream before any reply.
      expect(errorOf(e.client.receiveEnd())?.code).toBe('ERR_AUTH_REFUSED');
    }
  });

  it('a short answer is refused at end of stream, or when the deadline passes', () => {
    const server = new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('v') });
    server.receive(Buffer.alloc(16));
    expect(errorOf(server.receiveEnd())?.code).toBe('ERR_AUTH_FAILED');
    const server2 = new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('v') });
    server2.receive(Buffer.alloc(16));
    const err = server2.fail(sesameError('ERR_HANDSHAKE_TIMEOUT', 'deadline'));
    expect(err.code).toBe('ERR_AUTH_FAILED');
    expect(err.message).toMatch(/16 bytes, 32 expected/);
    const server3 = new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('v') });
    expect(errorOf(server3.receiveEnd())?.code).toBe('ERR_TRUNCATED');
  });

  it('ends: EOF after replies is a close; a seed-hex client may be hung up on', () => {
    const e = ends(
      new SeedConnection('client', { secret: SECRET }),
      new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('u') }),
    );
    e.client.send(Buffer.from('a'));
    pump(e);
    e.server.send(Buffer.from('b'));
    pump(e);
    expect(types(e.client.receiveEnd())).toEqual(['close']);
    expect(types(e.server.receiveEnd())).toEqual(['close']);
    const hex = ends(
      new SeedConnection('client', { secret: SECRET, answer: 'hex' }),
      new SeedConnection('server', { secret: SECRET, answer: 'hex', entropy: deterministicEntropy('t') }),
    );
    expect(types(hex.client.receiveEnd())).toEqual(['close']);
    const early = new SeedConnection('client', { secret: SECRET });
    expect(errorOf(early.receiveEnd())?.code).toBe('ERR_AUTH_REFUSED');
  });

  it('refuses bad configuration, has no exporter, refuses sends before authentication', () => {
    expect(() => new SeedConnection('client', { secret: Buffer.alloc(0) })).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_TOO_SHORT' }),
    );
    expect(() => new SeedConnection('client', { secret: SECRET, digest: 'sha3' as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    expect(() => new SeedConnection('server', { secret: SECRET })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    const c = new SeedConnection('client', { secret: SECRET });
    expect(() => c.send(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
    expect(() => c.exportKeyingMaterial('x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
  });
});

interface Vector {
  key: string;
  format: MpChallengeFormat;
  random: string;
  challengeFrame: string;
  answerFrame: string;
  legacyAnswer: string;
}

/** Entropy that hands out exactly `bytes`, once. */
function fixed(bytes: Buffer): { bytes(n: number): Buffer } {
  return {
    bytes: (n) => {
      expect(n).toBe(bytes.length);
      return bytes;
    },
  };
}

const frame = (payload: Buffer) => Buffer.concat([mpHeader(payload.length), payload]);
const payloadOf = (f: Buffer) => f.subarray(4);

describe('python-mp: vectors derived from the CPython 3.12+ rules', () => {
  const file = join(PY, 'mp312-vectors.json');
  const vectors = JSON.parse(readFileSync(file, 'utf8')) as Vector[];

  it('the vector file is what test/interop/python/mp312.py derives', () => {
    const derived = execFileSync('python3', [join(PY, 'mp312.py')], { timeout: 10_000 }).toString();
    expect(JSON.parse(derived)).toEqual(vectors);
    expect(new Set(vectors.map((v) => v.format))).toEqual(new Set(MP_CHALLENGE_FORMATS));
  });

  for (const v of vectors) {
    it(`${v.format} with a ${Buffer.from(v.key, 'hex').length}-byte key: challenge, answer, verification`, () => {
      const key = Buffer.from(v.key, 'hex');
      const random = Buffer.from(v.random, 'hex');
      const challengeFrame = Buffer.from(v.challengeFrame, 'hex');
      const answerFrame = Buffer.from(v.answerFrame, 'hex');
      // As challenger (the server challenges first): the exact challenge frame.
      const server = new PythonMpConnection('server', {
        secret: key,
        entropy: fixed(random),
        challenge: v.format,
      });
      expect(Buffer.concat(server.takeOutput())).toEqual(challengeFrame);
      // As responder: the exact answer frame.
      const client = new PythonMpConnection('client', { secret: key, entropy: deterministicEntropy('c') });
      expect(client.receive(challengeFrame)).toEqual([]);
      expect(Buffer.concat(client.takeOutput())).toEqual(answerFrame);
      const message = payloadOf(challengeFrame).subarray('#CHALLENGE#'.length);
      expect(mpAnswer(key, message)).toEqual(payloadOf(answerFrame));
      // A challenger accepts the 3.12 answer and the bare HMAC-MD5 of a <= 3.11 responder.
      expect(mpCheckAnswer(key, message, payloadOf(answerFrame))).toBeUndefined();
      expect(mpCheckAnswer(key, message, Buffer.from(v.legacyAnswer, 'hex'))).toBeUndefined();
      const bad = xorByte(payloadOf(answerFrame), -1, 1);
      expect(mpCheckAnswer(key, message, bad)).toMatch(/wrong HMAC/);
      expect(mpCheckAnswer(OTHER, message, payloadOf(answerFrame))).toMatch(/wrong HMAC/);
      // The server welcomes the answer...
      expect(server.receive(answerFrame)).toEqual([]);
      expect(Buffer.concat(server.takeOutput())).toEqual(frame(Buffer.from('#WELCOME#')));
      // ...and answers a client's challenge as the client did (another server: a server refuses
      // its own challenge sent back).
      const other = new PythonMpConnection('server', { secret: key, entropy: deterministicEntropy('o') });
      const its = payloadOf(Buffer.concat(other.takeOutput())).subarray('#CHALLENGE#'.length);
      other.receive(frame(mpAnswer(key, its)));
      expect(Buffer.concat(other.takeOutput())).toEqual(frame(Buffer.from('#WELCOME#')));
      expect(other.receive(challengeFrame)).toEqual([]);
      expect(Buffer.concat(other.takeOutput())).toEqual(answerFrame);
      expect(types(other.receive(frame(Buffer.from('#WELCOME#'))))).toEqual(['established']);
    });
  }

  it('a challenger accepts another allowed digest than it asked for, as CPython 3.12 does', () => {
    const server = new PythonMpConnection('server', { secret: SECRET, entropy: deterministicEntropy('s') });
    const message = payloadOf(Buffer.concat(server.takeOutput())).subarray('#CHALLENGE#'.length);
    const mac = createHmac('sha384', SECRET).update(message).digest();
    expect(mpCheckAnswer(SECRET, message, Buffer.concat([Buffer.from('{sha384}'), mac]))).toBeUndefined();
    expect(mpCheckAnswer(SECRET, message, Buffer.concat([Buffer.from('{sha1}'), mac]))).toMatch(/prefix/);
    expect(mpCheckAnswer(SECRET, message, Buffer.concat([Buffer.from('{sha384}'), mac.subarray(1)]))).toMatch(
      /47 MAC bytes, 48 expected/,
    );
  });
});

describe('python-mp: handshake', () => {
  const make = (role: 'client' | 'server', secret: Buffer, challenge?: MpChallengeFormat) =>
    new PythonMpConnection(role, {
      secret,
      entropy: deterministicEntropy(`${role} ${challenge}`),
      challenge,
    });

  for (const client of MP_CHALLENGE_FORMATS) {
    for (const server of ['legacy', 'sha256', 'sha3_384'] as const) {
      it(`client challenge ${client}, server challenge ${server}: mutual, then send_bytes framing`, () => {
        const e = ends(make('client', SECRET, client), make('server', SECRET, server), client === 'md5');
        expect(types(e.clientEvents)).toEqual(['established']);
        expect(types(e.serverEvents)).toEqual(['established']);
        expect(e.client.session?.profile).toBe('python-mp');
        e.client.send(Buffer.from('hello'));
        e.client.send(Buffer.alloc(0));
        e.client.send(Buffer.alloc(70_000, 1));
        pump(e);
        const sizes = e.serverEvents.flatMap((ev) => (ev.type === 'message' ? [ev.data.length] : []));
        expect(sizes).toEqual([5, 0, 70_000]);
        expect(types(e.server.receiveEnd())).toEqual(['close']);
      });
    }
  }

  it('the handshake order: server challenge, client answer, welcome, client challenge, answer, welcome', () => {
    const e = ends(make('client', SECRET), make('server', SECRET));
    const payloads = (list: Buffer[]) => {
      const f = new MpFraming(1 << 20);
      const out: ConnectionEvent[] = [];
      f.push(Buffer.concat(list), out);
      return out.map((ev) => (ev.type === 'message' ? ev.data : Buffer.alloc(0)));
    };
    const fromServer = payloads(e.fromServer).map((p) => p.subarray(0, 19).toString('latin1'));
    const fromClient = payloads(e.fromClient).map((p) => p.subarray(0, 19).toString('latin1'));
    expect(fromServer[0]).toBe('#CHALLENGE#{sha256}');
    expect(fromServer[1]).toBe('#WELCOME#');
    expect(fromServer[2]?.startsWith('{sha256}')).toBe(true);
    expect(fromClient[0]?.startsWith('{sha256}')).toBe(true);
    expect(fromClient[1]).toBe('#CHALLENGE#{sha256}');
    expect(fromClient[2]).toBe('#WELCOME#');
  });

  it('a client with the wrong key: #FAILURE#, ERR_AUTH_REFUSED at the client, ERR_AUTH_FAILED at the server', () => {
    const e = ends(make('client', OTHER), make('server', SECRET));
    expect(errorOf(e.clientEvents)?.code).toBe('ERR_AUTH_REFUSED');
    expect(e.fromServer.at(-1)).toEqual(frame(Buffer.from('#FAILURE#')));
    // The server announced the failure; its error comes when the transport ends.
    expect(e.server.error).toBeUndefined();
    expect(e.server.isOpen).toBe(false);
    expect(e.server.receive(Buffer.from('ignored'))).toEqual([]);
    expect(errorOf(e.server.receiveEnd())?.code).toBe('ERR_AUTH_FAILED');
    // ...or when the socket layer fails it first (a deadline): the refusal wins.
    const e2 = ends(make('client', OTHER), make('server', SECRET));
    expect(e2.server.fail(sesameError('ERR_HANDSHAKE_TIMEOUT', 'deadline')).code).toBe('ERR_AUTH_FAILED');
  });

  it('a server that fails the client challenge: #FAILURE# and ERR_SERVER_AUTH_FAILED at the client', () => {
    // A server that answers with another key than the one it checks with.
    const client = make('client', SECRET);
    const server = make('server', SECRET);
    const liar = make('client', OTHER); // computes the server's answer to the client's challenge
    client.receive(Buffer.concat(server.takeOutput()));
    server.receive(Buffer.concat(client.takeOutput()));
    client.receive(Buffer.concat(server.takeOutput())); // #WELCOME#
    const challenge = Buffer.concat(client.takeOutput());
    liar.receive(challenge);
    const wrongAnswer = Buffer.concat(liar.takeOutput());
    expect(client.receive(wrongAnswer)).toEqual([]);
    expect(Buffer.concat(client.takeOutput())).toEqual(frame(Buffer.from('#FAILURE#')));
    expect(errorOf(client.receiveEnd())?.code).toBe('ERR_SERVER_AUTH_FAILED');
    // The server, told #FAILURE#, reports ERR_AUTH_REFUSED.
    server.receive(challenge);
    server.takeOutput();
    expect(errorOf(server.receive(frame(Buffer.from('#FAILURE#'))))?.code).toBe('ERR_AUTH_REFUSED');
  });

  it('handshake reads are capped at 256 bytes, checked at the length header', () => {
    const client = make('client', SECRET);
    const header = Buffer.alloc(4);
    header.writeInt32BE(257);
    expect(errorOf(client.receive(header))?.code).toBe('ERR_MESSAGE_TOO_LARGE');
    const server = make('server', SECRET);
    const long = Buffer.alloc(12);
    long.writeInt32BE(-1);
    long.writeBigUInt64BE(2n ** 40n, 4);
    expect(errorOf(server.receive(long))?.code).toBe('ERR_MESSAGE_TOO_LARGE');
  });

  it('refuses what is not a challenge, a short one, an unknown digest, a reflected one, a bad welcome', () => {
    const cases: [Buffer, string][] = [
      [Buffer.from('#WELCOME#'), 'ERR_UNEXPECTED_MESSAGE'],
      [Buffer.concat([Buffer.from('#CHALLENGE#'), Buffer.alloc(19)]), 'ERR_MALFORMED_MESSAGE'],
      [Buffer.concat([Buffer.from('#CHALLENGE#{sha1}'), Buffer.alloc(40)]), 'ERR_MALFORMED_MESSAGE'],
      [Buffer.concat([Buffer.from('#CHALLENGE#'), Buffer.alloc(30)]), 'ERR_MALFORMED_MESSAGE'],
    ];
    for (const [payload, code] of cases) {
      expect(errorOf(make('client', SECRET).receive(frame(payload)))?.code).toBe(code);
    }
    const client = make('client', SECRET);
    client.receive(frame(Buffer.concat([Buffer.from('#CHALLENGE#'), Buffer.alloc(20)])));
    expect(errorOf(client.receive(frame(Buffer.from('#WELCOME!'))))?.code).toBe('ERR_UNEXPECTED_MESSAGE');
    // A client that sends the server's own challenge back.
    const server = make('server', SECRET);
    const own = Buffer.concat(server.takeOutput());
    const honest = make('client', SECRET);
    honest.receive(own);
    server.receive(Buffer.concat(honest.takeOutput()));
    server.takeOutput();
    expect(errorOf(server.receive(own))?.code).toBe('ERR_REFLECTED_MESSAGE');
  });

  it('refuses an empty key and an unknown challenge format', () => {
    expect(() => make('client', Buffer.alloc(0))).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_TOO_SHORT' }),
    );
    expect(() => make('client', SECRET, 'sha1' as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    expect(MP_DIGESTS).toEqual(['md5', 'sha256', 'sha384', 'sha3_256', 'sha3_384']);
  });
});

describe('length-prefixed framing (send_bytes / recv_bytes)', () => {
  it('writes the 4-byte signed length, and -1 with an 8-byte length above 2^31-1', () => {
    expect(mpHeader(0)).toEqual(Buffer.from('00000000', 'hex'));
    expect(mpHeader(0x7fffffff)).toEqual(Buffer.from('7fffffff', 'hex'));
    expect(mpHeader(0x80000000)).toEqual(Buffer.from('ffffffff0000000080000000', 'hex'));
    expect(mpHeader(2 ** 40)).toEqual(Buffer.from('ffffffff0000010000000000', 'hex'));
  });

  it('reads both forms, checks the limit at the header, refuses other negative lengths', () => {
    const events: ConnectionEvent[] = [];
    const f = new MpFraming(100);
    const long = Buffer.alloc(12);
    long.writeInt32BE(-1);
    long.writeBigUInt64BE(3n, 4);
    f.push(Buffer.concat([long, Buffer.from('abc'), mpHeader(2), Buffer.from('de')]), events);
    expect(texts(events)).toEqual(['abc', 'de']);
    expect(() => new MpFraming(100).push(mpHeader(101), [])).toThrow(
      expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }),
    );
    long.writeBigUInt64BE(2n ** 31n, 4);
    expect(() => new MpFraming(100).push(long, [])).toThrow(
      expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }),
    );
    const negative = Buffer.alloc(4);
    negative.writeInt32BE(-5);
    expect(() => new MpFraming(100).push(negative, [])).toThrow(
      expect.objectContaining({ code: 'ERR_MALFORMED_MESSAGE' }),
    );
    const cut = new MpFraming(100);
    cut.push(Buffer.concat([mpHeader(5), Buffer.from('ab')]), []);
    expect(() => cut.end()).toThrow(expect.objectContaining({ code: 'ERR_TRUNCATED' }));
  });

  it('an open python-mp connection enforces maxMessageBytes at the header', () => {
    const client = new PythonMpConnection('client', {
      secret: SECRET,
      entropy: deterministicEntropy('m'),
      maxMessageBytes: 1000,
    });
    const server = new PythonMpConnection('server', { secret: SECRET, entropy: deterministicEntropy('n') });
    const e = ends(client, server);
    expect(e.client.isOpen).toBe(true);
    expect(errorOf(e.client.receive(mpHeader(1001)))?.code).toBe('ERR_MESSAGE_TOO_LARGE');
  });
});

describe('none', () => {
  it('line framing: readline semantics, terminators kept, a final partial line at the end', () => {
    const server = new NoneConnection('server', { framing: 'line' });
    expect(server.isOpen).toBe(true);
    const events = [
      ...server.start(),
      ...server.receive(Buffer.from('百变星君\r\nsec')),
      ...server.receive(Buffer.from('ond\nthi')),
      ...server.receiveEnd(),
    ];
    expect(types(events)).toEqual(['established', 'message', 'message', 'message', 'close']);
    expect(texts(events)).toEqual(['百变星君\r\n', 'second\n', 'thi']);
  });

  it('line framing: a line over the limit is refused before it is complete; sends are lines', () => {
    const server = new NoneConnection('server', { framing: 'line', maxMessageBytes: 8 });
    expect(types([...server.start(), ...server.receive(Buffer.from('1234567\n'))])).toEqual([
      'established',
      'message',
    ]);
    expect(errorOf(server.receive(Buffer.from('123456789')))?.code).toBe('ERR_MESSAGE_TOO_LARGE');
    const f = new LineFraming(100);
    expect(f.encode(Buffer.from('a'))).toEqual([Buffer.from('a\n')]);
    expect(f.encode(Buffer.from('a\r\n'))).toEqual([Buffer.from('a\r\n')]);
    expect(() => f.encode(Buffer.from('a\nb'))).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });

  it('chunk framing: each read is a message (at most 1024 bytes at a server); EOF first still establishes', () => {
    const server = new NoneConnection('server');
    const events = [...server.start(), ...server.receive(Buffer.alloc(1500))];
    expect(events.map((e) => (e.type === 'message' ? e.data.length : e.type))).toEqual([
      'established',
      1024,
      476,
    ]);
    const client = new NoneConnection('client');
    client.send(Buffer.from('x'));
    expect(client.takeOutput()).toEqual([Buffer.from('x')]);
    const silent = new NoneConnection('server');
    expect(types([...silent.start(), ...silent.receiveEnd()])).toEqual(['established', 'close']);
    expect(() => new NoneConnection('server', { framing: 'lines' as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });
});

describe('start()', () => {
  it('none reports established before any input, once; its input then carries only messages', () => {
    const server = new NoneConnection('server', { framing: 'line' });
    expect(server.start()).toEqual([{ type: 'established', session: server.session }]);
    expect(server.start()).toEqual([]);
    expect(types(server.receive(Buffer.from('a\n')))).toEqual(['message']);
    expect(types(server.receiveEnd())).toEqual(['close']);
    const client = new NoneConnection('client');
    expect(types(client.start())).toEqual(['established']);
  });

  it('profiles with a handshake report nothing from start(): established comes with the input', () => {
    const client = new SeedConnection('client', { secret: SECRET });
    const server = new SeedConnection('server', { secret: SECRET, entropy: deterministicEntropy('st') });
    const mp = new PythonMpConnection('server', { secret: SECRET, entropy: deterministicEntropy('mp') });
    expect([client.start(), server.start(), mp.start()]).toEqual([[], [], []]);
    const e = ends(client, server);
    expect(types(e.clientEvents)).toEqual(['established']);
    expect(types(e.serverEvents)).toEqual(['established']);
  });

  it('a failed connection throws its error from start()', () => {
    const server = new NoneConnection('server');
    const err = server.fail(sesameError('ERR_HANDSHAKE_TIMEOUT', 'late'));
    expect(() => server.start()).toThrow(err);
  });
});

describe('server profiles', () => {
  it('each compatibility profile is a ServerProfile making fresh connections', () => {
    const secret = Buffer.from(SECRET);
    const profiles: ServerProfile[] = [
      compatServerProfile({ profile: 'seed', secret, digest: 'md5' }),
      compatServerProfile({ profile: 'seed-hex', secret }),
      compatServerProfile({ profile: 'python-mp', secret, digest: 'legacy' }),
      compatServerProfile({ profile: 'none', framing: 'line' }),
    ];
    secret.fill(0); // the profile keeps its own copy
    expect(profiles.map((p) => p.name)).toEqual(['seed', 'seed-hex', 'python-mp', 'none']);
    for (const p of profiles) {
      const a = p.createConnection() as CompatConnection;
      const b = p.createConnection() as CompatConnection;
      expect(a).not.toBe(b);
      expect(a.role).toBe('server');
    }
    const challenge = Buffer.concat(profiles[0]?.createConnection().takeOutput() ?? []);
    const client = createCompatConnection('client', { profile: 'seed', secret: SECRET, digest: 'md5' });
    client.receive(challenge);
    expect(Buffer.concat(client.takeOutput())).toEqual(createHmac('md5', SECRET).update(challenge).digest());
  });

  it('refuses a missing secret, an unknown profile or digest at once', () => {
    expect(() => compatServerProfile({ profile: 'seed' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    expect(() => compatServerProfile({ profile: 'seed', secret: SECRET, digest: 'sha384' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    expect(() => compatServerProfile({ profile: 'tls' as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });
});
