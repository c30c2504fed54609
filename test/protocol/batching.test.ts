/**
 * Batching (docs/protocol.md, "Batch records"): messages sent between two takeOutput() calls are
 * sealed into as few records as the record size allows, one message record when there is one,
 * in call order with every other record; a receiver refuses a batch that breaks the layout.
 */

import { describe, expect, it } from 'vitest';
import {
  MAX_BATCH_MESSAGE_BYTES,
  MAX_RECORD_PAYLOAD_BYTES,
  RECORD_BATCH,
  RECORD_MESSAGE,
} from '../../src/protocol/index.js';
import type { RecordSealer } from '../../src/protocol/records.js';
import { errorCode, makePair, messages, type Pair } from '../helpers/pair.js';

/** The record type byte cannot be seen on the wire; the receiver's events tell the records apart. */
function received(p: Pair, out: Buffer[]) {
  return out.flatMap((c) => p.server.receive(c));
}

/** The client's sealer, to make records a correct sender never makes (a heap-dump view). */
function sealer(p: Pair): RecordSealer {
  return (p.client as unknown as { state: { sealer: RecordSealer } }).state.sealer;
}

function entries(...ms: Buffer[]): Buffer {
  return Buffer.concat(
    ms.flatMap((m) => {
      const n = Buffer.alloc(2);
      n.writeUInt16BE(m.length);
      return [n, m];
    }),
  );
}

describe('sending', () => {
  it('one message per takeOutput() is one message record of the usual size', () => {
    const p = makePair();
    p.client.send(Buffer.from('hello'));
    const out = p.client.takeOutput();
    expect(out).toHaveLength(1);
    expect(out[0]?.length).toBe(2 + 1 + 5 + 16);
    expect(messages(received(p, out))).toEqual(['hello']);
  });

  it('many messages in one flush share one record, in order', () => {
    const p = makePair();
    const sent = Array.from({ length: 16 }, (_, i) => `message ${i}`);
    for (const m of sent) p.client.send(Buffer.from(m));
    expect(p.client.hasOutput).toBe(true);
    const out = p.client.takeOutput();
    expect(out).toHaveLength(1);
    const payload = sent.reduce((n, m) => n + 2 + m.length, 0);
    expect(out[0]?.length).toBe(2 + 1 + payload + 16);
    expect(messages(received(p, out))).toEqual(sent);
    expect(p.client.hasOutput).toBe(false);
  });

  it('an empty message is a record of its own, in order between batches', () => {
    const p = makePair();
    const sent = ['a', 'b', '', 'c', 'd', '', ''];
    for (const m of sent) p.client.send(Buffer.from(m));
    const out = p.client.takeOutput();
    // batch(a, b), '', batch(c, d), '', ''
    expect(out.map((r) => r.length)).toEqual([2 + 1 + 6 + 16, 19, 2 + 1 + 6 + 16, 19, 19]);
    expect(messages(received(p, out))).toEqual(sent);
  });

  it('fills each record up to the payload limit and no further', () => {
    const p = makePair();
    // Two entries that fill 16384 bytes exactly, then one more empty message.
    const a = Buffer.alloc(8000, 1);
    const b = Buffer.alloc(MAX_RECORD_PAYLOAD_BYTES - 2 - 8000 - 2, 2);
    p.client.send(a);
    p.client.send(b);
    const exact = p.client.takeOutput();
    expect(exact).toHaveLength(1);
    expect(exact[0]?.length).toBe(2 + 1 + MAX_RECORD_PAYLOAD_BYTES + 16);
    p.client.send(a);
    p.client.send(b);
    p.client.send(Buffer.alloc(0));
    const over = p.client.takeOutput();
    expect(over).toHaveLength(2);
    const got = received(p, [...exact, ...over]).filter((e) => e.type === 'message');
    expect(got.map((e) => (e.type === 'message' ? e.data.length : -1))).toEqual([
      a.length,
      b.length,
      a.length,
      b.length,
      0,
    ]);
  });

  it('a message too long for a batch goes on its own, in order', () => {
    const p = makePair();
    const big = Buffer.alloc(MAX_BATCH_MESSAGE_BYTES + 1, 7);
    const huge = Buffer.alloc(40_000, 8);
    p.client.send(Buffer.from('a'));
    p.client.send(Buffer.from('b'));
    p.client.send(big);
    p.client.send(Buffer.from('c'));
    p.client.send(huge);
    p.client.send(Buffer.from('d'));
    p.client.send(Buffer.from('e'));
    const out = p.client.takeOutput();
    // batch(a, b), big (one message record), c (alone: one message record), huge (2 fragments
    // and a message), batch(d, e)
    expect(out).toHaveLength(1 + 1 + 1 + 3 + 1);
    const got = received(p, out).flatMap((e) => (e.type === 'message' ? [e.data] : []));
    expect(got.map((d) => d.length)).toEqual([1, 1, big.length, 1, huge.length, 1, 1]);
    expect(got[2]?.equals(big) && got[4]?.equals(huge)).toBe(true);
  });

  it('ping, key update and close seal the waiting messages first', () => {
    const p = makePair();
    p.client.send(Buffer.from('one'));
    p.client.send(Buffer.from('two'));
    p.client.ping(Buffer.from('p'));
    p.client.send(Buffer.from('three'));
    p.client.updateKeys(false);
    p.client.send(Buffer.from('four'));
    p.client.send(Buffer.from('five'));
    p.client.close();
    const events = received(p, p.client.takeOutput());
    expect(events.map((e) => (e.type === 'message' ? e.data.toString() : e.type))).toEqual([
      'one',
      'two',
      'ping',
      'three',
      'four',
      'five',
      'close',
    ]);
  });

  it('keeps the key update limit, counting a batch as one record', () => {
    const p = makePair({ client: { keyUpdateAfterRecords: 4 } });
    const out: Buffer[] = [];
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 3; i++) p.client.send(Buffer.from(`r${round}.${i}`));
      out.push(...p.client.takeOutput());
    }
    // 6 batch records, and a key update as the 4th record of the first key (the second key has
    // sealed 3 when the rounds end).
    expect(out).toHaveLength(6 + 1);
    expect(messages(received(p, out))).toHaveLength(18);
    expect(errorCode(received(p, []))).toBeUndefined();
  });
});

describe('receiving a batch record that breaks the layout', () => {
  const cases: [string, Buffer, string][] = [
    ['empty', Buffer.alloc(0), 'ERR_MALFORMED_MESSAGE'],
    ['cut inside a length', Buffer.of(0), 'ERR_MALFORMED_MESSAGE'],
    [
      'an entry past the record',
      Buffer.concat([entries(Buffer.from('ok')), Buffer.of(0, 9, 1)]),
      'ERR_MALFORMED_MESSAGE',
    ],
    [
      'a length and nothing after',
      Buffer.concat([entries(Buffer.from('ok')), Buffer.of(0)]),
      'ERR_MALFORMED_MESSAGE',
    ],
  ];
  for (const [name, payload, code] of cases) {
    it(`${name}: ${code}`, () => {
      const p = makePair();
      const events = p.server.receive(sealer(p).seal(RECORD_BATCH, payload));
      expect(errorCode(events)).toBe(code);
      expect(events.filter((e) => e.type === 'message')).toEqual([]);
    });
  }

  it('a message over the receiver limit: ERR_MESSAGE_TOO_LARGE', () => {
    const p = makePair({ server: { maxMessageBytes: 10 } });
    const ok = p.server.receive(sealer(p).seal(RECORD_BATCH, entries(Buffer.alloc(10), Buffer.alloc(3))));
    expect(ok.map((e) => e.type)).toEqual(['message', 'message']);
    expect(errorCode(p.server.receive(sealer(p).seal(RECORD_BATCH, entries(Buffer.alloc(11)))))).toBe(
      'ERR_MESSAGE_TOO_LARGE',
    );
  });

  it('inside a fragmented message: ERR_MALFORMED_MESSAGE', () => {
    const p = makePair();
    const s = sealer(p);
    const first = p.server.receive(s.seal(2, Buffer.alloc(MAX_RECORD_PAYLOAD_BYTES)));
    expect(first).toEqual([]);
    expect(errorCode(p.server.receive(s.seal(RECORD_BATCH, entries(Buffer.from('x')))))).toBe(
      'ERR_MALFORMED_MESSAGE',
    );
  });

  it('a lone entry is accepted as its message (a sender sends a message record instead)', () => {
    const p = makePair();
    const events = p.server.receive(sealer(p).seal(RECORD_BATCH, entries(Buffer.from('solo'))));
    expect(messages(events)).toEqual(['solo']);
    expect(RECORD_MESSAGE).toBe(1);
  });
});
