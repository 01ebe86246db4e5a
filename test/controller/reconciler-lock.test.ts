import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { RECONCILER_LOCK_KEY } from '../../controller/reconciler/reconciler.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { createTestApi, serveControlPlane, type ServedControlPlane, type TestApi } from '../helpers/api.js';
import { seedImage } from '../helpers/hosts.js';
import { waitUntil } from '../helpers/rest.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';

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

// The reconciler's lock session dies (a PostgreSQL restart or an operator ends it) while its pass
// waits on an agent that does not answer: that session's connection is checked out of the pool,
// and its 'error' used to crash the process (57P01). Now the process goes on, the next pass finds
// the hold lost and never runs under it again: it takes the lock anew (skipped while another
// replica took it meanwhile).
describe.skipIf(server.skipReason !== '')('reconciler lock session lost on PostgreSQL', () => {
  let api: TestApi;
  let controlPlane: ServedControlPlane;
  let hung: TestAgent;
  let good: TestAgent;
  const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
  const status = async (id: string) => (await api.db.selectFrom('environments').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;
  const create = async (name: string, hostId: string) => {
    const res = await admin('POST', '/api/v1/environments', { name, image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
    expect(res.status).toBe(201);
    expect(res.body.data.host_id).toBe(hostId);
    return res.body.data.env_id as string;
  };
  /** Whether another replica could take the reconciler lock now. */
  const lockFree = async () => {
    const other = new pg.Client({ connectionString: api.database.url });
    await other.connect();
    try {
      const got = await other.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [RECONCILER_LOCK_KEY]);
      if (got.rows[0]!.ok) await other.query('select pg_advisory_unlock($1)', [RECONCILER_LOCK_KEY]);
      return got.rows[0]!.ok;
    } finally {
      await other.end();
    }
  };

  beforeAll(async () => {
    api = await createTestApi(server, { env: { REMOTEGPU_AGENT_TIMEOUT_MS: '5000' } });
    controlPlane = await serveControlPlane(api);
    hung = await startTestAgent({ ...controlPlane.agentOptions, hostname: 'hung' });
    good = await startTestAgent({ ...controlPlane.agentOptions, hostname: 'good' });
    await seedImage(api.db, 'img:1', 'img:1');
  });
  afterAll(async () => {
    await hung?.close();
    await good?.close();
    await controlPlane?.close();
    await api?.close();
  });

  it('survives its lock session being terminated mid-pass and takes the lock anew', async () => {
    hung.setFailure('apply', 'hang');
    expect((await admin('POST', `/api/v1/admin/hosts/${good.hostId}/cordon`)).status).toBe(200);
    const waiting = await create('waiting', hung.hostId);
    expect((await admin('POST', `/api/v1/admin/hosts/${good.hostId}/uncordon`)).status).toBe(200);
    expect((await admin('POST', `/api/v1/admin/hosts/${hung.hostId}/cordon`)).status).toBe(200);
    const first = api.services.reconciler.runOnce();
    await waitUntil('the pass to call the hung agent', () => hung.calls.apply >= 1, 10_000, undefined, 20);
    expect(await lockFree()).toBe(false);

    // The session holding the lock is terminated (as a fast shutdown does to every session).
    const killer = new pg.Client({ connectionString: api.database.url });
    await killer.connect();
    try {
      const ended = await killer.query<{ ok: boolean }>(
        `select pg_terminate_backend(pid) as ok from pg_locks where locktype = 'advisory' and objid = $1 and database = (select oid from pg_database where datname = current_database())`,
        [RECONCILER_LOCK_KEY],
      );
      expect(ended.rows.map((r) => r.ok)).toEqual([true]);
    } finally {
      await killer.end();
    }
    await waitUntil('the lock to be free on the server', lockFree, 10_000, undefined, 20);

    // A pass meanwhile still runs (it may join the hold once, and finds it lost).
    const during = await create('during', good.hostId);
    await api.services.reconciler.runOnce();
    expect(await status(during)).toBe('running');

    // Another replica takes the lock now: this process must not run passes under its lost hold.
    const other = new pg.Client({ connectionString: api.database.url });
    await other.connect();
    try {
      await other.query('select pg_advisory_lock($1)', [RECONCILER_LOCK_KEY]);
      const skipped = await create('skipped', good.hostId);
      await api.services.reconciler.runOnce();
      expect(await status(skipped)).toBe('creating');
      await other.query('select pg_advisory_unlock($1)', [RECONCILER_LOCK_KEY]);
      // Once it is free again, this process takes it anew and the pass runs.
      await api.services.reconciler.runOnce();
      expect(await status(skipped)).toBe('running');
    } finally {
      await other.end();
    }

    // The first pass ends by the agent's deadline, without an error, and no lock stays behind.
    hung.setFailure('apply', undefined);
    await expect(first).resolves.toBeUndefined();
    expect(await status(waiting)).not.toBe('running');
    expect(await lockFree()).toBe(true);
  }, 60_000);
});
