/**
 * The worker-thread pool behind `runTask()` (piscina), shared by the stream and datagram servers:
 * created when the server starts listening, destroyed when it closes.
 */

import { Piscina } from 'piscina';
import { sesameError } from '../errors.js';

/** A worker-thread pool: `filename` is a module whose default export runs one task. */
export interface WorkerPoolOptions {
  /** The task module: a path or `file:` URL whose default export runs one task and returns its result. */
  readonly filename: string | URL;
  /** Threads kept running (default: piscina's, half the available CPUs, at least 1). */
  readonly minThreads?: number | undefined;
  /** Most threads at once (default: piscina's, 1.5 times the available CPUs). */
  readonly maxThreads?: number | undefined;
}

/**
 * A worker-thread pool (piscina) that exists between `start()` and `destroy()`; made without
 * options, it never has threads and `run()` throws.
 */
export class TaskPool {
  private pool: Piscina | undefined;

  constructor(private readonly options: WorkerPoolOptions | undefined) {}

  /** Start the threads (idempotent; nothing without options). */
  start(): void {
    if (this.options === undefined || this.pool !== undefined) return;
    this.pool = new Piscina({
      filename: this.options.filename.toString(),
      minThreads: this.options.minThreads,
      maxThreads: this.options.maxThreads,
    });
  }

  /**
   * Run `task` on a worker thread.
   * @throws LocalError ERR_INVALID_STATE when there is no pool (no `workerPool` option, or not started).
   */
  run<T>(task: unknown): Promise<T> {
    if (this.pool === undefined)
      throw sesameError('ERR_INVALID_STATE', 'the server has no workerPool option');
    return this.pool.run(task) as Promise<T>;
  }

  /** Stop the threads; resolves once they have exited. Idempotent; `start()` makes a new pool. */
  async destroy(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }
}
