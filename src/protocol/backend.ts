/**
 * The crypto backend: the one seam through which the core's AEAD (ChaCha20-Poly1305, RFC 8439
 * section 2.8) and X25519 (RFC 7748) run. The core ships the node:crypto implementation and holds
 * the current choice; a faster implementation (libsodium, see src/net/crypto-backend.ts) is
 * installed from outside the core, which never reads the environment itself.
 *
 * Rules:
 * - Every backend gives the same bytes for the same inputs: the protocol does not know which one
 *   ran (the test vectors and tamper tests run under each).
 * - Sealing is in place and detached: the plaintext is laid out where its ciphertext goes, and
 *   the tag is written right after it, so a record is sealed into the one buffer that is sent.
 * - Opening returns the plaintext in a new buffer and never modifies the sealed input; no
 *   plaintext leaves unless the tag verifies (libsodium checks the tag before decrypting;
 *   node:crypto's output is wiped when `final` fails).
 * - No cipher is written here: the fallback is node:crypto (OpenSSL) for every size, and the
 *   fast path is libsodium. A node:crypto AEAD call builds an OpenSSL cipher context each time
 *   (about 2.3 µs before any byte on Node 20, x86-64), which is the fallback's floor for small
 *   records; docs/performance.md gives the figures.
 * - X25519 works on raw 32-byte scalars, as drawn from the injected entropy (the function clamps
 *   them, RFC 7748 section 5), so deterministic entropy gives deterministic key shares. An
 *   all-zero shared secret (a low-order peer key) throws, in every backend.
 * - The backend is chosen before connections are made; connections in flight keep working if it
 *   changes, since every backend gives the same bytes.
 */

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  timingSafeEqual,
} from 'node:crypto';

/** An implementation of the core's AEAD and X25519; every implementation gives the same bytes. */
export interface CryptoBackend {
  /** A short name for logs and benchmarks: `node` or `sodium`. */
  readonly name: string;
  /**
   * ChaCha20-Poly1305 (RFC 8439): encrypt `buffer[from, to)` in place under `key` (32 bytes) and
   * `nonce` (12 bytes), authenticating `aad`, and write the 16-byte tag at `buffer[to, to + 16)`.
   */
  sealInPlace(key: Buffer, nonce: Buffer, aad: Buffer, buffer: Buffer, from: number, to: number): void;
  /**
   * Verify `tag` over `aad` and `ciphertext`, then decrypt into a new buffer of
   * `ciphertext.length` bytes; `ciphertext` and `tag` are left as they are.
   * @returns the plaintext, or undefined when authentication fails.
   */
  open(key: Buffer, nonce: Buffer, aad: Buffer, ciphertext: Buffer, tag: Buffer): Buffer | undefined;
  /** X25519(scalar, 9): the public key of a raw 32-byte private scalar. */
  x25519Base(scalar: Uint8Array): Buffer;
  /**
   * X25519(scalar, peer): the 32-byte shared secret.
   * @throws Error when the result is all zero (a low-order peer key) or the key is malformed.
   */
  x25519(scalar: Uint8Array, peerPublic: Uint8Array): Buffer;
}

/** The cipher's name in node:crypto (OpenSSL). */
const NODE_AEAD = 'chacha20-poly1305';
const TAG_OPTIONS = { authTagLength: 16 };

function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url');
}

// X25519 keys are imported as JWK: several times cheaper than DER/SPKI on Node 20, and it makes
// no key-generation job (see primitives.ts on the generateKeyPairSync deadlock). `x` is required
// to be a string but unused for a private key.
function nodePrivate(scalar: Uint8Array) {
  return createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: toBase64Url(scalar), x: '' },
    format: 'jwk',
  });
}

// The private key object made for a scalar's public key, kept for the agreement that follows:
// importing a scalar costs OpenSSL as much as an X25519 (it derives the public key), and the
// protocol makes one key pair and one agreement per ephemeral scalar. Keyed by the scalar's own
// buffer (an entry goes with it), used once, and only while the scalar's bytes still have the
// digest they had: a scalar changed in between is imported afresh.
const importedScalars = new WeakMap<Uint8Array, { key: KeyObject; digest: Buffer }>();

function scalarDigest(scalar: Uint8Array): Buffer {
  return createHash('sha256').update(scalar).digest();
}

/** The private key of `scalar`: the one its key pair was made with when still valid, else imported. */
function privateFor(scalar: Uint8Array): KeyObject {
  const kept = importedScalars.get(scalar);
  if (kept === undefined) return nodePrivate(scalar);
  importedScalars.delete(scalar);
  return timingSafeEqual(kept.digest, scalarDigest(scalar)) ? kept.key : nodePrivate(scalar);
}

/** The fallback: node:crypto (OpenSSL), one cipher object per sealed or opened unit. */
export const nodeCryptoBackend: CryptoBackend = {
  name: 'node',
  sealInPlace(key, nonce, aad, buffer, from, to) {
    const cipher = createCipheriv(NODE_AEAD, key, nonce, TAG_OPTIONS);
    cipher.setAAD(aad, { plaintextLength: to - from });
    cipher.update(buffer.subarray(from, to)).copy(buffer, from);
    cipher.final(); // a stream cipher: update() has returned every byte
    cipher.getAuthTag().copy(buffer, to);
  },
  open(key, nonce, aad, ciphertext, tag) {
    const decipher = createDecipheriv(NODE_AEAD, key, nonce, TAG_OPTIONS);
    decipher.setAAD(aad, { plaintextLength: ciphertext.length });
    decipher.setAuthTag(tag);
    const plain = decipher.update(ciphertext); // a new buffer: the input is never written
    try {
      decipher.final(); // verifies the tag; returns nothing more for a stream cipher
    } catch {
      plain.fill(0); // never let unauthenticated plaintext out
      return undefined;
    }
    return plain;
  },
  x25519Base(scalar) {
    const privateKey = nodePrivate(scalar);
    importedScalars.set(scalar, { key: privateKey, digest: scalarDigest(scalar) });
    const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
    return Buffer.from(jwk.x ?? '', 'base64url');
  },
  x25519(scalar, peerPublic) {
    const publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: toBase64Url(peerPublic) },
      format: 'jwk',
    });
    // OpenSSL refuses an all-zero result itself (throws).
    return diffieHellman({ privateKey: privateFor(scalar), publicKey });
  },
};

let current: CryptoBackend = nodeCryptoBackend;

/** The backend the core uses now (node:crypto unless another was installed). */
export function cryptoBackend(): CryptoBackend {
  return current;
}

/**
 * Make `backend` the one the core uses from now on; returns the previous one. Sesame's entry
 * points install libsodium when it loads (src/net/crypto-backend.ts); tests and benchmarks
 * switch between them with this.
 */
export function setCryptoBackend(backend: CryptoBackend): CryptoBackend {
  const previous = current;
  current = backend;
  return previous;
}
