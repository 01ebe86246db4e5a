import type { EnvStatus } from '../db/schema.js';

/** One environment a pass works on (a row of listBehind). */
export interface WorkItem {
  id: string;
  host_id: string | null;
  desired_state: 'running' | 'stopped' | 'deleted';
  status: EnvStatus;
  spec_generation: number;
  /** When the environment was created (create→running latency). */
  created_at: Date;
}

/** How one environment's attempt ended: settled (or handed to a newer generation), or put off. */
export type Attempt = 'done' | 'unreachable' | 'deferred';

/**
 * How the reconciler spreads its work (REMOTEGPU_RECONCILE_BATCH, _PARALLEL, _HOST_PARALLEL). With
 * thousands of hosts each with one new environment, `parallel` is what bounds environments applied
 * per second (calls in flight / call latency); `batch` bounds how many environments one listing takes
 * (passes follow each other at once while a full list leaves more behind).
 */
export interface ReconcilerLimits {
  /** How many environments one pass lists at most (the rest wait for the next pass, which follows at once). */
  readonly batch: number;
  /** Agent calls in flight at once, over every host and every pass. */
  readonly parallel: number;
  /** Agent calls in flight at once to one host. */
  readonly hostParallel: number;
}

export const DEFAULT_RECONCILER_LIMITS: ReconcilerLimits = { batch: 200, parallel: 64, hostParallel: 8 };
