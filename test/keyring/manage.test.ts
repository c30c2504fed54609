import { describe, expect, it } from 'vitest';
import { KeyRing, keyStatus } from '../../src/keyring/keyring.js';
import { describeKeys, exportKey, fingerprint, revokeKey, rotateKey } from '../../src/keyring/manage.js';

const NOW = new Date('2026-11-29T19:26:43Z');
let n = 0;
const random = (k: number) => Buffer.alloc(k, ++n);
const gen = (principal: string) => KeyRing.generate({ principal, now: NOW, random });

describe('key management', () => {
  it('revokes one key and leaves the others', () => {
    const a = gen('a');
    const b = gen('b');
    const ring = revokeKey(new KeyRing([a, b]), a.id);
    expect(ring.get(a.id)?.revoked).toBe(true);
    expect(ring.get(b.id)?.revoked).toBe(false);
    expect(() => revokeKey(ring, '0000000000000000')).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_NOT_FOUND' }),
    );
  });

  it('rotates: the successor is valid at once, the old key until the overlap ends', () => {
    const old = gen('svc');
    const other = gen('other');
    const { ring, added } = rotateKey(new KeyRing([old, other]), 'svc', {
      now: NOW,
      overlapMs: 3_600_000,
      random,
    });
    expect(added.principal).toBe('svc');
    expect(keyStatus(ring.get(added.id) as never, NOW)).toBe('valid');
    const oldAfter = ring.get(old.id);
    expect(oldAfter?.notAfter?.toISOString()).toBe('2026-11-29T20:26:43.000Z');
    expect(keyStatus(oldAfter as never, new Date(NOW.getTime() + 3_599_999))).toBe('valid');
    expect(keyStatus(oldAfter as never, new Date(NOW.getTime() + 3_600_000))).toBe('expired');
    expect(ring.get(other.id)?.notAfter).toBeUndefined(); // other principals untouched
    expect(() => rotateKey(ring, 'nobody', { now: NOW, overlapMs: 1, random })).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_NOT_FOUND' }),
    );
  });

  it('exports one key, and fingerprints identify keys without showing them', () => {
    const a = gen('a');
    const b = gen('b');
    const ring = new KeyRing([a, b]);
    const one = exportKey(ring, b.id);
    expect(one.list().map((e) => e.id)).toEqual([b.id]);
    expect(fingerprint(a)).toMatch(/^[0-9a-f]{4}(:[0-9a-f]{4}){7}$/);
    expect(fingerprint(a)).not.toBe(fingerprint(b));
    expect(fingerprint(one.list()[0] as never)).toBe(fingerprint(b));
    const listed = JSON.stringify(describeKeys(ring, NOW));
    for (const e of [a, b]) {
      expect(listed).not.toContain(e.secret.bytes().toString('base64'));
      expect(listed).not.toContain(e.secret.bytes().toString('hex'));
    }
    expect(describeKeys(ring, NOW).map((d) => d.status)).toEqual(['valid', 'valid']);
  });
});
