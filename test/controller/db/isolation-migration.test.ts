import { describe, expect, it } from 'vitest';
import { DB_TARGETS, createTestDatabase } from '../../helpers/databases.js';
import { migrateToLatest, migrator } from '../../../controller/db/migrate.js';
import { ISOLATION_MESSAGE } from '../../../controller/db/migrations/0006_isolation_recreate.js';
import type { NewEnvironment } from '../../../controller/db/schema.js';

// Migration 0006: environments created before tenant isolation would keep their unconfined
// containers (Docker's default capabilities, the default bridge, read-write dataset mounts) until
// their spec changed, since the reconciler only applies environments whose spec_generation is
// ahead of applied_generation. The migration moves every live, placed environment on once, with an
// event saying why; deleted and never-placed environments are left alone.

describe.each(DB_TARGETS)('migration 0006 on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('isolation recreate', () => {
    it('moves the generation of every placed environment that is not deleted on, with one event each', async () => {
      const t = await createTestDatabase(target);
      try {
        const down = await migrator(t.db).migrateTo('0005_storage_usage');
        expect(down.error).toBeUndefined();
        expect(down.results?.filter((r) => r.status !== 'Success')).toEqual([]);
        expect(down.results?.map((r) => r.migrationName).at(-1)).toBe('0006_isolation_recreate');

        // Rows as a controller before isolation wrote them: settled environments (applied = spec).
        const user = await t.db.insertInto('users').values({ name: 'alice' }).returning('id').executeTakeFirstOrThrow();
        const image = await t.db.insertInto('images').values({ name: 'img', docker_ref: 'img', jupyter_port: null }).returning('id').executeTakeFirstOrThrow();
        await t.db.insertInto('hosts').values({ id: 'host-a', hostname: 'a', public_address: '127.0.0.1', agent_address: '127.0.0.1:1' }).execute();
        const rows = [
          { id: 'env-running0001', desired_state: 'running', status: 'running', host_id: 'host-a', generation: 3 },
          { id: 'env-stopped0001', desired_state: 'stopped', status: 'stopped', host_id: 'host-a', generation: 5 },
          { id: 'env-errored0001', desired_state: 'running', status: 'error', host_id: 'host-a', generation: 2 },
          { id: 'env-deleted0001', desired_state: 'deleted', status: 'deleting', host_id: 'host-a', generation: 7 },
          { id: 'env-pending0001', desired_state: 'running', status: 'pending', host_id: null, generation: 1 },
        ] as const;
        for (const r of rows) {
          await t.db
            .insertInto('environments')
            .values({
              id: r.id,
              owner_id: user.id,
              workspace_id: null,
              name: r.id,
              image_id: image.id,
              image: 'img',
              cpu: 1,
              memory_bytes: 2 ** 30,
              storage_bytes: 2 ** 30,
              gpu_model: null,
              desired_state: r.desired_state,
              status: r.status,
              host_id: r.host_id,
              ssh_port: null,
              jupyter_port: null,
              jupyter_token: 't',
              idempotency_key: null,
              spec_generation: r.generation,
              applied_generation: r.host_id ? r.generation : 0,
              deleted_at: r.desired_state === 'deleted' ? new Date() : null,
            } as NewEnvironment) // the columns of that version (no image copy yet)
            .execute();
        }
        await t.db.insertInto('environment_events').values({ env_id: 'env-running0001', source: 'platform', kind: 'created', message: 'earlier' }).execute();

        expect((await migrateToLatest(t.db))[0]).toBe('0006_isolation_recreate');

        const after = await t.db.selectFrom('environments').select(['id', 'spec_generation', 'applied_generation']).orderBy('id').execute();
        expect(after).toEqual([
          { id: 'env-deleted0001', spec_generation: 7, applied_generation: 7 },
          { id: 'env-errored0001', spec_generation: 3, applied_generation: 2 },
          { id: 'env-pending0001', spec_generation: 1, applied_generation: 0 },
          { id: 'env-running0001', spec_generation: 4, applied_generation: 3 },
          { id: 'env-stopped0001', spec_generation: 6, applied_generation: 5 },
        ]);
        const events = await t.db.selectFrom('environment_events').select(['env_id', 'source', 'kind', 'message']).where('message', '!=', 'earlier').orderBy('env_id').execute();
        expect(events).toEqual(
          ['env-errored0001', 'env-running0001', 'env-stopped0001'].map((env_id) => ({ env_id, source: 'platform', kind: 'isolation_recreate', message: ISOLATION_MESSAGE })),
        );
        expect(ISOLATION_MESSAGE).toBe('Recreated at the next reconcile to apply tenant isolation (capabilities, own network, read-only datasets)');
        // Earlier history stays.
        expect(await t.db.selectFrom('environment_events').select('kind').where('message', '=', 'earlier').execute()).toEqual([{ kind: 'created' }]);

        // Applied once: the next controller start migrates nothing and moves nothing again.
        expect(await migrateToLatest(t.db)).toEqual([]);
        expect(await t.db.selectFrom('environments').select('spec_generation').where('id', '=', 'env-running0001').executeTakeFirstOrThrow()).toEqual({ spec_generation: 4 });
      } finally {
        await t.close();
      }
    });
  });
});
