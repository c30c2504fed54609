/**
 * The set of what a server holds per connection (its open connections, its proxied sockets),
 * kept without a JavaScript `Set` or `Map`.
 *
 * Why not a `Set`: V8 keeps a `Set`'s or `Map`'s entries in a hash table that it replaces when
 * deleted entries fill it up, and the table it replaces keeps its entries and a link to its
 * successor. A server's set lives long, so its tables end up in the old generation, where they
 * stay until the next full collection. Every connection added and removed in between stays
 * reachable from those dead tables, so each young-generation collection copies every connection
 * of the last interval and the next one promotes it: measured on a churning server, every
 * connection's objects (socket, session, buffers) survived to the old generation instead of
 * dying young. Here each member knows its slot, removal moves the last member into it and clears
 * the last slot, so nothing that left is referenced from anywhere.
 *
 * Rules:
 * - A member is in at most one roster (its `slot` is that roster's index, -1 when in none).
 * - Adding and removing are O(1); the order of members is not kept.
 * - Removing during iteration may skip members: loops that remove (directly or through what they
 *   call) iterate over {@link Roster.snapshot}.
 */

/** What a member of a {@link Roster} carries: its index in the roster, -1 when in none. */
export interface Slotted {
  slot: number;
}

/** An unordered set of members that know their slot; see the file header for the rules. */
export class Roster<T extends Slotted> implements Iterable<T> {
  private readonly members: T[] = [];

  /** Members held. */
  get size(): number {
    return this.members.length;
  }

  /** Add `member` (nothing happens if it is already here). */
  add(member: T): void {
    if (this.has(member)) return;
    member.slot = this.members.length;
    this.members.push(member);
  }

  /** Whether `member` is here. */
  has(member: T): boolean {
    return member.slot >= 0 && this.members[member.slot] === member;
  }

  /** Remove `member` (nothing happens if it is not here). */
  delete(member: T): void {
    const at = member.slot;
    if (at < 0 || this.members[at] !== member) return;
    member.slot = -1;
    // pop() clears the last slot; the member that was there takes the freed one.
    const last = this.members.pop() as T;
    if (last !== member) {
      this.members[at] = last;
      last.slot = at;
    }
  }

  /** The members now, in an array of their own (for loops whose work may remove members). */
  snapshot(): T[] {
    return this.members.slice();
  }

  [Symbol.iterator](): Iterator<T> {
    return this.members[Symbol.iterator]();
  }
}
