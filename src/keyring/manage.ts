/**
 * Key ring management: revoke, rotate, export and fingerprint keys. Pure functions over
 * immutable rings (no file system; randomness and time passed in), used by `sesame keys`.
 *
 * Rules:
 * - A ring is never changed in place: each operation returns a new ring.
 * - Rotation adds a successor key for a principal, valid at once, and limits the principal's
 *   other usable keys to `overlapMs` more, so clients can move to the new key while the old one
 *   still works, and nothing breaks at the switch.
 * - A fingerprint identifies a key without revealing it: SHA-256 over a domain label, the id and
 *   the secret, truncated to 128 bits. Keys are random 256-bit values, so the fingerprint gives no
 *   practical way back to the secret.
 */

import { createHash } from 'node:crypto';
import { sesameError } from '../errors.js';
import { type KeyEntry, KeyRing, type KeyStatus, keyStatus } from './keyring.js';

const FINGERPRINT_LABEL = Buffer.from('sesame key fingerprint v1\u0000', 'latin1');

function find(ring: KeyRing, id: string): KeyEntry {
  const entry = ring.get(id);
  if (entry === undefined) throw sesameError('ERR_KEY_NOT_FOUND', `the key ring has no key with id ${id}`);
  return entry;
}

function replace(ring: KeyRing, id: string, change: Partial<KeyEntry>): KeyRing {
  return new KeyRing(ring.list().map((e) => (e.id === id ? { ...e, ...change } : e)));
}

/**
 * `ring` with key `id` revoked.
 * @throws LocalError ERR_KEY_NOT_FOUND.
 */
export function revokeKey(ring: KeyRing, id: string): KeyRing {
  find(ring, id);
  return replace(ring, id, { revoked: true });
}

/**
 * Add a successor key for `principal`, valid from `now`; the principal's other usable keys expire
 * `overlapMs` after `now` (or earlier, if they already did).
 * @throws LocalError ERR_KEY_NOT_FOUND when the principal has no usable key to rotate.
 */
export function rotateKey(
  ring: KeyRing,
  principal: string,
  opts: { now: Date; overlapMs: number; random: (n: number) => Buffer },
): { ring: KeyRing; added: KeyEntry } {
  const current = ring
    .list()
    .filter((e) => e.principal === principal && keyStatus(e, opts.now) !== 'revoked');
  if (current.length === 0) {
    throw sesameError(
      'ERR_KEY_NOT_FOUND',
      `no usable key for principal ${JSON.stringify(principal)} to rotate (use keys add)`,
    );
  }
  const until = new Date(opts.now.getTime() + opts.overlapMs);
  const entries = ring.list().map((e) => {
    if (!current.includes(e)) return e;
    const notAfter = e.notAfter !== undefined && e.notAfter < until ? e.notAfter : until;
    // A key not yet valid when it is rotated out would otherwise end before it starts.
    const notBefore = e.notBefore !== undefined && e.notBefore >= notAfter ? undefined : e.notBefore;
    return { ...e, notBefore, notAfter };
  });
  const added = KeyRing.generate({ principal, now: opts.now, random: opts.random });
  const next = new KeyRing(entries);
  next.add(added);
  return { ring: next, added };
}

/**
 * A ring holding only key `id`, to hand to the client that holds it.
 * @throws LocalError ERR_KEY_NOT_FOUND.
 */
export function exportKey(ring: KeyRing, id: string): KeyRing {
  return new KeyRing([find(ring, id)]);
}

/** `xxxx:xxxx:...`: 128 bits of SHA-256 over a label, the key id and the secret. */
export function fingerprint(entry: KeyEntry): string {
  const digest = createHash('sha256')
    .update(FINGERPRINT_LABEL)
    .update(Buffer.from(entry.id, 'latin1'))
    .update(entry.secret.bytes())
    .digest('hex')
    .slice(0, 32);
  return digest.match(/.{4}/g)?.join(':') ?? digest;
}

/** What `keys list` shows of one key: everything but the secret. */
export interface KeyDescription {
  readonly id: string;
  readonly principal: string;
  readonly status: KeyStatus;
  readonly created: string;
  readonly notBefore: string | undefined;
  readonly notAfter: string | undefined;
  readonly fingerprint: string;
}

export function describeKeys(ring: KeyRing, now: Date): KeyDescription[] {
  return ring.list().map((e) => ({
    id: e.id,
    principal: e.principal,
    status: keyStatus(e, now),
    created: e.created.toISOString(),
    notBefore: e.notBefore?.toISOString(),
    notAfter: e.notAfter?.toISOString(),
    fingerprint: fingerprint(e),
  }));
}

/**
 * `ring` without key `id`: the key is purged, not merely revoked (a server that reloads the ring
 * then answers it as an unknown key).
 * @throws LocalError ERR_KEY_NOT_FOUND.
 */
export function removeKey(ring: KeyRing, id: string): KeyRing {
  find(ring, id);
  return new KeyRing(ring.list().filter((e) => e.id !== id));
}
