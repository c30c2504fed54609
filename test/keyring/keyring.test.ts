import { randomBytes } from 'node:crypto';
import util from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSesameError } from '../../src/errors.js';
import {
  type KeyEntry,
  KeyRing,
  keyStatus,
  principalProblem,
  Secret,
  selectClientKey,
} from '../../src/keyring/keyring.js';

// A secret that is easy to spot in any output: base64 of 'SESAME-SECRET-MARKER-0123456789!!'.
const MARKER_BYTES = Buffer.from('SESAME-SECRET-MARKER-0123456789!!');
const MARKER_B64 = MARKER_BYTES.toString('base64');

/** Deterministic stand-in for randomBytes: 0, 1, 2, ... continuing across calls. */
function counterRandom(): (n: number) => Buffer {
  let next = 0;
  return (n) => Buffer.from(Array.from({ length: n }, () => next++ & 0xff));
}

function sampleDoc(overrides: Record<string, unknown> = {}): {
  version: number;
  keys: Record<string, unknown>[];
} {
  return {
    version: 1,
    keys: [
      {
        id: '0123456789abcdef',
        principal: 'alice',
        secret: MARKER_B64,
        created: '2026-11-29T20:00:00.000Z',
        notBefore: '2026-11-29T20:00:00.000Z',
        notAfter: '2027-11-29T20:00:00.000Z',
        revoked: false,
      },
      {
        id: 'fedcba9876543210',
        principal: 'bob',
        secret: Buffer.alloc(32, 7).toString('base64'),
        created: '2026-11-30T08:00:00.000Z',
        revoked: true,
        ...overrides,
      },
    ],
  };
}

function entry(fields: Partial<KeyEntry> = {}): KeyEntry {
  return {
    id: '00000000000000aa',
    principal: 'carol',
    secret: new Secret(Buffer.alloc(32, 1)),
    created: new Date('2026-01-01T00:00:00Z'),
    revoked: false,
    ...fields,
  };
}

/** The error `fn` throws; fails the test when it does not throw. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`threw a non-Error: ${String(err)}`);
  }
  throw new Error('expected a throw');
}

function expectCode(fn: () => unknown, code: Parameters<typeof isSesameError>[1]): Error {
  const err = thrown(fn);
  expect(isSesameError(err, code), `${err.name}: ${err.message}`).toBe(true);
  return err;
}

describe('Secret', () => {
  it('keeps its own copy of the bytes and hands out copies', () => {
    const source = Buffer.from([1, 2, 3]);
    const secret = new Secret(source);
    source[0] = 99;
    expect(secret.bytes()).toEqual(Buffer.from([1, 2, 3]));
    const out = secret.bytes();
    out[1] = 99;
    expect(secret.bytes()).toEqual(Buffer.from([1, 2, 3]));
    expect(secret.length).toBe(3);
  });

  it('never shows its bytes in strings, JSON or inspection', () => {
    const secret = new Secret(MARKER_BYTES);
    const hex = MARKER_BYTES.toString('hex');
    const renderings = [
      String(secret),
      `${secret}`,
      secret.toString(),
      JSON.stringify(secret),
      JSON.stringify({ secret }),
      util.inspect(secret),
      util.inspect(secret, { showHidden: true, depth: Number.POSITIVE_INFINITY }),
      util.inspect({ nested: { secret } }),
      util.format('%s %o %O %j', secret, secret, secret, secret),
    ];
    for (const text of renderings) {
      expect(text).toContain('[secret]');
      expect(text).not.toContain(MARKER_B64);
      expect(text).not.toContain(hex);
      expect(text).not.toContain('SESAME-SECRET-MARKER');
    }
    expect(String(secret)).toBe('[secret]');
    expect(JSON.stringify(secret)).toBe('"[secret]"');
    expect(util.inspect(secret)).toBe('[secret]');
    expect(Object.keys(secret)).toEqual([]);
  });

  it('is redacted inside parsed entries and a whole ring', () => {
    const ring = KeyRing.parse(JSON.stringify(sampleDoc()));
    const first = ring.list()[0];
    for (const text of [
      JSON.stringify(first),
      util.inspect(first),
      util.inspect(ring, { showHidden: true }),
      JSON.stringify(ring.list()),
      `${first?.secret}`,
    ]) {
      expect(text).not.toContain(MARKER_B64);
      expect(text).not.toContain('SESAME-SECRET-MARKER');
    }
    expect(JSON.stringify(first)).toContain('"secret":"[secret]"');
  });
});

describe('keyStatus', () => {
  const notBefore = new Date('2026-01-01T00:00:00Z');
  const notAfter = new Date('2026-02-01T00:00:00Z');
  const windowed = entry({ notBefore, notAfter });

  it('is valid inside the window, including its first instant', () => {
    expect(keyStatus(windowed, notBefore)).toBe('valid');
    expect(keyStatus(windowed, new Date('2026-01-15T00:00:00Z'))).toBe('valid');
    expect(keyStatus(windowed, new Date(notAfter.getTime() - 1))).toBe('valid');
  });

  it('is expired from notAfter on and not yet valid before notBefore', () => {
    expect(keyStatus(windowed, notAfter)).toBe('expired');
    expect(keyStatus(windowed, new Date('2030-01-01T00:00:00Z'))).toBe('expired');
    expect(keyStatus(windowed, new Date(notBefore.getTime() - 1))).toBe('not-yet-valid');
  });

  it('lets revocation win over any date', () => {
    const revoked = entry({ notBefore, notAfter, revoked: true });
    expect(keyStatus(revoked, new Date('2026-01-15T00:00:00Z'))).toBe('revoked');
    expect(keyStatus(revoked, new Date('2020-01-01T00:00:00Z'))).toBe('revoked');
    expect(keyStatus(revoked, new Date('2030-01-01T00:00:00Z'))).toBe('revoked');
  });

  it('treats missing bounds as open', () => {
    expect(keyStatus(entry(), new Date(0))).toBe('valid');
    expect(keyStatus(entry({ notAfter }), new Date(0))).toBe('valid');
    expect(keyStatus(entry({ notBefore }), new Date('2100-01-01T00:00:00Z'))).toBe('valid');
  });

  it('refuses an invalid now', () => {
    expectCode(() => keyStatus(windowed, new Date(Number.NaN)), 'ERR_INVALID_ARGUMENT');
  });
});

describe('KeyRing.parse and serialize', () => {
  it('reads every field', () => {
    const ring = KeyRing.parse(JSON.stringify(sampleDoc()));
    expect(ring.size).toBe(2);
    expect(ring.list().map((e) => e.id)).toEqual(['0123456789abcdef', 'fedcba9876543210']);
    const alice = ring.get('0123456789abcdef');
    expect(alice?.principal).toBe('alice');
    expect(alice?.secret.bytes()).toEqual(MARKER_BYTES);
    expect(alice?.created.toISOString()).toBe('2026-11-29T20:00:00.000Z');
    expect(alice?.notBefore?.toISOString()).toBe('2026-11-29T20:00:00.000Z');
    expect(alice?.notAfter?.toISOString()).toBe('2027-11-29T20:00:00.000Z');
    expect(alice?.revoked).toBe(false);
    const bob = ring.get('fedcba9876543210');
    expect(bob?.notBefore).toBeUndefined();
    expect(bob?.notAfter).toBeUndefined();
    expect(bob?.revoked).toBe(true);
    expect(ring.get('0000000000000000')).toBeUndefined();
  });

  it('writes pretty JSON in a fixed field order with a trailing newline', () => {
    const doc = sampleDoc();
    // Shuffle the field order of the input: the output order must not depend on it.
    const shuffled = {
      keys: doc.keys.map((k) => Object.fromEntries(Object.entries(k).reverse())),
      version: 1,
    };
    const text = KeyRing.parse(JSON.stringify(shuffled)).serialize();
    expect(text).toBe(`${JSON.stringify(doc, null, 2)}\n`);
    expect(text.endsWith('}\n')).toBe(true);
    expect(Object.keys(JSON.parse(text).keys[0])).toEqual([
      'id',
      'principal',
      'secret',
      'created',
      'notBefore',
      'notAfter',
      'revoked',
    ]);
  });

  it('normalises timestamps with offsets to UTC', () => {
    const text = JSON.stringify(sampleDoc({ created: '2026-11-30T16:00:00+08:00' }));
    const ring = KeyRing.parse(text);
    expect(ring.get('fedcba9876543210')?.created.toISOString()).toBe('2026-11-30T08:00:00.000Z');
  });

  it('accepts an empty ring and short (but non-empty) secrets', () => {
    expect(KeyRing.parse('{"version":1,"keys":[]}').size).toBe(0);
    const ring = KeyRing.parse(JSON.stringify(sampleDoc({ secret: 'AQ==' })));
    expect(ring.get('fedcba9876543210')?.secret.bytes()).toEqual(Buffer.from([1]));
  });

  it('round-trips arbitrary rings', () => {
    const date = fc.date({
      min: new Date('1970-01-01T00:00:00Z'),
      max: new Date('2200-01-01T00:00:00Z'),
      noInvalidDate: true,
    });
    const arbEntry = fc.record({
      principal: fc.string({ minLength: 1, maxLength: 20 }).filter((p) => principalProblem(p) === undefined),
      secret: fc.uint8Array({ minLength: 1, maxLength: 80 }),
      created: date,
      window: fc.option(fc.tuple(date, date).filter(([a, b]) => a.getTime() !== b.getTime())),
      onlyAfter: fc.option(date),
      revoked: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(arbEntry, { maxLength: 5 }), (specs) => {
        const random = counterRandom();
        const ring = new KeyRing();
        for (const s of specs) {
          const base = KeyRing.generate({ principal: s.principal, now: s.created, random });
          const [a, b] = s.window ?? [undefined, undefined];
          const sorted =
            a !== undefined && b !== undefined ? [a, b].sort((x, y) => x.getTime() - y.getTime()) : [];
          ring.add({
            ...base,
            secret: new Secret(s.secret),
            notBefore: sorted[0],
            notAfter: sorted[1] ?? s.onlyAfter ?? undefined,
            revoked: s.revoked,
          });
        }
        const text = ring.serialize();
        const again = KeyRing.parse(text);
        expect(again.serialize()).toBe(text);
        expect(again.list().map((e) => e.secret.bytes())).toEqual(ring.list().map((e) => e.secret.bytes()));
        expect(again.list().map((e) => e.principal)).toEqual(ring.list().map((e) => e.principal));
      }),
      { numRuns: 150 },
    );
  });
});

describe('KeyRing.parse refusals', () => {
  const second = 'keys[1] (id fedcba9876543210)';
  const cases: [string, string, RegExp][] = [
    ['not JSON', 'version: 1', /not valid JSON/],
    ['a JSON array', '[]', /top level must be a JSON object/],
    ['a JSON string', '"keys"', /top level must be a JSON object/],
    ['no version', '{"keys":[]}', /"version" is missing/],
    ['version 2', '{"version":2,"keys":[]}', /"version" must be 1, found 2/],
    ['version as a string', '{"version":"1","keys":[]}', /"version" must be 1, found a string/],
    ['no keys', '{"version":1}', /"keys" must be an array/],
    ['keys as an object', '{"version":1,"keys":{}}', /"keys" must be an array/],
    ['an unknown top-level field', '{"version":1,"keys":[],"extra":true}', /top level: unknown field/],
    ['a key that is not an object', '{"version":1,"keys":[42]}', /keys\[0\] must be an object/],
    ['a null key', '{"version":1,"keys":[null]}', /keys\[0\] must be an object, found null/],
  ];
  const entryCases: [string, Record<string, unknown>, RegExp][] = [
    ['a missing id', { id: undefined }, /keys\[1\]: "id" is missing or not a string/],
    ['an uppercase id', { id: 'FEDCBA9876543210' }, /keys\[1\]: "id" must be 16 lowercase hex/],
    ['a short id', { id: 'fedcba987654321' }, /keys\[1\]: "id" must be 16 lowercase hex/],
    ['a long id', { id: 'fedcba98765432100' }, /keys\[1\]: "id" must be 16 lowercase hex/],
    ['a numeric id', { id: 1234 }, /keys\[1\]: "id" is missing or not a string/],
    ['a duplicate id', { id: '0123456789abcdef' }, /keys\[1\] \(id 0123456789abcdef\): duplicate "id"/],
    ['a missing principal', { principal: undefined }, /"principal" is missing/],
    ['an empty principal', { principal: '' }, /"principal" must not be empty/],
    ['a numeric principal', { principal: 7 }, /"principal" must be a string/],
    ['a long principal', { principal: 'x'.repeat(129) }, /"principal" must be at most 128/],
    ['a principal with a newline', { principal: 'bob\nmallory' }, /"principal" must not contain control/],
    ['a principal with a bidi override', { principal: 'bob\u202e' }, /"principal" must not contain control/],
    ['a principal with DEL', { principal: 'bob\u007f' }, /"principal" must not contain control/],
    ['a missing secret', { secret: undefined }, /"secret" is missing or not a string/],
    ['a secret as a number array', { secret: [1, 2] }, /"secret" is missing or not a string/],
    ['an empty secret', { secret: '' }, /"secret" must not be empty/],
    ['unpadded base64', { secret: 'AQ' }, /"secret" is not canonical base64/],
    ['url-safe base64', { secret: '-_8=' }, /"secret" is not canonical base64/],
    ['base64 with stray bits', { secret: 'AR==' }, /"secret" is not canonical base64/],
    ['base64 with a newline', { secret: `${MARKER_B64}\n` }, /"secret" is not canonical base64/],
    [
      'base64 with spaces',
      { secret: `${MARKER_B64.slice(0, 8)} ${MARKER_B64.slice(8)}` },
      /canonical base64/,
    ],
    ['not base64 at all', { secret: '!!!!' }, /"secret" is not canonical base64/],
    ['a missing created', { created: undefined }, /"created" is missing/],
    ['a numeric created', { created: 1795982400000 }, /"created" must be an ISO 8601/],
    ['a date-only created', { created: '2026-11-29' }, /"created" must be an ISO 8601/],
    ['a created without zone', { created: '2026-11-29T20:00:00' }, /"created" must be an ISO 8601/],
    ['a created on 30 February', { created: '2026-02-30T00:00:00Z' }, /"created" must be an ISO 8601/],
    ['a created on 29 February of a common year', { created: '2100-02-29T00:00:00Z' }, /"created"/],
    ['a created at hour 24', { created: '2026-11-29T24:00:00Z' }, /"created" must be an ISO 8601/],
    ['a created in month 13', { created: '2026-13-01T00:00:00Z' }, /"created" must be an ISO 8601/],
    ['a free-text created', { created: 'yesterday' }, /"created" must be an ISO 8601/],
    ['a null notBefore', { notBefore: null }, /"notBefore" must be an ISO 8601/],
    ['a bad notAfter', { notAfter: '2026-11-31T00:00:00Z' }, /"notAfter" must be an ISO 8601/],
    [
      'notAfter equal to notBefore',
      { notBefore: '2027-01-01T00:00:00Z', notAfter: '2027-01-01T00:00:00.000Z' },
      /"notAfter" must be later than "notBefore"/,
    ],
    [
      'notAfter before notBefore',
      { notBefore: '2027-01-01T00:00:00Z', notAfter: '2026-01-01T00:00:00Z' },
      /"notAfter" must be later than "notBefore"/,
    ],
    ['a missing revoked', { revoked: undefined }, /"revoked" is missing or not a boolean/],
    ['a string revoked', { revoked: 'false' }, /"revoked" is missing or not a boolean/],
    ['an unknown key field', { notafter: '2026-01-01T00:00:00Z' }, /unknown field/],
  ];

  it.each(cases)('refuses %s', (_name, text, message) => {
    const err = expectCode(() => KeyRing.parse(text), 'ERR_KEYRING_INVALID');
    expect(err.message).toMatch(message);
  });

  it.each(entryCases)('refuses %s, naming the key', (_name, overrides, message) => {
    const doc = sampleDoc(overrides);
    const err = expectCode(() => KeyRing.parse(JSON.stringify(doc)), 'ERR_KEYRING_INVALID');
    expect(err.message).toMatch(message);
    expect(err.message).toMatch(/^keys\[1\]/);
    if (!('id' in overrides)) expect(err.message.startsWith(second)).toBe(true);
  });

  it('accepts the boundary values next to those refusals', () => {
    const ok: Record<string, unknown>[] = [
      { principal: 'x'.repeat(128) },
      { principal: '百变星君' },
      { principal: 'bob smith <bob@example.com>' },
      { created: '2024-02-29T00:00:00Z' },
      { created: '2026-11-29T23:59:59.999999+14:00' },
      { notBefore: '2027-01-01T00:00:00Z', notAfter: '2027-01-01T00:00:00.001Z' },
      { notAfter: '1970-01-01T00:00:00Z' },
    ];
    for (const overrides of ok) {
      expect(() => KeyRing.parse(JSON.stringify(sampleDoc(overrides)))).not.toThrow();
    }
  });

  it('never puts a secret into an error message', () => {
    // Every way to make the file malformed while a recognisable secret sits in it.
    const texts = [
      ...entryCases.map(([, overrides]) => JSON.stringify(sampleDoc(overrides))),
      JSON.stringify(sampleDoc({ secret: `${MARKER_B64}=` })),
      JSON.stringify(sampleDoc({ secret: MARKER_B64.slice(0, -1) })),
      JSON.stringify(sampleDoc({ principal: `${MARKER_B64}\u0000` })),
      JSON.stringify(sampleDoc({ id: MARKER_B64 })),
      JSON.stringify(sampleDoc({ created: MARKER_B64 })),
      JSON.stringify(sampleDoc({ [MARKER_B64]: 1 })),
      JSON.stringify({ version: 1, keys: [], [MARKER_B64]: true }),
      JSON.stringify({ version: MARKER_B64, keys: [] }),
      // Broken JSON right next to the secret: the engine's own message would quote it.
      `{"version":1,"keys":[{"secret": ${MARKER_B64}}]}`,
      `${MARKER_B64}`,
      `{"secret":"${MARKER_B64}",`,
      `{"secret":"${MARKER_B64}\u0001"}`,
    ];
    for (const text of texts) {
      const err = expectCode(() => KeyRing.parse(text), 'ERR_KEYRING_INVALID');
      const rendered = [err.message, String(err), util.inspect(err), err.stack ?? '', JSON.stringify(err)];
      for (const out of rendered) {
        // The engine quotes only about ten characters of input, so look for a short prefix.
        expect(out).not.toContain(MARKER_B64.slice(0, 8));
        expect(out).not.toContain('SESAME-SECRET-MARKER');
      }
    }
  });

  it('says where broken JSON is when the engine reports a position', () => {
    const err = expectCode(() => KeyRing.parse('{\n  "version": 1\n  "keys": []}'), 'ERR_KEYRING_INVALID');
    expect(err.message).toBe('not valid JSON (at line 3 column 3)');
  });
});

describe('KeyRing.add', () => {
  it('appends in order and refuses a duplicate id', () => {
    const ring = new KeyRing([entry({ id: '00000000000000aa' })]);
    ring.add(entry({ id: '00000000000000bb', principal: 'dave' }));
    expect(ring.list().map((e) => e.id)).toEqual(['00000000000000aa', '00000000000000bb']);
    const err = expectCode(() => ring.add(entry({ id: '00000000000000aa' })), 'ERR_INVALID_ARGUMENT');
    expect(err.message).toContain('00000000000000aa');
    expect(ring.size).toBe(2);
  });

  it('validates entries like the parser does', () => {
    const bad: Partial<KeyEntry>[] = [
      { id: 'nothex!!nothex!!' },
      { principal: '' },
      { principal: 'tab\there' },
      { secret: new Secret(Buffer.alloc(0)) },
      { created: new Date(Number.NaN) },
      { notBefore: new Date('2027-01-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') },
      { notAfter: new Date(Number.NaN) },
    ];
    for (const fields of bad) {
      const ring = new KeyRing();
      expectCode(() => ring.add(entry(fields)), 'ERR_INVALID_ARGUMENT');
      expect(ring.size).toBe(0);
    }
  });

  it('stores a frozen copy that later changes to the argument do not reach', () => {
    const created = new Date('2026-01-01T00:00:00Z');
    const source = { ...entry({ created }) };
    const ring = new KeyRing([source]);
    created.setTime(0);
    source.principal = 'mallory';
    const stored = ring.get(source.id);
    expect(stored?.created.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(stored?.principal).toBe('carol');
    expect(Object.isFrozen(stored)).toBe(true);
    expect(Object.isFrozen(ring.list())).toBe(true);
  });
});

describe('KeyRing.generate', () => {
  const now = new Date('2026-11-29T20:00:00Z');

  it('takes the id and then the secret from the random source', () => {
    const e = KeyRing.generate({ principal: 'alice', now, random: counterRandom() });
    expect(e.id).toBe('0001020304050607');
    expect(e.secret.bytes()).toEqual(Buffer.from(Array.from({ length: 32 }, (_, i) => i + 8)));
    expect(e.secret.length).toBe(32);
    expect(e.principal).toBe('alice');
    expect(e.created.getTime()).toBe(now.getTime());
    expect(e.created).not.toBe(now);
    expect(e.revoked).toBe(false);
    expect(e.notBefore).toBeUndefined();
    expect(e.notAfter).toBeUndefined();
    expect(keyStatus(e, now)).toBe('valid');
  });

  it('honours a custom secret length', () => {
    expect(KeyRing.generate({ principal: 'a', now, random: randomBytes, bytes: 64 }).secret.length).toBe(64);
    for (const bytes of [0, -1, 1.5, 1025, Number.NaN]) {
      expectCode(
        () => KeyRing.generate({ principal: 'a', now, random: randomBytes, bytes }),
        'ERR_INVALID_ARGUMENT',
      );
    }
  });

  it('makes fresh ids and secrets from real randomness', () => {
    const ring = new KeyRing();
    for (let i = 0; i < 50; i++) ring.add(KeyRing.generate({ principal: `p${i}`, now, random: randomBytes }));
    expect(ring.list().every((e) => /^[0-9a-f]{16}$/.test(e.id))).toBe(true);
    const secrets = new Set(ring.list().map((e) => e.secret.bytes().toString('hex')));
    expect(secrets.size).toBe(50);
  });

  it('refuses bad input and a misbehaving random source', () => {
    expectCode(() => KeyRing.generate({ principal: '', now, random: randomBytes }), 'ERR_INVALID_ARGUMENT');
    expectCode(
      () => KeyRing.generate({ principal: 'a\u0000', now, random: randomBytes }),
      'ERR_INVALID_ARGUMENT',
    );
    expectCode(
      () => KeyRing.generate({ principal: 'a', now: new Date(Number.NaN), random: randomBytes }),
      'ERR_INVALID_ARGUMENT',
    );
    const short = (n: number) => Buffer.alloc(n - 1);
    expectCode(() => KeyRing.generate({ principal: 'a', now, random: short }), 'ERR_INVALID_ARGUMENT');
  });

  it('does not keep a reference to the buffer the random source returned', () => {
    let last = Buffer.alloc(0);
    const random = (n: number) => {
      last = Buffer.alloc(n, 5);
      return last;
    };
    const e = KeyRing.generate({ principal: 'a', now, random });
    last.fill(9);
    expect(e.secret.bytes()).toEqual(Buffer.alloc(32, 5));
  });
});

describe('selectClientKey', () => {
  const one = new KeyRing([entry({ id: '00000000000000aa', principal: 'alice' })]);
  const two = new KeyRing([
    entry({ id: '00000000000000aa', principal: 'alice' }),
    entry({ id: '00000000000000bb', principal: 'bob' }),
  ]);

  it('returns the only key when no id is given', () => {
    expect(selectClientKey(one).id).toBe('00000000000000aa');
  });

  it('returns the key with the given id', () => {
    expect(selectClientKey(two, '00000000000000bb').principal).toBe('bob');
    expect(selectClientKey(one, '00000000000000aa').principal).toBe('alice');
  });

  it('refuses an unknown or malformed id', () => {
    const err = expectCode(() => selectClientKey(two, '00000000000000cc'), 'ERR_KEY_NOT_FOUND');
    expect(err.message).toContain('00000000000000cc');
    expectCode(() => selectClientKey(two, 'alice'), 'ERR_KEY_NOT_FOUND');
    expectCode(() => selectClientKey(two, ''), 'ERR_KEY_NOT_FOUND');
  });

  it('refuses to guess among several keys, listing them', () => {
    const err = expectCode(() => selectClientKey(two), 'ERR_KEY_AMBIGUOUS');
    expect(err.message).toContain('--key-id');
    expect(err.message).toContain('00000000000000aa (alice)');
    expect(err.message).toContain('00000000000000bb (bob)');
  });

  it('reports an empty ring as not found', () => {
    const err = expectCode(() => selectClientKey(new KeyRing()), 'ERR_KEY_NOT_FOUND');
    expect(err.message).toMatch(/no keys/);
    expectCode(() => selectClientKey(new KeyRing(), '00000000000000aa'), 'ERR_KEY_NOT_FOUND');
  });
});

describe('instants the file can hold', () => {
  it('refuses a timestamp whose zone moves it past year 9999, so that every ring it loads it can write back', () => {
    const text = JSON.stringify({
      version: 1,
      keys: [
        {
          id: '0123456789abcdef',
          principal: 'p',
          secret: Buffer.alloc(32, 1).toString('base64'),
          created: '9999-12-31T23:59:59-00:01',
          revoked: false,
        },
      ],
    });
    expect(() => KeyRing.parse(text)).toThrow(expect.objectContaining({ code: 'ERR_KEYRING_INVALID' }));
    const ok = text.replace('9999-12-31T23:59:59-00:01', '9999-12-31T23:59:59Z');
    const ring = KeyRing.parse(ok);
    expect(KeyRing.parse(ring.serialize()).serialize()).toBe(ring.serialize());
  });
});
