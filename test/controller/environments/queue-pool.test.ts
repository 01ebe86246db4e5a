import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createLogger } from '../../../common/logger.js';
import { openDatabase, type DatabaseHandle } from '../../../controller/db/database.js';
import { CapacityIndex } from '../../../controller/environments/capacity-index.js';
import { EnvironmentsService } from '../../../controller/environments/environments.service.js';
import { QueuePlacer } from '../../../controller/environments/queue.js';
import { WakeSignal } from '../../../controller/environments/wake.js';
import { createTestDatabase, DB_TARGETS, type TestDatabase } from '../../helpers/databases.js';
import { gpus, insertHost } from '../hosts/seed.js';

// The queue is placed by the reconciler on its own pool (issue 12 item 3), and its pass's read of
// every host refreshes this process's capacity index: that read must go through the reconciler's
// pool too, or a queue pass waits for (and, past the connect timeout, fails on) the API pool that
// creates hold, and queued environments wait while room is free. Here the API pool's only
// connection is held for the whole pass.

const logger = createLogger({ name: 'test', level: 'silent' });
const GIB = 2 ** 30;
const PORTS = { ssh: { from: 31000, to: 31099 }, jupyter: { from: 31100, to: 31199 } };

describe.each(DB_TARGETS.filter((t) => t.name === 'postgres'))('queue pool on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('the API pool busy', () => {
    let t: TestDatabase;
    let api: DatabaseHandle;

    beforeAll(async () => {
      t = await createTestDatabase(target);
      api = await openDatabase({ databaseUrl: t.url, dataDir: 'unused', poolSize: 1, connectTimeoutMs: 300 });
      await insertHost(t.db, 'host-q', { gpus: gpus(1) });
      await t.db.insertInto('users').values({ name: 'quinn' }).execute();
      await t.db.insertInto('images').values({ name: 'img', docker_ref: 'remotegpu/devbox:1' }).execute();
    });
    afterAll(async () => {
      await api?.close();
      await t?.close();
    });

    it('places a queued environment with only the reconciler pool free', async () => {
      const index = new CapacityIndex(api.db, 60_000);
      const wake = new WakeSignal();
      const user = await t.db.selectFrom('users').select('id').where('name', '=', 'quinn').executeTakeFirstOrThrow();
      const principal = { userId: user.id, name: 'quinn', role: 'user' as const };
      const environments = new EnvironmentsService({ db: api.db, ports: PORTS, logger, wake, index });
      const input = { image: 'img', cpu: 1, memory: GIB, gpu: 1, storage: GIB, queue: true };
      const first = await environments.create(principal, { ...input, name: 'first' });
      const second = await environments.create(principal, { ...input, name: 'second' });
      expect([first.env.status, second.env.status]).toEqual(['creating', 'pending']);

      // The first one's GPU is released (the reconciler stopped it, on its own pool).
      await t.db.deleteFrom('gpu_reservations').where('env_id', '=', first.env.id).execute();
      await t.db.updateTable('environments').set({ desired_state: 'stopped', status: 'stopped', reserved_cpu: 0, reserved_memory_bytes: 0 }).where('id', '=', first.env.id).execute();

      const queue = new QueuePlacer({ db: t.db, logger, ports: PORTS, wake, index });
      const client = await (api.pool as pg.Pool).connect();
      try {
        const pass = await queue.pass().then(
          (r) => r,
          (err: unknown) => (err instanceof Error ? err.message : String(err)),
        );
        expect(pass).toEqual({ placed: 1, scanned: 1 });
      } finally {
        client.release();
      }
      const row = await t.db.selectFrom('environments').select(['status', 'host_id']).where('id', '=', second.env.id).executeTakeFirstOrThrow();
      expect(row).toEqual({ status: 'creating', host_id: 'host-q' });
      // The pass's read refreshed the index: it sees the GPU taken again.
      expect(index.get('host-q')?.gpus.filter((g) => g.allocated)).toHaveLength(1);
    });
  });
});
