import { afterEach, describe, expect, it } from 'vitest';
import { migrateToLatest, migrator } from '../../../controller/db/migrate.js';
import { DUPLICATE_GPU_MESSAGE } from '../../../controller/db/migrations/0010_status_detail_machine_id.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../../helpers/databases.js';
import { insertHost, placeEnvironment } from '../hosts/seed.js';

// Migration 0010 makes a GPU UUID reservable once across hosts. A database where a machine that
// registered again under a new host id had its GPUs reserved twice keeps the oldest reservation
// and tells the environment that lost its duplicate.

describe.each(DB_TARGETS)('migration 0010 (GPU UUIDs unique across hosts) on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('duplicate reservations', () => {
    let t: TestDatabase | undefined;
    afterEach(async () => t?.close());

    it('keeps the oldest reservation of a UUID reserved under two host ids, with an event on the other environment', async () => {
      t = await createTestDatabase(target);
      const down = await migrator(t.db).migrateTo('0008_env_image_copy_and_backoff');
      expect(down.error).toBeUndefined();
      const [uuid] = await insertHost(t.db, 'host-old', { gpus: [{}] });
      await insertHost(t.db, 'host-new');
      await t.db.insertInto('host_gpus').values({ host_id: 'host-new', uuid: uuid!, index: 0, model: 'NVIDIA H100 80GB HBM3' }).execute();
      await placeEnvironment(t.db, 'env-old', 'host-old', { gpuUuids: [uuid!] });
      await t.db.updateTable('gpu_reservations').set({ created_at: new Date(Date.now() - 60_000) }).execute();
      await placeEnvironment(t.db, 'env-new', 'host-new', { gpuUuids: [uuid!] });

      expect(await migrateToLatest(t.db)).toContain('0010_status_detail_machine_id');
      expect(await t.db.selectFrom('gpu_reservations').select(['host_id', 'env_id']).execute()).toEqual([{ host_id: 'host-old', env_id: 'env-old' }]);
      const events = await t.db.selectFrom('environment_events').select(['env_id', 'kind', 'message']).where('kind', '=', 'gpu_conflict').execute();
      expect(events).toEqual([{ env_id: 'env-new', kind: 'gpu_conflict', message: DUPLICATE_GPU_MESSAGE }]);
    });
  });
});
