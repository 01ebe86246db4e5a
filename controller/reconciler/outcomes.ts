import type { Db } from '../db/database.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { recordOutcomes, type OutcomeEntry } from '../environments/environment-outcomes.js';

/** Outcomes written in one transaction at most. */
const MAX_BATCH = 500;

interface Waiting {
  readonly entry: OutcomeEntry;
  readonly resolve: (recorded: boolean) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Group commit of the reconciler's outcomes: `record` resolves once its outcome is committed (true)
 * or found overtaken by a newer generation (false), exactly as `recordOutcome` in its own
 * transaction would. While one batch is being written, the outcomes that arrive wait and go
 * together in the next (one transaction, a few statements, whatever their number): no delay when
 * calls end one by one, far fewer round trips when many end at once. A batch that fails for any
 * reason but the database being away is written again one outcome per transaction, so one bad
 * row fails only its own caller.
 */
export class OutcomeWriter {
  private readonly queue: Waiting[] = [];
  private writing = false;

  constructor(private readonly db: Db) {}

  record(entry: OutcomeEntry): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.writing || this.queue.length === 0) return;
    // Distinct environments per batch (a second outcome of one waits for the next).
    const seen = new Set<string>();
    const batch: Waiting[] = [];
    for (let i = 0; i < this.queue.length && batch.length < MAX_BATCH; ) {
      const w = this.queue[i]!;
      if (seen.has(w.entry.envId)) {
        i++;
        continue;
      }
      seen.add(w.entry.envId);
      batch.push(w);
      this.queue.splice(i, 1);
    }
    this.writing = true;
    void this.write(batch).finally(() => {
      this.writing = false;
      this.pump();
    });
  }

  private async write(batch: readonly Waiting[]): Promise<void> {
    try {
      const recorded = await this.db.transaction().execute((trx) => recordOutcomes(trx, batch.map((w) => w.entry)));
      for (const w of batch) w.resolve(recorded.has(w.entry.envId));
    } catch (err) {
      if (batch.length === 1 || isDatabaseUnavailable(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      for (const w of batch) await this.write([w]);
    }
  }
}
