import { describe, expect, it } from 'vitest';
import { KeyRing } from '../../src/keyring/keyring.js';
import { clientKey, presharedKeys } from '../../src/keyring/preshared.js';

const NOW = new Date('2026-11-29T19:26:43Z');
let counter = 0;
const random = (n: number) => Buffer.alloc(n, ++counter);

function ring(...extra: Partial<{ revoked: boolean; notAfter: Date; notBefore: Date }>[]): KeyRing {
  const r = new KeyRing();
  for (const e of extra) r.add({ ...KeyRing.generate({ principal: 'p', now: NOW, random }), ...e });
  return r;
}

describe('key ring entries as protocol keys', () => {
  it('hands the secret bytes and validity to the protocol', () => {
    const r = ring({});
    const [entry] = r.list();
    const [key] = presharedKeys(r);
    expect(key?.id).toBe(entry?.id);
    expect(Buffer.from(key?.secret ?? []).equals(entry?.secret.bytes() ?? Buffer.alloc(0))).toBe(true);
    expect(clientKey(r, undefined, NOW).id).toBe(entry?.id);
  });

  it('refuses locally a client key that is revoked, expired or not yet valid', () => {
    for (const extra of [
      { revoked: true },
      { notAfter: new Date(NOW.getTime() - 1) },
      { notBefore: new Date(NOW.getTime() + 60_000) },
    ]) {
      expect(() => clientKey(ring(extra), undefined, NOW)).toThrow(
        expect.objectContaining({ code: 'ERR_KEY_UNUSABLE' }),
      );
    }
  });
});
