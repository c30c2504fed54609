/**
 * Handshake messages (docs/protocol.md, "Handshake messages"): fixed layouts, sizes known from
 * the 8-byte header alone, so a reader asks for exactly the bytes it needs and no more.
 *
 *   header       = magic "SESM" (4) || version (1) || type (1) || flags (1) || reserved = 0 (1)
 *   ClientHello  = header || key id (8) || timestamp ms (u64) || Nc (32) || [client share (32)] || mac1 (16)
 *   ServerHello  = header || Ns (32) || [server share (32)] || s_fin (32)
 *   ClientFinish = header || c_fin (32)
 *
 * The key shares are present exactly when flag bit 0 (X25519) is set.
 */

import { sesameError } from '../errors.js';
import {
  CLIENT_FINISHED_BYTES,
  CLIENT_HELLO_PSK_BYTES,
  CLIENT_HELLO_X25519_BYTES,
  FINISHED_BYTES,
  FLAG_X25519,
  HANDSHAKE_HEADER_BYTES,
  KEY_ID_BYTES,
  KNOWN_FLAGS,
  MAC1_BYTES,
  MAGIC,
  MSG_CLIENT_FINISHED,
  MSG_CLIENT_HELLO,
  MSG_SERVER_HELLO,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  SERVER_HELLO_PSK_BYTES,
  SERVER_HELLO_X25519_BYTES,
  X25519_PUBLIC_BYTES,
} from './constants.js';

const MESSAGE_NAMES: Record<number, string> = {
  [MSG_CLIENT_HELLO]: 'ClientHello',
  [MSG_SERVER_HELLO]: 'ServerHello',
  [MSG_CLIENT_FINISHED]: 'ClientFinished',
};

/**
 * Check a handshake header and return the flags and the whole message's size.
 * @throws PeerError ERR_MALFORMED_MESSAGE (magic, reserved byte, unknown flag bits),
 *   ERR_UNSUPPORTED_VERSION, ERR_UNEXPECTED_MESSAGE (another type than `expected`).
 */
export function parseHeader(header: Uint8Array, expected: number): { flags: number; size: number } {
  if (MAGIC.compare(header, 0, 4) !== 0) {
    throw sesameError('ERR_MALFORMED_MESSAGE', 'not a Sesame handshake message (bad magic)');
  }
  const version = header[4] as number;
  if (version !== PROTOCOL_VERSION) {
    throw sesameError(
      'ERR_UNSUPPORTED_VERSION',
      version === 1
        ? `protocol version 1 (AES-256-GCM records) is no longer spoken; this end speaks version ${PROTOCOL_VERSION}`
        : `unsupported protocol version ${version}; this end speaks version ${PROTOCOL_VERSION}`,
    );
  }
  const type = header[5] as number;
  if (type !== expected) {
    const got = MESSAGE_NAMES[type] ?? `type ${type}`;
    throw sesameError('ERR_UNEXPECTED_MESSAGE', `expected ${MESSAGE_NAMES[expected]}, got ${got}`);
  }
  const flags = header[6] as number;
  if ((flags & ~KNOWN_FLAGS) !== 0 || header[7] !== 0) {
    throw sesameError('ERR_MALFORMED_MESSAGE', `unknown flags 0x${flags.toString(16)} or reserved byte set`);
  }
  return { flags, size: messageSize(type, flags) };
}

/** Size in bytes of a handshake message of `type` with `flags`. */
export function messageSize(type: number, flags: number): number {
  const x = (flags & FLAG_X25519) !== 0;
  switch (type) {
    case MSG_CLIENT_HELLO:
      return x ? CLIENT_HELLO_X25519_BYTES : CLIENT_HELLO_PSK_BYTES;
    case MSG_SERVER_HELLO:
      return x ? SERVER_HELLO_X25519_BYTES : SERVER_HELLO_PSK_BYTES;
    default:
      return CLIENT_FINISHED_BYTES;
  }
}

function header(type: number, flags: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  MAGIC.copy(b, 0);
  b[4] = PROTOCOL_VERSION;
  b[5] = type;
  b[6] = flags;
  return b;
}

export interface ClientHello {
  readonly flags: number;
  readonly keyId: Buffer;
  readonly timestampMs: number;
  readonly nonce: Buffer;
  readonly share: Buffer | undefined;
  readonly mac1: Buffer;
}

/** Encode a ClientHello with a zero mac1; the caller fills the last MAC1_BYTES (see {@link mac1Input}). */
export function encodeClientHello(m: Omit<ClientHello, 'mac1'>): Buffer {
  const b = header(MSG_CLIENT_HELLO, m.flags, messageSize(MSG_CLIENT_HELLO, m.flags));
  m.keyId.copy(b, 8);
  b.writeBigUInt64BE(BigInt(m.timestampMs), 16);
  m.nonce.copy(b, 24);
  if (m.share !== undefined) m.share.copy(b, 24 + NONCE_BYTES);
  return b;
}

/** Decode a whole ClientHello whose header passed {@link parseHeader}. */
export function decodeClientHello(b: Buffer, flags: number): ClientHello {
  const x = (flags & FLAG_X25519) !== 0;
  const ts = b.readBigUInt64BE(16);
  return {
    flags,
    keyId: b.subarray(8, 8 + KEY_ID_BYTES),
    // Beyond 2^53 ms the value is nonsense anyway; it fails the freshness check.
    timestampMs: ts > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(ts),
    nonce: b.subarray(24, 24 + NONCE_BYTES),
    share: x ? b.subarray(24 + NONCE_BYTES, 24 + NONCE_BYTES + X25519_PUBLIC_BYTES) : undefined,
    mac1: b.subarray(b.length - MAC1_BYTES),
  };
}

/** The bytes mac1 covers: the whole ClientHello before mac1. */
export function mac1Input(clientHello: Buffer): Buffer {
  return clientHello.subarray(0, clientHello.length - MAC1_BYTES);
}

export interface ServerHello {
  readonly flags: number;
  readonly nonce: Buffer;
  readonly share: Buffer | undefined;
  readonly finished: Buffer;
}

/** Encode a ServerHello with a zero s_fin; the caller fills the last FINISHED_BYTES. */
export function encodeServerHello(m: Omit<ServerHello, 'finished'>): Buffer {
  const b = header(MSG_SERVER_HELLO, m.flags, messageSize(MSG_SERVER_HELLO, m.flags));
  m.nonce.copy(b, 8);
  if (m.share !== undefined) m.share.copy(b, 8 + NONCE_BYTES);
  return b;
}

export function decodeServerHello(b: Buffer, flags: number): ServerHello {
  const x = (flags & FLAG_X25519) !== 0;
  return {
    flags,
    nonce: b.subarray(8, 8 + NONCE_BYTES),
    share: x ? b.subarray(8 + NONCE_BYTES, 8 + NONCE_BYTES + X25519_PUBLIC_BYTES) : undefined,
    finished: b.subarray(b.length - FINISHED_BYTES),
  };
}

export function encodeClientFinished(flags: number, finished: Buffer): Buffer {
  const b = header(MSG_CLIENT_FINISHED, flags, CLIENT_FINISHED_BYTES);
  finished.copy(b, HANDSHAKE_HEADER_BYTES);
  return b;
}

export function decodeClientFinished(b: Buffer): Buffer {
  return b.subarray(HANDSHAKE_HEADER_BYTES, HANDSHAKE_HEADER_BYTES + FINISHED_BYTES);
}

/** The part of a message that its trailing MAC or Finished value covers. */
export function withoutTrailer(b: Buffer, trailerBytes: number): Buffer {
  return b.subarray(0, b.length - trailerBytes);
}
