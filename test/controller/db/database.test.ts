import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../../helpers/databases.js';
import { migrateToLatest } from '../../../controller/db/migrate.js';

describe.each(DB_TARGETS)('database on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('schema and reservations', () => {
    let t: TestDatabase;

    beforeAll(async () => {
      t = await createTestDatabase(target);
      const user = await t.db.insertInto('users').values({ name: 'alice' }).returning('id').executeTakeFirstOrThrow();
      const image = await t.db
        .insertInto('images')
        .values({ name: 'ubuntu20-pytorch:2.0', docker_ref: 'remotegpu/devbox:1', jupyter_port: 8888 })
        .returning('id')
        .executeTakeFirstOrThrow();
      await t.db
        .insertInto('hosts')
        .values({ id: 'host-a', hostname: 'a', public_address: '127.0.0.1', agent_address: '127.0.0.1:9091' })
        .execute();
      for (const id of ['env-1', 'env-2']) {
        await t.db
          .insertInto('environments')
          .values({
            id,
            owner_id: user.id,
            workspace_id: null,
            name: id,
            image_id: image.id,
            image: 'ubuntu20-pytorch:2.0',
            image_ref: 'remotegpu/devbox:1',
            image_ssh_port: 22,
            image_jupyter_port: 8888,
            image_data_path: '/root/workspace',
            cpu: 1,
            memory_bytes: 2 ** 34,
            storage_bytes: 100 * 2 ** 30,
            gpu_model: null,
            desired_state: 'running',
            status: 'creating',
            host_id: 'host-a',
            ssh_port: null,
            jupyter_port: null,
            jupyter_token: 't',
            idempotency_key: null,
          })
          .execute();
      }
    });

    afterAll(async () => {
      await t?.close();
    });

    it('migrates to the latest version, and again is a no-op', async () => {
      expect(await migrateToLatest(t.db)).toEqual([]);
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables where table_schema = 'public' order by table_name`.execute(t.db);
      expect(tables.rows.map((r) => r.table_name)).toEqual(
        expect.arrayContaining([
          'users',
          'api_tokens',
          'workspaces',
          'workspace_members',
          'ssh_keys',
          'images',
          'hosts',
          'host_gpus',
          'environments',
          'gpu_reservations',
          'port_reservations',
          'datasets',
          'environment_mounts',
          'environment_events',
        ]),
      );
    });

    it('returns bigint columns and counts as exact numbers', async () => {
      const row = await t.db
        .selectFrom('environments')
        .select(['memory_bytes', 'storage_bytes'])
        .where('id', '=', 'env-1')
        .executeTakeFirstOrThrow();
      expect(row.memory_bytes).toBe(17179869184);
      expect(row.storage_bytes).toBe(107374182400);
      const count = await t.db.selectFrom('environments').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
      expect(count.n).toBe(2);
    });

    it('lets only one of two concurrent transactions reserve the same GPU', async () => {
      const attempt = (envId: string) =>
        t.db.transaction().execute(async (trx) => {
          await trx.insertInto('gpu_reservations').values({ host_id: 'host-a', gpu_uuid: 'GPU-1', env_id: envId }).execute();
          // Hold the transaction open so both are in flight at once on a server.
          await sql`select pg_sleep(0.05)`.execute(trx);
        });
      const results = await Promise.allSettled([attempt('env-1'), attempt('env-2')]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(String(rejected.reason?.message ?? rejected.reason)).toMatch(/duplicate key|unique/i);
      const rows = await t.db.selectFrom('gpu_reservations').selectAll().where('gpu_uuid', '=', 'GPU-1').execute();
      expect(rows).toHaveLength(1);
    });

    it('lets only one of two concurrent transactions reserve the same port', async () => {
      const attempt = (envId: string) =>
        t.db.transaction().execute(async (trx) => {
          await trx
            .insertInto('port_reservations')
            .values({ host_id: 'host-a', port: 30001, env_id: envId, purpose: 'ssh' })
            .execute();
          await sql`select pg_sleep(0.05)`.execute(trx);
        });
      const results = await Promise.allSettled([attempt('env-1'), attempt('env-2')]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rows = await t.db.selectFrom('port_reservations').selectAll().where('port', '=', 30001).execute();
      expect(rows).toHaveLength(1);
    });

    it('rolls back everything a failed transaction wrote', async () => {
      await expect(
        t.db.transaction().execute(async (trx) => {
          await trx.insertInto('port_reservations').values({ host_id: 'host-a', port: 30002, env_id: 'env-1', purpose: 'ssh' }).execute();
          await trx.insertInto('port_reservations').values({ host_id: 'host-a', port: 30001, env_id: 'env-1', purpose: 'ssh' }).execute();
        }),
      ).rejects.toThrow();
      const rows = await t.db.selectFrom('port_reservations').selectAll().where('port', '=', 30002).execute();
      expect(rows).toHaveLength(0);
    });
  });
});
