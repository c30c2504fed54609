/**
 * Every error Sesame raises, in one place.
 *
 * Rules:
 * - Each error carries a permanent `code` from {@link ErrorCode}. Messages may be reworded between
 *   releases; codes never change meaning. `docs/errors.md` lists every code (a test checks it).
 * - Errors are grouped by who is at fault, as the class: {@link PeerError} (the remote side sent
 *   something invalid or failed to authenticate), {@link LocalError} (the caller misused the API or
 *   gave a bad configuration), {@link TransportError} (the socket failed, timed out or was cut).
 * - Messages never contain secret bytes. Key ids and principal names are not secret.
 * - Authentication failures are told apart locally (the code says which check failed) but the peer
 *   only ever sees the connection close, whatever failed.
 */

/** Error codes and the class of fault each belongs to. */
const CODES = {
  // Peer faults: the remote side sent bytes that do not parse or do not authenticate.
  ERR_MALFORMED_MESSAGE: 'peer',
  ERR_UNSUPPORTED_VERSION: 'peer',
  ERR_UNEXPECTED_MESSAGE: 'peer',
  ERR_AUTH_FAILED: 'peer',
  ERR_UNKNOWN_KEY: 'peer',
  ERR_KEY_REVOKED: 'peer',
  ERR_KEY_EXPIRED: 'peer',
  ERR_KEY_NOT_YET_VALID: 'peer',
  ERR_STALE_HELLO: 'peer',
  ERR_REPLAYED_HELLO: 'peer',
  ERR_REFLECTED_MESSAGE: 'peer',
  ERR_BAD_KEY_SHARE: 'peer',
  ERR_FORWARD_SECRECY_REQUIRED: 'peer',
  ERR_SERVER_AUTH_FAILED: 'peer',
  ERR_AUTH_REFUSED: 'peer',
  ERR_RECORD_LENGTH: 'peer',
  ERR_RECORD_DECRYPT: 'peer',
  ERR_RECORD_TYPE: 'peer',
  ERR_MESSAGE_TOO_LARGE: 'peer',
  ERR_DATA_AFTER_CLOSE: 'peer',
  ERR_TRUNCATED: 'peer',
  ERR_PROXY_HEADER: 'peer',
  ERR_PROXY_UNTRUSTED: 'peer',
  ERR_THROTTLED: 'peer',
  // Local faults: API misuse or bad configuration.
  ERR_INVALID_STATE: 'local',
  ERR_INVALID_ARGUMENT: 'local',
  ERR_KEY_TOO_SHORT: 'local',
  ERR_KEY_NOT_FOUND: 'local',
  ERR_KEY_AMBIGUOUS: 'local',
  ERR_KEY_UNUSABLE: 'local',
  ERR_KEYRING_INVALID: 'local',
  ERR_KEYRING_IO: 'local',
  ERR_INVALID_ADDRESS: 'local',
  ERR_ADDRESS_IN_USE: 'local',
  ERR_CLOSED: 'local',
  ERR_REQUEST_REFUSED: 'local',
  ERR_DATAGRAM_TOO_LARGE: 'local',
  // Transport faults: the socket failed, was cut or timed out.
  ERR_CONNECT_FAILED: 'transport',
  ERR_CONNECTION_RESET: 'transport',
  ERR_HANDSHAKE_TIMEOUT: 'transport',
  ERR_IDLE_TIMEOUT: 'transport',
  ERR_SERVER_BUSY: 'transport',
  ERR_SHUTTING_DOWN: 'transport',
  ERR_INPUT_BUDGET: 'transport',
  ERR_REQUEST_TIMEOUT: 'transport',
} as const;

/**
 * A permanent error code, such as `'ERR_AUTH_FAILED'`: one of {@link ERROR_CODES}. {@link faultOf}
 * gives its fault class; `docs/errors.md` describes every code.
 */
export type ErrorCode = keyof typeof CODES;
/** Who is at fault for an error: `'peer'`, `'local'` or `'transport'`. */
export type Fault = (typeof CODES)[ErrorCode];

/** Every error code, for documentation checks and exhaustive tables. */
export const ERROR_CODES: readonly ErrorCode[] = Object.keys(CODES) as ErrorCode[];

/** The fault class of a code. */
export function faultOf(code: ErrorCode): Fault {
  return CODES[code];
}

/** Base class of every Sesame error. */
export class SesameError extends Error {
  /** Permanent code: match on this, never on the message. */
  readonly code: ErrorCode;
  /** Who is at fault. */
  readonly fault: Fault;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.fault = CODES[code];
  }

  /** The class name (`PeerError`, `LocalError`, `TransportError`), as shown in stack traces. */
  override get name(): string {
    return this.constructor.name;
  }
}

/** The peer sent something invalid, or failed to prove it holds the key. */
export class PeerError extends SesameError {}
/** The caller misused the API or gave an invalid configuration. */
export class LocalError extends SesameError {}
/** The transport failed: refused, reset, cut, or too slow. */
export class TransportError extends SesameError {}

/** Create the error of the right class for a code. */
export function sesameError(code: ErrorCode, message: string, options?: { cause?: unknown }): SesameError {
  switch (CODES[code]) {
    case 'peer':
      return new PeerError(code, message, options);
    case 'local':
      return new LocalError(code, message, options);
    case 'transport':
      return new TransportError(code, message, options);
  }
}

/** Whether `err` is a Sesame error, optionally with the given code. */
export function isSesameError(err: unknown, code?: ErrorCode): err is SesameError {
  return err instanceof SesameError && (code === undefined || err.code === code);
}

/**
 * Codes that mean "the peer failed to authenticate". A server refuses these identically on the
 * wire (it closes without a word); only its local log tells them apart.
 */
export const AUTH_REFUSAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_AUTH_FAILED',
  'ERR_UNKNOWN_KEY',
  'ERR_KEY_REVOKED',
  'ERR_KEY_EXPIRED',
  'ERR_KEY_NOT_YET_VALID',
  'ERR_STALE_HELLO',
  'ERR_REPLAYED_HELLO',
  'ERR_REFLECTED_MESSAGE',
  'ERR_BAD_KEY_SHARE',
  'ERR_FORWARD_SECRECY_REQUIRED',
]);
