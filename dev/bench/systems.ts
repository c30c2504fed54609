/**
 * The systems under test and what the server and load-generator processes share about them.
 *
 * - `raw`: Node `net`, no authentication, no encryption: the floor.
 * - `tls-psk`: Node `tls`, TLS 1.3 with an external pre-shared key, cipher suite pinned to
 *   TLS_AES_128_GCM_SHA256, no certificate. OpenSSL adds an X25519 exchange (psk_dhe_ke), so it
 *   is forward secret like `sesame-fs`.
 * - `sesame-psk`: the native protocol without ephemeral X25519.
 * - `sesame-fs`: the native protocol with ephemeral X25519 (the default).
 * - `sesame-psk-node`, `sesame-fs-node`: the same with the node:crypto backend forced at both
 *   ends (SESAME_CRYPTO=node's choice); the two above use libsodium when it loads.
 * - `spiped`: spiped 1.6 at both ends (spiped.ts) in front of the raw framed server, when the
 *   Debian package is installed (left out of the default systems otherwise).
 * - `secret-stream`: @hyperswarm/secret-stream (a Noise XX handshake, libsodium secretstream
 *   records) over Node `net`, with the baselines' framing; a dev dependency, skipped when absent.
 * - `raw-flights` (churn only): Node `net` with no cryptography, exchanging the messages of a
 *   Sesame PSK connection (ClientHello, ServerHello, ClientFinished, the request, the reply, a
 *   close each way) as frames of about their sizes: what the protocol's extra flights cost a
 *   server on their own, for the churn floor.
 */

import { ctime } from '../../src/index.js';

export const SYSTEMS = [
  'raw',
  'tls-psk',
  'secret-stream',
  'spiped',
  'sesame-psk',
  'sesame-fs',
  'sesame-psk-node',
  'sesame-fs-node',
  'raw-flights',
] as const;
export type SystemName = (typeof SYSTEMS)[number];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  raw: 'raw net',
  'tls-psk': 'TLS-PSK',
  'sesame-psk': 'Sesame PSK',
  'sesame-fs': 'Sesame FS',
  'sesame-psk-node': 'Sesame PSK, node:crypto',
  'sesame-fs-node': 'Sesame FS, node:crypto',
  'secret-stream': 'secret-stream',
  spiped: 'spiped',
  'raw-flights': 'raw, flights',
};

/** Whether `system` is Sesame, and then with which crypto backend and mode. */
export function sesameSystem(
  system: SystemName,
): { crypto: 'auto' | 'node'; forwardSecrecy: boolean } | undefined {
  switch (system) {
    case 'sesame-psk':
    case 'sesame-fs':
      return { crypto: 'auto', forwardSecrecy: system === 'sesame-fs' };
    case 'sesame-psk-node':
    case 'sesame-fs-node':
      return { crypto: 'node', forwardSecrecy: system === 'sesame-fs-node' };
    default:
      return undefined;
  }
}

/**
 * The most concurrent churn clients a system is measured with. spiped listens with a backlog of
 * 10 (`ss -tln` shows it on its sockets): 256 clients connecting at once overflow it, and the
 * dropped SYNs are retried for over a minute (1 s, 3 s, 7 s, ...), so past 64 its churn measures
 * the kernel's retry timers, not spiped, and the point never ends within its bound.
 */
export function maxChurnConcurrency(system: SystemName): number {
  return system === 'spiped' ? 64 : Number.POSITIVE_INFINITY;
}

/** Systems measured in churn only (the others run every workload). */
export const CHURN_ONLY: ReadonlySet<SystemName> = new Set<SystemName>(['raw-flights']);

/**
 * Frame payload sizes of `raw-flights`, so that each flight is as long on the wire as Sesame
 * PSK's (a frame adds a 4-byte header): ClientHello and ServerHello 72 bytes, ClientFinished 40.
 * A close is an empty frame.
 */
export const FLIGHT_HELLO_BYTES = 72 - 4;
export const FLIGHT_FINISHED_BYTES = 40 - 4;

/** What a bench server answers. */
export type BenchService = 'timestamp' | 'echo' | 'bulk';

/** The pre-shared key of a run, as it crosses the IPC channel. */
export interface BenchKey {
  /** 16 lowercase hex characters: the Sesame key id, and the TLS PSK identity. */
  readonly id: string;
  /** 64 hex characters (256 bits). */
  readonly secretHex: string;
}

/** TLS settings both ends use. */
export const TLS_CIPHER = 'TLS_AES_128_GCM_SHA256';
export const TLS_VERSION = 'TLSv1.3';

/** Length of a timestamp reply's prefix: `[` + 24-character ctime + `] `. */
export const TIMESTAMP_PREFIX_BYTES = ctime(new Date(0)).length + 3;

/** Whether `reply` is a timestamp-service reply to `message`. */
export function isTimestampReply(reply: Buffer, message: Buffer): boolean {
  return (
    reply.length === TIMESTAMP_PREFIX_BYTES + message.length &&
    reply[0] === 0x5b &&
    reply[TIMESTAMP_PREFIX_BYTES - 2] === 0x5d &&
    reply.subarray(TIMESTAMP_PREFIX_BYTES).equals(message)
  );
}

/** The reply a bulk server sends for the terminator (an empty message): the byte count. */
export function bulkAck(count: number): Buffer {
  return Buffer.from(`${count}`, 'latin1');
}

/** Counts the bytes of every non-empty message; an empty message asks for the count (and resets it). */
export class BulkCounter {
  private count = 0;

  /** The reply to `message`, if any. */
  onMessage(message: Buffer): Buffer | undefined {
    if (message.length > 0) {
      this.count += message.length;
      return undefined;
    }
    const ack = bulkAck(this.count);
    this.count = 0;
    return ack;
  }
}
