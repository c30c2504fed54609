/**
 * The `none` profile: no authentication at all, as in the seed's socketserver examples. Bytes are
 * framed as chunks (`recv(bufsize)`) or lines (`StreamRequestHandler.rfile.readline()`).
 *
 * Rules:
 * - The connection is open from the start: `send` works at once, and `start()` reports
 *   `established` before any input arrives. Anyone who can reach the socket can use the service.
 * - The transport's end of stream ends the peer's direction.
 */

import { type SesameError, sesameError } from '../errors.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/constants.js';
import { checkOptions, MESSAGE_LIMIT_RULES, type MessageLimit } from '../protocol/options.js';
import { CompatConnection, type Framing, type Role } from './common.js';
import { ChunkFraming, LineFraming } from './framing.js';

/** How messages are delimited without authentication. */
export type NoneFraming = 'chunk' | 'line';
/** Every {@link NoneFraming}. */
export const NONE_FRAMINGS: readonly NoneFraming[] = ['chunk', 'line'];

/** Python socketserver examples read `recv(1024)`: the default largest chunk for a server. */
export const NONE_SERVER_CHUNK_BYTES = 1024;

/** Options of a {@link NoneConnection}. */
export interface NoneOptions extends MessageLimit {
  /** `chunk` (default) or `line`. */
  readonly framing?: NoneFraming | undefined;
  /** Largest chunk delivered as one message (default 1024 for a server, the message limit for a client). */
  readonly maxChunkBytes?: number | undefined;
}

/** One end of an unauthenticated connection. */
export class NoneConnection extends CompatConnection {
  /** @throws LocalError ERR_INVALID_ARGUMENT for an unknown framing or an option out of range. */
  constructor(role: Role, options: NoneOptions = {}) {
    super(role, 'none');
    checkOptions(options, MESSAGE_LIMIT_RULES);
    const kind = options.framing ?? 'chunk';
    const max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    let framing: Framing;
    if (kind === 'line') {
      framing = new LineFraming(max);
    } else if (kind === 'chunk') {
      const chunk = options.maxChunkBytes ?? (role === 'server' ? NONE_SERVER_CHUNK_BYTES : max);
      framing = new ChunkFraming(Math.min(chunk, max));
    } else {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        `unknown framing ${JSON.stringify(kind)} (use chunk or line)`,
      );
    }
    this.authenticate(framing);
  }

  protected stepHandshake(): boolean {
    return false; // never called: the connection is open from the start
  }

  protected endDuringHandshake(): SesameError {
    return sesameError('ERR_INVALID_STATE', 'no handshake in profile none');
  }
}
