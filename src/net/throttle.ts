/**
 * Per-source backoff after failed logins, so that one address guessing keys or flooding bad
 * handshakes is slowed down while every other address is served as usual.
 *
 * Rules:
 * - A failure is a handshake that did not authenticate (a wrong or unknown key, garbage, a
 *   timeout). The first `freeFailures` failures of a source cost nothing; each one after that
 *   blocks the source for a delay that doubles, from `baseDelayMs` up to `maxDelayMs`.
 * - A blocked source's new connections are closed on accept, before any handshake work.
 * - A source's record is forgotten `forgetAfterMs` after its last failure, and at once when it
 *   authenticates successfully.
 * - The table is bounded (`maxSources`); when full, the oldest record goes, so a flood of
 *   distinct addresses cannot grow memory without bound.
 * - No I/O: the clock is passed in.
 */

import { checkOptions, MAX_MAP_ENTRIES, type OptionRules, wholeNumber } from '../protocol/options.js';

/** Options of a {@link FailureThrottle}. Times are compared with the clock, not timers. */
export interface ThrottleOptions {
  /** Failures a source may have before it is blocked: 0 to 2^53 - 1 (default 5). */
  readonly freeFailures?: number | undefined;
  /**
   * First block after `freeFailures`, in ms; doubles with each further failure: 0 (never block)
   * to 2^53 - 1 (default 1 s).
   */
  readonly baseDelayMs?: number | undefined;
  /** Longest block, in ms: 0 (never block) to 2^53 - 1 (default 60 s). */
  readonly maxDelayMs?: number | undefined;
  /**
   * A source's record is forgotten this long after its last failure, in ms: 0 (at once) to
   * 2^53 - 1 (default 10 min).
   */
  readonly forgetAfterMs?: number | undefined;
  /**
   * Most sources tracked; when full, the one whose failure is oldest is dropped: 1 to 2^24, the
   * most a Map holds (default 100,000).
   */
  readonly maxSources?: number | undefined;
}

/** Rules of {@link ThrottleOptions}. */
export const THROTTLE_RULES: OptionRules<ThrottleOptions> = {
  freeFailures: wholeNumber(0, Number.MAX_SAFE_INTEGER),
  baseDelayMs: wholeNumber(0, Number.MAX_SAFE_INTEGER),
  maxDelayMs: wholeNumber(0, Number.MAX_SAFE_INTEGER),
  forgetAfterMs: wholeNumber(0, Number.MAX_SAFE_INTEGER),
  maxSources: wholeNumber(1, MAX_MAP_ENTRIES),
};

/** The default of every {@link ThrottleOptions} field. */
export const DEFAULT_THROTTLE: Required<ThrottleOptions> = {
  freeFailures: 5,
  baseDelayMs: 1_000,
  maxDelayMs: 60_000,
  forgetAfterMs: 600_000,
  maxSources: 100_000,
};

interface Record {
  failures: number;
  lastFailureMs: number;
  blockedUntilMs: number;
}

/**
 * Per-source backoff after failed logins: counts each source's failures and says how long it is
 * blocked. No I/O; `now` is the clock in ms since the epoch (default `Date.now`).
 */
export class FailureThrottle {
  private readonly opts: Required<ThrottleOptions>;
  private readonly sources = new Map<string, Record>();

  /** @throws LocalError ERR_INVALID_ARGUMENT for an option out of range. */
  constructor(
    options: ThrottleOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    checkOptions(options, THROTTLE_RULES);
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.opts = { ...DEFAULT_THROTTLE, ...defined };
  }

  /** Milliseconds `source` remains blocked (0: not blocked). */
  blockedFor(source: string): number {
    const r = this.sources.get(source);
    if (r === undefined) return 0;
    const now = this.now();
    if (now - r.lastFailureMs >= this.opts.forgetAfterMs) {
      this.sources.delete(source);
      return 0;
    }
    return Math.max(0, r.blockedUntilMs - now);
  }

  /** Record a failed login from `source`; returns the block it now has, in ms. */
  failure(source: string): number {
    const now = this.now();
    let r = this.sources.get(source);
    if (r === undefined || now - r.lastFailureMs >= this.opts.forgetAfterMs) {
      if (this.sources.size >= this.opts.maxSources) {
        const oldest = this.sources.keys().next();
        if (!oldest.done) this.sources.delete(oldest.value);
      }
      r = { failures: 0, lastFailureMs: now, blockedUntilMs: 0 };
    }
    // Re-insert so that Map order stays oldest-failure-first for eviction.
    this.sources.delete(source);
    this.sources.set(source, r);
    r.failures++;
    r.lastFailureMs = now;
    const over = r.failures - this.opts.freeFailures;
    if (over > 0) {
      const delay = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** Math.min(over - 1, 30));
      r.blockedUntilMs = now + delay;
      return delay;
    }
    return 0;
  }

  /** A successful login from `source`: forget its failures. */
  success(source: string): void {
    this.sources.delete(source);
  }

  /** Sources currently tracked. */
  get size(): number {
    return this.sources.size;
  }
}
