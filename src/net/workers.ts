/**
 * Several processes serving one address (socketserver's ForkingMixIn, on node:cluster): the
 * primary process forks the workers, each worker runs its own server on the shared listening
 * socket, and the kernel's connections are spread across them (round-robin by the primary).
 *
 * Rules:
 * - The same program runs in the primary and in every worker; `serveWorkers()` decides which
 *   part runs where. `start()` is called only in workers.
 * - The primary reports `listening` once every worker accepts, with the shared address (port 0
 *   gives every worker the same free port).
 * - SIGINT/SIGTERM in the primary are relayed to every worker as a graceful shutdown; each
 *   worker closes its server (letting in-flight replies finish) and exits 0; the primary
 *   returns when all have exited. A worker that dies unexpectedly is replaced (at most
 *   `maxRestarts` times in total).
 * - UDP is not served this way: every worker would read the same socket, and per-peer datagram
 *   sessions live in one process.
 * - Replay state is one across the workers: each worker's server reports the ClientHello nonces
 *   it records (batched once per event-loop turn) to the primary, which relays them to every
 *   other worker and keeps a bounded copy (the newest `replayCacheEntries`). A worker learns
 *   that copy before it accepts, so a replacement worker refuses what the others saw. A replay
 *   reaches a second worker only within the relay's delay (docs/security.md gives the measured
 *   window); the copy dies with the primary, so a restart of the whole service forgets it.
 */

import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { DEFAULT_REPLAY_CACHE_ENTRIES } from '../protocol/constants.js';
import { ReplayCache } from '../protocol/replay-cache.js';

/**
 * A cache of recent ClientHello nonces that can be linked with others (the `replayCache` of a
 * native `SesameServer` is one).
 */
export interface SharedReplayCache {
  /** Set by the worker: told of every nonce the cache records itself. */
  onRecord: ((nonce: Uint8Array, expiresAtMs: number) => void) | undefined;
  /** A nonce another worker recorded, refused here until `expiresAtMs`. */
  learn(nonce: Uint8Array, expiresAtMs: number): void;
}

/** A server that a worker runs: listen, then close on shutdown. */
export interface WorkerServer {
  /** Start listening; resolves with the URL listened on. */
  listen(): Promise<string>;
  /** Shut down gracefully; resolves once closed. */
  close(): Promise<void>;
  /**
   * The server's replay cache, linked with every other worker's so that one recorded ClientHello
   * buys at most one ServerHello from all of them (absent: each worker has its own).
   */
  readonly replayCache?: SharedReplayCache | undefined;
}

/** Options of {@link serveWorkers}. */
export interface WorkersOptions {
  /** Number of worker processes (at least 1). */
  readonly workers: number;
  /** In a worker: build the server (not yet listening). */
  readonly start: () => WorkerServer | Promise<WorkerServer>;
  /** How many unexpected worker deaths are replaced in total (default 10). */
  readonly maxRestarts?: number | undefined;
  /** Receives the primary's events (see {@link PrimaryEvents}); ignored in workers. */
  readonly events?: EventEmitter<PrimaryEvents> | undefined;
  /**
   * How many recent nonces the primary keeps for workers that start later (default 100,000, a
   * server's own replay cache size; at least 1).
   */
  readonly replayCacheEntries?: number | undefined;
}

/** Events emitted on `options.events` in the primary, with their arguments. */
export interface PrimaryEvents {
  /** Every worker accepts, at this URL. */
  listening: [url: string, workers: number];
  /** A worker could not start (its error message). */
  failed: [message: string];
  /** A worker exited. */
  exit: [pid: number | undefined, code: number | null, signal: string | null];
  /** A worker died and another is starting. */
  restart: [pid: number | undefined];
  /** Shutting down: the signal, `failed` or `restarts exhausted`. */
  shutdown: [reason: string];
  /** SIGHUP was relayed to the workers. */
  reload: [];
}

/** Nonces on the IPC channel (JSON): base64 of the nonce, and its expiry in ms. */
type Entries = readonly (readonly [nonce: string, expiresAtMs: number])[];

type ToPrimary =
  | { readonly sesame: 'listening'; readonly url: string }
  | { readonly sesame: 'failed'; readonly message: string }
  | { readonly sesame: 'replay-sync' }
  | { readonly sesame: 'replay'; readonly entries: Entries };
type ToWorker =
  | { readonly sesame: 'shutdown' }
  | { readonly sesame: 'replay'; readonly entries: Entries }
  | { readonly sesame: 'replay-snapshot'; readonly entries: Entries };

/** Whether this process is a worker forked by {@link serveWorkers}. */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Serve with `options.workers` processes. In the primary, resolves with the exit code once every
 * worker has exited after a shutdown (0), or when workers cannot start (1). In a worker, resolves
 * once its server has closed.
 */
export async function serveWorkers(options: WorkersOptions): Promise<number> {
  return cluster.isPrimary ? runPrimary(options) : runWorker(options);
}

async function runPrimary(options: WorkersOptions): Promise<number> {
  const events = options.events ?? new EventEmitter();
  const wanted = Math.max(1, Math.floor(options.workers));
  let restartsLeft = options.maxRestarts ?? 10;
  let stopping = false;
  let failed = false;
  const ready = new Set<Worker>();
  let announced = false;
  const replay = new ReplayCache(
    Math.max(1, Math.floor(options.replayCacheEntries ?? DEFAULT_REPLAY_CACHE_ENTRIES)),
  );

  return new Promise<number>((resolve) => {
    const fork = (): void => {
      const worker = cluster.fork();
      worker.on('message', (m: ToPrimary) => {
        if (m?.sesame === 'listening') {
          ready.add(worker);
          if (!announced && ready.size >= wanted) {
            announced = true;
            events.emit('listening', m.url, wanted);
          }
        } else if (m?.sesame === 'failed') {
          failed = true;
          events.emit('failed', m.message);
          stop('failed');
        } else if (m?.sesame === 'replay') {
          for (const [nonce, until] of m.entries) replay.learn(Buffer.from(nonce, 'base64'), until);
          const relay: ToWorker = { sesame: 'replay', entries: m.entries };
          for (const w of Object.values(cluster.workers ?? {})) {
            if (w !== undefined && w !== worker && w.isConnected())
              w.send(relay, undefined, undefined, ignore);
          }
        } else if (m?.sesame === 'replay-sync') {
          const entries: [string, number][] = [];
          for (const [nonce, until] of replay.entries(Date.now())) {
            entries.push([Buffer.from(nonce).toString('base64'), until]);
          }
          if (worker.isConnected()) {
            worker.send(
              { sesame: 'replay-snapshot', entries } satisfies ToWorker,
              undefined,
              undefined,
              ignore,
            );
          }
        }
      });
      worker.on('exit', (code, signal) => {
        ready.delete(worker);
        events.emit('exit', worker.process.pid, code, signal);
        if (!stopping && restartsLeft > 0) {
          restartsLeft--;
          events.emit('restart', worker.process.pid);
          fork();
        } else if (!stopping) {
          failed = true;
          stop('restarts exhausted');
        }
        if (Object.keys(cluster.workers ?? {}).length === 0 && stopping) {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          process.off('SIGHUP', onHup);
          resolve(failed ? 1 : 0);
        }
      });
    };
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      events.emit('shutdown', why);
      for (const w of Object.values(cluster.workers ?? {})) {
        if (w?.isConnected()) w.send({ sesame: 'shutdown' } satisfies ToWorker);
        else w?.kill();
      }
    };
    const onSignal = (signal: NodeJS.Signals): void => stop(signal);
    // SIGHUP asks every worker to reload (each handles it); the primary itself has nothing to reload.
    const onHup = (): void => {
      events.emit('reload');
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onHup);
    for (let i = 0; i < wanted; i++) fork();
  });
}

async function runWorker(options: WorkersOptions): Promise<number> {
  let server: WorkerServer;
  try {
    server = await options.start();
    if (server.replayCache !== undefined) await linkReplayCache(server.replayCache);
    const url = await server.listen();
    process.send?.({ sesame: 'listening', url } satisfies ToPrimary);
  } catch (err) {
    process.send?.({
      sesame: 'failed',
      message: err instanceof Error ? err.message : String(err),
    } satisfies ToPrimary);
    throw err;
  }
  await new Promise<void>((resolve) => {
    const done = (): void => resolve();
    process.on('message', (m: ToWorker) => {
      if (m?.sesame === 'shutdown') done();
    });
    // A terminal's Ctrl-C reaches every process of the group: treat it as the primary's request.
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    process.once('disconnect', done);
  });
  await server.close();
  process.disconnect?.();
  return 0;
}

/**
 * Link this worker's replay cache with the others' through the primary: learn what the primary
 * holds (resolves once learned, before the server accepts), then learn what the others record
 * and report what this one records, in one message per event-loop turn.
 */
function linkReplayCache(cache: SharedReplayCache): Promise<void> {
  let outgoing: [string, number][] = [];
  const flush = (): void => {
    const entries = outgoing;
    outgoing = [];
    if (process.connected)
      process.send?.({ sesame: 'replay', entries } satisfies ToPrimary, undefined, undefined, ignore);
  };
  cache.onRecord = (nonce, until) => {
    if (outgoing.length === 0) setImmediate(flush);
    outgoing.push([Buffer.from(nonce).toString('base64'), until]);
  };
  const learn = (entries: Entries): void => {
    for (const [nonce, until] of entries) cache.learn(Buffer.from(nonce, 'base64'), until);
  };
  return new Promise<void>((resolve) => {
    process.on('message', (m: ToWorker) => {
      if (m?.sesame === 'replay') learn(m.entries);
      else if (m?.sesame === 'replay-snapshot') {
        learn(m.entries);
        resolve();
      }
    });
    // Without a primary there is nothing to learn (and nothing will be relayed).
    process.once('disconnect', () => resolve());
    if (process.connected) process.send?.({ sesame: 'replay-sync' } satisfies ToPrimary);
    else resolve();
  });
}

/**
 * A replay message that cannot be delivered (its process is exiting) is dropped: the copy in the
 * primary is a best effort, and an undelivered message must not crash either side.
 */
function ignore(): void {}
