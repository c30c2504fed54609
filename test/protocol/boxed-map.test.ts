// BoxedMap behaves as a Map (same answers, same order, touch() moves to the end), and what leaves
// a long-lived one is not kept alive through the young-generation collections that follow.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoxedMap } from '../../src/protocol/boxed-map.js';
import { leastPromotedBy, promotedBy } from '../helpers/promotion.js';

type Op = ['set', number, number] | ['delete', number] | ['touch', number] | ['clear'];

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.tuple(fc.constant('set' as const), fc.nat(12), fc.integer()),
  fc.tuple(fc.constant('delete' as const), fc.nat(12)),
  fc.tuple(fc.constant('touch' as const), fc.nat(12)),
  fc.constant(['clear'] as ['clear']),
);

describe('BoxedMap', () => {
  it('gives the answers and the order of a Map, with touch() as delete then set', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const boxed = new BoxedMap<number, number>();
        const plain = new Map<number, number>();
        for (const o of ops) {
          if (o[0] === 'set') {
            boxed.set(o[1], o[2]);
            plain.set(o[1], o[2]);
          } else if (o[0] === 'delete') {
            expect(boxed.delete(o[1])).toBe(plain.delete(o[1]));
          } else if (o[0] === 'touch') {
            boxed.touch(o[1]);
            const v = plain.get(o[1]);
            if (v !== undefined) {
              plain.delete(o[1]);
              plain.set(o[1], v);
            }
          } else {
            boxed.clear();
            plain.clear();
          }
          expect(boxed.size).toBe(plain.size);
          expect([...boxed]).toEqual([...plain]);
          expect([...boxed.keys()]).toEqual([...plain.keys()]);
          for (let k = 0; k <= 12; k++) {
            expect(boxed.has(k)).toBe(plain.has(k));
            expect(boxed.get(k)).toBe(plain.get(k));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('may be deleted from while iterated, as a Map may', () => {
    const m = new BoxedMap<number, string>();
    for (let i = 0; i < 10; i++) m.set(i, `v${i}`);
    const seen: number[] = [];
    for (const [k] of m) {
      seen.push(k);
      m.delete(k);
      m.delete(k + 1); // the next one too: never visited
    }
    expect(seen).toEqual([0, 2, 4, 6, 8]);
    expect(m.size).toBe(0);
  });

  it('promotes none of its former values, where a Map promotes them all', () => {
    const viaMap = promotedBy(
      () => new Map<number, unknown>(),
      (m, v) => m.set(v.id, v),
      (m, v) => m.delete(v.id),
    );
    const viaBoxed = leastPromotedBy(
      () => new BoxedMap<number, unknown>(),
      (m, v) => m.set(v.id, v),
      (m, v) => m.delete(v.id),
    );
    // The values (about 330 bytes each, 6.6 MB in all) are not kept; what is left is the emptied
    // boxes (16 bytes each) and the replaced tables themselves (about 1.8 MB here).
    expect(viaMap).toBeGreaterThan(6_000_000);
    expect(viaBoxed).toBeLessThan(3_000_000);
    expect(viaBoxed).toBeLessThan(viaMap / 4);
  });
});
