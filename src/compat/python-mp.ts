/**
 * The `python-mp` profile: the authkey handshake and framing of CPython's
 * `multiprocessing.connection` (`Listener(authkey=...)` / `Client(authkey=...)`), byte for byte.
 *
 * Every handshake message is one length-prefixed frame (see framing.ts) of at most 256 bytes.
 * The challenger sends `#CHALLENGE#` + M and the responder answers with a MAC of M:
 *
 *   format   M                                 answer                        CPython
 *   legacy   20 random bytes                   HMAC-MD5(key, M), bare        <= 3.11
 *   {name}   `{name}` + 40 random bytes        `{name}` + HMAC-name(key, M)  >= 3.12
 *
 * (the MAC covers the `{name}` prefix of M), and the challenger replies `#WELCOME#` or
 * `#FAILURE#`. The server (Listener) challenges first; once welcomed, the client challenges the
 * server, so both ends prove they hold the key.
 *
 * Rules, as CPython 3.12 applies them:
 * - A responder answers in the format of the challenge: a 20-byte M is legacy; otherwise M must
 *   start with `{name}` for a name in {@link MP_DIGESTS}.
 * - A challenger accepts an answer in either format whatever it asked for: 16 (or 20) bytes are
 *   read as bare HMAC-MD5, anything else must carry a `{name}` prefix with an allowed name.
 * - A wrong answer gets `#FAILURE#`; the error is reported when the peer then closes (see
 *   common.ts). Anything but `#WELCOME#` in reply to an answer is a refusal.
 * - After the handshake, messages are `send_bytes`/`recv_bytes` payloads; nothing is unpickled.
 * - Only the start of the connection is authenticated: later frames carry no MAC.
 */

import { type SesameError, sesameError } from '../errors.js';
import type { ConnectionEvent } from '../protocol/channel.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../protocol/constants.js';
import { checkOptions, MESSAGE_LIMIT_RULES, type MessageLimit } from '../protocol/options.js';
import { CompatConnection, checkSecret, hmac, type Randomness, type Role, sameBytes } from './common.js';
import { MpFraming, mpHeader, takeMpFrame } from './framing.js';

/** `#CHALLENGE#`: starts a challenge frame, followed by the challenge message. */
export const MP_CHALLENGE = Buffer.from('#CHALLENGE#', 'latin1');
/** `#WELCOME#`: the challenger accepts the answer. */
export const MP_WELCOME = Buffer.from('#WELCOME#', 'latin1');
/** `#FAILURE#`: the challenger refuses the answer. */
export const MP_FAILURE = Buffer.from('#FAILURE#', 'latin1');
/** Every handshake read is capped at this many bytes, as CPython's `recv_bytes(256)`. */
export const MP_HANDSHAKE_MAX_BYTES = 256;
/** Random bytes in a legacy (<= 3.11) challenge. */
export const MP_LEGACY_RANDOM_BYTES = 20;
/** Random bytes after the `{name}` prefix in a 3.12+ challenge. */
export const MP_RANDOM_BYTES = 40;
const MD5_BYTES = 16;

/** Digests CPython 3.12+ accepts in a `{name}` prefix, with their OpenSSL names. */
const DIGESTS = {
  md5: 'md5',
  sha256: 'sha256',
  sha384: 'sha384',
  sha3_256: 'sha3-256',
  sha3_384: 'sha3-384',
} as const;
/** A digest name allowed in a `{name}` prefix: `md5`, `sha256`, `sha384`, `sha3_256` or `sha3_384`. */
export type MpDigest = keyof typeof DIGESTS;
/** Every {@link MpDigest}. */
export const MP_DIGESTS = Object.keys(DIGESTS) as readonly MpDigest[];
/** What a challenger issues: the legacy (<= 3.11) format, or the 3.12+ format with a digest. */
export type MpChallengeFormat = 'legacy' | MpDigest;
/** Every {@link MpChallengeFormat}: `legacy`, then each of {@link MP_DIGESTS}. */
export const MP_CHALLENGE_FORMATS: readonly MpChallengeFormat[] = ['legacy', ...MP_DIGESTS];
const LONGEST_NAME = Math.max(...MP_DIGESTS.map((d) => d.length));

function isDigest(name: string): name is MpDigest {
  return Object.hasOwn(DIGESTS, name);
}

/** The part of a challenge after `#CHALLENGE#`, in `format`, around `random` bytes. */
export function mpChallengeMessage(format: MpChallengeFormat, random: Uint8Array): Buffer {
  const want = format === 'legacy' ? MP_LEGACY_RANDOM_BYTES : MP_RANDOM_BYTES;
  if (random.length !== want) {
    throw sesameError('ERR_INVALID_ARGUMENT', `a ${format} challenge takes ${want} random bytes`);
  }
  if (format === 'legacy') return Buffer.from(random);
  return Buffer.concat([Buffer.from(`{${format}}`, 'latin1'), random]);
}

/**
 * The digest named by a `{name}` prefix and the bytes after it, or undefined when there is no
 * such prefix with an allowed name (the `}` must come within the longest name's reach).
 */
function splitPrefix(message: Buffer): { digest: MpDigest; rest: Buffer } | undefined {
  if (message[0] !== 0x7b) return undefined; // '{'
  const close = message.subarray(0, LONGEST_NAME + 2).indexOf(0x7d, 1); // '}'
  if (close < 1) return undefined;
  const name = message.subarray(1, close).toString('latin1');
  return isDigest(name) ? { digest: name, rest: message.subarray(close + 1) } : undefined;
}

/**
 * The answer to challenge message `message` (the bytes after `#CHALLENGE#`).
 * @throws PeerError ERR_MALFORMED_MESSAGE when the challenge is too short or names no allowed digest.
 */
export function mpAnswer(secret: Uint8Array, message: Buffer): Buffer {
  if (message.length < MP_LEGACY_RANDOM_BYTES) {
    throw sesameError('ERR_MALFORMED_MESSAGE', `challenge of ${message.length} bytes is too short`);
  }
  if (message.length === MP_LEGACY_RANDOM_BYTES) return hmac('md5', secret, message);
  const split = splitPrefix(message);
  if (split === undefined) {
    throw sesameError(
      'ERR_MALFORMED_MESSAGE',
      'challenge without a {digest} prefix naming a supported digest',
    );
  }
  return Buffer.concat([
    Buffer.from(`{${split.digest}}`, 'latin1'),
    hmac(DIGESTS[split.digest], secret, message),
  ]);
}

/**
 * Check `answer` to our challenge `message`; returns why it is refused, or undefined when it
 * proves the peer holds `secret`.
 */
export function mpCheckAnswer(secret: Uint8Array, message: Buffer, answer: Buffer): string | undefined {
  let digest: MpDigest;
  let mac: Buffer;
  if (answer.length === MD5_BYTES || answer.length === MP_LEGACY_RANDOM_BYTES) {
    digest = 'md5';
    mac = answer;
  } else {
    const split = splitPrefix(answer);
    if (split === undefined) return 'answer without a {digest} prefix naming a supported digest';
    digest = split.digest;
    mac = split.rest;
  }
  const expected = hmac(DIGESTS[digest], secret, message);
  if (expected.length !== mac.length) {
    return `answer has ${mac.length} MAC bytes, ${expected.length} expected for ${digest}`;
  }
  return sameBytes(expected, mac) ? undefined : `wrong HMAC-${digest} (the key differs)`;
}

/** Options of a {@link PythonMpConnection}. */
export interface PythonMpOptions extends MessageLimit {
  /** The authkey: any bytes. */
  readonly secret: Uint8Array;
  /** Randomness for this end's challenge. */
  readonly entropy: Randomness;
  /** The challenge format this end issues (default `sha256`, CPython 3.12's default). */
  readonly challenge?: MpChallengeFormat | undefined;
}

type State = 'ExpectChallenge' | 'ExpectWelcome' | 'ExpectAnswer';

function frame(payload: Buffer): Buffer {
  return Buffer.concat([mpHeader(payload.length), payload]);
}

/** One end of a python-mp connection: `server` is the Listener side, `client` the Client side. */
export class PythonMpConnection extends CompatConnection {
  private readonly secret: Buffer;
  private readonly entropy: Randomness;
  private readonly format: MpChallengeFormat;
  private readonly maxMessage: number;
  private state: State;
  /** Our challenge message (after `#CHALLENGE#`), once sent. */
  private ours: Buffer | undefined;

  /**
   * @throws LocalError ERR_KEY_TOO_SHORT for an empty secret, ERR_INVALID_ARGUMENT for an
   *   unknown challenge format or maxMessageBytes out of range.
   */
  constructor(role: Role, options: PythonMpOptions) {
    super(role, 'python-mp');
    this.secret = checkSecret(options.secret, 'python-mp');
    this.entropy = options.entropy;
    const format = options.challenge ?? 'sha256';
    if (!MP_CHALLENGE_FORMATS.includes(format)) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        `unsupported python-mp challenge format ${JSON.stringify(format)} (use ${MP_CHALLENGE_FORMATS.join(', ')})`,
      );
    }
    this.format = format;
    checkOptions(options, MESSAGE_LIMIT_RULES);
    this.maxMessage = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.state = role === 'server' ? 'ExpectAnswer' : 'ExpectChallenge';
    if (role === 'server') this.sendChallenge();
  }

  protected stepHandshake(events: ConnectionEvent[]): boolean {
    const payload = takeMpFrame(this.input, MP_HANDSHAKE_MAX_BYTES);
    if (payload === undefined) return false;
    switch (this.state) {
      case 'ExpectChallenge':
        this.answer(payload);
        return true;
      case 'ExpectWelcome':
        if (payload.equals(MP_WELCOME)) {
          if (this.role === 'client') this.sendChallenge();
          else this.authenticate(new MpFraming(this.maxMessage), events);
          return true;
        }
        if (payload.equals(MP_FAILURE)) {
          throw sesameError(
            'ERR_AUTH_REFUSED',
            this.role === 'client'
              ? 'the server refused our answer to its challenge (#FAILURE#): the authkey differs'
              : 'the client refused our answer to its challenge (#FAILURE#): the authkey differs',
          );
        }
        throw sesameError('ERR_UNEXPECTED_MESSAGE', 'expected #WELCOME# or #FAILURE# after our answer');
      case 'ExpectAnswer': {
        const why = mpCheckAnswer(this.secret, this.ours as Buffer, payload);
        if (why !== undefined) {
          this.refuse(
            frame(MP_FAILURE),
            this.role === 'server'
              ? sesameError('ERR_AUTH_FAILED', `python-mp client failed the challenge: ${why}`)
              : sesameError('ERR_SERVER_AUTH_FAILED', `the server failed our challenge: ${why}`),
          );
          return false;
        }
        this.queue(frame(MP_WELCOME));
        if (this.role === 'server') this.state = 'ExpectChallenge';
        else this.authenticate(new MpFraming(this.maxMessage), events);
        return true;
      }
    }
  }

  protected endDuringHandshake(): SesameError {
    return this.role === 'client'
      ? sesameError(
          'ERR_AUTH_REFUSED',
          'the server closed the connection during the handshake: authkey refused or server unavailable',
        )
      : sesameError('ERR_TRUNCATED', 'client hung up during the handshake');
  }

  private sendChallenge(): void {
    const random = this.entropy.bytes(this.format === 'legacy' ? MP_LEGACY_RANDOM_BYTES : MP_RANDOM_BYTES);
    this.ours = mpChallengeMessage(this.format, random);
    this.queue(frame(Buffer.concat([MP_CHALLENGE, this.ours])));
    this.state = 'ExpectAnswer';
  }

  private answer(payload: Buffer): void {
    if (!payload.subarray(0, MP_CHALLENGE.length).equals(MP_CHALLENGE)) {
      throw sesameError('ERR_UNEXPECTED_MESSAGE', 'expected a #CHALLENGE# message');
    }
    const message = payload.subarray(MP_CHALLENGE.length);
    if (this.ours !== undefined && message.equals(this.ours)) {
      throw sesameError('ERR_REFLECTED_MESSAGE', 'the peer sent our own challenge back');
    }
    this.queue(frame(mpAnswer(this.secret, message)));
    this.state = 'ExpectWelcome';
  }
}
