/**
 * The `seed` and `seed-hex` profiles: the challenge-response of the HMAC examples Sesame grew
 * from, byte for byte.
 *
 *   server -> client   32 random bytes (the challenge)
 *   client -> server   seed:     HMAC(secret, challenge), raw (16/20/32/64 bytes by digest)
 *                      seed-hex: the same HMAC as lowercase hex, in UTF-8 (twice as long)
 *   then               the server closes at once on a wrong answer, without a word; on a right
 *                      one the connection carries chunks in both directions (chunk framing)
 *
 * Rules:
 * - Reads are exact: the client takes exactly 32 challenge bytes, the server exactly the answer's
 *   length for the configured digest; both compare in constant time.
 * - Only the client proves anything, and only at the start: nothing after the answer is
 *   authenticated, and the server never proves it holds the secret.
 * - The protocol has no verdict: a refused client just sees the connection end. A `seed` client
 *   whose server ends the connection before sending a single reply reports ERR_AUTH_REFUSED,
 *   since that is how the seed's server refuses (once it accepts, it serves until the client's
 *   end of stream). A `seed-hex` server always hangs up after the check: its client cannot know.
 */

import { type SesameError, sesameError } from '../errors.js';
import type { ConnectionEvent } from '../protocol/channel.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/constants.js';
import { checkOptions, MESSAGE_LIMIT_RULES, type MessageLimit } from '../protocol/options.js';
import { CompatConnection, checkSecret, hmac, type Randomness, type Role, sameBytes } from './common.js';
import { ChunkFraming } from './framing.js';

const REFUSED_MESSAGE =
  'the server closed the connection without a reply: it refused the answer (wrong secret or digest)';

/** The challenge the server sends: 32 random bytes, as `os.urandom(32)` in the seed. */
export const SEED_CHALLENGE_BYTES = 32;

/** The seed server's `recv(bufsize)`: the largest chunk a server delivers as one message. */
export const SEED_SERVER_CHUNK_BYTES = 1024;

/** HMAC digests the seed profiles offer (`md5` is what the seed's Python 3.5 used by default). */
export const SEED_DIGESTS = ['md5', 'sha1', 'sha256', 'sha512'] as const;
/** A seed HMAC digest: `md5`, `sha1`, `sha256` or `sha512`. */
export type SeedDigest = (typeof SEED_DIGESTS)[number];

const DIGEST_BYTES: Readonly<Record<SeedDigest, number>> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

/** Options of a {@link SeedConnection}. */
export interface SeedOptions extends MessageLimit {
  /** The shared secret: any bytes (the seed uses a short UTF-8 passphrase). */
  readonly secret: Uint8Array;
  /** HMAC digest (default sha256). */
  readonly digest?: SeedDigest | undefined;
  /** `hex`: the seed's example 1 (`seed-hex`); `raw` (default): example 2 (`seed`). */
  readonly answer?: 'raw' | 'hex' | undefined;
  /** Randomness for the server's challenge (required for the server role). */
  readonly entropy?: Randomness | undefined;
  /**
   * Largest chunk delivered as one message (default: 1024 for a server, as the seed's
   * `recv(1024)`; the message limit for a client).
   */
  readonly maxChunkBytes?: number | undefined;
}

/** The answer a client sends to `challenge`. */
export function seedAnswer(
  secret: Uint8Array,
  challenge: Uint8Array,
  digest: SeedDigest,
  answer: 'raw' | 'hex',
): Buffer {
  const mac = hmac(digest, secret, challenge);
  return answer === 'hex' ? Buffer.from(mac.toString('hex'), 'utf8') : mac;
}

function checkDigest(digest: string): SeedDigest {
  if (!(SEED_DIGESTS as readonly string[]).includes(digest)) {
    throw sesameError(
      'ERR_INVALID_ARGUMENT',
      `unsupported seed digest ${JSON.stringify(digest)} (use ${SEED_DIGESTS.join(', ')})`,
    );
  }
  return digest as SeedDigest;
}

/** One end of a `seed` or `seed-hex` connection. */
export class SeedConnection extends CompatConnection {
  private readonly secret: Buffer;
  private readonly digest: SeedDigest;
  private readonly answerForm: 'raw' | 'hex';
  private readonly maxMessage: number;
  private readonly maxChunk: number;
  /** Server: the answer expected. */
  private readonly expected: Buffer | undefined;

  /**
   * @throws LocalError ERR_KEY_TOO_SHORT for an empty secret, ERR_INVALID_ARGUMENT for an unknown
   *   digest, a server without entropy or maxMessageBytes out of range.
   */
  constructor(role: Role, options: SeedOptions) {
    const answer = options.answer ?? 'raw';
    const profile = answer === 'hex' ? 'seed-hex' : 'seed';
    super(role, profile);
    this.secret = checkSecret(options.secret, profile);
    this.digest = checkDigest(options.digest ?? 'sha256');
    this.answerForm = answer;
    checkOptions(options, MESSAGE_LIMIT_RULES);
    this.maxMessage = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const chunk = options.maxChunkBytes ?? (role === 'server' ? SEED_SERVER_CHUNK_BYTES : this.maxMessage);
    this.maxChunk = Math.min(chunk, this.maxMessage);
    if (role === 'server') {
      if (options.entropy === undefined) {
        throw sesameError('ERR_INVALID_ARGUMENT', 'a seed server needs entropy for its challenge');
      }
      const challenge = options.entropy.bytes(SEED_CHALLENGE_BYTES);
      this.expected = seedAnswer(this.secret, challenge, this.digest, answer);
      this.queue(Buffer.from(challenge));
    }
  }

  /** Bytes in a client's answer with this digest and form. */
  get answerBytes(): number {
    return DIGEST_BYTES[this.digest] * (this.answerForm === 'hex' ? 2 : 1);
  }

  protected stepHandshake(events: ConnectionEvent[]): boolean {
    if (this.role === 'client') {
      if (this.input.length < SEED_CHALLENGE_BYTES) return false;
      const challenge = this.input.take(SEED_CHALLENGE_BYTES);
      this.queue(seedAnswer(this.secret, challenge, this.digest, this.answerForm));
      this.authenticate(new ChunkFraming(this.maxChunk), events);
      return true;
    }
    const expected = this.expected as Buffer;
    if (this.input.length < expected.length) return false;
    if (!sameBytes(this.input.take(expected.length), expected)) {
      throw sesameError(
        'ERR_AUTH_FAILED',
        `wrong answer to the ${this.profile} challenge (the secret or the digest ${this.digest} differs)`,
      );
    }
    this.authenticate(new ChunkFraming(this.maxChunk), events);
    return true;
  }

  protected endDuringHandshake(): SesameError {
    if (this.role === 'client') {
      return sesameError(
        'ERR_AUTH_REFUSED',
        'the server closed the connection before sending its challenge: not a seed server, or unavailable',
      );
    }
    if (this.input.length > 0) return this.shortAnswer();
    return sesameError('ERR_TRUNCATED', 'client hung up during the handshake');
  }

  /**
   * A deadline that passes while a server holds part of an answer: the digests differ. A reset
   * where a clean end would be a refusal is the same refusal: a server that closes with our
   * unread bytes in its buffer (the first message, sent right after the answer) makes its kernel
   * answer with RST, which may reach us before or instead of the FIN.
   */
  protected override explainFailure(error: SesameError): SesameError {
    if (error.code === 'ERR_CONNECTION_RESET' && this.refusedBySilence()) {
      return sesameError('ERR_AUTH_REFUSED', REFUSED_MESSAGE, { cause: error });
    }
    if (
      error.code !== 'ERR_HANDSHAKE_TIMEOUT' ||
      this.role !== 'server' ||
      this.session !== undefined ||
      this.input.length === 0
    ) {
      return error;
    }
    return this.shortAnswer(error);
  }

  private shortAnswer(cause?: SesameError): SesameError {
    return sesameError(
      'ERR_AUTH_FAILED',
      `the client's answer is ${this.input.length} bytes, ${this.answerBytes} expected (the digest differs?)`,
      { cause },
    );
  }

  protected override checkEnd(): void {
    if (this.refusedBySilence()) throw sesameError('ERR_AUTH_REFUSED', REFUSED_MESSAGE);
  }

  /**
   * The seed's server never hangs up first once it has accepted an answer: it serves until the
   * client's end of stream. A server that ends the connection before a single reply refused us.
   */
  private refusedBySilence(): boolean {
    return (
      this.role === 'client' &&
      this.session !== undefined &&
      this.answerForm === 'raw' &&
      !this.closed &&
      this.bytesReceived === 0
    );
  }
}
