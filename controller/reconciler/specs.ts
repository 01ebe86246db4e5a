import type { Db } from '../db/database.js';
import { buildAgentSpecs } from '../environments/spec.js';
import type { AgentEnvSpec } from '../hosts/types.js';

/** Specs read in one go at most. */
const MAX_BATCH = 500;

interface Waiter {
  readonly resolve: (spec: AgentEnvSpec) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The agent specs of the reconciler's calls, read when each call starts (as buildAgentSpec would),
 * but together: the specs asked for while one read is in flight are read in the next, in four
 * queries whatever their number, instead of four queries per call.
 */
export class SpecReader {
  private pending = new Map<string, Waiter[]>();
  private reading = false;

  constructor(private readonly db: Db) {}

  read(envId: string): Promise<AgentEnvSpec> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(envId);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(envId, [{ resolve, reject }]);
      this.pump();
    });
  }

  private pump(): void {
    if (this.reading || this.pending.size === 0) return;
    const batch = new Map([...this.pending].slice(0, MAX_BATCH));
    for (const id of batch.keys()) this.pending.delete(id);
    this.reading = true;
    void this.fetch(batch).finally(() => {
      this.reading = false;
      this.pump();
    });
  }

  private async fetch(batch: ReadonlyMap<string, readonly Waiter[]>): Promise<void> {
    try {
      const specs = await buildAgentSpecs(this.db, [...batch.keys()]);
      for (const [id, waiters] of batch) {
        const spec = specs.get(id);
        for (const w of waiters) {
          if (spec) w.resolve(spec);
          else w.reject(new Error(`environment ${id} not found`));
        }
      }
    } catch (err) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
    }
  }
}
