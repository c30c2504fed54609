/**
 * The compatibility profiles by name, as server profiles (`new SesameServer({ profile })`) and as
 * client connections (`openSession(url, connection)`; for `none`, see `openUnauthenticated`
 * in the CLI, since nothing arrives before the client speaks).
 */

import { sesameError } from '../errors.js';
import type { ProtocolConnection, ServerProfile } from '../protocol/channel.js';
import type { MessageLimit } from '../protocol/options.js';
import { systemEntropy } from '../protocol/primitives.js';
import type { Randomness, Role } from './common.js';
import { NoneConnection, type NoneFraming } from './none.js';
import { type MpChallengeFormat, PythonMpConnection } from './python-mp.js';
import { SeedConnection, type SeedDigest } from './seed.js';
import { SpipedConnection } from './spiped.js';

/** The names of the compatibility profiles. */
export const COMPAT_PROFILES = ['seed', 'seed-hex', 'python-mp', 'none', 'spiped'] as const;
/** A compatibility profile's name: `seed`, `seed-hex`, `python-mp`, `none` or `spiped`. */
export type CompatProfileName = (typeof COMPAT_PROFILES)[number];

/** Whether `name` is one of {@link COMPAT_PROFILES}. */
export function isCompatProfile(name: string): name is CompatProfileName {
  return (COMPAT_PROFILES as readonly string[]).includes(name);
}

/** Everything that configures one compatibility profile. */
export interface CompatProfileOptions extends MessageLimit {
  /** Which profile. */
  readonly profile: CompatProfileName;
  /** The shared secret (required except for `none`; for `spiped`, the key file's bytes as stored). */
  readonly secret?: Uint8Array | undefined;
  /**
   * seed / seed-hex: the HMAC digest (md5, sha1, sha256, sha512; default sha256).
   * python-mp: the challenge this end issues (legacy, md5, sha256, sha384, sha3_256, sha3_384;
   * default sha256).
   */
  readonly digest?: string | undefined;
  /** none: chunk (default) or line. */
  readonly framing?: NoneFraming | undefined;
  /** Default: the system CSPRNG. */
  readonly entropy?: Randomness | undefined;
  /** seed / none: largest chunk delivered as one message (default 1024 for a server). */
  readonly maxChunkBytes?: number | undefined;
  /** spiped: ephemeral Diffie-Hellman (default true); false is `spiped -f`. */
  readonly forwardSecrecy?: boolean | undefined;
  /** spiped: refuse a peer without forward secrecy, as `spiped -g` (default false). */
  readonly requireForwardSecrecy?: boolean | undefined;
}

/**
 * A new connection of the profile for `role`.
 * @throws LocalError ERR_INVALID_ARGUMENT (unknown profile, digest or framing, missing secret,
 *   maxMessageBytes out of range), ERR_KEY_TOO_SHORT (empty secret).
 */
export function createCompatConnection(role: Role, options: CompatProfileOptions): ProtocolConnection {
  const entropy = options.entropy ?? systemEntropy;
  const secret = (): Uint8Array => {
    if (options.secret === undefined) {
      throw sesameError('ERR_INVALID_ARGUMENT', `profile ${options.profile} needs a secret`);
    }
    return options.secret;
  };
  switch (options.profile) {
    case 'seed':
    case 'seed-hex':
      return new SeedConnection(role, {
        secret: secret(),
        digest: options.digest as SeedDigest | undefined,
        answer: options.profile === 'seed-hex' ? 'hex' : 'raw',
        entropy,
        maxMessageBytes: options.maxMessageBytes,
        maxChunkBytes: options.maxChunkBytes,
      });
    case 'python-mp':
      return new PythonMpConnection(role, {
        secret: secret(),
        challenge: options.digest as MpChallengeFormat | undefined,
        entropy,
        maxMessageBytes: options.maxMessageBytes,
      });
    case 'none':
      return new NoneConnection(role, {
        framing: options.framing,
        maxMessageBytes: options.maxMessageBytes,
        maxChunkBytes: options.maxChunkBytes,
      });
    case 'spiped':
      return new SpipedConnection(role, {
        keyFile: secret(),
        entropy,
        forwardSecrecy: options.forwardSecrecy,
        requireForwardSecrecy: options.requireForwardSecrecy,
      });
    default:
      throw sesameError('ERR_INVALID_ARGUMENT', `unknown profile ${JSON.stringify(options.profile)}`);
  }
}

/**
 * A server profile for `SesameServer({ profile })`. The options are checked here, once, by making
 * a first connection.
 * @throws LocalError as {@link createCompatConnection}.
 */
export function compatServerProfile(options: CompatProfileOptions): ServerProfile {
  createCompatConnection('server', options);
  const copy = { ...options, secret: options.secret === undefined ? undefined : Buffer.from(options.secret) };
  return { name: options.profile, createConnection: () => createCompatConnection('server', copy) };
}

/** The client end of a compatibility profile, for `openSession(url, connection)`. */
export function compatClientConnection(options: CompatProfileOptions): ProtocolConnection {
  return createCompatConnection('client', options);
}
