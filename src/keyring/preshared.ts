/**
 * The bridge from key ring entries to the protocol's {@link PresharedKey}: the one place where a
 * secret leaves its {@link Secret} wrapper, to be handed to the protocol core.
 */

import { sesameError } from '../errors.js';
import type { PresharedKey } from '../protocol/channel.js';
import { type KeyEntry, type KeyRing, keyStatus, selectClientKey } from './keyring.js';

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

/**
 * The key a client connects with: `keyId`, or the ring's only key; refused locally when it is
 * revoked, expired or not yet valid, since the server would refuse it anyway.
 * @throws LocalError ERR_KEY_NOT_FOUND, ERR_KEY_AMBIGUOUS (see selectClientKey), ERR_KEY_UNUSABLE.
 */
export function clientKey(ring: KeyRing, keyId: string | undefined, now: Date): PresharedKey {
  const entry = selectClientKey(ring, keyId);
  const status = keyStatus(entry, now);
  if (status !== 'valid') {
    throw sesameError(
      'ERR_KEY_UNUSABLE',
      `key ${entry.id} (${entry.principal}) is ${status}; the server would refuse it`,
    );
  }
  return toPresharedKey(entry);
}
