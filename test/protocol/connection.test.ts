import { describe, expect, it } from 'vitest';
import {
  type ConnectionEvent,
  deterministicEntropy,
  type PresharedKey,
  ServerConnection,
} from '../../src/protocol/index.js';
import {
  errorCode,
  KEY_A,
  KEY_B,
  makeClient,
  makeKey,
  makePair,
  makeServerContext,
  messages,
  NOW,
  pump,
} from '../helpers/pair.js';

describe('in-memory client/server', () => {
  it('completes a forward-secret handshake and agrees on a session', () => {
    const p = makePair();
    const c = p.clientEvents[0];
    const s = p.serverEvents[0];
    expect(c?.type).toBe('established');
    expect(s?.type).toBe('established');
    if (c?.type !== 'established' || s?.type !== 'established') return;
    expect(s.session.keyId).toBe(KEY_A.id);
    expect(s.session.principal).toBe('alice');
    expect(s.session.forwardSecrecy).toBe(true);
    expect(c.session.channelBinding).toHaveLength(32);
    expect(c.session.channelBinding?.equals(s.session.channelBinding as Buffer)).toBe(true);
    expect(s.session.profile).toBe('native');
    expect(p.client.exportKeyingMaterial('x').equals(p.server.exportKeyingMaterial('x'))).toBe(true);
    expect(p.client.exportKeyingMaterial('x').equals(p.server.exportKeyingMaterial('y'))).toBe(false);
  });

  it('carries messages both ways, including empty and multi-record ones', () => {
    const p = makePair();
    const big = Buffer.alloc(100_000, 7);
    p.client.send(Buffer.from('hello'));
    p.client.send(Buffer.alloc(0));
    p.client.send(big);
    pump(p);
    const got = p.serverEvents.filter((e) => e.type === 'message');
    expect(got.map((e) => (e.type === 'message' ? e.data.length : -1))).toEqual([5, 0, 100_000]);
    const last = got[2];
    expect(last?.type === 'message' && last.data.equals(big)).toBe(true);
    p.server.send(Buffer.from('world'));
    pump(p);
    expect(messages(p.clientEvents)).toEqual(['world']);
  });

  it('works in PSK-only mode when the server allows it, and refuses it by default', () => {
    const ok = makePair({ client: { forwardSecrecy: false }, server: { requireForwardSecrecy: false } });
    const s = ok.serverEvents[0];
    expect(s?.type === 'established' && s.session.forwardSecrecy).toBe(false);
    const refused = makePair({ client: { forwardSecrecy: false } });
    expect(errorCode(refused.serverEvents)).toBe('ERR_FORWARD_SECRECY_REQUIRED');
  });

  it('refuses wrong keys, unknown ids, revoked, expired and not-yet-valid keys', () => {
    const cases: [Parameters<typeof makeKey>, string][] = [
      [[KEY_A.id, 'alice', 0x00], 'ERR_AUTH_FAILED'],
      [['1111111111111111', 'mallory', 0xa1], 'ERR_UNKNOWN_KEY'],
    ];
    for (const [args, code] of cases) {
      const p = makePair({ client: { key: makeKey(...args) } });
      expect(errorCode(p.serverEvents)).toBe(code);
      // The server wrote nothing at all: the client only sees the close.
      expect(p.wire.filter((w) => w.from === 'server')).toEqual([]);
      expect(p.client.receiveEnd().map((e) => (e.type === 'error' ? e.error.code : e.type))).toEqual([
        'ERR_AUTH_REFUSED',
      ]);
    }
    const status: [Partial<Parameters<typeof makeKey>[3]>, string][] = [
      [{ revoked: true }, 'ERR_KEY_REVOKED'],
      [{ notAfter: new Date(NOW - 1) }, 'ERR_KEY_EXPIRED'],
      [{ notBefore: new Date(NOW + 1000) }, 'ERR_KEY_NOT_YET_VALID'],
    ];
    for (const [extra, code] of status) {
      const ctx = makeServerContext({ keys: [makeKey(KEY_A.id, 'alice', 0xa1, extra)] });
      const p = makePair({ ctx });
      expect(errorCode(p.serverEvents)).toBe(code);
      expect(p.wire.filter((w) => w.from === 'server')).toEqual([]);
    }
  });

  it('checks the key again when the handshake completes: a reload in between revokes it', () => {
    // ClientHello before the reload, ClientFinished after it: the session must not open.
    const reloads: [string, PresharedKey[]][] = [
      ['revoked', [{ ...KEY_A, revoked: true }, KEY_B]],
      ['expired', [{ ...KEY_A, notAfter: new Date(NOW - 1) }, KEY_B]],
      ['removed', [KEY_B]],
      ['replaced', [makeKey(KEY_A.id, 'alice', 0x5a), KEY_B]],
    ];
    for (const [what, keys] of reloads) {
      const ctx = makeServerContext({}, `reload-${what}`);
      const client = makeClient({}, `reload-${what}`);
      const server = new ServerConnection(ctx);
      for (const b of client.takeOutput()) expect(server.receive(b)).toEqual([]);
      const serverHello = server.takeOutput();
      expect(serverHello).toHaveLength(1);
      for (const b of serverHello) client.receive(b);
      expect(client.isOpen).toBe(true);
      ctx.setKeys(keys);
      const events = client.takeOutput().flatMap((b) => server.receive(b));
      expect([what, errorCode(events)]).toEqual([
        what,
        what === 'expired' ? 'ERR_KEY_EXPIRED' : 'ERR_KEY_REVOKED',
      ]);
      expect(server.isOpen).toBe(false);
      expect(server.session).toBeUndefined();
    }
    // A reload that keeps the key changes nothing for the handshake in progress.
    const ctx = makeServerContext({}, 'reload-kept');
    const client = makeClient({}, 'reload-kept');
    const server = new ServerConnection(ctx);
    for (const b of client.takeOutput()) server.receive(b);
    for (const b of server.takeOutput()) client.receive(b);
    ctx.setKeys([makeKey(KEY_A.id, 'alice', 0xa1), KEY_B]);
    const events = client.takeOutput().flatMap((b) => server.receive(b));
    expect(events.map((e) => e.type)).toEqual(['established']);
  });

  it('refuses a replayed ClientHello and a stale one', () => {
    const ctx = makeServerContext();
    const first = makePair({ ctx });
    const hello = first.wire[0]?.bytes as Buffer;
    const replay = new ServerConnection(ctx);
    expect(errorCode(replay.receive(hello))).toBe('ERR_REPLAYED_HELLO');
    const stale = makePair({ client: { now: () => NOW - 10 * 60_000 } });
    expect(errorCode(stale.serverEvents)).toBe('ERR_STALE_HELLO');
  });

  it('fails sticky: every call after a failure throws the same error', () => {
    const server = new ServerConnection(makeServerContext());
    const events = server.receive(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect(errorCode(events)).toBe('ERR_MALFORMED_MESSAGE');
    const err = server.error;
    expect(() => server.receive(Buffer.alloc(1))).toThrow(err);
    expect(() => server.send(Buffer.alloc(1))).toThrow(err);
    expect(() => server.close()).toThrow(err);
  });

  it('closes with an authenticated close record; EOF without one is truncation', () => {
    const p = makePair();
    p.client.send(Buffer.from('last'));
    p.client.close();
    pump(p);
    expect(p.serverEvents.map((e) => e.type)).toEqual(['established', 'message', 'close']);
    expect(p.server.receiveEnd()).toEqual([]);
    // the server may still answer after the client's close (half-close)
    p.server.send(Buffer.from('reply'));
    p.server.close();
    pump(p);
    expect(messages(p.clientEvents)).toEqual(['reply']);
    expect(() => p.client.send(Buffer.from('x'))).toThrow(/closed/);

    const q = makePair();
    expect(errorCode(q.server.receiveEnd())).toBe('ERR_TRUNCATED');
  });

  it('answers pings and updates keys on request', () => {
    const p = makePair({ client: { keyUpdateAfterRecords: 3 } });
    p.client.ping(Buffer.from('abc'));
    pump(p);
    expect(p.clientEvents.at(-1)).toMatchObject({ type: 'pong' });
    for (let i = 0; i < 10; i++) p.client.send(Buffer.from(`m${i}`));
    p.client.updateKeys(true);
    p.server.send(Buffer.from('after update'));
    pump(p);
    expect(messages(p.serverEvents)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    expect(messages(p.clientEvents)).toEqual(['after update']);
  });

  it('refuses a key shorter than 256 bits at the client', () => {
    expect(() => makeClient({ key: { id: KEY_A.id, principal: 'a', secret: Buffer.alloc(31) } })).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_TOO_SHORT' }),
    );
  });

  it('enforces the message size limit during reassembly', () => {
    const p = makePair({ server: { maxMessageBytes: 20_000 } });
    p.client.send(Buffer.alloc(40_000));
    pump(p);
    expect(errorCode(p.serverEvents)).toBe('ERR_MESSAGE_TOO_LARGE');
  });
});

describe('robustness of the core', () => {
  it('keeps its own copy of the ClientHello: the caller may reuse its buffer', () => {
    const ctx = makeServerContext();
    const client = makeClient();
    const server = new ServerConnection(ctx);
    const [hello] = client.takeOutput();
    const buf = Buffer.from(hello as Buffer);
    server.receive(buf);
    buf.fill(0);
    const events: ConnectionEvent[] = [];
    for (const chunk of server.takeOutput()) events.push(...client.receive(chunk));
    const serverEvents = client.takeOutput().flatMap((c) => server.receive(c));
    expect(serverEvents.map((e) => e.type)).toEqual(['established']);
  });

  it('refuses a replay at the last instant the freshness window accepts', () => {
    const skew = 1000;
    let now = NOW;
    const ctx = makeServerContext({ maxClockSkewMs: skew, now: () => now });
    const [hello] = makeClient().takeOutput();
    expect(new ServerConnection(ctx).receive(hello as Buffer)).toEqual([]);
    now = NOW + skew; // still fresh: |now - ts| == skew
    expect(errorCode(new ServerConnection(ctx).receive(hello as Buffer))).toBe('ERR_REPLAYED_HELLO');
    now = NOW + skew + 1;
    expect(errorCode(new ServerConnection(ctx).receive(hello as Buffer))).toBe('ERR_STALE_HELLO');
  });

  it('refuses exporter labels that could collide', () => {
    const p = makePair();
    expect(() => p.client.exportKeyingMaterial('a\u0000b')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });

  it('accepts any clock reading: fractional and negative times are sent as whole non-negative ms', () => {
    expect(() => makeClient({ now: () => NOW + 0.5 })).not.toThrow();
    expect(() => makeClient({ now: () => -5 })).not.toThrow();
  });

  it('updates the key so that no key seals more than keyUpdateAfterRecords records', () => {
    const p = makePair({ client: { keyUpdateAfterRecords: 4 } });
    // One message per takeOutput(), so one record each (messages taken together share a batch).
    const out: Buffer[] = [];
    for (let i = 0; i < 12; i++) {
      p.client.send(Buffer.from(`r${i}`));
      out.push(...p.client.takeOutput());
    }
    // 12 data records + 3 key updates (after every 3 data records, as the 4th record of each key)
    expect(out).toHaveLength(12 + 3);
    const got = out.flatMap((c) => p.server.receive(c));
    expect(messages(got)).toEqual(Array.from({ length: 12 }, (_, i) => `r${i}`));
  });
});

// The per-state data are private: these tests look at them the way a heap dump would.
interface Inside {
  state: Record<string, unknown> & { name: string };
}
const inside = (conn: unknown): Inside => conn as Inside;
const zeroed = (b: unknown): boolean => Buffer.isBuffer(b) && b.length > 0 && b.every((x) => x === 0);

describe('state data owned by the state', () => {
  it('the client drops its handshake material at Open, and wipes its early secret and nonce', () => {
    const client = makeClient();
    expect(client.start()).toEqual([]);
    const hs = inside(client).state;
    expect(hs.name).toBe('ExpectServerHello');
    const early = hs.early as Buffer;
    const nonce = hs.nonce as Buffer;
    expect(zeroed(early) || zeroed(nonce)).toBe(false);
    const server = new ServerConnection(makeServerContext());
    expect(server.start()).toEqual([]);
    const p: Parameters<typeof pump>[0] = { client, server, clientEvents: [], serverEvents: [], wire: [] };
    pump(p);
    expect(client.isOpen && server.isOpen).toBe(true);
    expect(zeroed(early)).toBe(true);
    expect(zeroed(nonce)).toBe(true);
    // Exactly the record layer and the message being reassembled: no key, hello, ephemeral key.
    expect(Object.keys(inside(client).state).sort()).toEqual(
      ['fragmentBytes', 'fragments', 'name', 'opener', 'pendingBody', 'sealer'].sort(),
    );
    expect(Object.keys(inside(server).state).sort()).toEqual(Object.keys(inside(client).state).sort());
    // What the wire carried is untouched (the transport may still be writing it).
    expect(p.wire[0]?.bytes.subarray(24, 56).equals(Buffer.alloc(32))).toBe(false);
    client.send(Buffer.from('still works'));
    pump(p);
    expect(messages(p.serverEvents)).toEqual(['still works']);
  });

  it('the server wipes its handshake secret and its copy of ClientHello once Open', () => {
    const client = makeClient();
    const server = new ServerConnection(makeServerContext());
    for (const chunk of client.takeOutput()) server.receive(chunk);
    const waiting = inside(server).state;
    expect(waiting.name).toBe('ExpectClientFinished');
    const secret = waiting.hs as Buffer;
    const hello = waiting.clientHello as Buffer;
    expect(zeroed(secret) || zeroed(hello)).toBe(false);
    for (const chunk of server.takeOutput()) client.receive(chunk);
    const events = client.takeOutput().flatMap((chunk) => server.receive(chunk));
    expect(events.map((e) => e.type)).toEqual(['established']);
    expect(zeroed(secret)).toBe(true);
    expect(zeroed(hello)).toBe(true);
    expect(server.keyId).toBe(KEY_A.id);
  });

  it('a failed handshake leaves nothing behind and wipes what it held', () => {
    const client = makeClient();
    const early = inside(client).state.early as Buffer;
    expect(errorCode(client.receiveEnd())).toBe('ERR_AUTH_REFUSED');
    expect(inside(client).state).toEqual({ name: 'Failed' });
    expect(zeroed(early)).toBe(true);
    const server = new ServerConnection(makeServerContext());
    for (const chunk of makeClient().takeOutput()) server.receive(chunk);
    const secret = inside(server).state.hs as Buffer;
    expect(errorCode(server.receiveEnd())).toBe('ERR_TRUNCATED');
    expect(inside(server).state).toEqual({ name: 'Failed' });
    expect(zeroed(secret)).toBe(true);
    expect(server.keyId).toBe(KEY_A.id);
  });
});

describe('ServerContext key reload', () => {
  const secretsOf = (ctx: ReturnType<typeof makeServerContext>, id: string) => {
    const entry = ctx.lookup(id);
    if (entry === undefined) throw new Error(`no key ${id}`);
    return entry.secrets;
  };

  it('keeps no reference to the key set it was made with', () => {
    const keys = [KEY_A, KEY_B];
    const ctx = makeServerContext({ keys });
    expect(Object.hasOwn(ctx.options, 'keys')).toBe(false);
    expect(Object.values(ctx.options)).not.toContain(keys);
  });

  it('a key removed by setKeys is unreachable and its precomputed secrets are zeroed', () => {
    const ctx = makeServerContext();
    const a = secretsOf(ctx, KEY_A.id);
    const b = secretsOf(ctx, KEY_B.id);
    ctx.setKeys([KEY_B]);
    expect(ctx.lookup(KEY_A.id)).toBeUndefined();
    expect(zeroed(a.early) && zeroed(a.gate)).toBe(true);
    // B stays, with secrets derived afresh; the old ones are gone too.
    expect(zeroed(b.early)).toBe(true);
    expect(zeroed(secretsOf(ctx, KEY_B.id).early)).toBe(false);
    expect(errorCode(makePair({ ctx }).serverEvents)).toBe('ERR_UNKNOWN_KEY');
    expect(makePair({ ctx, client: { key: KEY_B } }).server.isOpen).toBe(true);
  });

  it('computes the PSK-only handshake secrets once per key, wipes them with the key, and a reload mid-handshake keeps the handshake', () => {
    const psk = { forwardSecrecy: false };
    const ctx = makeServerContext({ requireForwardSecrecy: false });
    expect(ctx.lookup(KEY_A.id)?.pskOnly).toBeUndefined();
    const first = makePair({ ctx, client: psk });
    expect(first.server.isOpen && first.client.isOpen).toBe(true);
    const cached = ctx.lookup(KEY_A.id)?.pskOnly;
    expect(cached !== undefined && !zeroed(cached.hs) && !zeroed(cached.clientFinishedKey)).toBe(true);
    // The second handshake with the key uses the same secrets (and no forward secrecy).
    const second = makePair({ ctx, client: { ...psk, entropy: deterministicEntropy('second') } });
    expect(second.server.session?.forwardSecrecy).toBe(false);
    expect(second.client.session?.channelBinding).toEqual(second.server.session?.channelBinding);
    expect(ctx.lookup(KEY_A.id)?.pskOnly).toBe(cached);
    // ClientHello before a reload that keeps the key, ClientFinished after it: the handshake holds
    // its own copies of what the reload wipes.
    const client = makeClient({ ...psk, entropy: deterministicEntropy('third') });
    const server = new ServerConnection(ctx);
    for (const b of client.takeOutput()) server.receive(b);
    for (const b of server.takeOutput()) client.receive(b);
    ctx.setKeys([makeKey(KEY_A.id, 'alice', 0xa1), KEY_B]);
    expect(cached !== undefined && zeroed(cached.hs) && zeroed(cached.serverFinishedKey)).toBe(true);
    expect(cached !== undefined && zeroed(cached.clientFinishedKey)).toBe(true);
    const events = client.takeOutput().flatMap((b) => server.receive(b));
    expect(events.map((e) => e.type)).toEqual(['established']);
  });

  it('a key kept across reloads still authenticates; a malformed id changes nothing', () => {
    const ctx = makeServerContext();
    ctx.setKeys([KEY_A, makeKey(KEY_A.id, 'alice', 0xa1)]);
    expect(makePair({ ctx }).server.isOpen).toBe(true);
    const before = secretsOf(ctx, KEY_A.id);
    expect(() => ctx.setKeys([KEY_B, makeKey('NOT-HEX', 'x', 1)])).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    expect(secretsOf(ctx, KEY_A.id)).toBe(before);
    expect(zeroed(before.early)).toBe(false);
    // Another client nonce: the first pair's ClientHello is in the replay cache.
    expect(makePair({ ctx, client: { entropy: deterministicEntropy('again') } }).server.isOpen).toBe(true);
  });
});
