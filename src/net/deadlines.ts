/**
 * Deadlines of one fixed length for many items on one timer: what a server uses instead of a
 * timer per connection for the deadlines every connection shares (the first byte, the handshake).
 *
 * Rules:
 * - Every item gets the same length, so the order in which items are added is the order of their
 *   deadlines: they are kept in a Map (which iterates in insertion order) with their start time,
 *   and one timer is armed for the oldest. Each sweep handles every item that is due and re-arms
 *   for the next one, so an item is never reported before its deadline nor much after it.
 * - Removing an item (its handshake ended, it closed) is O(1) and drops the reference at once: a
 *   timer per item held its item until the timer ran, for the whole length after it was done.
 * - The timer is unref'd: pending deadlines never keep the process alive.
 * - Times are `performance.now()` milliseconds; the timer's clock counts whole milliseconds and
 *   may run up to one before `performance.now()` reaches the deadline, which counts as due.
 */

/** Fixed-length deadlines for many items on one timer; see the file header for the rules. */
export class FixedDeadlines<T> {
  private readonly items = new Map<T, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly onTimer = (): void => this.sweep();

  /**
   * @param ms the length of every deadline, in ms (at least 1)
   * @param expired called once for each item whose deadline passed while it was still here (it
   *   has been removed when called)
   */
  constructor(
    private readonly ms: number,
    private readonly expired: (item: T) => void,
  ) {}

  /** Items waiting for their deadline. */
  get size(): number {
    return this.items.size;
  }

  /** Start `item`'s deadline now (at `startMs`, a `performance.now()` time, if given). */
  add(item: T, startMs: number = performance.now()): void {
    this.items.set(item, startMs);
    if (this.timer === undefined) this.arm(this.ms);
  }

  /** `item` no longer has a deadline (nothing happens if it had none). */
  delete(item: T): void {
    this.items.delete(item);
  }

  /** Drop every item and the timer. */
  clear(): void {
    this.items.clear();
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  private sweep(): void {
    this.timer = undefined;
    const now = performance.now();
    for (const [item, start] of this.items) {
      const left = start + this.ms - now;
      if (left > 1) {
        this.arm(Math.ceil(left));
        return;
      }
      this.items.delete(item);
      this.expired(item);
    }
  }
}
