/**
 * The reference services, each one {@link Respond} function: each message gets one reply, in
 * order, over a stream server (per message of a connection) or a datagram server (per datagram).
 *
 * - `timestamp`: `[` + ctime of the server's local time + `] ` + the message (the seed's service).
 * - `echo`: the message itself.
 */

import type { Reply, Respond } from '../net/handlers.js';
import { echoReply, timestampReply } from './timestamp.js';

/** `[ctime] message` for each message (the seed's timestamp service). */
export const timestampService: Respond = (message: Buffer): Reply => timestampReply(message, new Date());

/** Each message back, unchanged. */
export const echoService: Respond = (message: Buffer): Reply => echoReply(message);

/** The services `sesame serve --service NAME` offers, for stream and datagram servers alike. */
export const SERVICES = {
  /** `[ctime] message` for each message. */
  timestamp: timestampService,
  /** Each message back, unchanged. */
  echo: echoService,
} as const satisfies Record<string, Respond>;

/** The name of a service `sesame serve --service` offers. */
export type ServiceName = keyof typeof SERVICES;
