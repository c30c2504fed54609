/**
 * Connect to a Sesame server and authenticate: resolves with an open {@link Session} once both
 * sides have proved they hold the key, or rejects with a typed error.
 */

import { createConnection, type Socket } from 'node:net';
import { sesameError } from '../errors.js';
import type { PresharedKey, ProtocolConnection, SessionInfo } from '../protocol/channel.js';
import { ClientConnection } from '../protocol/connection.js';
import {
  CLIENT_POLICY_RULES,
  type ClientPolicy,
  checkOptions,
  type Environment,
  pickOptions,
} from '../protocol/options.js';
import { type Address, parseAddress } from './address.js';
import { environmentOf } from './options.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  SESSION_OPTION_RULES,
  Session,
  type SessionOptions,
} from './session.js';

/**
 * Options of {@link connect}: the key, the client policy, the session's timeouts and limits, and
 * the environment (default `systemEntropy` and `Date.now`).
 */
export interface ConnectOptions extends SessionOptions, ClientPolicy, Partial<Environment> {
  /** Local address to connect from (TCP only). */
  readonly localAddress?: string | undefined;
  /** The key to authenticate with: a well-formed id and a secret of at least 32 bytes. */
  readonly key: PresharedKey;
}

/**
 * A {@link Session} whose handshake has completed: what {@link connect} and {@link openSession}
 * resolve with, so `session.info` needs no check for `undefined` (authentication set it before
 * the promise resolved, and it never goes back).
 */
export type ConnectedSession = Session & {
  /** What authentication established: set before connect() resolved. */
  readonly info: SessionInfo;
};

/**
 * Open an authenticated session to `url` (`tcp://HOST:PORT` or `unix:///path`).
 * @throws (rejects) LocalError ERR_INVALID_ADDRESS, ERR_KEY_TOO_SHORT, ERR_INVALID_ARGUMENT (a
 *   malformed key id, an option out of range); TransportError
 *   ERR_CONNECT_FAILED, ERR_HANDSHAKE_TIMEOUT; PeerError ERR_AUTH_REFUSED (the server closed
 *   during the handshake: wrong, unknown, revoked or expired key), ERR_SERVER_AUTH_FAILED (the
 *   server does not hold the key), or another handshake error.
 */
export async function connect(url: string, options: ConnectOptions): Promise<ConnectedSession> {
  checkOptions(options, SESSION_OPTION_RULES); // before the handshake material is made
  const conn = new ClientConnection({
    key: options.key,
    ...environmentOf(options),
    ...pickOptions<ClientPolicy>(options, CLIENT_POLICY_RULES),
  });
  return openSession(url, conn, options);
}

/**
 * Open a stream socket to `address` (half-open allowed: the peer's FIN does not end our side).
 * @throws (rejects) TransportError ERR_CONNECT_FAILED naming the cause (ECONNREFUSED, ENOENT, a
 *   timeout after `timeoutMs`; 0: none).
 */
export function connectStream(
  address: Exclude<Address, { kind: 'udp' }>,
  url: string,
  timeoutMs: number,
  localAddress?: string | undefined,
): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s =
      address.kind === 'unix'
        ? createConnection({ path: address.path, allowHalfOpen: true })
        : createConnection({
            host: address.host,
            port: address.port,
            allowHalfOpen: true,
            ...(localAddress === undefined ? {} : { localAddress }),
          });
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () => s.destroy(Object.assign(new Error('timed out'), { code: `timeout after ${timeoutMs} ms` })),
            timeoutMs,
          )
        : undefined;
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
}

/**
 * Connect to `url` and drive `conn` (any profile's client connection) over the socket; resolves
 * once authenticated.
 * @throws (rejects) LocalError ERR_INVALID_ADDRESS, ERR_INVALID_ARGUMENT (an option out of
 *   range); TransportError ERR_CONNECT_FAILED, ERR_HANDSHAKE_TIMEOUT; the profile's handshake
 *   errors.
 */
export async function openSession(
  url: string,
  conn: ProtocolConnection,
  options: SessionOptions & { readonly localAddress?: string | undefined } = {},
): Promise<ConnectedSession> {
  checkOptions(options, SESSION_OPTION_RULES);
  const address = parseAddress(url);
  if (address.kind === 'udp') {
    throw sesameError('ERR_INVALID_ADDRESS', `${url} is a datagram address: connect with connectUdp()`);
  }
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const socket = await connectStream(address, url, timeoutMs, options.localAddress);
  const session = new Session(socket, conn, 'client', options);
  await session.ready;
  return session as ConnectedSession;
}
