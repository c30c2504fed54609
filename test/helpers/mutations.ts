/**
 * Tampering, for every test that changes genuine bytes: single bit flips for the exhaustive
 * tests, and the fast-check mutations the fuzz properties apply to a list of units (handshake
 * messages, records, frames or datagrams).
 *
 * Rules:
 * - Nothing here changes its input: every function returns new buffers or a new list.
 * - Indexes drawn by the arbitraries are taken modulo the length they index, so any drawn value
 *   applies to any list; a mutation that cannot apply (an empty list or unit, no foreign units)
 *   leaves the list as it was.
 * - A target picks the operations and their weights it needs with {@link mutationArb}; the
 *   operations themselves mean the same everywhere.
 */

import fc from 'fast-check';

/** A copy of `bytes` with bit `bit` flipped (bit 0 is the low bit of byte 0, bit 8 of byte 1). */
export function flipBit(bytes: Uint8Array, bit: number): Buffer {
  const out = Buffer.from(bytes);
  out[bit >> 3] = (out[bit >> 3] as number) ^ (1 << (bit & 7));
  return out;
}

/** A copy of `bytes` with byte `at` XORed with `mask`; a negative `at` counts from the end. */
export function xorByte(bytes: Uint8Array, at: number, mask: number): Buffer {
  const out = Buffer.from(bytes);
  const i = at < 0 ? out.length + at : at;
  out[i] = (out[i] as number) ^ mask;
  return out;
}

/** Arbitrary bytes as a Buffer, from `minLength` to `maxLength` long. */
export const bytesArb = (maxLength: number, minLength = 0): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength, maxLength }).map((b) => Buffer.from(b));

/** One change to a list of units. */
export type Mutation =
  /** Flip one bit of one unit. */
  | { readonly op: 'flip'; readonly unit: number; readonly at: number; readonly bit: number }
  /** Set one byte of one unit. */
  | { readonly op: 'set'; readonly unit: number; readonly at: number; readonly value: number }
  /** Insert bytes into one unit. */
  | { readonly op: 'insert'; readonly unit: number; readonly at: number; readonly bytes: Buffer }
  /** Delete bytes from one unit. */
  | { readonly op: 'delete'; readonly unit: number; readonly at: number; readonly length: number }
  /** Cut one unit short and drop every unit after it. */
  | { readonly op: 'truncate'; readonly unit: number; readonly at: number }
  /** Drop one unit. */
  | { readonly op: 'drop'; readonly unit: number }
  /** Deliver one unit twice. */
  | { readonly op: 'duplicate'; readonly unit: number }
  /** Exchange two units. */
  | { readonly op: 'swap'; readonly unit: number; readonly other: number }
  /** Replace one unit (or add one at the end) with a unit of another session: a splice. */
  | { readonly op: 'foreign'; readonly unit: number; readonly other: number }
  /** Insert a unit the receiver itself sent: a reflection. */
  | { readonly op: 'reflect'; readonly unit: number; readonly other: number };

/** The operations a {@link Mutation} can be. */
export type MutationOp = Mutation['op'];

const ARBITRARIES: { readonly [K in MutationOp]: fc.Arbitrary<Extract<Mutation, { op: K }>> } = {
  flip: fc.record({
    op: fc.constant('flip' as const),
    unit: fc.nat(),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
  }),
  set: fc.record({
    op: fc.constant('set' as const),
    unit: fc.nat(),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  insert: fc.record({
    op: fc.constant('insert' as const),
    unit: fc.nat(),
    at: fc.nat(),
    bytes: bytesArb(40, 1),
  }),
  delete: fc.record({
    op: fc.constant('delete' as const),
    unit: fc.nat(),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 40 }),
  }),
  truncate: fc.record({ op: fc.constant('truncate' as const), unit: fc.nat(), at: fc.nat() }),
  drop: fc.record({ op: fc.constant('drop' as const), unit: fc.nat() }),
  duplicate: fc.record({ op: fc.constant('duplicate' as const), unit: fc.nat() }),
  swap: fc.record({ op: fc.constant('swap' as const), unit: fc.nat(), other: fc.nat() }),
  foreign: fc.record({ op: fc.constant('foreign' as const), unit: fc.nat(), other: fc.nat() }),
  reflect: fc.record({ op: fc.constant('reflect' as const), unit: fc.nat(), other: fc.nat() }),
};

/** Every operation, weighted toward the cheap single-byte changes that reach deepest. */
export const ALL_MUTATIONS: { readonly [K in MutationOp]: number } = {
  flip: 4,
  set: 2,
  insert: 1,
  delete: 1,
  truncate: 1,
  drop: 1,
  duplicate: 1,
  swap: 1,
  foreign: 1,
  reflect: 1,
};

/** Mutations of the operations given a weight (relative frequency) in `weights`. */
export function mutationArb(weights: { readonly [K in MutationOp]?: number }): fc.Arbitrary<Mutation> {
  const choices = (Object.keys(ARBITRARIES) as MutationOp[])
    .filter((op) => (weights[op] ?? 0) > 0)
    .map((op) => ({ weight: weights[op] as number, arbitrary: ARBITRARIES[op] as fc.Arbitrary<Mutation> }));
  return fc.oneof(...choices);
}

/**
 * Apply `m` to a list of units; returns a new list. `foreign` holds units of another session
 * (for `foreign`), `opposite` the units the receiver sent itself (for `reflect`).
 */
export function mutate(
  units: readonly Buffer[],
  m: Mutation,
  foreign: readonly Buffer[],
  opposite: readonly Buffer[],
): Buffer[] {
  const out = [...units];
  if (m.op === 'foreign' || m.op === 'reflect') {
    const source = m.op === 'foreign' ? foreign : opposite;
    if (source.length === 0) return out;
    const unit = source[m.other % source.length] as Buffer;
    const at = m.unit % (out.length + 1);
    if (m.op === 'foreign' && at < out.length) out[at] = unit;
    else out.splice(at, 0, unit);
    return out;
  }
  if (out.length === 0) return out;
  const u = m.unit % out.length;
  const cur = out[u] as Buffer;
  switch (m.op) {
    case 'flip':
    case 'set': {
      if (cur.length === 0) return out;
      const at = m.at % cur.length;
      out[u] = m.op === 'flip' ? flipBit(cur, at * 8 + m.bit) : Buffer.from(cur).fill(m.value, at, at + 1);
      return out;
    }
    case 'insert': {
      const at = m.at % (cur.length + 1);
      out[u] = Buffer.concat([cur.subarray(0, at), m.bytes, cur.subarray(at)]);
      return out;
    }
    case 'delete': {
      if (cur.length === 0) return out;
      const at = m.at % cur.length;
      out[u] = Buffer.concat([cur.subarray(0, at), cur.subarray(at + m.length)]);
      return out;
    }
    case 'truncate':
      return [...out.slice(0, u), cur.subarray(0, m.at % (cur.length + 1))];
    case 'drop':
      out.splice(u, 1);
      return out;
    case 'duplicate':
      out.splice(u, 0, cur);
      return out;
    case 'swap': {
      const o = m.other % out.length;
      out[u] = out[o] as Buffer;
      out[o] = cur;
      return out;
    }
  }
}
