/**
 * The key schedule (docs/protocol.md, "Key schedule").
 *
 *   early     = HKDF-Extract(salt = "sesame v1", IKM = PSK)
 *   gate      = HKDF-Expand(early, "sesame v1 gate")                      mac1 key
 *   hs        = HKDF-Extract(salt = early, IKM = X25519 shared secret | 32 zero bytes)
 *   s_fin     = HMAC(HKDF-Expand(hs, "sesame v1 server finished"), TH1)  TH1 = H(CH || SH without s_fin)
 *   c_fin     = HMAC(HKDF-Expand(hs, "sesame v1 client finished"), TH2)  TH2 = H(CH || SH)
 *   c2s       = HKDF-Expand(hs, "sesame v1 c2s" || TH3)                   TH3 = H(CH || SH || CF)
 *   s2c       = HKDF-Expand(hs, "sesame v1 s2c" || TH3)
 *   exporter  = HKDF-Expand(hs, "sesame v1 exporter" || TH3)
 *   key, iv   = HKDF-Expand(secret, "sesame v1 key"), HKDF-Expand(secret, "sesame v1 iv")[0..12]
 *   next      = HKDF-Expand(secret, "sesame v1 key update")
 *
 * Every label differs per purpose and per direction, so no value computed for one role or one
 * direction is ever accepted for the other (reflection), and the transcript hash binds both
 * nonces, both key shares, the flags and the version into every later key (no downgrade).
 *
 * Without forward secrecy the handshake secret and the two Finished keys depend on the
 * pre-shared key alone (hs = HKDF-Extract(early, 32 zero bytes)): a server computes them once
 * per key ({@link pskOnlySecrets}) instead of three HMACs per handshake. The bytes are the same;
 * the transcript, which differs per connection, still enters every Finished value and every
 * traffic key.
 */

import {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  HASH_BYTES,
  LABEL_C2S,
  LABEL_CLIENT_FINISHED,
  LABEL_EXPORTER,
  LABEL_EXTRACT_SALT,
  LABEL_GATE,
  LABEL_IV,
  LABEL_KEY,
  LABEL_KEY_UPDATE,
  LABEL_S2C,
  LABEL_SERVER_FINISHED,
} from './constants.js';
import { hkdfExpand, hkdfExpandInto, hkdfExtract, hmacSha256, retained } from './primitives.js';

const label = (s: string): Buffer => Buffer.from(s, 'latin1');
const SALT = label(LABEL_EXTRACT_SALT);
const GATE = label(LABEL_GATE);
const SERVER_FINISHED = label(LABEL_SERVER_FINISHED);
const CLIENT_FINISHED = label(LABEL_CLIENT_FINISHED);
const C2S = label(LABEL_C2S);
const S2C = label(LABEL_S2C);
const EXPORTER = label(LABEL_EXPORTER);
const KEY = label(LABEL_KEY);
const IV = label(LABEL_IV);
const KEY_UPDATE = label(LABEL_KEY_UPDATE);
const EXPORT_PREFIX = label('sesame v1 export ');
const ZERO_IKM = Buffer.alloc(HASH_BYTES);
const ZERO_BYTE = Buffer.alloc(1);

/** Secrets that depend on the pre-shared key alone (computed once per key and cached). */
export interface PskSecrets {
  readonly early: Buffer;
  readonly gate: Buffer;
}

/** early and gate secrets of a PSK. */
export function pskSecrets(psk: Uint8Array): PskSecrets {
  const early = hkdfExtract(SALT, psk);
  return { early: retained(early), gate: retained(hkdfExpand(early, GATE)) };
}

/** The handshake secret; `shared` is the X25519 output, or undefined in PSK-only mode. */
export function handshakeSecret(early: Uint8Array, shared: Uint8Array | undefined): Buffer {
  return hkdfExtract(early, shared ?? ZERO_IKM);
}

/** The server's Finished value over TH1. */
export function serverFinished(hs: Uint8Array, th1: Uint8Array): Buffer {
  return hmacSha256(serverFinishedKey(hs), th1);
}

/** The client's Finished value over TH2. */
export function clientFinished(hs: Uint8Array, th2: Uint8Array): Buffer {
  return hmacSha256(clientFinishedKey(hs), th2);
}

/** The key of the server's Finished value: HKDF-Expand(hs, "sesame v1 server finished"). */
export function serverFinishedKey(hs: Uint8Array): Buffer {
  return hkdfExpand(hs, SERVER_FINISHED);
}

/** The key of the client's Finished value: HKDF-Expand(hs, "sesame v1 client finished"). */
export function clientFinishedKey(hs: Uint8Array): Buffer {
  return hkdfExpand(hs, CLIENT_FINISHED);
}

/** A Finished value: HMAC(finished key, transcript hash). */
export function finishedMac(finishedKey: Uint8Array, th: Uint8Array): Buffer {
  return hmacSha256(finishedKey, th);
}

/** The handshake secret and Finished keys of a PSK-only handshake: functions of the key alone. */
export interface PskOnlySecrets {
  /** HKDF-Extract(early, 32 zero bytes). */
  readonly hs: Buffer;
  /** HKDF-Expand(hs, "sesame v1 server finished"). */
  readonly serverFinishedKey: Buffer;
  /** HKDF-Expand(hs, "sesame v1 client finished"). */
  readonly clientFinishedKey: Buffer;
}

/** The PSK-only handshake secret and Finished keys of a key's early secret, in memory of their own. */
export function pskOnlySecrets(early: Uint8Array): PskOnlySecrets {
  const hs = handshakeSecret(early, undefined);
  const server = serverFinishedKey(hs);
  const client = clientFinishedKey(hs);
  const out = { hs: retained(hs), serverFinishedKey: retained(server), clientFinishedKey: retained(client) };
  // The pooled originals are wiped: only the copies, which the key's owner wipes, remain.
  hs.fill(0);
  server.fill(0);
  client.fill(0);
  return out;
}

/**
 * Traffic and exporter secrets after the handshake, bound to TH3, in pooled memory: the caller
 * copies what it keeps into memory of its own and wipes these.
 */
export interface SessionSecrets {
  readonly c2s: Buffer;
  readonly s2c: Buffer;
  readonly exporter: Buffer;
}

export function sessionSecrets(hs: Uint8Array, th3: Uint8Array): SessionSecrets {
  return {
    c2s: hkdfExpand(hs, C2S, th3),
    s2c: hkdfExpand(hs, S2C, th3),
    exporter: hkdfExpand(hs, EXPORTER, th3),
  };
}

/** AEAD key and IV of a traffic secret. */
export interface TrafficKeys {
  readonly key: Buffer;
  readonly iv: Buffer;
}

export function trafficKeys(secret: Uint8Array): TrafficKeys {
  const both = Buffer.allocUnsafeSlow(AEAD_KEY_BYTES + AEAD_NONCE_BYTES);
  trafficKeysInto(secret, both);
  return { key: both.subarray(0, AEAD_KEY_BYTES), iv: both.subarray(AEAD_KEY_BYTES) };
}

/** The AEAD key and IV of a traffic secret, written into `out` (key at 0, IV after it). */
export function trafficKeysInto(secret: Uint8Array, out: Buffer, at = 0): void {
  hkdfExpandInto(secret, KEY, out, at, AEAD_KEY_BYTES);
  hkdfExpandInto(secret, IV, out, at + AEAD_KEY_BYTES, AEAD_NONCE_BYTES);
}

/** The traffic secret that follows `secret` after a key update. */
export function nextTrafficSecret(secret: Uint8Array): Buffer {
  return hkdfExpand(secret, KEY_UPDATE);
}

/** Keying material for the application: HKDF-Expand(exporter, "sesame v1 export " || label || 0 || context). */
export function exportKeyingMaterial(exporter: Uint8Array, name: string, context: Uint8Array): Buffer {
  const info = Buffer.concat([EXPORT_PREFIX, Buffer.from(name, 'utf8'), ZERO_BYTE, context]);
  return retained(hkdfExpand(exporter, info));
}

// The info of the channel binding, which every connection derives: laid out once.
const CHANNEL_BINDING_INFO = Buffer.concat([
  EXPORT_PREFIX,
  Buffer.from('channel binding', 'utf8'),
  ZERO_BYTE,
]);

/** The channel binding: exportKeyingMaterial(exporter, "channel binding", empty context). */
export function channelBinding(exporter: Uint8Array): Buffer {
  return retained(hkdfExpand(exporter, CHANNEL_BINDING_INFO));
}
