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
export { type ConnectOptions, connect, openSession } from './net/client.js';
export {
  BaseRequestHandler,
  type ConnectionInfo,
  type DatagramHandlerClass,
  type DatagramRequest,
  DatagramRequestHandler,
  type HandlerServer,
  type Reply,
  RequestHandler,
  type SessionHandler,
  type StreamHandlerClass,
  StreamRequestHandler,
} from './net/handlers.js';
export { TaskPool } from './net/pool.js';
export {
  type AuthEvent,
  nativeServerProfile,
  type ServerOptions,
  type ServerProfile,
  type ServerStats,
  SesameServer,
  type WorkerPoolOptions,
} from './net/server.js';
export {
  Session,
  type SessionEvents,
  type SessionObserver,
  type SessionOptions,
  type SessionPhase,
} from './net/session.js';
export { FailureThrottle, type ThrottleOptions } from './net/throttle.js';
export {
  connectUdp,
  type DatagramContext,
  type DatagramHandler,
  type UdpConnectOptions,
  UdpServer,
  type UdpServerOptions,
  UdpSession,
} from './net/udp.js';
export {
  isWorker,
  type PrimaryEvents,
  serveWorkers,
  type WorkerServer,
  type WorkersOptions,
} from './net/workers.js';
export type { ConnectionEvent, ProtocolConnection, SessionInfo } from './protocol/channel.js';
export type { PresharedKey } from './protocol/connection.js';
export { ctime } from './services/ctime.js';
export {
  EchoDatagramHandler,
  EchoHandler,
  echoService,
  replyService,
  SERVICES,
  TimestampDatagramHandler,
  TimestampHandler,
  timestampService,
} from './services/handlers.js';
export { echoReply, timestampReply } from './services/timestamp.js';
