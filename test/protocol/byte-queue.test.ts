import { describe, expect, it } from 'vitest';
import { ByteQueue, COALESCE_BUFFER_BYTES } from '../../src/protocol/byte-queue.js';
import { ServerConnection } from '../../src/protocol/index.js';
import { makeClient, makeServerContext } from '../helpers/pair.js';

describe('ByteQueue', () => {
  it('holds a trickle of one-byte reads in a constant number of chunks', () => {
    // 103 of a ClientHello's 104 bytes, one per read: a Buffer per read would cost hundreds of
    // bytes of objects per byte held.
    const q = new ByteQueue();
    for (let i = 0; i < 103; i++) q.push(Buffer.of(i));
    expect(q.length).toBe(103);
    expect(q.chunkCount).toBeLessThanOrEqual(2);
    expect([...q.take(103)]).toEqual(Array.from({ length: 103 }, (_, i) => i));
    // 10,000 one-byte reads: about one chunk per COALESCE_BUFFER_BYTES bytes.
    for (let i = 0; i < 10_000; i++) q.push(Buffer.of(i & 0xff));
    expect(q.chunkCount).toBeLessThanOrEqual(2 + Math.ceil(10_000 / COALESCE_BUFFER_BYTES));
  });

  it('returns the bytes pushed, in order, and never changes a view it handed out', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const q = new ByteQueue();
    const expected: number[] = [];
    const got: number[] = [];
    const views: [Buffer, number[]][] = [];
    let counter = 0;
    for (let round = 0; round < 2000; round++) {
      const n = rand(3) === 0 ? 300 + rand(700) : rand(40);
      const chunk = Buffer.alloc(n);
      for (let i = 0; i < n; i++) chunk[i] = counter++ & 0xff;
      q.push(chunk);
      expected.push(...chunk);
      if (rand(2) === 0 && q.length > 0) {
        const k = 1 + rand(q.length);
        const view = q.take(k);
        views.push([view, [...view]]);
        got.push(...view);
      }
    }
    got.push(...q.take(q.length));
    expect(got).toEqual(expected);
    for (const [view, copy] of views) expect([...view]).toEqual(copy);
  });

  it('a server handshake fed one byte per read completes like one fed whole', () => {
    const client = makeClient();
    const server = new ServerConnection(makeServerContext());
    const [hello] = client.takeOutput();
    for (const b of hello as Buffer) expect(server.receive(Buffer.of(b))).toEqual([]);
    expect(server.takeOutput()).toHaveLength(1);
    expect(server.bufferedBytes).toBe(0);
  });
});
