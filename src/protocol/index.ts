/**
 * The native Sesame protocol without I/O: handshake, key schedule and record layer.
 * See docs/protocol.md for the wire format and docs/architecture.md for how the layers fit.
 */

export {
  ClientConnection,
  type ClientOptions,
  type CommonOptions,
  type ConnectionEvent,
  keyRefusal,
  type PresharedKey,
  ServerConnection,
  ServerContext,
  type ServerOptions,
  type SessionInfo,
} from './connection.js';
export * from './constants.js';
export {
  deterministicEntropy,
  type Entropy,
  systemEntropy,
  type X25519KeyPair,
  x25519FromSecret,
} from './primitives.js';
