/**
 * Tampering, replay, reflection, truncation and downgrade at the protocol level.
 *
 * Every single-bit change of every handshake message (both modes) and of a data, close, ping and
 * key-update record (both directions) must make the receiver fail with a typed peer error whose
 * code depends on the region hit, produce nothing from the tampered bytes, and stay failed with
 * the same error object. All connections are deterministic, so every case starts from the same
 * state.
 */

import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type ErrorCode, PeerError, type SesameError } from '../../src/errors.js';
import {
  ClientConnection,
  type ConnectionEvent,
  deterministicEntropy,
  MAX_RECORD_BODY_BYTES,
  MIN_RECORD_BODY_BYTES,
  type PresharedKey,
  ServerConnection,
  ServerContext,
} from '../../src/protocol/index.js';
import { flipBit } from '../helpers/mutations.js';
import { NOW } from '../helpers/pair.js';

const KEY: PresharedKey = {
  id: '0123456789abcdef',
  principal: 'tamper',
  secret: Buffer.from(Array.from({ length: 32 }, (_, i) => 0x40 + i)),
};

type Mode = 'x25519' | 'psk';
const MODES: Mode[] = ['x25519', 'psk'];

function newContext(opts: { requireForwardSecrecy?: boolean; seed?: string } = {}): ServerContext {
  return new ServerContext({
    keys: [KEY],
    entropy: deterministicEntropy(opts.seed ?? 'tamper server'),
    now: () => NOW,
    requireForwardSecrecy: opts.requireForwardSecrecy ?? false,
  });
}

function newClient(mode: Mode, seed = 'tamper client'): ClientConnection {
  return new ClientConnection({
    key: KEY,
    entropy: deterministicEntropy(seed),
    now: () => NOW,
    forwardSecrecy: mode === 'x25519',
  });
}

function take(conn: ClientConnection | ServerConnection): Buffer {
  return Buffer.concat(conn.takeOutput());
}

interface Established {
  client: ClientConnection;
  server: ServerConnection;
  ctx: ServerContext;
}

/** A fresh, deterministic, established pair with both output queues empty. */
function established(mode: Mode, opts: { clientSeed?: string; ctx?: ServerContext } = {}): Established {
  const ctx = opts.ctx ?? newContext();
  const client = newClient(mode, opts.clientSeed);
  const server = new ServerConnection(ctx);
  expect(server.receive(take(client))).toEqual([]);
  expect(client.receive(take(server)).map((e) => e.type)).toEqual(['established']);
  expect(server.receive(take(client)).map((e) => e.type)).toEqual(['established']);
  return { client, server, ctx };
}

/** The three handshake messages of a deterministic handshake in `mode`. */
function transcript(mode: Mode): { ch: Buffer; sh: Buffer; cf: Buffer } {
  const client = newClient(mode);
  const server = new ServerConnection(newContext());
  const ch = take(client);
  server.receive(ch);
  const sh = take(server);
  client.receive(sh);
  const cf = take(client);
  return { ch, sh, cf };
}

/** Every later call on a failed connection throws the very same error object. */
function expectSticky(conn: ClientConnection | ServerConnection, err: SesameError): void {
  expect(conn.error).toBe(err);
  const calls: (() => unknown)[] = [
    () => conn.receive(Buffer.alloc(1)),
    () => conn.receiveEnd(),
    () => conn.send(Buffer.from('x')),
    () => conn.ping(),
    () => conn.updateKeys(),
    () => conn.close(),
  ];
  for (const call of calls) {
    let thrown: unknown;
    try {
      call();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBe(err);
  }
}

/** The single error event `events` must end with; nothing before it but `allowedBefore` types. */
function failure(events: ConnectionEvent[], allowedBefore: ConnectionEvent['type'][] = []): SesameError {
  const last = events.at(-1);
  if (last?.type !== 'error') throw new Error(`expected an error event, got ${JSON.stringify(events)}`);
  for (const e of events.slice(0, -1)) expect(allowedBefore).toContain(e.type);
  expect(last.error).toBeInstanceOf(PeerError);
  expect(last.error.fault).toBe('peer');
  return last.error;
}

/** What the receiver must do with a tampered message: fail with one of `codes`, or wait. */
type Expect = { codes: ErrorCode[] } | 'wait';

function clientHelloExpect(mode: Mode, byte: number, bit: number): Expect {
  if (byte < 4) return { codes: ['ERR_MALFORMED_MESSAGE'] };
  if (byte === 4) return { codes: ['ERR_UNSUPPORTED_VERSION'] };
  if (byte === 5) return { codes: ['ERR_UNEXPECTED_MESSAGE'] };
  if (byte === 6 && bit === 0) {
    // The X25519 flag decides the length: clearing it makes a 72-byte hello whose "mac1" is the
    // start of the key share; setting it makes the server wait for 32 more bytes.
    return mode === 'x25519' ? { codes: ['ERR_AUTH_FAILED'] } : 'wait';
  }
  if (byte === 6 || byte === 7) return { codes: ['ERR_MALFORMED_MESSAGE'] };
  if (byte < 16) return { codes: ['ERR_UNKNOWN_KEY'] };
  return { codes: ['ERR_AUTH_FAILED'] };
}

/** The codes a ServerHello with `byte` changed may fail with (the flags must match the hello's). */
function serverHelloCodes(mode: Mode, byte: number): ErrorCode[] {
  if (byte < 4) return ['ERR_MALFORMED_MESSAGE'];
  if (byte === 4) return ['ERR_UNSUPPORTED_VERSION'];
  if (byte === 5) return ['ERR_UNEXPECTED_MESSAGE'];
  if (byte < 8) return ['ERR_MALFORMED_MESSAGE'];
  // A changed key share may be a point X25519 refuses; otherwise server finished fails.
  if (mode === 'x25519' && byte >= 40 && byte < 72) return ['ERR_SERVER_AUTH_FAILED', 'ERR_BAD_KEY_SHARE'];
  return ['ERR_SERVER_AUTH_FAILED'];
}

/** The code a ClientFinished with `byte` changed fails with. */
function clientFinishedCode(byte: number): ErrorCode {
  if (byte < 4) return 'ERR_MALFORMED_MESSAGE';
  if (byte === 4) return 'ERR_UNSUPPORTED_VERSION';
  if (byte === 5) return 'ERR_UNEXPECTED_MESSAGE';
  if (byte < 8) return 'ERR_MALFORMED_MESSAGE';
  return 'ERR_AUTH_FAILED';
}

describe('single-bit tampering of handshake messages', () => {
  for (const mode of MODES) {
    const { ch, sh, cf } = transcript(mode);

    it(`${mode}: every bit of the ClientHello (${ch.length} bytes)`, () => {
      expect(ch.length).toBe(mode === 'x25519' ? 104 : 72);
      const seen = new Set<string>();
      for (let bit = 0; bit < ch.length * 8; bit++) {
        const byte = bit >> 3;
        const want = clientHelloExpect(mode, byte, bit & 7);
        const server = new ServerConnection(newContext());
        const events = server.receive(flipBit(ch, bit));
        let err: SesameError;
        if (want === 'wait') {
          expect(events, `bit ${bit}`).toEqual([]);
          err = failure(server.receiveEnd());
          expect(err.code).toBe('ERR_TRUNCATED');
        } else {
          err = failure(events);
          expect(want.codes, `bit ${bit} gave ${err.code}`).toContain(err.code);
        }
        seen.add(err.code);
        // A refusal is silent: the server never writes to a client that did not authenticate.
        expect(server.hasOutput, `bit ${bit}`).toBe(false);
        expect(server.session).toBeUndefined();
        expectSticky(server, err);
      }
      expect([...seen].sort()).toEqual(
        [
          'ERR_AUTH_FAILED',
          'ERR_MALFORMED_MESSAGE',
          'ERR_UNEXPECTED_MESSAGE',
          'ERR_UNKNOWN_KEY',
          'ERR_UNSUPPORTED_VERSION',
          ...(mode === 'psk' ? ['ERR_TRUNCATED'] : []),
        ].sort(),
      );
    });

    it(`${mode}: every bit of the ServerHello (${sh.length} bytes)`, () => {
      expect(sh.length).toBe(mode === 'x25519' ? 104 : 72);
      for (let bit = 0; bit < sh.length * 8; bit++) {
        const want = serverHelloCodes(mode, bit >> 3);
        const client = newClient(mode);
        client.takeOutput();
        const events = client.receive(flipBit(sh, bit));
        const err = failure(events);
        expect(want, `bit ${bit} gave ${err.code}`).toContain(err.code);
        // No ClientFinished is sent to a server that did not prove it holds the key.
        expect(client.hasOutput, `bit ${bit}`).toBe(false);
        expect(client.session).toBeUndefined();
        expectSticky(client, err);
      }
    });

    it(`${mode}: every bit of the ClientFinished (${cf.length} bytes)`, () => {
      expect(cf.length).toBe(40);
      for (let bit = 0; bit < cf.length * 8; bit++) {
        const want = clientFinishedCode(bit >> 3);
        const server = new ServerConnection(newContext());
        expect(server.receive(ch)).toEqual([]);
        expect(take(server)).toEqual(sh);
        const events = server.receive(flipBit(cf, bit));
        const err = failure(events);
        expect(err.code, `bit ${bit}`).toBe(want);
        expect(server.hasOutput, `bit ${bit}`).toBe(false);
        expect(server.session).toBeUndefined();
        expectSticky(server, err);
      }
    });
  }
});

type RecordKind = 'data' | 'close' | 'ping' | 'key update';
const RECORD_KINDS: RecordKind[] = ['data', 'close', 'ping', 'key update'];

function makeRecord(sender: ClientConnection | ServerConnection, kind: RecordKind): Buffer {
  switch (kind) {
    case 'data':
      sender.send(Buffer.from('hello'));
      break;
    case 'close':
      sender.close();
      break;
    case 'ping':
      sender.ping(Buffer.from('ping-123'));
      break;
    case 'key update':
      sender.updateKeys(true);
      break;
  }
  const out = sender.takeOutput();
  expect(out).toHaveLength(1);
  return out[0] as Buffer;
}

describe('single-bit tampering of records', () => {
  for (const kind of RECORD_KINDS) {
    for (const direction of ['client to server', 'server to client'] as const) {
      it(`every bit of a ${kind} record, ${direction}`, () => {
        const ends = (p: Established) =>
          direction === 'client to server' ? { tx: p.client, rx: p.server } : { tx: p.server, rx: p.client };
        const reference = ends(established('x25519'));
        const record = makeRecord(reference.tx, kind);
        // The untampered record is accepted.
        const ok = reference.rx.receive(record);
        expect(ok.every((e) => e.type !== 'error')).toBe(true);
        const length = record.readUInt16BE(0);
        expect(record.length).toBe(2 + length);
        const seen = new Set<string>();
        for (let bit = 0; bit < record.length * 8; bit++) {
          const { tx, rx } = ends(established('x25519'));
          expect(makeRecord(tx, kind)).toEqual(record);
          const tampered = flipBit(record, bit);
          const events = rx.receive(tampered);
          let err: SesameError;
          if (bit < 16) {
            const claimed = tampered.readUInt16BE(0);
            if (claimed < MIN_RECORD_BODY_BYTES || claimed > MAX_RECORD_BODY_BYTES) {
              err = failure(events);
              expect(err.code, `bit ${bit}`).toBe('ERR_RECORD_LENGTH');
            } else if (claimed < length) {
              err = failure(events);
              expect(err.code, `bit ${bit}`).toBe('ERR_RECORD_DECRYPT');
            } else {
              // Still in range but longer: the receiver waits for the rest of the body.
              expect(events, `bit ${bit}`).toEqual([]);
              err = failure(rx.receive(Buffer.alloc(claimed - length)));
              expect(err.code, `bit ${bit}`).toBe('ERR_RECORD_DECRYPT');
            }
          } else {
            err = failure(events);
            expect(err.code, `bit ${bit}`).toBe('ERR_RECORD_DECRYPT');
          }
          seen.add(err.code);
          // Nothing came out of the tampered bytes: no message, no pong, no key update reply.
          expect(rx.hasOutput, `bit ${bit}`).toBe(false);
          expect(rx.peerClosed).toBe(false);
          expectSticky(rx, err);
        }
        expect(seen).toEqual(new Set(['ERR_RECORD_LENGTH', 'ERR_RECORD_DECRYPT']));
      });
    }
  }
});

describe('records out of place', () => {
  // One message per takeOutput(): messages taken together would share one batch record.
  function twoRecords(p: Established): [Buffer, Buffer] {
    p.client.send(Buffer.from('first'));
    const [a] = p.client.takeOutput();
    p.client.send(Buffer.from('second'));
    const [b] = p.client.takeOutput();
    return [a as Buffer, b as Buffer];
  }

  it('a dropped record makes the next one fail', () => {
    const p = established('x25519');
    const [, second] = twoRecords(p);
    const err = failure(p.server.receive(second));
    expect(err.code).toBe('ERR_RECORD_DECRYPT');
    expectSticky(p.server, err);
  });

  it('a duplicated record fails the second time', () => {
    const p = established('x25519');
    const [first] = twoRecords(p);
    const events = p.server.receive(Buffer.concat([first, first]));
    expect(events[0]).toMatchObject({ type: 'message' });
    expect(failure(events, ['message']).code).toBe('ERR_RECORD_DECRYPT');
    expect(events.filter((e) => e.type === 'message')).toHaveLength(1);
  });

  it('reordered records fail', () => {
    const p = established('psk');
    const [first, second] = twoRecords(p);
    const events = p.server.receive(Buffer.concat([second, first]));
    expect(failure(events).code).toBe('ERR_RECORD_DECRYPT');
  });

  it('a record spliced in from another connection with the same key fails', () => {
    for (const mode of MODES) {
      const ctx = newContext();
      const p = established(mode, { ctx, clientSeed: 'first client' });
      const q = established(mode, { ctx, clientSeed: 'second client' });
      const [foreign] = twoRecords(q);
      const [own] = twoRecords(p);
      expect(foreign.length).toBe(own.length);
      expect(failure(p.server.receive(foreign)).code).toBe('ERR_RECORD_DECRYPT');
    }
  });

  it('a record reflected back to its sender fails', () => {
    const p = established('x25519');
    const [first] = twoRecords(p);
    expect(failure(p.client.receive(first)).code).toBe('ERR_RECORD_DECRYPT');
  });

  it('a record from before a key update is refused after it', () => {
    const p = established('x25519');
    p.client.send(Buffer.from('old key'));
    p.client.updateKeys(false);
    const [old, update] = p.client.takeOutput() as [Buffer, Buffer];
    const events = p.server.receive(Buffer.concat([old, update, old]));
    expect(events.map((e) => e.type)).toEqual(['message', 'error']);
    expect(failure(events, ['message']).code).toBe('ERR_RECORD_DECRYPT');
  });

  it('bytes after the close record are refused', () => {
    const p = established('x25519');
    p.client.close();
    const close = take(p.client);
    const events = p.server.receive(Buffer.concat([close, Buffer.alloc(1)]));
    expect(events.map((e) => e.type)).toEqual(['close', 'error']);
    expect(failure(events, ['close']).code).toBe('ERR_DATA_AFTER_CLOSE');
  });
});

describe('truncation', () => {
  it('end of input without a close record is ERR_TRUNCATED, at either end', () => {
    for (const mode of MODES) {
      const p = established(mode);
      p.client.send(Buffer.from('no close follows'));
      expect(p.server.receive(take(p.client)).map((e) => e.type)).toEqual(['message']);
      const s = failure(p.server.receiveEnd());
      expect(s.code).toBe('ERR_TRUNCATED');
      expectSticky(p.server, s);
      const c = failure(p.client.receiveEnd());
      expect(c.code).toBe('ERR_TRUNCATED');
      expectSticky(p.client, c);
    }
  });

  it('end of input in the middle of a record is ERR_TRUNCATED and yields nothing', () => {
    const p = established('x25519');
    p.client.send(Buffer.from('cut short'));
    const record = take(p.client);
    for (const cut of [1, 2, record.length - 1]) {
      const q = established('x25519');
      q.client.send(Buffer.from('cut short'));
      expect(take(q.client)).toEqual(record);
      expect(q.server.receive(record.subarray(0, cut))).toEqual([]);
      expect(failure(q.server.receiveEnd()).code).toBe('ERR_TRUNCATED');
    }
  });

  it('the close record makes end of input clean', () => {
    const p = established('x25519');
    p.client.close();
    expect(p.server.receive(take(p.client)).map((e) => e.type)).toEqual(['close']);
    expect(p.server.receiveEnd()).toEqual([]);
  });

  it('end of input during the handshake: ERR_AUTH_REFUSED at the client, ERR_TRUNCATED at the server', () => {
    for (const mode of MODES) {
      const { ch, sh } = transcript(mode);
      const client = newClient(mode);
      client.takeOutput();
      expect(client.receive(sh.subarray(0, 50))).toEqual([]);
      expect(failure(client.receiveEnd()).code).toBe('ERR_AUTH_REFUSED');
      const fresh = new ServerConnection(newContext());
      expect(failure(fresh.receiveEnd()).code).toBe('ERR_TRUNCATED');
      const waiting = new ServerConnection(newContext());
      expect(waiting.receive(ch)).toEqual([]);
      expect(failure(waiting.receiveEnd()).code).toBe('ERR_TRUNCATED');
    }
  });
});

/** A ServerHello built by hand: header, nonce, [share], and a (wrong) finished value. */
function handmadeServerHello(flags: number, nonce: Buffer, share: Buffer | undefined): Buffer {
  return Buffer.concat([
    Buffer.from('SESM', 'latin1'),
    Buffer.of(2, 2, flags, 0), // version 2
    nonce,
    share ?? Buffer.alloc(0),
    Buffer.alloc(32, 0x5a),
  ]);
}

describe('reflection', () => {
  it('a server refuses its own ServerHello, fresh or waiting for ClientFinished', () => {
    for (const mode of MODES) {
      const { ch, sh } = transcript(mode);
      const fresh = new ServerConnection(newContext());
      expect(failure(fresh.receive(sh)).code).toBe('ERR_UNEXPECTED_MESSAGE');
      expect(fresh.hasOutput).toBe(false);
      const waiting = new ServerConnection(newContext());
      waiting.receive(ch);
      expect(take(waiting)).toEqual(sh);
      expect(failure(waiting.receive(sh)).code).toBe('ERR_UNEXPECTED_MESSAGE');
    }
  });

  it('a client refuses its own ClientHello', () => {
    for (const mode of MODES) {
      const client = newClient(mode);
      const ch = take(client);
      expect(failure(client.receive(ch)).code).toBe('ERR_UNEXPECTED_MESSAGE');
      expect(client.hasOutput).toBe(false);
    }
  });

  it('a client refuses a ServerHello that echoes its nonce or its key share', () => {
    for (const mode of MODES) {
      const { sh } = transcript(mode);
      const flags = mode === 'x25519' ? 1 : 0;
      const client = newClient(mode);
      const ch = take(client);
      const clientNonce = ch.subarray(24, 56);
      const serverShare = mode === 'x25519' ? sh.subarray(40, 72) : undefined;
      const echoNonce = handmadeServerHello(flags, clientNonce, serverShare);
      const err = failure(client.receive(echoNonce));
      expect(err.code).toBe('ERR_REFLECTED_MESSAGE');
      expect(client.hasOutput).toBe(false);
      expectSticky(client, err);
      if (mode === 'x25519') {
        const other = newClient(mode);
        const clientShare = take(other).subarray(56, 88);
        const echoShare = handmadeServerHello(flags, sh.subarray(8, 40), clientShare);
        expect(failure(other.receive(echoShare)).code).toBe('ERR_REFLECTED_MESSAGE');
      }
    }
  });
});

describe('downgrade and invalid key shares', () => {
  it('clearing the X25519 flag of a ClientHello on the wire is refused', () => {
    const { ch } = transcript('x25519');
    const downgraded = Buffer.from(ch);
    downgraded[6] = 0;
    for (const requireForwardSecrecy of [true, false]) {
      const server = new ServerConnection(newContext({ requireForwardSecrecy }));
      const err = failure(server.receive(downgraded));
      expect(err.code).toBe('ERR_AUTH_FAILED');
      expect(server.hasOutput).toBe(false);
    }
    // Also when the bytes are cut to the PSK-only length, as a careful attacker would send them.
    const cut = Buffer.concat([downgraded.subarray(0, 56), ch.subarray(88)]);
    expect(cut.length).toBe(72);
    const server = new ServerConnection(newContext());
    expect(failure(server.receive(cut)).code).toBe('ERR_AUTH_FAILED');
  });

  it('clearing the X25519 flag of a ServerHello is refused by the client', () => {
    const { sh } = transcript('x25519');
    const client = newClient('x25519');
    client.takeOutput();
    const downgraded = Buffer.from(sh);
    downgraded[6] = 0;
    expect(failure(client.receive(downgraded)).code).toBe('ERR_MALFORMED_MESSAGE');
  });

  it('a server that requires forward secrecy refuses a PSK-only client', () => {
    const server = new ServerConnection(newContext({ requireForwardSecrecy: true }));
    const err = failure(server.receive(take(newClient('psk'))));
    expect(err.code).toBe('ERR_FORWARD_SECRECY_REQUIRED');
    expect(server.hasOutput).toBe(false);
  });

  it('low-order X25519 key shares are refused at both ends', () => {
    const lowOrder = [Buffer.alloc(32), Buffer.concat([Buffer.of(1), Buffer.alloc(31)])];
    // The client side: a ServerHello carrying a low-order share.
    for (const share of lowOrder) {
      const { sh } = transcript('x25519');
      const client = newClient('x25519');
      client.takeOutput();
      const bad = handmadeServerHello(1, sh.subarray(8, 40), share);
      expect(failure(client.receive(bad)).code).toBe('ERR_BAD_KEY_SHARE');
    }
    // The server side: an authentic ClientHello (mac1 made with the key) carrying one.
    const early = createHmac('sha256', 'sesame v1').update(KEY.secret).digest();
    const gate = createHmac('sha256', early).update('sesame v1 gate').update(Buffer.of(1)).digest();
    lowOrder.forEach((share, i) => {
      const ch = Buffer.from(take(newClient('x25519', `low order ${i}`)));
      share.copy(ch, 56);
      createHmac('sha256', gate).update(ch.subarray(0, 88)).digest().copy(ch, 88, 0, 16);
      const server = new ServerConnection(newContext());
      expect(failure(server.receive(ch)).code).toBe('ERR_BAD_KEY_SHARE');
      expect(server.hasOutput).toBe(false);
    });
  });
});
