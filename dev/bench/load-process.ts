/**
 * The load-generator process of one system under test (forked by the orchestrator).
 *
 * Every loop is bounded in count and in time; every reply is checked (timestamp replies carry the
 * message, echo replies equal it, bulk acknowledgements equal the bytes sent) and counted as
 * wrong otherwise. Errors are counted, not thrown, so one failed connection shows in the results
 * instead of ending the run.
 */

import { type BenchClient, openClient, type Target, type TlsCheck, tlsCheck } from './clients.js';
import { serveRequests } from './ipc.js';
import { Latencies } from './stats.js';
import { bulkAck, isTimestampReply } from './systems.js';

export interface RunResult {
  /** Completed operations. */
  readonly ops: number;
  readonly elapsedMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** Replies that were not the expected ones. */
  readonly wrong: number;
  /** Replies checked (correct or not). */
  readonly replies: number;
  readonly firstError?: string | undefined;
  /** Payload bytes carried (bulk). */
  readonly bytes?: number | undefined;
  readonly tls?: TlsCheck | undefined;
}

export interface ChurnArgs {
  readonly concurrency: number;
  readonly maxOps: number;
  readonly maxMs: number;
  readonly messageBytes: number;
}

export interface OpenArgs {
  readonly count: number;
  /** Make one echo round trip on each new connection (so the server has served it). */
  readonly roundTrip: boolean;
  readonly concurrency: number;
  readonly maxMs: number;
}

export interface PersistentArgs {
  readonly maxOps: number;
  readonly maxMs: number;
  readonly messageBytes: number;
}

export interface BurstArgs {
  readonly maxOps: number;
  readonly maxMs: number;
  readonly messages: number;
  readonly messageBytes: number;
}

export interface BulkArgs {
  readonly totalBytes: number;
  readonly chunkBytes: number;
  readonly maxMs: number;
}

export interface LoadCommands {
  target: { args: Target; result: null };
  churn: { args: ChurnArgs; result: RunResult };
  open: { args: OpenArgs; result: RunResult };
  persistent: { args: PersistentArgs; result: RunResult };
  burst: { args: BurstArgs; result: RunResult };
  bulk: { args: BulkArgs; result: RunResult };
  closeAll: { args: null; result: { closed: number } };
}

let target: Target | undefined;
const pool: BenchClient[] = [];

function currentTarget(): Target {
  if (target === undefined) throw new Error('no target set');
  return target;
}

/** A message of `size` bytes that names operation `i` (so a misrouted reply is caught). */
function numbered(i: number, size: number, into?: Buffer): Buffer {
  const m = into ?? Buffer.allocUnsafe(size);
  m.fill(0x2e);
  m.write(`op ${i} `, 0, 'latin1');
  return m;
}

function describeError(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ?? err.name}: ${err.message}`;
  return String(err);
}

class Tally {
  ops = 0;
  errors = 0;
  wrong = 0;
  replies = 0;
  firstError: string | undefined;
  readonly latencies: Latencies;
  private readonly started = performance.now();

  constructor(capacity: number) {
    this.latencies = new Latencies(capacity);
  }

  error(err: unknown): void {
    this.errors++;
    this.firstError ??= describeError(err);
  }

  check(ok: boolean): void {
    this.replies++;
    if (!ok) this.wrong++;
  }

  result(extra: Partial<RunResult> = {}): RunResult {
    return {
      ops: this.ops,
      elapsedMs: performance.now() - this.started,
      ...this.latencies.summary(),
      errors: this.errors,
      wrong: this.wrong,
      replies: this.replies,
      firstError: this.firstError,
      tls: tlsCheck,
      ...extra,
    };
  }
}

/** Run `worker` `concurrency` times at once until `maxOps` operations started or `maxMs` passed. */
async function bounded(
  concurrency: number,
  maxOps: number,
  maxMs: number,
  op: (i: number) => Promise<void>,
): Promise<void> {
  const deadline = performance.now() + maxMs;
  let started = 0;
  const worker = async () => {
    while (started < maxOps && performance.now() < deadline) await op(started++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, maxOps) }, worker));
}

/**
 * One operation that opens a connection: open it, run `use` on it, and count the operation with
 * its latency from the start of the open. Any failure is counted as an error and destroys the
 * connection, so a half-open client never outlives its operation.
 */
async function connectionOp(t: Target, tally: Tally, use: (c: BenchClient) => Promise<void>): Promise<void> {
  const start = performance.now();
  let c: BenchClient | undefined;
  try {
    c = await openClient(t);
    await use(c);
    tally.latencies.add(performance.now() - start);
    tally.ops++;
  } catch (err) {
    tally.error(err);
    c?.destroy();
  }
}

serveRequests<LoadCommands>({
  target: async (t) => {
    target = t;
    return null;
  },

  // Connect, authenticate, one timestamp request, close: one operation per connection.
  churn: async ({ concurrency, maxOps, maxMs, messageBytes }) => {
    const t = currentTarget();
    const tally = new Tally(maxOps);
    await bounded(concurrency, maxOps, maxMs, (i) =>
      connectionOp(t, tally, async (c) => {
        const m = numbered(i, messageBytes);
        tally.check(isTimestampReply(await c.request(m), m));
        await c.close();
      }),
    );
    return tally.result();
  },

  // Open connections and keep them.
  open: async ({ count, roundTrip, concurrency, maxMs }) => {
    const t = currentTarget();
    const tally = new Tally(count);
    await bounded(concurrency, count, maxMs, (i) =>
      connectionOp(t, tally, async (c) => {
        if (roundTrip) {
          const m = numbered(i, 32);
          tally.check((await c.request(m)).equals(m));
        }
        pool.push(c);
      }),
    );
    return tally.result();
  },

  // Strict request/response echo on every open connection.
  persistent: async ({ maxOps, maxMs, messageBytes }) => {
    const tally = new Tally(maxOps);
    const deadline = performance.now() + maxMs;
    let started = 0;
    await Promise.all(
      pool.map(async (c) => {
        const m = Buffer.allocUnsafe(messageBytes);
        while (started < maxOps && performance.now() < deadline) {
          numbered(started++, messageBytes, m);
          const start = performance.now();
          try {
            tally.check((await c.request(m)).equals(m));
            tally.latencies.add(performance.now() - start);
            tally.ops++;
          } catch (err) {
            tally.error(err);
            return;
          }
        }
      }),
    );
    return tally.result();
  },

  // Pipelined bursts on every open connection: `messages` requests at once, then all the replies;
  // an operation is one message, its latency the whole turn's.
  burst: async ({ maxOps, maxMs, messages, messageBytes }) => {
    const tally = new Tally(Math.ceil(maxOps / messages) + pool.length);
    const deadline = performance.now() + maxMs;
    let started = 0;
    await Promise.all(
      pool.map(async (c) => {
        const ms = Array.from({ length: messages }, () => Buffer.allocUnsafe(messageBytes));
        while (started < maxOps && performance.now() < deadline) {
          for (const m of ms) numbered(started++, messageBytes, m);
          const start = performance.now();
          try {
            const replies = await Promise.all(ms.map((m) => c.request(m)));
            for (const [i, r] of replies.entries()) tally.check(r.equals(ms[i] as Buffer));
            tally.latencies.add(performance.now() - start);
            tally.ops += messages;
          } catch (err) {
            tally.error(err);
            return;
          }
        }
      }),
    );
    return tally.result();
  },

  // One connection: totalBytes in chunkBytes messages, then the server acknowledges the count.
  bulk: async ({ totalBytes, chunkBytes, maxMs }) => {
    const c = pool[0];
    if (c === undefined) throw new Error('no open connection');
    const tally = new Tally(1);
    const chunk = Buffer.alloc(chunkBytes, 0xa5);
    const deadline = performance.now() + maxMs;
    let sent = 0;
    try {
      while (sent + chunkBytes <= totalBytes && performance.now() < deadline) {
        c.send(chunk);
        sent += chunkBytes;
        tally.ops++;
        await c.writable();
      }
      tally.check((await c.request(Buffer.alloc(0))).equals(bulkAck(sent)));
    } catch (err) {
      tally.error(err);
    }
    return tally.result({ bytes: sent });
  },

  closeAll: async () => {
    const all = pool.splice(0);
    const closeOne = (c: BenchClient) =>
      Promise.race([c.close(), new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref())]).then(
        () => c.destroy(),
        () => c.destroy(),
      );
    for (let i = 0; i < all.length; i += 256) await Promise.all(all.slice(i, i + 256).map(closeOne));
    return { closed: all.length };
  },
});
