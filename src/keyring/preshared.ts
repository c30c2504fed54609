/**
 * The bridge from key ring entries to the protocol's {@link PresharedKey}: the one place where a
 * secret leaves its {@link Secret} wrapper, to be handed to the protocol core.
 */

import type { PresharedKey } from '../protocol/connection.js';
import type { KeyEntry, KeyRing } from './keyring.js';

/** The protocol's view of one key ring entry. */
export function toPresharedKey(entry: KeyEntry): PresharedKey {
  return {
    id: entry.id,
    principal: entry.principal,
    secret: entry.secret.bytes(),
    revoked: entry.revoked,
    notBefore: entry.notBefore,
    notAfter: entry.notAfter,
  };
}

/** Every entry of `ring`, for a server. */
export function presharedKeys(ring: KeyRing): PresharedKey[] {
  return ring.list().map(toPresharedKey);
}
