/**
 * The reference services, as session handlers: each message gets one reply, in order.
 *
 * - `timestamp`: `[` + ctime of the server's local time + `] ` + the message (the seed's service).
 * - `echo`: the message itself.
 */

import type { SessionHandler } from '../net/server.js';
import type { Session } from '../net/session.js';
import { echoReply, timestampReply } from './timestamp.js';

/** A service that maps each message to its reply. */
export function replyService(reply: (message: Buffer) => Uint8Array): SessionHandler {
  return async (session: Session) => {
    for await (const message of session) session.send(reply(message));
  };
}

export const timestampService: SessionHandler = replyService((m) => timestampReply(m, new Date()));
export const echoService: SessionHandler = replyService(echoReply);

/** The services `sesame serve --service NAME` offers. */
export const SERVICES = { timestamp: timestampService, echo: echoService } as const;
export type ServiceName = keyof typeof SERVICES;
