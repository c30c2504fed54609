/**
 * The worker-thread pool behind `runTask()` (piscina), shared by the stream and datagram servers:
 * created when the server starts listening, destroyed when it closes.
 */

import { Piscina } from 'piscina';
import { sesameError } from '../errors.js';

/** A worker-thread pool: `filename` is a module whose default export runs one task. */
export interface WorkerPoolOptions {
  readonly filename: string | URL;
  readonly minThreads?: number | undefined;
  readonly maxThreads?: number | undefined;
}

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

  async destroy(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }
}
