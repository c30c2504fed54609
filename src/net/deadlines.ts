/**
 * Deadlines of one fixed length for many items on one timer: what a server uses instead of a
 * timer per connection for the deadlines every connection shares (the first byte, the handshake).
 *
 * Rules:
 * - Every item gets the same length, so the order in which items are added is the order of their
 *   deadlines: they are kept in a ring in that order with their start times, and one timer is
 *   armed for the oldest. Each sweep handles every item that is due and re-arms for the next one,
 *   so an item is never reported before its deadline nor much after it.
 * - `add()` returns the item's ticket (its sequence number); removing by ticket (its handshake
 *   ended, it closed) is O(1) and clears the item's slot at once: a timer per item held its item
 *   until the timer ran, for the whole length after it was done.
 * - No `Map`: V8 replaces a `Map`'s table as deleted entries fill it, and a long-lived map's
 *   replaced tables keep every item they held reachable until the next full collection (see
 *   roster.ts), so every connection of a churning server was promoted out of the young
 *   generation. The ring's slots are cleared when their item goes; when it grows, the old ring is
 *   cleared too.
 * - The ring spans the items from the oldest still here to the newest, removed ones included as
 *   empty slots, so its size is bounded by the rate of additions times the deadline's length
 *   (anything older has expired); it doubles when full.
 * - The timer is unref'd: pending deadlines never keep the process alive.
 * - Times are `performance.now()` milliseconds; the timer's clock counts whole milliseconds and
 *   may run up to one before `performance.now()` reaches the deadline, which counts as due.
 */

/** Initial ring size (a power of two is not needed: positions are sequence numbers modulo it). */
const INITIAL_CAPACITY = 64;

/** Fixed-length deadlines for many items on one timer; see the file header for the rules. */
export class FixedDeadlines<T> {
  /** Items by position (`ticket % capacity`); undefined where an item was removed. */
  private items: (T | undefined)[] = new Array(INITIAL_CAPACITY).fill(undefined);
  private starts: number[] = new Array(INITIAL_CAPACITY).fill(0);
  /** Ticket of the oldest slot in the ring, and of the next item to add. */
  private head = 0;
  private tail = 0;
  private live = 0;
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
    return this.live;
  }

  /**
   * Start `item`'s deadline now (at `startMs`, a `performance.now()` time, if given).
   * @returns the item's ticket, for {@link delete}.
   */
  add(item: T, startMs: number = performance.now()): number {
    if (this.tail - this.head === this.items.length) this.grow();
    const ticket = this.tail++;
    const at = ticket % this.items.length;
    this.items[at] = item;
    this.starts[at] = startMs;
    this.live++;
    if (this.timer === undefined) this.arm(this.ms);
    return ticket;
  }

  /** The item of `ticket` no longer has a deadline (nothing happens if it has none now). */
  delete(ticket: number): void {
    if (ticket < this.head || ticket >= this.tail) return;
    const at = ticket % this.items.length;
    if (this.items[at] === undefined) return;
    this.items[at] = undefined;
    this.live--;
    if (ticket === this.head) this.skipRemoved();
  }

  /** Drop every item and the timer. */
  clear(): void {
    this.items.fill(undefined);
    this.head = this.tail;
    this.live = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  /** Move the head past removed slots to the oldest item still here. */
  private skipRemoved(): void {
    const n = this.items.length;
    while (this.head < this.tail && this.items[this.head % n] === undefined) this.head++;
  }

  /** Double the ring: every ticket from head to tail moves to its position in the larger one. */
  private grow(): void {
    const oldItems = this.items;
    const oldStarts = this.starts;
    const n = oldItems.length;
    const m = n * 2;
    this.items = new Array(m).fill(undefined);
    this.starts = new Array(m).fill(0);
    for (let t = this.head; t < this.tail; t++) {
      this.items[t % m] = oldItems[t % n];
      this.starts[t % m] = oldStarts[t % n] as number;
    }
    // The old ring may sit in the old generation until the next full collection: empty it, so
    // that it keeps none of the items alive meanwhile.
    oldItems.fill(undefined);
  }

  private sweep(): void {
    this.timer = undefined;
    const now = performance.now();
    while (this.head < this.tail) {
      // Read afresh each time: an expiry's callback may add items, and the ring may grow.
      const at = this.head % this.items.length;
      const item = this.items[at];
      if (item !== undefined) {
        const left = (this.starts[at] as number) + this.ms - now;
        if (left > 1) {
          this.arm(Math.ceil(left));
          return;
        }
        this.items[at] = undefined;
        this.live--;
      }
      this.head++;
      if (item !== undefined) this.expired(item);
    }
  }
}
