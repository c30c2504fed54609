/**
 * The native Sesame protocol without I/O: handshake, key schedule, record layer and datagrams.
 * See docs/protocol.md and docs/protocol-udp.md for the wire formats and docs/architecture.md for
 * how the layers fit.
 *
 * @packageDocumentation
 */

export { AEAD_ALGORITHM } from './aead.js';
export { type CryptoBackend, cryptoBackend, nodeCryptoBackend, setCryptoBackend } from './backend.js';
export type { ConnectionEvent, PresharedKey, ProtocolConnection, SessionInfo } from './channel.js';
export {
  ClientConnection,
  type ClientOptions,
  type CommonOptions,
  keyRefusal,
  ServerConnection,
  ServerContext,
  type ServerOptions,
} from './connection.js';
export * from './constants.js';
export * from './datagram/index.js';
export * from './options.js';
export {
  deterministicEntropy,
  type Entropy,
  systemEntropy,
  type X25519KeyPair,
  x25519FromSecret,
} from './primitives.js';
export {
  DEFAULT_REPLAY_WINDOW_BITS,
  isReplayWindowSize,
  MAX_REPLAY_WINDOW_BITS,
  MAX_WINDOW_COUNTER,
  MIN_REPLAY_WINDOW_BITS,
  ReplayWindow,
  type WindowVerdict,
} from './replay-window.js';
