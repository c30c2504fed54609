/**
 * The cryptographic building blocks of the native protocol, over Node's `crypto` (OpenSSL).
 *
 * Rules:
 * - HKDF (RFC 5869) with SHA-256. Every output here is at most one hash long, so HKDF-Expand is a
 *   single HMAC: T(1) = HMAC(PRK, info || 0x01) (RFC 5869 section 2.3); a test checks this
 *   against `crypto.hkdfSync`. One HMAC is about 3x cheaper than a `hkdfSync` call on Node 20.
 * - Randomness is never drawn here directly by protocol code: it comes through an {@link Entropy}
 *   passed in, so tests and the published test vectors are deterministic.
 * - X25519 peer keys are imported as JWK, several times cheaper than DER/SPKI on Node 20.
 * - Comparisons of secret-dependent values use `timingSafeEqual` on equal-length inputs.
 */

import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

const ONE = Buffer.from([1]);

/** HMAC-SHA256 over the concatenation of `parts`. */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** SHA-256 over the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** HKDF-Extract(salt, IKM) = HMAC-SHA256(salt, IKM) (RFC 5869 section 2.2). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Buffer {
  return hmacSha256(salt, ikm);
}

/**
 * HKDF-Expand(PRK, label || context, L) for L <= 32 (RFC 5869 section 2.3): the first `length`
 * bytes of HMAC-SHA256(PRK, label || context || 0x01).
 */
export function hkdfExpand(prk: Uint8Array, label: Uint8Array, context?: Uint8Array, length = 32): Buffer {
  const t1 = context === undefined ? hmacSha256(prk, label, ONE) : hmacSha256(prk, label, context, ONE);
  return length === 32 ? t1 : t1.subarray(0, length);
}

/** Constant-time equality of two byte strings (false at once when the lengths differ). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** An X25519 key pair: the private key as a KeyObject and the public key as 32 raw bytes. */
export interface X25519KeyPair {
  /** The private key, as an OpenSSL key object (never exported as bytes). */
  readonly privateKey: KeyObject;
  /** The public key: 32 raw bytes, as sent in a key share (RFC 7748). */
  readonly publicKey: Buffer;
}

/** Source of randomness and ephemeral keys for a connection. */
export interface Entropy {
  /** `n` uniformly random bytes. */
  bytes(n: number): Buffer;
  /** A fresh X25519 key pair. */
  x25519(): X25519KeyPair;
}

/** The operating system's CSPRNG, through OpenSSL. */
export const systemEntropy: Entropy = {
  bytes: (n) => randomBytes(n),
  x25519: () => {
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    return { privateKey, publicKey: fromBase64Url(publicKey.export({ format: 'jwk' }).x) };
  },
};

// PKCS#8 prefix of an X25519 private key (RFC 8410 section 7): the raw 32-byte scalar follows.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The X25519 key pair whose private scalar is `secret` (32 bytes). Slow: for tests and vectors. */
export function x25519FromSecret(secret: Uint8Array): X25519KeyPair {
  const privateKey = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, secret]),
    format: 'der',
    type: 'pkcs8',
  });
  return { privateKey, publicKey: fromBase64Url(createPublicKey(privateKey).export({ format: 'jwk' }).x) };
}

/**
 * Deterministic entropy from a seed: SHA-256(seed || counter) blocks. Only for test vectors and
 * tests; never for real connections.
 */
export function deterministicEntropy(seed: string | Uint8Array): Entropy {
  const seedBytes = typeof seed === 'string' ? Buffer.from(seed, 'utf8') : Buffer.from(seed);
  let counter = 0;
  const block = (): Buffer => {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter++);
    return sha256(seedBytes, c);
  };
  const bytes = (n: number): Buffer => {
    const out: Buffer[] = [];
    for (let have = 0; have < n; have += 32) out.push(block());
    return Buffer.concat(out).subarray(0, n);
  };
  return { bytes, x25519: () => x25519FromSecret(bytes(32)) };
}

/**
 * Import a peer's raw X25519 public key.
 * @throws Error from OpenSSL when the bytes are not a valid key (callers map it to a typed error).
 */
export function importX25519Public(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

/**
 * X25519(private, peer public). OpenSSL refuses an all-zero result (a low-order peer key) by
 * throwing; callers map that to a typed error.
 */
export function x25519(privateKey: KeyObject, peerPublic: Uint8Array): Buffer {
  return diffieHellman({ privateKey, publicKey: importX25519Public(peerPublic) });
}

function fromBase64Url(s: string | undefined): Buffer {
  return Buffer.from(s ?? '', 'base64url');
}
