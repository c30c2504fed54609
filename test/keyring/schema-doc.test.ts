// docs/keyring.md and the loader share one schema: the doc prints KEYRING_SCHEMA verbatim, its
// field table lists exactly the schema's fields with the same required ones, its example loads,
// and what the writer produces fits the schema.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KEYRING_SCHEMA, KeyRing } from '../../src/keyring/keyring.js';

const DOC = readFileSync(fileURLToPath(new URL('../../docs/keyring.md', import.meta.url)), 'utf8');

function jsonBlocks(text: string): unknown[] {
  return [...text.matchAll(/```json\n([\s\S]*?)\n```/g)].map((m) => JSON.parse(m[1] as string));
}

const entry = KEYRING_SCHEMA.properties.keys.items;

describe('docs/keyring.md', () => {
  it('prints the schema the loader uses, verbatim', () => {
    expect(jsonBlocks(DOC).at(-1)).toEqual(KEYRING_SCHEMA);
  });

  it('its example is a valid key ring', () => {
    const ring = KeyRing.parse(JSON.stringify(jsonBlocks(DOC)[0]));
    expect(ring.list().map((e) => [e.id, e.principal, e.secret.length])).toEqual([
      ['3f1c9a0b5d7e2468', 'billing', 32],
    ]);
  });

  it('its field table lists exactly the schema fields, with the same required ones', () => {
    const rows = [...DOC.matchAll(/^\| `(\w+)` \| (yes|no) \|/gm)].map((m) => [m[1], m[2] === 'yes']);
    const expected = [
      ...Object.keys(KEYRING_SCHEMA.properties).map((f) => [
        f,
        (KEYRING_SCHEMA.required as readonly string[]).includes(f),
      ]),
      ...Object.keys(entry.properties).map((f) => [f, (entry.required as readonly string[]).includes(f)]),
    ];
    expect(rows).toEqual(expected);
  });

  it('what the writer produces fits the schema, and the loader refuses a field outside it', () => {
    const ring = new KeyRing([
      {
        ...KeyRing.generate({ principal: 'a', now: new Date(), random: randomBytes }),
        notAfter: new Date(Date.now() + 1000),
      },
    ]);
    const doc = JSON.parse(ring.serialize()) as { version: number; keys: Record<string, unknown>[] };
    expect(Object.keys(doc).sort()).toEqual([...KEYRING_SCHEMA.required].sort());
    expect(doc.version).toBe(KEYRING_SCHEMA.properties.version.const);
    for (const key of doc.keys) {
      for (const field of entry.required) expect(key[field], field).toBeDefined();
      for (const [field, value] of Object.entries(key)) {
        const rule = (entry.properties as Record<string, { type: string; pattern?: string }>)[field];
        expect(rule, field).toBeDefined();
        expect(typeof value).toBe(rule?.type);
        if (rule?.pattern !== undefined) expect(value).toMatch(new RegExp(rule.pattern));
      }
    }
    const extra = { ...doc, keys: [{ ...doc.keys[0], notafter: '2027-01-01T00:00:00Z' }] };
    expect(() => KeyRing.parse(JSON.stringify(extra))).toThrow(/unknown field/);
  });
});
