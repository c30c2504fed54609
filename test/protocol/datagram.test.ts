/**
 * The sans-I/O datagram endpoints (src/protocol/datagram/): handshake over datagrams, sealing,
 * replay and freshness, forgery, amplification, limits. No sockets: bytes are handed across.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSesameError } from '../../src/errors.js';
import {
  DatagramClientEndpoint,
  type DatagramClientEvent,
  type DatagramClientOptions,
  type DatagramPeer,
  DatagramServerEndpoint,
  type DatagramServerEvent,
  type DatagramServerOptions,
  DGRAM_DATA_HEADER_BYTES,
  DGRAM_FINISHED_BYTES,
  DGRAM_OVERHEAD_BYTES,
  type DropReason,
  formatPeer,
  MAX_CONFIRM_RESENDS,
  MAX_DATAGRAM_PAYLOAD_BYTES,
} from '../../src/protocol/datagram/index.js';
import { deterministicEntropy } from '../../src/protocol/primitives.js';
import { xorByte } from '../helpers/mutations.js';
import { KEY_A, KEY_B, makeKey, NOW } from '../helpers/pair.js';

const PEER: DatagramPeer = { address: '192.0.2.1', port: 40000 };
const OTHER: DatagramPeer = { address: '198.51.100.7', port: 50000 };

interface Clock {
  t: number;
}

function makeServer(clock: Clock, over: Partial<DatagramServerOptions> = {}, seed = 'server') {
  return new DatagramServerEndpoint({
    keys: [KEY_A, KEY_B],
    entropy: deterministicEntropy(seed),
    now: () => clock.t,
    ...over,
  });
}

function makeClient(clock: Clock, over: Partial<DatagramClientOptions> = {}, seed = 'client') {
  return new DatagramClientEndpoint({
    key: KEY_A,
    entropy: deterministicEntropy(seed),
    now: () => clock.t,
    ...over,
  });
}

type AnyEvent = DatagramServerEvent | DatagramClientEvent;

function sent(events: AnyEvent[]): Buffer[] {
  return events.flatMap((e) => (e.type === 'send' ? [e.datagram] : []));
}

function dropped(events: AnyEvent[]): DropReason[] {
  return events.flatMap((e) => (e.type === 'drop' ? [e.reason] : []));
}

function messages(events: AnyEvent[]): Buffer[] {
  return events.flatMap((e) => (e.type === 'message' ? [e.data] : []));
}

function only<T>(items: T[]): T {
  expect(items).toHaveLength(1);
  return items[0] as T;
}

/** A full handshake; returns both ends and every handshake datagram. */
function connected(
  over: { server?: Partial<DatagramServerOptions>; client?: Partial<DatagramClientOptions> } = {},
  clock: Clock = { t: NOW },
) {
  const server = makeServer(clock, over.server);
  const client = makeClient(clock, over.client);
  const hello = client.hello();
  const serverHello = only(sent(server.receive(hello, PEER)));
  const finished = only(sent(client.receive(serverHello)));
  const established = server.receive(finished, PEER);
  const confirm = only(sent(established));
  const opened = client.receive(confirm);
  expect(opened.map((e) => e.type)).toEqual(['open']);
  const sessionId = client.sessionId as string;
  return { server, client, clock, hello, serverHello, finished, confirm, established, sessionId };
}

/** The client sends `text`; the server replies `re: text`. */
function roundTrip(c: ReturnType<typeof connected>, text: string) {
  const { datagram, counter } = c.client.send(Buffer.from(text));
  const serverEvents = c.server.receive(datagram, PEER);
  const msg = serverEvents.find((e) => e.type === 'message');
  if (msg?.type !== 'message') throw new Error(`no message: ${JSON.stringify(dropped(serverEvents))}`);
  const reply = c.server.reply(msg.sessionId, msg.counter, Buffer.concat([Buffer.from('re: '), msg.data]));
  const clientEvents = c.client.receive(reply.datagram);
  return { request: datagram, counter, serverEvents, reply: reply.datagram, clientEvents, msg };
}

describe('datagram handshake', () => {
  it('establishes a session both sides agree on, then carries requests and replies', () => {
    const c = connected();
    const est = c.established.find((e) => e.type === 'established');
    expect(est?.type === 'established' && est.session.principal).toBe('alice');
    expect(c.client.session?.principal).toBe('alice');
    expect(c.client.session?.forwardSecrecy).toBe(true);
    expect(est?.type === 'established' && est.session.channelBinding).toEqual(
      c.client.session?.channelBinding,
    );
    expect(est?.type === 'established' && est.sessionId).toBe(c.sessionId);
    expect(c.server.sessionCount).toBe(1);
    expect(c.server.pendingCount).toBe(0);
    for (const text of ['one', 'two', '']) {
      const r = roundTrip(c, text);
      expect(r.msg.data.toString()).toBe(text);
      const m = r.clientEvents.find((e) => e.type === 'message');
      expect(m?.type === 'message' && m.data.toString()).toBe(`re: ${text}`);
      expect(m?.type === 'message' && m.replyTo).toBe(r.counter);
    }
  });

  it('has the documented sizes, and every answer to an unauthenticated datagram is no larger', () => {
    for (const fs of [true, false]) {
      const c = connected({ client: { forwardSecrecy: fs }, server: { requireForwardSecrecy: false } });
      expect(c.hello.length).toBe(fs ? 120 : 88);
      expect(c.serverHello.length).toBe(c.hello.length);
      expect(c.finished.length).toBe(DGRAM_FINISHED_BYTES);
      expect(DGRAM_FINISHED_BYTES).toBe(56);
      expect(c.confirm.length).toBe(DGRAM_OVERHEAD_BYTES);
      expect(c.confirm.length).toBeLessThanOrEqual(c.finished.length);
      expect(c.client.session?.forwardSecrecy).toBe(fs);
      const r = roundTrip(c, 'x'.repeat(100));
      expect(r.request.length).toBe(100 + DGRAM_OVERHEAD_BYTES);
    }
    expect(DGRAM_OVERHEAD_BYTES).toBe(53);
    expect(MAX_DATAGRAM_PAYLOAD_BYTES).toBe(65_454);
  });

  it('refuses PSK-only clients unless allowed, silently', () => {
    const clock = { t: NOW };
    const server = makeServer(clock);
    const client = makeClient(clock, { forwardSecrecy: false });
    const events = server.receive(client.hello(), PEER);
    expect(sent(events)).toEqual([]);
    const d = events.find((e) => e.type === 'drop');
    expect(d?.type === 'drop' && d.reason).toBe('refused');
    expect(d?.type === 'drop' && d.error?.code).toBe('ERR_FORWARD_SECRECY_REQUIRED');
  });

  it('answers an unknown key id and a wrong key the same way: not at all', () => {
    const clock = { t: NOW };
    const server = makeServer(clock);
    const unknown = makeClient(clock, { key: makeKey('00000000000000aa', 'mallory', 0x33) });
    const wrong = makeClient(clock, { key: { ...KEY_A, secret: Buffer.alloc(32, 0x44) } });
    const codes = [unknown, wrong].map((client) => {
      const events = server.receive(client.hello(), PEER);
      expect(sent(events)).toEqual([]);
      const d = events.find((e) => e.type === 'drop');
      expect(d?.type === 'drop' && d.reason).toBe('refused');
      return d?.type === 'drop' ? d.error?.code : undefined;
    });
    expect(codes).toEqual(['ERR_UNKNOWN_KEY', 'ERR_AUTH_FAILED']);
    expect(server.pendingCount).toBe(0);
  });

  it('refuses revoked keys and stale hellos', () => {
    const clock = { t: NOW };
    const server = makeServer(clock, { keys: [{ ...KEY_A, revoked: true }] });
    const e1 = server.receive(makeClient(clock).hello(), PEER);
    expect(e1.find((e) => e.type === 'drop' && e.error?.code === 'ERR_KEY_REVOKED')).toBeDefined();
    const server2 = makeServer(clock);
    const old = makeClient({ t: NOW - 121_000 }).hello();
    const e2 = server2.receive(old, PEER);
    expect(e2.find((e) => e.type === 'drop' && e.error?.code === 'ERR_STALE_HELLO')).toBeDefined();
    expect(sent([...e1, ...e2])).toEqual([]);
  });

  it('retransmission: each retry is a new hello; the client takes the first answer', () => {
    const clock = { t: NOW };
    const server = makeServer(clock);
    const client = makeClient(clock);
    const h1 = client.hello();
    const h2 = client.hello();
    expect(h1.equals(h2)).toBe(false);
    const sh1 = only(sent(server.receive(h1, PEER)));
    const sh2 = only(sent(server.receive(h2, PEER)));
    expect(server.pendingCount).toBe(2);
    const fin = only(sent(client.receive(sh2)));
    expect(dropped(client.receive(sh1))).toEqual(['unexpected']);
    expect(() => client.hello()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
    // The FINISHED is lost: the client sends it again; no confirmation before the server has it.
    expect(client.finished?.equals(fin)).toBe(true);
    expect(() => client.send(Buffer.from('early'))).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_STATE' }),
    );
    const confirm = only(sent(server.receive(fin, PEER)));
    expect(server.pendingCount).toBe(1); // the other attempt waits for its deadline
    // The CONFIRM is lost too: the repeated FINISHED gets another one (bounded).
    const again: Buffer[] = [];
    for (let i = 0; i < MAX_CONFIRM_RESENDS + 3; i++) again.push(...sent(server.receive(fin, PEER)));
    expect(again).toHaveLength(MAX_CONFIRM_RESENDS);
    for (const d of again) expect(d.length).toBeLessThanOrEqual(fin.length);
    expect(client.receive(again[1] as Buffer).map((e) => e.type)).toEqual(['open']);
    expect(client.finished).toBeUndefined();
    // The first CONFIRM arrives late: it is authentic, but nothing new.
    expect(client.receive(confirm)).toEqual([]);
    // After the handshake expires, the second attempt's pending slot is gone.
    clock.t += 10_001;
    server.expire();
    expect(server.pendingCount).toBe(0);
  });

  it('a repeated FINISHED gets no answer once the client has sent data', () => {
    const c = connected();
    roundTrip(c, 'hello');
    const events = c.server.receive(c.finished, OTHER);
    expect(sent(events)).toEqual([]);
    expect(dropped(events)).toEqual(['replayed']);
  });

  it('a tampered SERVER_HELLO is dropped as forged and costs the client only that attempt', () => {
    const clock = { t: NOW };
    const server = makeServer(clock);
    const client = makeClient(clock);
    const sh = only(sent(server.receive(client.hello(), PEER)));
    const bad = xorByte(sh, -1, 1);
    const events = client.receive(bad);
    expect(dropped(events)).toEqual(['forged']);
    expect(sent(events)).toEqual([]);
    expect(client.lastHandshakeError?.code).toBe('ERR_SERVER_AUTH_FAILED');
    expect(client.state).toBe('ExpectServerHello');
    expect(dropped(client.receive(sh))).toEqual(['unknown-session']); // that attempt is spent
    const sh2 = only(sent(server.receive(client.hello(), PEER)));
    expect(sent(client.receive(sh2))).toHaveLength(1);
  });

  it('a FINISHED for another attempt, or forged, establishes nothing', () => {
    const clock = { t: NOW };
    const server = makeServer(clock);
    const client = makeClient(clock);
    const sh = only(sent(server.receive(client.hello(), PEER)));
    const fin = only(sent(client.receive(sh)));
    const otherAttempt = Buffer.from(fin);
    otherAttempt.writeUInt32BE((fin.readUInt32BE(12) + 1) >>> 0, 12);
    expect(dropped(server.receive(otherAttempt, PEER))).toEqual(['malformed']);
    const forged = xorByte(fin, 40, 0x80);
    const events = server.receive(forged, PEER);
    expect(dropped(events)).toEqual(['refused']);
    expect(events.find((e) => e.type === 'drop')?.type === 'drop').toBe(true);
    expect(sent(events)).toEqual([]);
    expect(server.sessionCount).toBe(0);
    // The pending handshake is spent: the genuine FINISHED now finds nothing.
    expect(dropped(server.receive(fin, PEER))).toEqual(['unknown-session']);
  });
});

describe('datagram replay protection', () => {
  it('drops a replayed DATA datagram, in and out of order', () => {
    const c = connected();
    const a = c.client.send(Buffer.from('a')).datagram;
    const b = c.client.send(Buffer.from('b')).datagram;
    const d = c.client.send(Buffer.from('c')).datagram;
    expect(messages(c.server.receive(d, PEER)).map(String)).toEqual(['c']);
    expect(messages(c.server.receive(a, PEER)).map(String)).toEqual(['a']);
    expect(dropped(c.server.receive(d, PEER))).toEqual(['replayed']);
    expect(dropped(c.server.receive(a, PEER))).toEqual(['replayed']);
    expect(messages(c.server.receive(b, PEER)).map(String)).toEqual(['b']);
    expect(dropped(c.server.receive(b, OTHER))).toEqual(['replayed']);
  });

  it('drops a datagram behind the window as too old', () => {
    const c = connected({ server: { replayWindowBits: 64 } });
    const first = c.client.send(Buffer.from('first')).datagram;
    for (let i = 0; i < 40; i++) c.server.receive(c.client.send(Buffer.from(`m${i}`)).datagram, PEER);
    expect(dropped(c.server.receive(first, PEER))).toEqual(['too-old']);
  });

  it('drops the server datagrams the client already received, too', () => {
    const c = connected();
    const r = roundTrip(c, 'q');
    expect(dropped(c.client.receive(r.reply))).toEqual(['replayed']);
    expect(dropped(c.client.receive(c.confirm))).toEqual(['replayed']);
  });

  it('drops datagrams outside the freshness bound, old or ahead', () => {
    const clock = { t: NOW };
    const c = connected({}, clock);
    const late = c.client.send(Buffer.from('late')).datagram;
    clock.t += 30_001;
    expect(dropped(c.server.receive(late, PEER))).toEqual(['stale']);
    // The same bound the other way: a datagram from 30 s ahead of the receiver's session clock.
    const c2 = connected({}, { t: NOW });
    const clientClock = { t: NOW + 31_000 };
    const ahead = new DatagramClientEndpoint({
      key: KEY_A,
      entropy: deterministicEntropy('ahead'),
      now: () => clientClock.t,
    });
    const server = c2.server;
    clientClock.t = NOW;
    const sh = only(sent(server.receive(ahead.hello(), PEER)));
    const confirm = only(sent(server.receive(only(sent(ahead.receive(sh))), PEER)));
    ahead.receive(confirm);
    clientClock.t = NOW + 31_000;
    expect(dropped(server.receive(ahead.send(Buffer.from('ahead')).datagram, PEER))).toEqual(['stale']);
    // Inside the bound, both ways, is fine.
    clientClock.t = NOW + 29_000;
    expect(messages(server.receive(ahead.send(Buffer.from('ok')).datagram, PEER)).map(String)).toEqual([
      'ok',
    ]);
  });

  it('freshness needs no synchronized clocks: a client 100 s off works', () => {
    const serverClock = { t: NOW };
    const clientClock = { t: NOW + 100_000 };
    const server = makeServer(serverClock);
    const client = makeClient(clientClock);
    const sh = only(sent(server.receive(client.hello(), PEER)));
    client.receive(only(sent(server.receive(only(sent(client.receive(sh))), PEER))));
    for (let i = 0; i < 5; i++) {
      serverClock.t += 1000;
      clientClock.t += 1000;
      expect(messages(server.receive(client.send(Buffer.from(`m${i}`)).datagram, PEER))).toHaveLength(1);
    }
  });

  it('a restarted server accepts none of the old datagrams', () => {
    const clock = { t: NOW };
    const c = connected({}, clock);
    const data = [
      roundTrip(c, 'one').request,
      roundTrip(c, 'two').request,
      c.client.send(Buffer.from('3')).datagram,
    ];
    const restarted = makeServer(clock, {}, 'server after restart');
    // The HELLO is fresh and the new replay cache is empty: it costs one SERVER_HELLO of the same
    // size, but the replayer cannot finish the handshake...
    const sh = only(sent(restarted.receive(c.hello, OTHER)));
    expect(sh.length).toBe(c.hello.length);
    // ...and the old FINISHED and DATA name a session the new server never had.
    const events = [c.finished, ...data].flatMap((d) => restarted.receive(d, OTHER));
    expect(messages(events)).toEqual([]);
    expect(sent(events)).toEqual([]);
    expect(dropped(events)).toEqual([
      'unknown-session',
      'unknown-session',
      'unknown-session',
      'unknown-session',
    ]);
    // Even with the new server's session id written in, the old FINISHED does not verify.
    const fin = Buffer.from(c.finished);
    sh.copy(fin, 4, 4, 16);
    const e2 = restarted.receive(fin, OTHER);
    expect(dropped(e2)).toEqual(['refused']);
    expect(e2.find((e) => e.type === 'drop')?.type === 'drop' && restarted.sessionCount).toBe(0);
    // Once the hello is older than the skew, it gets no answer at all.
    clock.t += 120_001;
    const late = makeServer(clock, {}, 'later');
    expect(sent(late.receive(c.hello, OTHER))).toEqual([]);
  });

  it('a replayed HELLO gets no second answer from the same server', () => {
    const c = connected();
    const events = c.server.receive(c.hello, OTHER);
    expect(sent(events)).toEqual([]);
    expect(events.find((e) => e.type === 'drop')?.type === 'drop').toBe(true);
    expect(events.some((e) => e.type === 'drop' && e.error?.code === 'ERR_REPLAYED_HELLO')).toBe(true);
  });
});

describe('datagram forgery', () => {
  it('drops every single-bit change to a DATA datagram, and every truncation', () => {
    const c = connected();
    const { datagram } = c.client.send(Buffer.from('the message'));
    const reasons = new Set<DropReason>();
    for (let i = 0; i < datagram.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(datagram);
        bad[i] = (bad[i] as number) ^ bit;
        const events = c.server.receive(bad, PEER);
        expect(messages(events), `byte ${i}`).toEqual([]);
        expect(sent(events)).toEqual([]);
        for (const r of dropped(events)) reasons.add(r);
      }
    }
    for (let n = 0; n < datagram.length; n++) {
      expect(messages(c.server.receive(datagram.subarray(0, n), PEER))).toEqual([]);
    }
    // A flipped bit in the time may be caught as stale before the AEAD is even tried.
    expect([...reasons].sort()).toEqual(['forged', 'malformed', 'stale', 'unknown-session']);
    // The genuine datagram was never marked as seen by the forgeries.
    expect(messages(c.server.receive(datagram, PEER)).map(String)).toEqual(['the message']);
  });

  it('a forged datagram with a far-ahead counter does not move the window', () => {
    const c = connected();
    const { datagram } = c.client.send(Buffer.from('m'));
    const bad = Buffer.from(datagram);
    bad.writeBigUInt64BE(1_000_000n, 12);
    expect(dropped(c.server.receive(bad, PEER))).toEqual(['forged']);
    expect(messages(c.server.receive(datagram, PEER))).toHaveLength(1);
  });

  it('datagrams do not work in the other direction (reflection) or in another session', () => {
    const c = connected();
    c.client.send(Buffer.from('1'));
    c.client.send(Buffer.from('2'));
    const { datagram } = c.client.send(Buffer.from('3')); // counter 3: not yet seen by the client
    expect(dropped(c.client.receive(datagram))).toEqual(['forged']);
    expect(dropped(c.server.receive(c.confirm, PEER))).toEqual(['forged']);
    // A second session on the same server: the datagram moved into it does not open.
    const other = makeClient(c.clock, {}, 'other client');
    connectVia(c.server, other);
    const moved = Buffer.from(datagram);
    Buffer.from(other.sessionId as string, 'hex').copy(moved, 4);
    expect(dropped(c.server.receive(moved, PEER))).toEqual(['forged']);
    expect(messages(c.server.receive(datagram, PEER)).map(String)).toEqual(['3']);
  });

  it('junk gets no answer, whatever it is', () => {
    const c = connected();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 4 }), (bytes, type) => {
        const d = Buffer.from(bytes);
        if (d.length > 0 && type > 0) d[0] = type; // make it look like each datagram type
        const events = c.server.receive(d, OTHER);
        return sent(events).length === 0 && messages(events).length === 0 && dropped(events).length === 1;
      }),
      { numRuns: 500 },
    );
    // Structured junk: a well-formed HELLO envelope around random bytes.
    for (let i = 0; i < 50; i++) {
      const d = Buffer.from(c.hello);
      deterministicEntropy(`junk ${i}`).bytes(64).copy(d, 24);
      expect(sent(c.server.receive(d, OTHER))).toEqual([]);
    }
    expect(c.server.sessionCount).toBe(1);
    expect(c.server.pendingCount).toBe(0);
    expect(roundTrip(c, 'still fine').msg.data.toString()).toBe('still fine');
  });

  it('a client drops junk and handshake datagrams addressed to servers', () => {
    const c = connected();
    expect(dropped(c.client.receive(Buffer.from('junk')))).toEqual(['malformed']);
    expect(dropped(c.client.receive(c.hello))).toEqual(['unexpected']);
    expect(dropped(c.client.receive(c.finished))).toEqual(['unexpected']);
  });
});

describe('datagram session limits', () => {
  it('refuses payloads over the limit at the sender, with a typed error', () => {
    const c = connected({ client: { maxPayloadBytes: 100 }, server: { maxPayloadBytes: 50 } });
    expect(() => c.client.send(Buffer.alloc(101))).toThrow(
      expect.objectContaining({ code: 'ERR_DATAGRAM_TOO_LARGE' }),
    );
    const { msg } = roundTrip(c, 'x'.repeat(46)); // reply 're: ' + 46 = 50 bytes: fits
    expect(() => c.server.reply(msg.sessionId, msg.counter, Buffer.alloc(51))).toThrow(
      expect.objectContaining({ code: 'ERR_DATAGRAM_TOO_LARGE' }),
    );
    // The receiver takes what an authenticated peer sends, up to the protocol maximum.
    const big = connected({ client: { maxPayloadBytes: MAX_DATAGRAM_PAYLOAD_BYTES } });
    const { datagram } = big.client.send(Buffer.alloc(MAX_DATAGRAM_PAYLOAD_BYTES, 7));
    expect(datagram.length).toBe(65_507);
    expect(messages(big.server.receive(datagram, PEER))[0]?.length).toBe(MAX_DATAGRAM_PAYLOAD_BYTES);
  });

  it('validates its limits', () => {
    const clock = { t: NOW };
    for (const over of [
      { maxPayloadBytes: 0 },
      { maxPayloadBytes: MAX_DATAGRAM_PAYLOAD_BYTES + 1 },
      { replayWindowBits: 100 },
      { maxDatagramAgeMs: -1 },
      { maxSessions: 0 },
      { maxDatagramsPerSession: 0 },
    ]) {
      expect(() => makeServer(clock, over), JSON.stringify(over)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
      );
    }
    expect(() => makeClient(clock, { maxPayloadBytes: 1.5 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    expect(() => makeClient(clock, { key: { ...KEY_A, secret: Buffer.alloc(16) } }).hello()).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_TOO_SHORT' }),
    );
  });

  it('ends a session that has sealed its counter limit (no counter is ever reused)', () => {
    const c = connected({ client: { maxDatagramsPerSession: 3 }, server: { maxDatagramsPerSession: 2 } });
    const counters = [1, 2, 3].map(() => c.client.send(Buffer.from('m')).counter);
    expect(counters).toEqual([1, 2, 3]);
    let err: unknown;
    try {
      c.client.send(Buffer.from('one too many'));
    } catch (e) {
      err = e;
    }
    expect(isSesameError(err, 'ERR_CLOSED')).toBe(true);
    expect(c.client.close()).toBeUndefined(); // nothing left to seal a CLOSE with
    // The server sealed CONFIRM (1); one reply (2) and it is used up.
    const c2 = connected({ server: { maxDatagramsPerSession: 2 } });
    const { msg } = roundTrip(c2, 'a');
    expect(() => c2.server.reply(msg.sessionId, msg.counter, Buffer.from('b'))).toThrow(
      expect.objectContaining({ code: 'ERR_CLOSED' }),
    );
    expect(c2.server.sessionCount).toBe(0);
  });

  it('bounds pending handshakes per source and in total, and sessions', () => {
    const clock = { t: NOW };
    const server = makeServer(clock, { maxPendingPerSource: 2, maxPendingHandshakes: 3, maxSessions: 1 });
    const hellos = [1, 2, 3, 4].map((i) => makeClient(clock, {}, `c${i}`).hello());
    expect(sent(server.receive(hellos[0] as Buffer, PEER))).toHaveLength(1);
    expect(sent(server.receive(hellos[1] as Buffer, PEER))).toHaveLength(1);
    expect(dropped(server.receive(hellos[2] as Buffer, PEER))).toEqual(['busy']);
    expect(sent(server.receive(hellos[2] as Buffer, OTHER))).toHaveLength(1);
    expect(dropped(server.receive(hellos[3] as Buffer, { address: '203.0.113.9', port: 1 }))).toEqual([
      'busy',
    ]);
    expect(server.pendingCount).toBe(3);
    clock.t += 10_000;
    server.expire();
    expect(server.pendingCount).toBe(0);
    // One session at most.
    connectVia(server, makeClient(clock, {}, 'first'));
    expect(server.sessionCount).toBe(1);
    const second = makeClient(clock, {}, 'second');
    expect(dropped(server.receive(second.hello(), PEER))).toEqual(['busy']);
  });

  it('forgets idle sessions, and a keepalive keeps one', () => {
    const clock = { t: NOW };
    const c = connected({ server: { sessionIdleMs: 1000 } }, clock);
    clock.t += 900;
    expect(c.server.receive(c.client.keepalive(), PEER)).toEqual([]);
    clock.t += 900;
    expect(c.server.expire()).toEqual([]);
    clock.t += 1000;
    expect(c.server.expire()).toEqual([{ type: 'session-end', sessionId: c.sessionId, why: 'idle' }]);
    expect(dropped(c.server.receive(c.client.send(Buffer.from('hello?')).datagram, PEER))).toEqual([
      'unknown-session',
    ]);
    expect(() => c.server.reply(c.sessionId, 1, Buffer.from('x'))).toThrow(
      expect.objectContaining({ code: 'ERR_CLOSED' }),
    );
  });

  it('follows a client whose address changes (NAT rebinding) and closes both ways', () => {
    const c = connected();
    const moved = { address: PEER.address, port: PEER.port + 1 };
    const { datagram, counter } = c.client.send(Buffer.from('from elsewhere'));
    expect(messages(c.server.receive(datagram, moved))).toHaveLength(1);
    expect(c.server.reply(c.sessionId, counter, Buffer.from('ok')).to).toEqual(moved);
    // Client close: the server forgets the session.
    const close = c.client.close() as Buffer;
    expect(c.client.state).toBe('Closed');
    expect(c.server.receive(close, moved)).toEqual([
      { type: 'session-end', sessionId: c.sessionId, why: 'closed' },
    ]);
    expect(c.server.sessionCount).toBe(0);
    // Server close: every client hears an authenticated CLOSE.
    const d = connected();
    const closes = d.server.closeAll();
    expect(closes.map((x) => x.to)).toEqual([PEER]);
    expect(d.client.receive((closes[0] as { datagram: Buffer }).datagram)).toEqual([{ type: 'close' }]);
    expect(() => d.client.send(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    expect(dropped(d.client.receive(Buffer.from('late')))).toEqual(['closed']);
  });

  it('formats peers as HOST:PORT', () => {
    expect(formatPeer(PEER)).toBe('192.0.2.1:40000');
    expect(formatPeer({ address: '::1', port: 9 })).toBe('[::1]:9');
    expect(DGRAM_DATA_HEADER_BYTES).toBe(28);
  });
});

function connectVia(server: DatagramServerEndpoint, client: DatagramClientEndpoint): void {
  const sh = only(sent(server.receive(client.hello(), PEER)));
  const confirm = only(sent(server.receive(only(sent(client.receive(sh))), PEER)));
  expect(client.receive(confirm).map((e) => e.type)).toEqual(['open']);
}
