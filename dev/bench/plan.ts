/**
 * What a bench run measures: the workloads and their bounds. Every loop is bounded in count AND
 * in time, so a slow or broken system cannot stall a run.
 */

export const WORKLOADS = ['churn', 'persistent', 'burst', 'bulk', 'idle'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export interface Plan {
  readonly churn: {
    /** Concurrency levels measured (the scaling curve). */
    readonly concurrency: readonly number[];
    /** Levels that also appear as table rows. */
    readonly rows: readonly number[];
    readonly messageBytes: number;
    readonly warmupMs: number;
    readonly maxMs: number;
    readonly maxOps: number;
  };
  readonly persistent: {
    readonly connections: number;
    readonly messageBytes: number;
    readonly warmupMs: number;
    readonly maxMs: number;
    readonly maxOps: number;
  };
  /** Pipelined bursts: each turn sends `messages` echo requests at once, then awaits them all. */
  readonly burst: {
    readonly connections: number;
    readonly messages: number;
    readonly messageBytes: number;
    readonly warmupMs: number;
    readonly maxMs: number;
    /** Most messages (not turns) in one measurement. */
    readonly maxOps: number;
  };
  readonly bulk: {
    readonly totalBytes: number;
    readonly chunkBytes: number;
    readonly warmupBytes: number;
    readonly maxMs: number;
  };
  readonly idle: {
    /** Held connections at which server memory is read (the scaling curve), ascending. */
    readonly levels: readonly number[];
    /**
     * The table row is the slope, from this level to the next one, of the RSS less V8's young
     * generation. The total growth from the empty server includes a one-time growth of V8's heap
     * to its working size (30-45 MiB for the Sesame servers here, whatever the warm-up), so it
     * overstates the cost per connection at low counts; a slope between two high levels does
     * not. The young generation is left out of the slope because V8 resizes it by its own policy
     * as objects are retained, by megabytes between two levels in either direction. The top
     * level stays under 10,000 because each spiped process holds two descriptors per connection
     * and the descriptor limit here is 20,000.
     */
    readonly row: number;
    /** Connections opened and closed before the baseline is read. */
    readonly warmup: number;
    readonly openConcurrency: number;
    readonly maxMs: number;
  };
}

const MiB = 1024 * 1024;

export const FULL_PLAN: Plan = {
  churn: {
    concurrency: [1, 4, 16, 32, 64, 256],
    rows: [32, 256],
    messageBytes: 32,
    warmupMs: 300,
    maxMs: 3_000,
    maxOps: 200_000,
  },
  persistent: { connections: 32, messageBytes: 64, warmupMs: 300, maxMs: 3_000, maxOps: 2_000_000 },
  burst: { connections: 32, messages: 16, messageBytes: 64, warmupMs: 300, maxMs: 3_000, maxOps: 10_000_000 },
  bulk: { totalBytes: 256 * MiB, chunkBytes: 64 * 1024, warmupBytes: 16 * MiB, maxMs: 30_000 },
  idle: {
    levels: [500, 1_000, 2_000, 5_000, 9_000],
    row: 5_000,
    warmup: 200,
    openConcurrency: 64,
    maxMs: 60_000,
  },
};

/** A short smoke run: every workload and system, small bounds. */
export const QUICK_PLAN: Plan = {
  churn: { concurrency: [32], rows: [32], messageBytes: 32, warmupMs: 100, maxMs: 300, maxOps: 5_000 },
  persistent: { connections: 32, messageBytes: 64, warmupMs: 100, maxMs: 300, maxOps: 100_000 },
  burst: { connections: 32, messages: 16, messageBytes: 64, warmupMs: 100, maxMs: 300, maxOps: 500_000 },
  bulk: { totalBytes: 16 * MiB, chunkBytes: 64 * 1024, warmupBytes: 2 * MiB, maxMs: 10_000 },
  idle: { levels: [100, 200], row: 100, warmup: 20, openConcurrency: 32, maxMs: 10_000 },
};
