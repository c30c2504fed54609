/**
 * The reference services, as request handlers: each message gets one reply, in order.
 *
 * - `timestamp`: `[` + ctime of the server's local time + `] ` + the message (the seed's service).
 * - `echo`: the message itself.
 *
 * Each is a StreamRequestHandler for stream servers and a DatagramRequestHandler for datagram
 * servers, both with the same `respond()`.
 */

import { DatagramRequestHandler, type Reply, StreamRequestHandler } from '../net/handlers.js';
import { echoReply, timestampReply } from './timestamp.js';

/** `[ctime] message` for each message. */
export class TimestampHandler extends StreamRequestHandler {
  override respond(message: Buffer): Reply {
    return timestampReply(message, new Date());
  }
}

/** The message back, unchanged. */
export class EchoHandler extends StreamRequestHandler {
  override respond(message: Buffer): Reply {
    return echoReply(message);
  }
}

/** The timestamp service for one datagram. */
export class TimestampDatagramHandler extends DatagramRequestHandler {
  override respond(packet: Buffer): Reply {
    return timestampReply(packet, new Date());
  }
}

/** The echo service for one datagram. */
export class EchoDatagramHandler extends DatagramRequestHandler {
  override respond(packet: Buffer): Reply {
    return echoReply(packet);
  }
}

/** The services `sesame serve --service NAME` offers, for streams and for datagrams. */
export const SERVICES = {
  /** `[ctime] message` for each message. */
  timestamp: {
    /** For stream (TCP, Unix) servers. */
    stream: TimestampHandler,
    /** For datagram (UDP) servers. */
    datagram: TimestampDatagramHandler,
  },
  /** Each message back, unchanged. */
  echo: {
    /** For stream (TCP, Unix) servers. */
    stream: EchoHandler,
    /** For datagram (UDP) servers. */
    datagram: EchoDatagramHandler,
  },
} as const;
export type ServiceName = keyof typeof SERVICES;

/** A stream service from a function mapping each message to its reply. */
export function replyService(
  reply: (message: Buffer) => Reply | Promise<Reply>,
): typeof StreamRequestHandler {
  return class extends StreamRequestHandler {
    override respond(message: Buffer): Reply | Promise<Reply> {
      return reply(message);
    }
  };
}

/** The timestamp service for stream servers (same as TimestampHandler). */
export const timestampService = TimestampHandler;
/** The echo service for stream servers (same as EchoHandler). */
export const echoService = EchoHandler;
