import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createLogger } from '../../../common/logger.js';
import { openDatabase, type DatabaseHandle } from '../../../controller/db/database.js';
import { isDatabaseUnavailable } from '../../../controller/db/errors.js';
import { EnvironmentsService } from '../../../controller/environments/environments.service.js';
import { WakeSignal } from '../../../controller/environments/wake.js';
import { createTestDatabase, DB_TARGETS, type TestDatabase } from '../../helpers/databases.js';
import { gpus, insertHost } from '../hosts/seed.js';

// A create whose transaction committed is answered with its environment (issue 12: the fleet bench
// saw creates answered 503 although their environment had been created). The answer is read in
// the create's own transaction: no statement after the commit waits for a connection of a busy
// pool and fails the request as "database unavailable" once the environment exists. Here the
// pool has one connection and something else takes it the moment the create commits (the wake
// signal, raised right after the commit, grabs it for longer than the pool's connect timeout).

const logger = createLogger({ name: 'test', level: 'silent' });
const GIB = 2 ** 30;
const PORTS = { ssh: { from: 31000, to: 31099 }, jupyter: { from: 31100, to: 31199 } };

describe.each(DB_TARGETS.filter((t) => t.name === 'postgres'))('create answer on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('a busy pool after the commit', () => {
    let t: TestDatabase;
    let small: DatabaseHandle;

    beforeAll(async () => {
      t = await createTestDatabase(target);
      small = await openDatabase({ databaseUrl: t.url, dataDir: 'unused', poolSize: 1, connectTimeoutMs: 300 });
      await insertHost(t.db, 'host-a', { gpus: gpus(2) });
      await t.db.insertInto('users').values({ name: 'cara' }).execute();
      await t.db.insertInto('images').values({ name: 'img', docker_ref: 'remotegpu/devbox:1' }).execute();
    });
    afterAll(async () => {
      await small?.close();
      await t?.close();
    });

    it('answers the environment it created, however busy the pool is once it committed', async () => {
      const pool = small.pool as pg.Pool;
      const wake = new WakeSignal();
      let held: Promise<void> | undefined;
      wake.listen(() => {
        held ??= pool.connect().then(async (client) => {
          await new Promise((r) => setTimeout(r, 1_000));
          client.release();
        });
      });
      const user = await t.db.selectFrom('users').select('id').where('name', '=', 'cara').executeTakeFirstOrThrow();
      const service = new EnvironmentsService({ db: small.db, ports: PORTS, logger, wake });
      const principal = { userId: user.id, name: 'cara', role: 'user' as const };
      const outcome = await service.create(principal, { name: 'busy', image: 'img', cpu: 1, memory: GIB, gpu: 1, storage: GIB }).then(
        (r) => r,
        (err: unknown) => (isDatabaseUnavailable(err) ? 'answered 503' : err),
      );
      await held;
      const rows = await t.db.selectFrom('environments').select(['id', 'host_id', 'status']).where('name', '=', 'busy').execute();
      expect(rows).toHaveLength(1);
      expect(outcome).toMatchObject({ replayed: false, env: { id: rows[0]!.id, host_id: 'host-a', status: 'creating', public_address: expect.any(String) } });
    });
  });
});
