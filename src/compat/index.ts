/**
 * Compatibility profiles: byte-exact peers for the seed's HMAC examples (`seed`, `seed-hex`),
 * CPython's `multiprocessing.connection` (`python-mp`), and unauthenticated socketserver-style
 * services (`none`). Each is a sans-I/O {@link protocol!ProtocolConnection | ProtocolConnection};
 * see docs/profiles.md for what each protects and what it does not.
 *
 * @packageDocumentation
 */

export {
  CompatConnection,
  compatSessionInfo,
  type Framing,
  type Randomness,
  type Role,
  SHORT_SECRET_BYTES,
} from './common.js';
export { ChunkFraming, LineFraming, MpFraming, mpHeader, takeMpFrame } from './framing.js';
export { NONE_FRAMINGS, NoneConnection, type NoneFraming, type NoneOptions } from './none.js';
export {
  COMPAT_PROFILES,
  type CompatProfileName,
  type CompatProfileOptions,
  compatClientConnection,
  compatServerProfile,
  createCompatConnection,
  isCompatProfile,
} from './profiles.js';
export {
  MP_CHALLENGE,
  MP_CHALLENGE_FORMATS,
  MP_DIGESTS,
  MP_FAILURE,
  MP_HANDSHAKE_MAX_BYTES,
  MP_WELCOME,
  type MpChallengeFormat,
  type MpDigest,
  mpAnswer,
  mpChallengeMessage,
  mpCheckAnswer,
  PythonMpConnection,
  type PythonMpOptions,
} from './python-mp.js';
export { SEED_DIGESTS, SeedConnection, type SeedDigest, type SeedOptions, seedAnswer } from './seed.js';
export {
  SPIPED_DH_BYTES,
  SPIPED_MAX_DATA_BYTES,
  SPIPED_MIN_KEY_FILE_BYTES,
  SPIPED_NONCE_BYTES,
  SPIPED_PACKET_BYTES,
  SPIPED_PRIVATE_BYTES,
  SPIPED_YH_BYTES,
  SpipedConnection,
  type SpipedDhKeyPair,
  type SpipedDhmacKeys,
  type SpipedDirectionKeys,
  SpipedOpener,
  type SpipedOptions,
  SpipedSealer,
  type SpipedSessionKeys,
  spipedDhKeyPair,
  spipedDhmac,
  spipedKey,
  spipedSessionKeys,
  spipedSignedDh,
} from './spiped.js';
