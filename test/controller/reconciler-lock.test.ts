import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { RECONCILER_LOCK_KEY } from '../../controller/reconciler/reconciler.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { createTestApi, type TestApi } from '../helpers/api.js';
import { seedImage } from '../helpers/hosts.js';

// Several controller replicas on one PostgreSQL: only the one holding the reconciler's advisory
// lock runs a pass; the others skip theirs. (Embedded PGlite serves a single process.)
const server = DB_TARGETS.find((t) => t.name === 'postgres')!;

describe.skipIf(server.skipReason !== '')('reconciler advisory lock on PostgreSQL', () => {
  let api: TestApi;
  let envId: string;
  const applied = async () =>
    (await api.db.selectFrom('environments').select(['applied_generation', 'spec_generation']).where('id', '=', envId).executeTakeFirstOrThrow());

  beforeAll(async () => {
    api = await createTestApi(server);
    await seedImage(api.db);
    // Nothing fits (no host) and it is queued: a pass only has to record the spec as applied.
    const res = await api.request('POST', '/api/v1/environments', {
      token: api.adminToken,
      body: { name: 'q', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30, queue: true },
    });
    envId = res.body.data.env_id;
  });
  afterAll(async () => api?.close());

  it('skips the pass while another replica holds the lock, and runs it after', async () => {
    const before = await applied();
    expect(before.applied_generation).toBeLessThan(before.spec_generation);
    const other = new pg.Client({ connectionString: api.database.url });
    await other.connect();
    try {
      await other.query('select pg_advisory_lock($1)', [RECONCILER_LOCK_KEY]);
      await api.services.reconciler.runOnce();
      expect(await applied()).toEqual(before);
      await other.query('select pg_advisory_unlock($1)', [RECONCILER_LOCK_KEY]);
    } finally {
      await other.end();
    }
    await api.services.reconciler.runOnce();
    const after = await applied();
    expect(after.applied_generation).toBe(after.spec_generation);
  });
});
