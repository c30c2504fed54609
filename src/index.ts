/**
 * Sesame: authenticated connections from pre-shared keys.
 *
 * Layers (docs/architecture.md): the protocol core without I/O (`sesame/protocol`), the
 * compatibility profiles (`sesame/compat`), the key ring,
 * the socket layer (server, client, session) and the services on top.
 *
 * @packageDocumentation
 */
export * from './errors.js';
export {
  addGeneratedKey,
  defaultKeyringPath,
  ensureKeyring,
  loadKeyring,
  saveKeyring,
} from './keyring/file.js';
export {
  DEFAULT_SECRET_BYTES,
  type GenerateOptions,
  KEYRING_VERSION,
  type KeyEntry,
  KeyRing,
  type KeyStatus,
  keyStatus,
  MAX_GENERATED_SECRET_BYTES,
  Secret,
  selectClientKey,
} from './keyring/keyring.js';
export { clientKey, presharedKeys, toPresharedKey } from './keyring/preshared.js';
export { type Address, DEFAULT_ADDRESS, formatAddress, parseAddress } from './net/address.js';
export {
  type AuthEvent,
  BaseServer,
  type BaseServerOptions,
  type DropEvent,
  type ServerEvents,
  type ServerStats,
  type SessionClosedEvent,
  type SessionEndEvent,
} from './net/base-server.js';
export { type ConnectedSession, type ConnectOptions, connect, openSession } from './net/client.js';
export { type CryptoChoice, selectCryptoBackend, sodiumBackend } from './net/crypto-backend.js';
export {
  connectUdp,
  type UdpConnectOptions,
  UdpSession,
  type UdpSessionEvents,
} from './net/datagram-client.js';
export {
  type DatagramContext,
  type DatagramHandler,
  UdpServer,
  type UdpServerOptions,
} from './net/datagram-server.js';
export {
  checkStreamAddress,
  connectTarget,
  DEFAULT_CONNECT_TIMEOUT_MS,
  FORWARD_CHUNK_BYTES,
  ForwardListener,
  type ForwardListenerOptions,
  type ForwardOptions,
  forwardHandler,
  joinStreams,
  type LocalPipeEvent,
  type PipeCounters,
  type PipeEvent,
  type PipeResult,
} from './net/forward.js';
export {
  BaseRequestHandler,
  type ConnectionInfo,
  type DatagramHandlerClass,
  type DatagramRequest,
  DatagramRequestHandler,
  type HandlerServer,
  type Reply,
  type RequestContext,
  RequestHandler,
  type Respond,
  type SessionHandler,
  type StreamHandlerClass,
  StreamRequestHandler,
  sessionHandler,
} from './net/handlers.js';
export { TaskPool, type WorkerPoolOptions } from './net/pool.js';
export {
  type MessageSink,
  Session,
  type SessionEvents,
  type SessionObserver,
  type SessionOptions,
  type SessionPhase,
} from './net/session.js';
export { type ServerOptions, SesameServer } from './net/stream-server.js';
export { FailureThrottle, type ThrottleOptions } from './net/throttle.js';
export {
  isWorker,
  type PrimaryEvents,
  type SharedReplayCache,
  serveWorkers,
  type WorkerServer,
  type WorkersOptions,
} from './net/workers.js';
export type {
  ConnectionEvent,
  PresharedKey,
  ProtocolConnection,
  ServerProfile,
  SessionInfo,
} from './protocol/channel.js';
export { nativeServerProfile } from './protocol/connection.js';
export { ctime } from './services/ctime.js';
export { echoService, SERVICES, type ServiceName, timestampService } from './services/handlers.js';
export { echoReply, timestampReply } from './services/timestamp.js';
