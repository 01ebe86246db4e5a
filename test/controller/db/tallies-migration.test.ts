import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { migrateToLatest, migrator } from '../../../controller/db/migrate.js';
import { bulkEnvironments } from '../../../bench/seed-environments.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../../helpers/databases.js';

// Migration 0016 counts the environments already there into environment_tallies, and from then on
// its trigger keeps the sums equal to a count of the rows, whoever writes them (here: plain SQL).

const counts = (t: TestDatabase) =>
  sql<{ owner_id: number; workspace_id: number | null; status: string; n: number }>`
    select owner_id, workspace_id, status, count(*)::int as n from environments where desired_state <> 'deleted'
    group by 1, 2, 3 order by 1, 2 nulls first, 3`.execute(t.db);
const sums = (t: TestDatabase) =>
  sql<{ owner_id: number; workspace_id: number | null; status: string; n: number }>`
    select owner_id, workspace_id, status, sum(n)::int as n from environment_tallies
    group by 1, 2, 3 having sum(n) <> 0 order by 1, 2 nulls first, 3`.execute(t.db);

describe.each(DB_TARGETS)('migration 0016 (environment tallies) on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('tallies', () => {
    let t: TestDatabase | undefined;
    afterEach(async () => t?.close());

    it('counts existing environments, then follows inserts, updates and deletes made in plain SQL; down and up again', async () => {
      t = await createTestDatabase(target);
      expect((await migrator(t.db).migrateTo('0013_host_runtime')).error).toBeUndefined();
      const users = await sql<{ id: number }>`insert into users (name, role) select 'u' || i, 'user' from generate_series(1, 5) i returning id`.execute(t.db);
      const ownerIds = users.rows.map((r) => r.id);
      const ws = await t.db.insertInto('workspaces').values({ name: 'w', owner_id: ownerIds[0]! }).returning('id').executeTakeFirstOrThrow();
      const image = await t.db.insertInto('images').values({ name: 'i', docker_ref: 'x' }).returning('id').executeTakeFirstOrThrow();
      await bulkEnvironments(t.db, { count: 300, ownerIds, workspaceIds: [ws.id], workspaceEvery: 4, imageId: image.id, tieEvery: 1, prefix: 'env-m' });

      expect(await migrateToLatest(t.db)).toContain('0016_list_reads');
      expect((await sums(t)).rows).toEqual((await counts(t)).rows);

      await bulkEnvironments(t.db, { count: 50, ownerIds, workspaceIds: [], workspaceEvery: 1, imageId: image.id, tieEvery: 1, prefix: 'env-n' });
      await sql`update environments set status = 'lost' where status = 'running' and owner_id = ${ownerIds[1]!}`.execute(t.db);
      await sql`update environments set desired_state = 'deleted', status = 'deleting' where id like 'env-n%' and status = 'stopped'`.execute(t.db);
      await sql`update environments set owner_id = ${ownerIds[0]!}, workspace_id = null where owner_id = ${ownerIds[2]!} and workspace_id is not null`.execute(t.db);
      await sql`delete from environments where id like 'env-m%' and status = 'error'`.execute(t.db);
      expect((await sums(t)).rows).toEqual((await counts(t)).rows);

      expect((await migrator(t.db).migrateTo('0013_host_runtime')).error).toBeUndefined();
      expect(await migrateToLatest(t.db)).toContain('0016_list_reads');
      expect((await sums(t)).rows).toEqual((await counts(t)).rows);
    });
  });
});
