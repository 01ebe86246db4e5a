import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { sql } from 'kysely';
import { createLogger } from '../../../common/logger.js';
import { EnvironmentObserver } from '../../../controller/environments/observer.js';
import { WakeSignal } from '../../../controller/environments/wake.js';
import type { AgentPool, ObservedEnvironment } from '../../../controller/hosts/types.js';
import { createTestDatabase, DB_TARGETS, type TestDatabase } from '../../helpers/databases.js';
import { waitUntil } from '../../helpers/rest.js';
import { insertHost, placeEnvironment } from '../hosts/seed.js';

// Lock order (issue 12): placements, starts and port moves lock a host's row and then the rows of
// its environments. The observer's report that says the container runtime answers again changes
// environments of the host and clears the host's runtime mark in one transaction: it must take the
// host's row first too, or a start on that host (host, then environment) and the report deadlock,
// and PostgreSQL fails one of them (a start answered 500, or a report refused).

const logger = createLogger({ name: 'test', level: 'silent' });
/** The observer removes no orphan here: no agent is ever asked for. */
/** 'ok' once `p` resolves, or its error: awaited after the lock holder lets go. */
const outcomeOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => 'ok',
    (err: unknown) => err,
  );

/** Resolves once some session of the test database waits for a lock. */
async function lockWaitSeenBy(other: { query(text: string): Promise<{ rows: { n: number }[] }> }): Promise<void> {
  await waitUntil('observer waits for a lock', async () => {
    const r = await other.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`);
    return r.rows[0]!.n > 0;
  }, 10_000, undefined, 20);
}

const noAgents = { forHost: () => Promise.reject(new Error('no agent in this test')) } as unknown as AgentPool;

describe.each(DB_TARGETS)('lock order on $name', (target) => {
  // Two sessions are needed to hold a lock while another waits: PostgreSQL only (PGlite has one).
  const onPostgres = target.name === 'postgres' ? it : () => {};
  describe.skipIf(target.skipReason !== '')('observer vs a placement holding the host', () => {
    let t: TestDatabase;

    beforeAll(async () => {
      t = await createTestDatabase(target);
    });
    afterAll(async () => {
      await t?.close();
    });

    const seedOutage = async (hostId: string, envId: string) => {
      await insertHost(t.db, hostId);
      await placeEnvironment(t.db, envId, hostId, { status: 'running' });
      await t.db.updateTable('environments').set({ observed_state: 'running', applied_generation: sql`spec_generation` }).where('id', '=', envId).execute();
      await t.db.updateTable('hosts').set({ runtime_down_since: new Date(Date.now() - 10_000), runtime_error: 'docker down' }).where('id', '=', hostId).execute();
    };
    const observer = () => new EnvironmentObserver({ db: t.db, logger, agents: noAgents, wake: new WakeSignal() });

    it('the report after a runtime outage restarts what it stopped and clears the mark', async () => {
      await seedOutage('host-seq', 'env-seq');
      await observer().onReport('host-seq', [], [], { runtimeDownSince: new Date(Date.now() - 10_000) });
      const env = await t.db.selectFrom('environments').select('status').where('id', '=', 'env-seq').executeTakeFirstOrThrow();
      expect(env.status).toBe('starting');
      const host = await t.db.selectFrom('hosts').select('runtime_down_since').where('id', '=', 'host-seq').executeTakeFirstOrThrow();
      expect(host.runtime_down_since).toBeNull();
    });

    onPostgres('waits for a transaction holding the host, then the environment, without a deadlock', async () => {
      await seedOutage('host-lock', 'env-lock');
      const other = new pg.Client({ connectionString: t.url });
      await other.connect();
      try {
        // A start's order: the host's row, then (below) its environment's.
        await other.query('begin');
        await other.query(`select id from hosts where id = 'host-lock' for update`);
        const report = observer().onReport('host-lock', [], [], { runtimeDownSince: new Date(Date.now() - 10_000) });
        const settled = outcomeOf(report);
        // The observer's transaction is waiting for a lock (the host's row).
        await lockWaitSeenBy(other);
        await other.query(`select id from environments where id = 'env-lock' for update`);
        await other.query('commit');
        expect(await settled).toBe('ok');
      } finally {
        await other.query('rollback').catch(() => {});
        await other.end();
      }
      const env = await t.db.selectFrom('environments').select('status').where('id', '=', 'env-lock').executeTakeFirstOrThrow();
      expect(env.status).toBe('starting');
    });

    onPostgres('locks the environments it changes in id order, as the batched outcome writer does', async () => {
      await insertHost(t.db, 'host-ids');
      for (const id of ['env-ids-a', 'env-ids-b']) {
        await placeEnvironment(t.db, id, 'host-ids', { status: 'running' });
        await t.db.updateTable('environments').set({ observed_state: 'running', applied_generation: sql`spec_generation` }).where('id', '=', id).execute();
      }
      // The report lists them b first; both containers are gone.
      const known = await t.db
        .selectFrom('environments')
        .select(['id', 'status', 'status_reason', 'desired_state', 'applied_generation', 'spec_generation', 'observed_state', 'observed_at', 'started_at', 'updated_at', 'storage_used_bytes', 'rootfs_used_bytes', 'usage_measured_at', 'ssh_host_keys', 'ssh_host_keys_container'])
        .where('host_id', '=', 'host-ids')
        .orderBy('id', 'desc')
        .execute();
      const other = new pg.Client({ connectionString: t.url });
      await other.connect();
      try {
        // The outcome writer's order: a, then b.
        await other.query('begin');
        await other.query(`select id from environments where id = 'env-ids-a' for update`);
        const settled = outcomeOf(observer().onReport('host-ids', [], [], { known }));
        await lockWaitSeenBy(other);
        await other.query(`select id from environments where id = 'env-ids-b' for update`);
        await other.query('commit');
        expect(await settled).toBe('ok');
      } finally {
        await other.query('rollback').catch(() => {});
        await other.end();
      }
      const rows = await t.db.selectFrom('environments').select('status').where('host_id', '=', 'host-ids').execute();
      expect(rows.map((r) => r.status)).toEqual(['starting', 'starting']);
    });

    onPostgres('locks the environments it writes events of with those it changes, in id order', async () => {
      await insertHost(t.db, 'host-ev');
      for (const id of ['env-ev-a', 'env-ev-b']) {
        await placeEnvironment(t.db, id, 'host-ev', { status: 'running' });
        await t.db.updateTable('environments').set({ observed_state: 'running', applied_generation: sql`spec_generation` }).where('id', '=', id).execute();
      }
      const known = await t.db
        .selectFrom('environments')
        .select(['id', 'status', 'status_reason', 'desired_state', 'applied_generation', 'spec_generation', 'observed_state', 'observed_at', 'started_at', 'updated_at', 'storage_used_bytes', 'rootfs_used_bytes', 'usage_measured_at', 'ssh_host_keys', 'ssh_host_keys_container'])
        .where('host_id', '=', 'host-ev')
        .execute();
      const seen = (envId: string, storageUsedBytes: number | null) => ({
        envId, state: 'running', containerId: 'c', specHash: 'h', gpuUuids: [], exitCode: 0, oomKilled: false, startedAt: null, finishedAt: null,
        message: '', sshReady: true, storageUsedBytes, rootfsUsedBytes: null, stopReason: '', sshHostKeys: [],
      }) as unknown as ObservedEnvironment;
      const other = new pg.Client({ connectionString: t.url });
      await other.connect();
      try {
        await other.query('begin');
        await other.query(`select id from environments where id = 'env-ev-a' for update`);
        // b's disk usage changed; a has an event (its row is referenced by the event's insert).
        const settled = outcomeOf(observer().onReport('host-ev', [seen('env-ev-a', null), seen('env-ev-b', 12345)], [{ envId: 'env-ev-a', at: new Date(), kind: 'log', message: 'hello' }], { known }));
        await lockWaitSeenBy(other);
        await other.query(`select id from environments where id = 'env-ev-b' for update`);
        await other.query('commit');
        expect(await settled).toBe('ok');
      } finally {
        await other.query('rollback').catch(() => {});
        await other.end();
      }
      const b = await t.db.selectFrom('environments').select('storage_used_bytes').where('id', '=', 'env-ev-b').executeTakeFirstOrThrow();
      expect(b.storage_used_bytes).toBe(12345);
    });
  });
});
