/**
 * The keyring: pre-shared keys, each bound to a principal, and their JSON file format.
 *
 * Rules:
 * - Pure: no file system, no process state, no clocks. Callers pass `now` and a `random` source.
 * - Secret bytes live only inside {@link Secret}, whose string, JSON and inspect forms are all
 *   `'[secret]'`. Errors about malformed input quote no field value but a well-formed key id or a
 *   numeric version: any other value could be a secret pasted in the wrong place. For the same
 *   reason the JSON engine's own message, which can quote the input, is never passed on.
 * - A key id is exactly 16 lowercase hex characters (8 random bytes). Ids are unique within a ring.
 * - A principal is 1..128 code points with no control, format, surrogate, private-use or
 *   line/paragraph-separator characters, so it is safe to print in logs and messages.
 * - A secret is never empty. Short secrets are allowed here; the protocol layer refuses them.
 * - When both are set, `notAfter` is strictly after `notBefore`.
 * - A {@link KeyRing} only grows, through {@link KeyRing.add}, which validates the entry. The entries
 *   it holds are frozen copies with Date objects of their own; callers must not mutate those Dates.
 * - Parsing is strict: unknown fields are refused (a misspelt `notAfter` must not silently leave a
 *   key valid forever) and every timestamp needs an explicit zone.
 */

import { sesameError } from '../errors.js';

/** The keyring file format version this module reads and writes. */
export const KEYRING_VERSION = 1;
/** Secret length, in bytes, of generated keys. */
export const DEFAULT_SECRET_BYTES = 32;
/** Length, in bytes, of the random part of a key id (the id is its hex form). */
export const KEY_ID_BYTES = 8;
/** Largest secret {@link KeyRing.generate} agrees to make. */
export const MAX_GENERATED_SECRET_BYTES = 1024;
/** Longest principal, in code points. */
export const MAX_PRINCIPAL_LENGTH = 128;

/**
 * The key ring file's JSON Schema (draft 2020-12). docs/keyring.md prints it verbatim (a test
 * compares them), and the loader takes its field lists from it, so the documented format and the
 * accepted one cannot drift. The loader checks more than a schema can say: canonical base64, real
 * calendar days, `notAfter` after `notBefore`, unique ids, principals free of unprintable
 * characters (see {@link principalProblem}).
 */
export const KEYRING_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'Sesame key ring',
  type: 'object',
  required: ['version', 'keys'],
  additionalProperties: false,
  properties: {
    version: { const: 1, description: 'The format version. A reader refuses any other value.' },
    keys: {
      type: 'array',
      description: 'The keys, in the order they were added.',
      items: {
        type: 'object',
        required: ['id', 'principal', 'secret', 'created', 'revoked'],
        additionalProperties: false,
        properties: {
          id: {
            type: 'string',
            pattern: '^[0-9a-f]{16}$',
            description:
              'Key id: 8 random bytes as 16 lowercase hex digits; unique in the ring. Sent on the wire.',
          },
          principal: {
            type: 'string',
            minLength: 1,
            maxLength: 128,
            description:
              'Who holds the key: 1 to 128 code points, no control or other unprintable characters.',
          },
          secret: {
            type: 'string',
            contentEncoding: 'base64',
            minLength: 4,
            description: 'The key: canonical standard base64 with padding. Generated keys are 32 bytes.',
          },
          created: {
            type: 'string',
            format: 'date-time',
            description: 'When the key was made (informational).',
          },
          notBefore: {
            type: 'string',
            format: 'date-time',
            description: 'The key is refused before this instant. Absent: no lower bound.',
          },
          notAfter: {
            type: 'string',
            format: 'date-time',
            description:
              'The key is refused from this instant on; later than notBefore. Absent: no upper bound.',
          },
          revoked: { type: 'boolean', description: 'A revoked key is always refused.' },
        },
      },
    },
  },
} as const;

const REDACTED = '[secret]';
const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;
// Control, format (bidi overrides, zero-width), surrogate, private-use, line and paragraph separators.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/u;
const ISO_TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * Secret key bytes. Holds its own copy; prints as `'[secret]'` everywhere (string conversion,
 * template literals, `JSON.stringify`, `util.inspect`, `console.log`).
 */
export class Secret {
  readonly #bytes: Buffer;

  /** Copies `bytes`; later changes to the argument do not reach the secret. */
  constructor(bytes: Uint8Array) {
    this.#bytes = Buffer.from(bytes);
  }

  /** A fresh copy of the secret bytes: changing it does not change the secret. */
  bytes(): Buffer {
    return Buffer.from(this.#bytes);
  }

  /** Length of the secret, in bytes. */
  get length(): number {
    return this.#bytes.length;
  }

  /** Always `'[secret]'`. */
  toString(): string {
    return REDACTED;
  }

  /** Always `'[secret]'`, so `JSON.stringify` never writes the bytes. */
  toJSON(): string {
    return REDACTED;
  }

  /** Always `'[secret]'`, so `util.inspect` and `console.log` never show the bytes. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }
}

/** One pre-shared key and what it is for. */
export interface KeyEntry {
  /** 16 lowercase hex characters, unique within a ring. Not secret. */
  readonly id: string;
  /** Who holds the key. Not secret. */
  readonly principal: string;
  /** The key itself. */
  readonly secret: Secret;
  /** When the key was made. Informational only. */
  readonly created: Date;
  /** The key is refused before this instant, when set. */
  readonly notBefore?: Date | undefined;
  /** The key is refused from this instant on, when set. */
  readonly notAfter?: Date | undefined;
  /** A revoked key is always refused. */
  readonly revoked: boolean;
}

/** Whether a key may be used at a given instant, and if not, why. */
export type KeyStatus = 'valid' | 'revoked' | 'expired' | 'not-yet-valid';

/**
 * The status of `entry` at `now`: `'revoked'` if revoked (whatever the dates), else `'expired'` when
 * `now >= notAfter`, else `'not-yet-valid'` when `now < notBefore`, else `'valid'`.
 *
 * @throws ERR_INVALID_ARGUMENT when `now` is an invalid date.
 */
export function keyStatus(entry: KeyEntry, now: Date): KeyStatus {
  const t = now.getTime();
  if (Number.isNaN(t)) {
    throw sesameError('ERR_INVALID_ARGUMENT', 'keyStatus: now is an invalid date');
  }
  if (entry.revoked) return 'revoked';
  if (entry.notAfter !== undefined && t >= entry.notAfter.getTime()) return 'expired';
  if (entry.notBefore !== undefined && t < entry.notBefore.getTime()) return 'not-yet-valid';
  return 'valid';
}

/** Whether `id` has the key id format: exactly 16 lowercase hex characters. */
export function isKeyId(id: unknown): id is string {
  return typeof id === 'string' && KEY_ID_PATTERN.test(id);
}

/**
 * Why `principal` is not acceptable, or `undefined` when it is. The reason never quotes the value.
 */
export function principalProblem(principal: unknown): string | undefined {
  if (typeof principal !== 'string') return 'must be a string';
  const length = [...principal].length;
  if (length === 0) return 'must not be empty';
  if (length > MAX_PRINCIPAL_LENGTH) return `must be at most ${MAX_PRINCIPAL_LENGTH} characters`;
  if (UNPRINTABLE.test(principal)) return 'must not contain control or other unprintable characters';
  return undefined;
}

/** Options of {@link KeyRing.generate}. */
export interface GenerateOptions {
  /** Who will hold the key. */
  principal: string;
  /** Recorded as the key's creation time. */
  now: Date;
  /** Source of cryptographically secure random bytes: must return exactly `n` bytes. */
  random: (n: number) => Buffer;
  /** Secret length in bytes; {@link DEFAULT_SECRET_BYTES} when omitted. */
  bytes?: number;
}

/** A set of keys in file order, with unique ids. Grows only through {@link KeyRing.add}. */
export class KeyRing {
  readonly #entries = new Map<string, KeyEntry>();

  /**
   * A ring holding `entries`, in order.
   *
   * @throws ERR_INVALID_ARGUMENT when an entry is invalid or two share an id (see {@link KeyRing.add}).
   */
  constructor(entries: Iterable<KeyEntry> = []) {
    for (const entry of entries) this.add(entry);
  }

  /**
   * Parse keyring file text (JSON, format version {@link KEYRING_VERSION}).
   *
   * @throws ERR_KEYRING_INVALID when the text is not JSON, or any field is missing, of the wrong
   *   type, unknown, or out of range, or ids repeat. The message names the field and the key's index
   *   (and id, when the id itself is well formed); it never contains secret values.
   */
  static parse(text: string): KeyRing {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      // The engine's message can quote a stretch of the input, secrets included: report only where.
      throw invalid(`not valid JSON${jsonErrorLocation(text, err)}`);
    }
    if (!isPlainObject(doc)) throw invalid('the top level must be a JSON object');
    refuseUnknownFields(doc, Object.keys(KEYRING_SCHEMA.properties), 'the top level');
    if (doc.version !== KEYRING_VERSION) {
      if (doc.version === undefined) throw invalid('"version" is missing');
      const shown = typeof doc.version === 'number' ? String(doc.version) : `a ${jsonType(doc.version)}`;
      throw invalid(`"version" must be ${KEYRING_VERSION}, found ${shown}`);
    }
    if (!Array.isArray(doc.keys)) throw invalid('"keys" must be an array');
    const ring = new KeyRing();
    doc.keys.forEach((raw: unknown, index) => {
      const entry = parseEntry(raw, index);
      if (ring.#entries.has(entry.id)) {
        throw invalid(`keys[${index}] (id ${entry.id}): duplicate "id", already used by an earlier key`);
      }
      ring.#entries.set(entry.id, entry);
    });
    return ring;
  }

  /**
   * A new key for `principal`: a fresh random id and a random secret of `bytes` bytes (32 by
   * default), created at `now`, not revoked, with no validity window. Does not add it to any ring.
   *
   * @throws ERR_INVALID_ARGUMENT when the principal is invalid, `now` is an invalid date, `bytes` is
   *   not an integer in 1..{@link MAX_GENERATED_SECRET_BYTES}, or `random` returns the wrong length.
   */
  static generate(opts: GenerateOptions): KeyEntry {
    const problem = principalProblem(opts.principal);
    if (problem !== undefined) throw sesameError('ERR_INVALID_ARGUMENT', `principal ${problem}`);
    if (Number.isNaN(opts.now.getTime())) {
      throw sesameError('ERR_INVALID_ARGUMENT', 'generate: now is an invalid date');
    }
    const size = opts.bytes ?? DEFAULT_SECRET_BYTES;
    if (!Number.isInteger(size) || size < 1 || size > MAX_GENERATED_SECRET_BYTES) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        `secret length must be an integer from 1 to ${MAX_GENERATED_SECRET_BYTES} bytes`,
      );
    }
    const idBytes = drawRandom(opts.random, KEY_ID_BYTES);
    const secretBytes = drawRandom(opts.random, size);
    const entry: KeyEntry = Object.freeze({
      id: idBytes.toString('hex'),
      principal: opts.principal,
      secret: new Secret(secretBytes),
      created: new Date(opts.now.getTime()),
      revoked: false,
    });
    secretBytes.fill(0);
    return entry;
  }

  /** Number of keys. */
  get size(): number {
    return this.#entries.size;
  }

  /** The key with this id, if any. */
  get(id: string): KeyEntry | undefined {
    return this.#entries.get(id);
  }

  /** Every key, in file (insertion) order. */
  list(): readonly KeyEntry[] {
    return Object.freeze([...this.#entries.values()]);
  }

  /**
   * Append a key. The ring stores a frozen copy (with its own Date objects), so later changes to
   * `entry` do not reach the ring.
   *
   * @throws ERR_INVALID_ARGUMENT when the id is malformed or already present, the principal is
   *   invalid, the secret is empty, a date is invalid, or `notAfter <= notBefore`.
   */
  add(entry: KeyEntry): void {
    const copy = checkEntry(entry);
    if (this.#entries.has(copy.id)) {
      throw sesameError('ERR_INVALID_ARGUMENT', `the key ring already holds a key with id ${copy.id}`);
    }
    this.#entries.set(copy.id, copy);
  }

  /**
   * The keyring file text: pretty-printed JSON with a trailing newline. Fields always come in the
   * same order (`id`, `principal`, `secret`, `created`, `notBefore`, `notAfter`, `revoked`); absent
   * optional dates are left out. `parse(serialize())` gives back an equal ring.
   */
  serialize(): string {
    const keys = [...this.#entries.values()].map((e) => {
      const out: Record<string, string | boolean> = {
        id: e.id,
        principal: e.principal,
        secret: e.secret.bytes().toString('base64'),
        created: e.created.toISOString(),
      };
      if (e.notBefore !== undefined) out.notBefore = e.notBefore.toISOString();
      if (e.notAfter !== undefined) out.notAfter = e.notAfter.toISOString();
      out.revoked = e.revoked;
      return out;
    });
    return `${JSON.stringify({ version: KEYRING_VERSION, keys }, null, 2)}\n`;
  }
}

/**
 * The key a client should use: the one with `keyId` when given, else the ring's only key. Does not
 * look at revocation or dates (see {@link keyStatus}).
 *
 * @throws ERR_KEY_NOT_FOUND when `keyId` is given and no key has it, or the ring is empty.
 * @throws ERR_KEY_AMBIGUOUS when `keyId` is omitted and the ring holds several keys; the message
 *   lists their ids and principals and says to pass `--key-id`.
 */
export function selectClientKey(ring: KeyRing, keyId?: string): KeyEntry {
  if (keyId !== undefined) {
    if (!isKeyId(keyId)) {
      throw sesameError('ERR_KEY_NOT_FOUND', 'a key id is 16 lowercase hex characters; no key matches that');
    }
    const entry = ring.get(keyId);
    if (entry === undefined)
      throw sesameError('ERR_KEY_NOT_FOUND', `the key ring has no key with id ${keyId}`);
    return entry;
  }
  const keys = ring.list();
  const [only] = keys;
  if (only === undefined) {
    throw sesameError(
      'ERR_KEY_NOT_FOUND',
      'the key ring holds no keys (the server operator adds one with `sesame keys add` and hands it over with `sesame keys export`)',
    );
  }
  if (keys.length > 1) {
    const choices = keys.map((k) => `${k.id} (${k.principal})`).join(', ');
    throw sesameError(
      'ERR_KEY_AMBIGUOUS',
      `the key ring holds ${keys.length} keys; pass --key-id to choose one of: ${choices}`,
    );
  }
  return only;
}

// ---------------------------------------------------------------------------------------------
// Internals.

function invalid(message: string) {
  return sesameError('ERR_KEYRING_INVALID', message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function refuseUnknownFields(obj: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const name of Object.keys(obj)) {
    if (!known.includes(name)) {
      // The name itself is not shown: it is file data and could be anything, a secret included.
      throw invalid(`${where}: unknown field (the allowed fields are ${known.join(', ')})`);
    }
  }
}

/** " at line L column C" from the engine's "position N", or "" when it gave none. */
function jsonErrorLocation(text: string, err: unknown): string {
  const match = err instanceof Error ? /position (\d+)/.exec(err.message) : null;
  if (match?.[1] === undefined) return '';
  const position = Number(match[1]);
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return ` (at line ${line} column ${column})`;
}

const ENTRY_FIELDS = Object.keys(KEYRING_SCHEMA.properties.keys.items.properties);

function parseEntry(raw: unknown, index: number): KeyEntry {
  let where = `keys[${index}]`;
  if (!isPlainObject(raw)) throw invalid(`${where} must be an object, found ${jsonType(raw)}`);
  if (!isKeyId(raw.id)) {
    const why =
      typeof raw.id === 'string' ? 'must be 16 lowercase hex characters' : 'is missing or not a string';
    throw invalid(`${where}: "id" ${why}`);
  }
  where = `keys[${index}] (id ${raw.id})`;
  refuseUnknownFields(raw, ENTRY_FIELDS, where);

  const problem = principalProblem(raw.principal);
  if (problem !== undefined) {
    throw invalid(`${where}: "principal" ${raw.principal === undefined ? 'is missing' : problem}`);
  }

  if (typeof raw.secret !== 'string') throw invalid(`${where}: "secret" is missing or not a string`);
  if (raw.secret === '') throw invalid(`${where}: "secret" must not be empty`);
  const secretBytes = Buffer.from(raw.secret, 'base64');
  if (secretBytes.toString('base64') !== raw.secret) {
    secretBytes.fill(0);
    throw invalid(`${where}: "secret" is not canonical base64 (standard alphabet, with padding)`);
  }
  const secret = new Secret(secretBytes);
  secretBytes.fill(0);

  const created = parseTimestamp(raw.created, 'created', where, true);
  const notBefore = parseTimestamp(raw.notBefore, 'notBefore', where, false);
  const notAfter = parseTimestamp(raw.notAfter, 'notAfter', where, false);
  if (notBefore !== undefined && notAfter !== undefined && notAfter.getTime() <= notBefore.getTime()) {
    throw invalid(`${where}: "notAfter" must be later than "notBefore"`);
  }
  if (typeof raw.revoked !== 'boolean') throw invalid(`${where}: "revoked" is missing or not a boolean`);

  return Object.freeze({
    id: raw.id,
    principal: raw.principal as string,
    secret,
    created,
    notBefore,
    notAfter,
    revoked: raw.revoked,
  });
}

function parseTimestamp(value: unknown, field: string, where: string, required: true): Date;
function parseTimestamp(value: unknown, field: string, where: string, required: false): Date | undefined;
function parseTimestamp(value: unknown, field: string, where: string, required: boolean): Date | undefined {
  if (value === undefined) {
    if (required) throw invalid(`${where}: "${field}" is missing`);
    return undefined;
  }
  const date = typeof value === 'string' ? parseIsoTimestamp(value) : undefined;
  if (date === undefined) {
    throw invalid(
      `${where}: "${field}" must be an ISO 8601 timestamp with a zone, like 2026-11-29T20:00:00.000Z`,
    );
  }
  return date;
}

/** A strict ISO 8601 date-time with seconds and an explicit zone; `undefined` if not one. */
function parseIsoTimestamp(text: string): Date | undefined {
  const m = ISO_TIMESTAMP.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // Date.parse rolls 2026-02-30 over to March: check the calendar fields ourselves.
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  if (m[7] !== undefined && (Number(m[8]) > 23 || Number(m[9]) > 59)) return undefined;
  const ms = Date.parse(text);
  // A zone offset can move the instant out of years 0000-9999, which the file cannot hold.
  return Number.isNaN(ms) || !writable(new Date(ms)) ? undefined : new Date(ms);
}

/** Whether `serialize()` can write the instant in the form `parse()` reads (years 0000 to 9999). */
function writable(d: Date): boolean {
  const year = d.getUTCFullYear();
  return year >= 0 && year <= 9999;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function drawRandom(random: (n: number) => Buffer, n: number): Buffer {
  const out = random(n);
  if (!(out instanceof Uint8Array) || out.length !== n) {
    throw sesameError(
      'ERR_INVALID_ARGUMENT',
      `random source returned the wrong number of bytes (wanted ${n})`,
    );
  }
  return Buffer.from(out);
}

function checkDate(value: unknown, field: string, required: boolean): Date | undefined {
  if (value === undefined && !required) return undefined;
  if (!(value instanceof Date) || Number.isNaN(value.getTime()) || !writable(value)) {
    throw sesameError(
      'ERR_INVALID_ARGUMENT',
      `key "${field}" must be a valid Date in the years 0000 to 9999`,
    );
  }
  return new Date(value.getTime());
}

/** Validate an entry given to {@link KeyRing.add} and return a frozen copy. */
function checkEntry(entry: KeyEntry): KeyEntry {
  if (!isKeyId(entry.id)) {
    throw sesameError('ERR_INVALID_ARGUMENT', 'key "id" must be 16 lowercase hex characters');
  }
  const problem = principalProblem(entry.principal);
  if (problem !== undefined) {
    throw sesameError('ERR_INVALID_ARGUMENT', `key ${entry.id}: "principal" ${problem}`);
  }
  if (!(entry.secret instanceof Secret) || entry.secret.length === 0) {
    throw sesameError('ERR_INVALID_ARGUMENT', `key ${entry.id}: "secret" must be a non-empty Secret`);
  }
  if (typeof entry.revoked !== 'boolean') {
    throw sesameError('ERR_INVALID_ARGUMENT', `key ${entry.id}: "revoked" must be a boolean`);
  }
  const created = checkDate(entry.created, 'created', true) as Date;
  const notBefore = checkDate(entry.notBefore, 'notBefore', false);
  const notAfter = checkDate(entry.notAfter, 'notAfter', false);
  if (notBefore !== undefined && notAfter !== undefined && notAfter.getTime() <= notBefore.getTime()) {
    throw sesameError('ERR_INVALID_ARGUMENT', `key ${entry.id}: "notAfter" must be later than "notBefore"`);
  }
  return Object.freeze({
    id: entry.id,
    principal: entry.principal,
    secret: entry.secret,
    created,
    notBefore,
    notAfter,
    revoked: entry.revoked,
  });
}
