/**
 * The crypto backends a test runs under: node:crypto always, libsodium when sodium-native loads
 * here (otherwise the reason is printed once and its cases are skipped).
 */

import { sodiumBackend } from '../../src/net/crypto-backend.js';
import { type CryptoBackend, nodeCryptoBackend, setCryptoBackend } from '../../src/protocol/backend.js';

/** Every backend, with whether it can run here. */
export const BACKENDS: { name: string; backend: CryptoBackend | undefined }[] = [
  { name: 'node', backend: nodeCryptoBackend },
  { name: 'sodium', backend: sodiumBackend },
];

if (sodiumBackend === undefined) {
  console.warn('sodium-native cannot be loaded here: the libsodium backend cases are skipped');
}

/** Run `fn` with `backend` installed in the core, then put the previous one back. */
export function withBackend<T>(backend: CryptoBackend, fn: () => T): T {
  const previous = setCryptoBackend(backend);
  try {
    return fn();
  } finally {
    setCryptoBackend(previous);
  }
}
