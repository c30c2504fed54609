/**
 * Chooses the core's crypto backend when Sesame is loaded: libsodium through `sodium-native` (an
 * optional dependency, with prebuilt binaries for Linux, macOS and Windows on x64 and arm64),
 * or node:crypto when it cannot load. The choice is made here, at module load, outside the
 * protocol core, which never reads the environment (src/protocol/backend.ts holds the choice).
 *
 *   SESAME_CRYPTO unset or "auto"   libsodium when it loads, else node:crypto
 *   SESAME_CRYPTO=node              node:crypto, even when libsodium is installed
 *   SESAME_CRYPTO=sodium            libsodium, or an error at load when it cannot be loaded
 *
 * Rules:
 * - Both backends give the same bytes (RFC 8439 ChaCha20-Poly1305, RFC 7748 X25519); the
 *   vectors, tamper tests and a loopback pair run under each (test/protocol/backends.test.ts).
 * - libsodium seals in place and detached, and opens detached into a new buffer after checking
 *   the tag, so the sealed input is never written.
 * - The libsodium backend opens records of {@link OPENSSL_OPEN_MIN_BYTES} and more through
 *   node:crypto (OpenSSL): its ChaCha20-Poly1305 is about twice as fast per byte as this
 *   libsodium build's, which pays for the cipher context node:crypto builds per call once a record
 *   is that large. Both give the same bytes and the same verdict, so this is invisible on the wire;
 *   sealing stays in libsodium at every size (node:crypto's output is a new buffer that would have
 *   to be copied back in place, which cancels the gain; measured in docs/performance.md).
 * - sodium-native throws on a forgery and on an all-zero X25519 result; both map to the same
 *   outcomes as node:crypto's (undefined; a thrown Error the core names ERR_BAD_KEY_SHARE).
 */

import { createRequire } from 'node:module';
import { sesameError } from '../errors.js';
import { type CryptoBackend, nodeCryptoBackend, setCryptoBackend } from '../protocol/backend.js';

/** The part of sodium-native's API used here (https://github.com/holepunchto/sodium-native). */
interface Sodium {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c: Buffer,
    mac: Buffer,
    m: Buffer,
    ad: Buffer | null,
    nsec: null,
    npub: Buffer,
    k: Buffer,
  ): number;
  crypto_aead_chacha20poly1305_ietf_decrypt_detached(
    m: Buffer,
    nsec: null,
    c: Buffer,
    mac: Buffer,
    ad: Buffer | null,
    npub: Buffer,
    k: Buffer,
  ): void;
  crypto_scalarmult_base(q: Buffer, n: Buffer): void;
  crypto_scalarmult(q: Buffer, n: Buffer, p: Buffer): void;
}

const TAG_BYTES = 16;
/**
 * Ciphertexts from this size up are opened through node:crypto by the libsodium backend: the
 * measured crossover on x86-64, Node 20 (docs/performance.md, "Bulk: large records through
 * OpenSSL"), where OpenSSL's faster ChaCha20 has paid for its per-call cipher context.
 */
export const OPENSSL_OPEN_MIN_BYTES = 12 * 1024;
const X25519_BYTES = 32;

/** A view of any byte array as a Buffer, without copying (sodium-native takes Buffers). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

function loadSodium(): Sodium | undefined {
  try {
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return undefined; // not installed, or no prebuild for this platform
  }
}

function makeSodiumBackend(s: Sodium): CryptoBackend {
  return {
    name: 'sodium',
    sealInPlace(key, nonce, aad, buffer, from, to) {
      const m = buffer.subarray(from, to);
      s.crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        m,
        buffer.subarray(to, to + TAG_BYTES),
        m,
        aad,
        null,
        nonce,
        key,
      );
    },
    open(key, nonce, aad, ciphertext, tag) {
      if (ciphertext.length >= OPENSSL_OPEN_MIN_BYTES)
        return nodeCryptoBackend.open(key, nonce, aad, ciphertext, tag);
      const out = Buffer.allocUnsafe(ciphertext.length);
      try {
        // libsodium verifies the tag before it writes any plaintext.
        s.crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, null, ciphertext, tag, aad, nonce, key);
      } catch {
        return undefined;
      }
      return out;
    },
    x25519Base(scalar) {
      const q = Buffer.allocUnsafe(X25519_BYTES);
      s.crypto_scalarmult_base(q, asBuffer(scalar));
      return q;
    },
    x25519(scalar, peerPublic) {
      if (peerPublic.length !== X25519_BYTES) throw new Error('an X25519 public key is 32 bytes');
      const q = Buffer.allocUnsafe(X25519_BYTES);
      s.crypto_scalarmult(q, asBuffer(scalar), asBuffer(peerPublic)); // throws on an all-zero result
      return q;
    },
  };
}

const sodium = loadSodium();

/** The libsodium backend, or undefined when sodium-native cannot be loaded on this platform. */
export const sodiumBackend: CryptoBackend | undefined =
  sodium === undefined ? undefined : makeSodiumBackend(sodium);

/** The choices of `SESAME_CRYPTO`. */
export type CryptoChoice = 'auto' | 'node' | 'sodium';

/**
 * Install the backend `choice` names in the core and return it.
 * @throws LocalError ERR_INVALID_ARGUMENT for an unknown choice, or `sodium` when libsodium
 *   cannot be loaded.
 */
export function selectCryptoBackend(choice: string): CryptoBackend {
  let backend: CryptoBackend;
  if (choice === 'node') backend = nodeCryptoBackend;
  else if (choice === 'auto' || choice === '') backend = sodiumBackend ?? nodeCryptoBackend;
  else if (choice === 'sodium') {
    if (sodiumBackend === undefined) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        'SESAME_CRYPTO=sodium, but sodium-native cannot be loaded here',
      );
    }
    backend = sodiumBackend;
  } else {
    throw sesameError(
      'ERR_INVALID_ARGUMENT',
      `SESAME_CRYPTO must be auto, node or sodium, not ${JSON.stringify(choice)}`,
    );
  }
  setCryptoBackend(backend);
  return backend;
}

selectCryptoBackend(process.env.SESAME_CRYPTO ?? 'auto');
