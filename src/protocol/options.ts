/**
 * The policies a connection is configured with, each declared once, and the one table-driven
 * check every layer runs on them.
 *
 * A policy is an interface of optional fields; each has a default constant (constants.ts,
 * datagram/options.ts) and a rule in the policy's table. The net layer's option interfaces extend
 * these policies and hand them down with {@link pickOptions}, so an option is added in one place.
 *
 * Rules:
 * - Every field of a policy has exactly one rule; the table's type makes a missing rule a compile
 *   error.
 * - An option left undefined takes its default and is not checked. Any other value is checked
 *   once, when the object that uses it is constructed: a value out of range is a LocalError
 *   ERR_INVALID_ARGUMENT naming the option and what it allows, never a silent clamp.
 * - Whole-number rules refuse NaN, infinities and fractions as well as values out of range.
 */

import { sesameError } from '../errors.js';
import { MAX_DATAGRAM_PAYLOAD_BYTES } from './datagram/wire.js';
import type { Entropy } from './primitives.js';
import { isReplayWindowSize, MAX_REPLAY_WINDOW_BITS, MIN_REPLAY_WINDOW_BITS } from './replay-window.js';

// ---------------------------------------------------------------------------------------------
// Rules and the check
// ---------------------------------------------------------------------------------------------

/** What one option allows. */
export type OptionRule =
  | {
      /** A whole number (a safe integer) from `min` to `max`, both included. */
      readonly kind: 'whole';
      /** Smallest value allowed. */
      readonly min: number;
      /** Largest value allowed. */
      readonly max: number;
    }
  | {
      /** `true` or `false`. */
      readonly kind: 'boolean';
    }
  | {
      /** Anything `test` accepts. */
      readonly kind: 'custom';
      /** What the option allows, completing "NAME must be ...". */
      readonly allowed: string;
      /** Whether `value` (never undefined) is allowed. */
      readonly test: (value: unknown) => boolean;
    };

/** One rule for every field of the options `T`. */
export type OptionRules<T> = { readonly [K in keyof Required<T>]: OptionRule };

/** A rule: a whole number from `min` to `max`. */
export function wholeNumber(min: number, max: number): OptionRule {
  return { kind: 'whole', min, max };
}

/** The rule of an on/off option. */
export const BOOLEAN_RULE: OptionRule = { kind: 'boolean' };

/** The most entries a JavaScript `Map` holds (2^24). */
export const MAX_MAP_ENTRIES = 2 ** 24;

function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  return value === null ? 'null' : `a ${typeof value}`;
}

function problem(rule: OptionRule, value: unknown): string | undefined {
  switch (rule.kind) {
    case 'whole':
      return typeof value === 'number' &&
        Number.isSafeInteger(value) &&
        value >= rule.min &&
        value <= rule.max
        ? undefined
        : `a whole number from ${rule.min} to ${rule.max}`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'true or false';
    case 'custom':
      return rule.test(value) ? undefined : rule.allowed;
  }
}

/**
 * Check the options present in `options` against `rules`; fields without a rule are not looked
 * at, and undefined fields take their defaults. `within` prefixes the names in the message, for
 * options nested in another (`throttle.`).
 * @throws LocalError ERR_INVALID_ARGUMENT naming the first option out of range and what it allows.
 */
export function checkOptions(
  options: object,
  rules: { readonly [name: string]: OptionRule },
  within = '',
): void {
  const values = options as Record<string, unknown>;
  for (const [name, rule] of Object.entries(rules) as [string, OptionRule][]) {
    const value = values[name];
    if (value === undefined) continue;
    const allowed = problem(rule, value);
    if (allowed !== undefined) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        `${within}${name} must be ${allowed} (got ${describe(value)})`,
      );
    }
  }
}

/**
 * The fields of `options` that `rules` names, and only those: how an upper layer hands a policy
 * down without copying it field by field. Undefined fields stay undefined (their defaults apply).
 * Name the policy: `pickOptions<ServerPolicy>(options, SERVER_POLICY_RULES)`.
 */
export function pickOptions<T extends object>(options: T, rules: OptionRules<T>): T {
  const values = options as Record<string, unknown>;
  const picked: Record<string, unknown> = {};
  for (const name of Object.keys(rules)) picked[name] = values[name];
  return picked as T;
}

// ---------------------------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------------------------

/** What the core is given instead of doing I/O: randomness and a clock. */
export interface Environment {
  /** Randomness and ephemeral keys (use `systemEntropy` outside tests). */
  readonly entropy: Entropy;
  /** Wall clock in milliseconds since the epoch. */
  readonly now: () => number;
}

/** Rules of {@link Environment}: an entropy source and a clock function. */
export const ENVIRONMENT_RULES: OptionRules<Environment> = {
  entropy: {
    kind: 'custom',
    allowed: 'an Entropy (an object with bytes() and x25519())',
    test: (v) => typeof (v as Partial<Entropy> | null)?.bytes === 'function',
  },
  now: { kind: 'custom', allowed: 'a function returning milliseconds', test: (v) => typeof v === 'function' },
};

// ---------------------------------------------------------------------------------------------
// Stream policies: the handshake of each role, and the record layer both share
// ---------------------------------------------------------------------------------------------

/** Largest `maxMessageBytes`: 2^31 - 1, so that a message fits one Buffer on every platform. */
export const MAX_MESSAGE_BYTES_LIMIT = 2 ** 31 - 1;

/** The record layer's policy, the same for both roles and for the compatibility profiles' limit. */
export interface RecordPolicy {
  /** Largest message accepted after reassembly, in bytes: 1 to 2^31 - 1 (default 16 MiB). */
  readonly maxMessageBytes?: number | undefined;
  /**
   * Most records sealed under one key, the key update included: 2 to 2^53 - 1 (default 2^24).
   * The protocol allows 2^64 (docs/protocol.md, section 9); the sequence number is exact up to
   * 2^53 - 1 here. At least 2, since the key update itself is one of them.
   */
  readonly keyUpdateAfterRecords?: number | undefined;
}

/** Rules of {@link RecordPolicy}. */
export const RECORD_POLICY_RULES: OptionRules<RecordPolicy> = {
  maxMessageBytes: wholeNumber(1, MAX_MESSAGE_BYTES_LIMIT),
  keyUpdateAfterRecords: wholeNumber(2, Number.MAX_SAFE_INTEGER),
};

/** The message limit alone: what the compatibility profiles take of the record layer's policy. */
export type MessageLimit = Pick<RecordPolicy, 'maxMessageBytes'>;

/** Rules of {@link MessageLimit}. */
export const MESSAGE_LIMIT_RULES: OptionRules<MessageLimit> = {
  maxMessageBytes: RECORD_POLICY_RULES.maxMessageBytes,
};

/** How a client handshakes. */
export interface ClientHandshakePolicy {
  /** Ephemeral X25519 for forward secrecy (default true). */
  readonly forwardSecrecy?: boolean | undefined;
}

/** Rules of {@link ClientHandshakePolicy}. */
export const CLIENT_HANDSHAKE_RULES: OptionRules<ClientHandshakePolicy> = {
  forwardSecrecy: BOOLEAN_RULE,
};

/** What a server accepts in a handshake. */
export interface ServerHandshakePolicy {
  /** Refuse clients that do not use ephemeral X25519 (default true). */
  readonly requireForwardSecrecy?: boolean | undefined;
  /** How far a ClientHello's timestamp may be from `now()`, in ms: 0 to 2^31 (default 120 s). */
  readonly maxClockSkewMs?: number | undefined;
  /**
   * Capacity of the cache of recent ClientHello nonces that refuses replays: 1 to 2^24, the most a
   * JavaScript Map holds (default 100,000).
   */
  readonly replayCacheEntries?: number | undefined;
}

/** Rules of {@link ServerHandshakePolicy}. */
export const SERVER_HANDSHAKE_RULES: OptionRules<ServerHandshakePolicy> = {
  requireForwardSecrecy: BOOLEAN_RULE,
  maxClockSkewMs: wholeNumber(0, 2 ** 31),
  replayCacheEntries: wholeNumber(1, MAX_MAP_ENTRIES),
};

/** A client's policy over streams: its handshake and its record layer. */
export interface ClientPolicy extends ClientHandshakePolicy, RecordPolicy {}

/** Rules of {@link ClientPolicy}. */
export const CLIENT_POLICY_RULES: OptionRules<ClientPolicy> = {
  ...CLIENT_HANDSHAKE_RULES,
  ...RECORD_POLICY_RULES,
};

/** A server's policy over streams: what it accepts in a handshake, and its record layer. */
export interface ServerPolicy extends ServerHandshakePolicy, RecordPolicy {}

/** Rules of {@link ServerPolicy}. */
export const SERVER_POLICY_RULES: OptionRules<ServerPolicy> = {
  ...SERVER_HANDSHAKE_RULES,
  ...RECORD_POLICY_RULES,
};

// ---------------------------------------------------------------------------------------------
// Datagram limits (docs/protocol-udp.md, "Limits")
// ---------------------------------------------------------------------------------------------

/** Limits both datagram endpoints take. */
export interface DatagramLimits {
  /** Largest payload this end sends in one datagram: 1 to 65,454 (default 1200). */
  readonly maxPayloadBytes?: number | undefined;
  /** Freshness bound on a datagram's time, in ms: 1 to 2^31 (default 30 s). */
  readonly maxDatagramAgeMs?: number | undefined;
  /** Replay window bitmap size: a power of two from 64 to 65536 (default 2048 bits). */
  readonly replayWindowBits?: number | undefined;
  /** Datagrams this end seals under one session before it is used up: 1 to 2^53 - 1 (the default). */
  readonly maxDatagramsPerSession?: number | undefined;
}

/** Rules of {@link DatagramLimits}. */
export const DATAGRAM_LIMIT_RULES: OptionRules<DatagramLimits> = {
  maxPayloadBytes: wholeNumber(1, MAX_DATAGRAM_PAYLOAD_BYTES),
  maxDatagramAgeMs: wholeNumber(1, 2 ** 31),
  replayWindowBits: {
    kind: 'custom',
    allowed: `a power of two from ${MIN_REPLAY_WINDOW_BITS} to ${MAX_REPLAY_WINDOW_BITS}`,
    test: (v) => typeof v === 'number' && isReplayWindowSize(v),
  },
  maxDatagramsPerSession: wholeNumber(1, Number.MAX_SAFE_INTEGER),
};

/** Limits of a datagram server. */
export interface DatagramServerLimits extends DatagramLimits {
  /** Forget a session after this long without an authentic datagram, in ms: 1 to 2^31 (default 180 s). */
  readonly sessionIdleMs?: number | undefined;
  /** Forget a handshake not finished within this long, in ms: 1 to 2^31 (default 10 s). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Most sessions at once: 1 to 2^31 (default 10,000). */
  readonly maxSessions?: number | undefined;
  /** Most handshakes waiting for FINISHED at once: 1 to 2^31 (default 1024). */
  readonly maxPendingHandshakes?: number | undefined;
  /** Most handshakes waiting for FINISHED from one source address: 1 to 2^31 (default 32). */
  readonly maxPendingPerSource?: number | undefined;
}

/** Rules of {@link DatagramServerLimits}. */
export const DATAGRAM_SERVER_LIMIT_RULES: OptionRules<DatagramServerLimits> = {
  ...DATAGRAM_LIMIT_RULES,
  sessionIdleMs: wholeNumber(1, 2 ** 31),
  handshakeTimeoutMs: wholeNumber(1, 2 ** 31),
  maxSessions: wholeNumber(1, 2 ** 31),
  maxPendingHandshakes: wholeNumber(1, 2 ** 31),
  maxPendingPerSource: wholeNumber(1, 2 ** 31),
};

/** Limits of a datagram client. */
export interface DatagramClientLimits extends DatagramLimits {
  /** Handshake attempts kept answerable at once: 1 to 1024 (default 8); older ones are forgotten. */
  readonly maxAttempts?: number | undefined;
}

/** Rules of {@link DatagramClientLimits}. */
export const DATAGRAM_CLIENT_LIMIT_RULES: OptionRules<DatagramClientLimits> = {
  ...DATAGRAM_LIMIT_RULES,
  maxAttempts: wholeNumber(1, 1024),
};
