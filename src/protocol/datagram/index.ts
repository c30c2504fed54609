/**
 * Authenticated datagrams for the native protocol (docs/protocol-udp.md), without I/O.
 *
 * The native handshake (ClientHello, ServerHello, ClientFinished, unchanged) runs one message per
 * datagram inside a 16-byte envelope; then every datagram is sealed on its own under a
 * per-direction key exported from the handshake, with an explicit 64-bit counter and a
 * session-relative timestamp in a cleartext header that is the AEAD's additional data.
 *
 * One concept per file:
 * - wire.ts: types, kinds, sizes, field offsets, envelopes;
 * - channel.ts: one session's keys, counters, replay window and freshness;
 * - server.ts and client.ts: the two endpoints and their states;
 * - options.ts: the endpoints' options and their defaults (the rules are in ../options.ts);
 * - drop.ts: why a datagram was not accepted.
 *
 * Nothing here touches a socket, a timer or the process: the clock and the randomness are passed
 * in; bytes go in, events and bytes come out.
 */

export {
  DATAGRAM_SEAL_LIMIT_BYTES,
  DatagramChannel,
  type DatagramChannelParams,
  LABEL_DGRAM_C2S,
  LABEL_DGRAM_S2C,
  type OpenedDatagram,
  type SealedDatagram,
} from './channel.js';
export { DatagramClientEndpoint, type DatagramClientEvent, type DatagramClientState } from './client.js';
export type { DatagramDrop, DropReason } from './drop.js';
export {
  DATAGRAM_CLIENT_RULES,
  DATAGRAM_SERVER_RULES,
  type DatagramClientOptions,
  type DatagramCommonOptions,
  type DatagramServerOptions,
  DEFAULT_DATAGRAM_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_DATAGRAM_PAYLOAD_BYTES,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_MAX_DATAGRAM_AGE_MS,
  DEFAULT_MAX_DATAGRAM_SESSIONS,
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_MAX_PENDING_PER_SOURCE,
  DEFAULT_SESSION_IDLE_MS,
  MAX_CONFIRM_RESENDS,
} from './options.js';
export { DatagramServerEndpoint, type DatagramServerEvent, type OutgoingDatagram } from './server.js';
export {
  type DatagramPeer,
  DGRAM_ATTEMPT_AT,
  DGRAM_COUNTER_AT,
  DGRAM_DATA,
  DGRAM_DATA_HEADER_BYTES,
  DGRAM_DATA_MIN_BYTES,
  DGRAM_ENVELOPE_BYTES,
  DGRAM_FINISHED,
  DGRAM_FINISHED_BYTES,
  DGRAM_HELLO,
  DGRAM_INNER_BYTES,
  DGRAM_OVERHEAD_BYTES,
  DGRAM_RESERVED_AT,
  DGRAM_SERVER_HELLO,
  DGRAM_SESSION_ID_AT,
  DGRAM_SESSION_ID_BYTES,
  DGRAM_TIME_AT,
  DGRAM_TYPE_AT,
  formatPeer,
  INNER_KIND_AT,
  INNER_REPLY_TO_AT,
  KIND_CLOSE,
  KIND_CONFIRM,
  KIND_KEEPALIVE,
  KIND_MESSAGE,
  MAX_DATAGRAM_PAYLOAD_BYTES,
  MAX_UDP_PAYLOAD_BYTES,
} from './wire.js';
