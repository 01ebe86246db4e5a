import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestApi, seedEnvironment, type TestApi } from '../../helpers/api.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { waitUntil } from '../../helpers/rest.js';
import { insertHost } from '../hosts/seed.js';

// A request that PostgreSQL rolled back as one side of a deadlock (40P01) or a serialization
// failure (40001) changed nothing and may simply be sent again: it is answered 503 with
// Retry-After, like a database outage, not 500 "internal error" (a bug). Every path takes its locks
// in one order (host, then owner, workspace and quotas, then environments in id order); here a
// second session takes them the other way round on purpose, so PostgreSQL must fail the start.

describe.each(DB_TARGETS.filter((t) => t.name === 'postgres'))('a deadlock answered on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('start against a session holding its environment', () => {
    let api: TestApi;

    beforeAll(async () => {
      api = await createTestApi(target);
    });
    afterAll(async () => {
      await api?.close();
    });

    it('answers 503 with Retry-After, and the environment is as it was', async () => {
      const { db } = api;
      const user = await api.createUser('dora');
      const image = await db.insertInto('images').values({ name: 'img-d', docker_ref: 'remotegpu/devbox:1' }).returning('id').executeTakeFirstOrThrow();
      await insertHost(db, 'host-d');
      const envId = await seedEnvironment(db, { ownerId: user.id, imageId: image.id, desiredState: 'stopped', status: 'stopped' });
      await db.updateTable('environments').set({ host_id: 'host-d', reserved_storage_bytes: 2 ** 30, ssh_port: 31000 }).where('id', '=', envId).execute();

      const other = new pg.Client({ connectionString: api.database.url });
      await other.connect();
      try {
        await other.query('begin');
        await other.query('select id from environments where id = $1 for update', [envId]);
        const start = api.request('POST', `/api/v1/environments/${envId}/start`, { token: user.token });
        // The start holds the host's row and waits for the environment's.
        await waitUntil('the start waits for a lock', async () => {
          const r = await other.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`);
          return r.rows[0].n > 0;
        }, 10_000, undefined, 20);
        const hostLock = other.query(`select id from hosts where id = 'host-d' for update`).then(
          () => 'locked',
          (err: unknown) => err,
        );
        const res = await start;
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).not.toBeNull();
        expect(res.body).toMatchObject({ code: 50301, message: expect.stringContaining('retry') });
        expect(await hostLock).toBe('locked');
        await other.query('rollback');
      } finally {
        await other.end();
      }
      const row = await db.selectFrom('environments').select(['status', 'desired_state']).where('id', '=', envId).executeTakeFirstOrThrow();
      expect(row).toEqual({ status: 'stopped', desired_state: 'stopped' });
    });
  });
});
