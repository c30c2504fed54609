/**
 * Connect to a Sesame server and authenticate: resolves with an open {@link Session} once both
 * sides have proved they hold the key, or rejects with a typed error.
 */

import { createConnection, type Socket } from 'node:net';
import { sesameError } from '../errors.js';
import type { PresharedKey, ProtocolConnection } from '../protocol/channel.js';
import { ClientConnection } from '../protocol/connection.js';
import { type Entropy, systemEntropy } from '../protocol/primitives.js';
import { parseAddress } from './address.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, Session, type SessionOptions } from './session.js';

/** Options of {@link connect}: the key, the handshake, and the session's timeouts and limits. */
export interface ConnectOptions extends SessionOptions {
  /** Local address to connect from (TCP only). */
  readonly localAddress?: string | undefined;
  /** The key to authenticate with: a well-formed id and a secret of at least 32 bytes. */
  readonly key: PresharedKey;
  /** Ephemeral X25519 (default true). */
  readonly forwardSecrecy?: boolean | undefined;
  /** Largest message accepted from the server after reassembly, in bytes (default 16 MiB). */
  readonly maxMessageBytes?: number | undefined;
  /** Randomness and ephemeral keys (default `systemEntropy`). */
  readonly entropy?: Entropy | undefined;
  /** Wall clock in ms since the epoch, for the ClientHello's timestamp (default `Date.now`). */
  readonly now?: (() => number) | undefined;
}

/**
 * Open an authenticated session to `url` (`tcp://HOST:PORT` or `unix:///path`).
 * @throws (rejects) LocalError ERR_INVALID_ADDRESS, ERR_KEY_TOO_SHORT; TransportError
 *   ERR_CONNECT_FAILED, ERR_HANDSHAKE_TIMEOUT; PeerError ERR_AUTH_REFUSED (the server closed
 *   during the handshake: wrong, unknown, revoked or expired key), ERR_SERVER_AUTH_FAILED (the
 *   server does not hold the key), or another handshake error.
 */
export async function connect(url: string, options: ConnectOptions): Promise<Session> {
  const conn = new ClientConnection({
    key: options.key,
    forwardSecrecy: options.forwardSecrecy,
    maxMessageBytes: options.maxMessageBytes,
    entropy: options.entropy ?? systemEntropy,
    now: options.now ?? Date.now,
  });
  return openSession(url, conn, options);
}

/**
 * Connect to `url` and drive `conn` (any profile's client connection) over the socket; resolves
 * once authenticated.
 * @throws (rejects) LocalError ERR_INVALID_ADDRESS; TransportError ERR_CONNECT_FAILED,
 *   ERR_HANDSHAKE_TIMEOUT; the profile's handshake errors.
 */
export async function openSession(
  url: string,
  conn: ProtocolConnection,
  options: SessionOptions & { readonly localAddress?: string | undefined } = {},
): Promise<Session> {
  const address = parseAddress(url);
  if (address.kind === 'udp') {
    throw sesameError('ERR_INVALID_ADDRESS', `${url} is a datagram address: connect with connectUdp()`);
  }
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s =
      address.kind === 'unix'
        ? createConnection({ path: address.path, allowHalfOpen: true })
        : createConnection({
            host: address.host,
            port: address.port,
            allowHalfOpen: true,
            ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
          });
    const timer =
      timeoutMs > 0 ? setTimeout(() => s.destroy(new Error('connect timeout')), timeoutMs) : undefined;
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        sesameError('ERR_CONNECT_FAILED', `cannot connect to ${url}: ${err.code ?? err.message}`, {
          cause: err,
        }),
      );
    });
  });
  const session = new Session(socket, conn, 'client', options);
  await session.ready;
  return session;
}
