import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createLogger } from '../../common/logger.js';
import { WakeSignal } from '../../controller/environments/wake.js';
import type { QueuePlacer } from '../../controller/environments/queue.js';
import type { AgentPool } from '../../controller/hosts/types.js';
import { PassLock } from '../../controller/reconciler/pass-lock.js';
import { Reconciler } from '../../controller/reconciler/reconciler.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { insertHost, placeEnvironment } from './hosts/seed.js';

// Faults in the reconciler's own bookkeeping (found by a review): a failing write in one call's
// error path must not end the pass while other calls still run; a kick made as a pass ends must
// lead to a pass; a pass arriving while the PostgreSQL lock is being let go must run, not vanish.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const logger = createLogger({ name: 'reconciler-faults', level: 'silent' });
const noQueue = { placeQueued: async () => {} } as unknown as QueuePlacer;
const noAgents = {} as AgentPool;

/** The per-environment work of a pass, replaced to inject faults (the agent calls themselves are not under test). */
type ReconcileOne = (item: { id: string }) => Promise<'done'>;

describe.each(DB_TARGETS)('reconciler faults on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('passes', () => {
    let t: TestDatabase | undefined;
    let reconciler: Reconciler | undefined;
    afterEach(async () => {
      await reconciler?.stop();
      await t?.close();
    });

    it('a call that fails in its error path ends the pass only after the host\'s other calls did (no second call on the same environment)', async () => {
      t = await createTestDatabase(target);
      await insertHost(t.db, 'host-a');
      await placeEnvironment(t.db, 'env-bad', 'host-a');
      await placeEnvironment(t.db, 'env-slow', 'host-a');
      reconciler = new Reconciler({ db: t.db, dbKind: target.name, agents: noAgents, queue: noQueue, wake: new WakeSignal(), logger, intervalMs: 60_000 });
      const inFlight = new Map<string, number>();
      let most = 0;
      let slowRunning = 0;
      (reconciler as unknown as { reconcileOne: ReconcileOne }).reconcileOne = async (item) => {
        inFlight.set(item.id, (inFlight.get(item.id) ?? 0) + 1);
        most = Math.max(most, inFlight.get(item.id)!);
        try {
          if (item.id === 'env-bad') throw new Error('database connection lost while recording the outcome');
          slowRunning++;
          await sleep(300); // the agent call of env-slow
          return 'done';
        } finally {
          if (item.id === 'env-slow') slowRunning--;
          inFlight.set(item.id, inFlight.get(item.id)! - 1);
        }
      };
      await expect(reconciler.runOnce()).rejects.toThrow(/connection lost/);
      expect(slowRunning).toBe(0); // the pass ended only once env-slow's call was over
      await reconciler.runOnce().catch(() => {});
      expect(most).toBe(1);
    });

    it('a kick made while a timer pass finishes (room freed by its last call) leads to another pass', async () => {
      t = await createTestDatabase(target);
      reconciler = new Reconciler({ db: t.db, dbKind: target.name, agents: noAgents, queue: noQueue, wake: new WakeSignal(), logger, intervalMs: 60_000 });
      const starts: number[] = [];
      const self = reconciler as unknown as { pass: () => Promise<void>; listing: unknown; kick: () => void };
      self.pass = async () => {
        starts.push(Date.now());
        self.listing = undefined; // listed its work; its calls run
        await sleep(50);
        if (starts.length === 1) self.kick(); // its last call freed room
      };
      reconciler.start();
      for (let i = 0; i < 40 && starts.length < 2; i++) await sleep(50);
      expect(starts.length).toBeGreaterThanOrEqual(2); // within 2 s, not after the 60 s interval
    });
  });
});

describe.skipIf(DB_TARGETS[1]!.skipReason !== '')('reconciler lock on postgres', () => {
  let t: TestDatabase | undefined;
  afterEach(async () => t?.close());

  it('a pass that arrives while the lock is being let go waits and runs', async () => {
    t = await createTestDatabase(DB_TARGETS[1]!);
    const lock = new PassLock(t.db, 'postgres');
    // Idle pooled connections, so that the second pass gets one at once (inside the unlock's round trip).
    await Promise.all([1, 2, 3].map(() => sql`select pg_sleep(0.05)`.execute(t!.db)));
    let finish!: () => void;
    let held = false;
    const first = lock.run(
      () =>
        new Promise<void>((resolve) => {
          held = true;
          finish = resolve;
        }),
    );
    while (!held) await sleep(5);
    finish();
    // The first pass ended: its hold is let go (the unlock query is on its way).
    const state = lock as unknown as { lease: unknown };
    while (state.lease !== undefined) await new Promise((r) => setImmediate(r));
    let secondRan = false;
    await lock.run(async () => {
      secondRan = true;
    });
    await first;
    expect(secondRan).toBe(true);
  });
});
