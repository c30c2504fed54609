/**
 * The native Sesame protocol without I/O: handshake, key schedule and record layer.
 * See docs/protocol.md for the wire format and docs/architecture.md for how the layers fit.
 *
 * @packageDocumentation
 */

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
export {
  deterministicEntropy,
  type Entropy,
  systemEntropy,
  type X25519KeyPair,
  x25519FromSecret,
} from './primitives.js';
