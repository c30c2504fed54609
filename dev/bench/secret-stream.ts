/**
 * @hyperswarm/secret-stream, loaded on demand (a dev dependency: the bench refuses the system
 * with a clear message when it is not installed). Each end wraps a TCP socket; the pair runs a
 * Noise XX handshake with fresh key pairs and then libsodium's secretstream records.
 */

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** What the bench uses of the module. */
export interface SecretStreamModule {
  /** Wrap `socket` as the initiator (client) or the responder (server). */
  wrap(isInitiator: boolean, socket: Socket): Duplex;
}

let loaded: Promise<SecretStreamModule> | undefined;
// By name at run time: the module ships no type declarations.
const MODULE = '@hyperswarm/secret-stream';

/** The module, loaded once. */
export function secretStream(): Promise<SecretStreamModule> {
  loaded ??= import(MODULE).then(
    (m: { default: new (isInitiator: boolean, raw: Socket) => Duplex }) => ({
      wrap: (isInitiator, socket) => new m.default(isInitiator, socket),
    }),
    (cause: unknown) => {
      throw new Error('secret-stream: @hyperswarm/secret-stream is not installed (npm ci installs it)', {
        cause,
      });
    },
  );
  return loaded;
}
