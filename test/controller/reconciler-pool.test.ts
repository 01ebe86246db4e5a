import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { sql } from 'kysely';
import { pino } from 'pino';
import { ConfigError } from '../../common/config.js';
import { loadControllerConfig } from '../../controller/config.js';
import { openReconcilerDatabase } from '../../controller/db/database.js';
import { recordOutcomes } from '../../controller/environments/environment-outcomes.js';
import { listBehind } from '../../controller/environments/environments.repo.js';
import { buildAgentSpec, buildAgentSpecs } from '../../controller/environments/spec.js';
import { OutcomeWriter } from '../../controller/reconciler/outcomes.js';
import { startController, type RunningController } from '../../controller/server.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { freePort } from '../helpers/docker.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { insertHost, placeEnvironment } from './hosts/seed.js';

// Issue 12, item 3 (a reconciler that keeps up): pool sizes are configuration; the reconciler has
// its own pool on PostgreSQL (its pass lock's session included), so API requests holding every
// connection of theirs (creates queuing on a host lock) do not stop environments from reaching
// running; embedded PGlite shares its one session. The pending-work list reads through its partial
// index; outcomes written in batches follow recordOutcome's rule.

const ADMIN = 'pool-admin-token-0123456789abcdef';
const JOIN = 'pool-join-token-0123456789';

describe('pool size configuration', () => {
  it('has defaults and reads every setting', () => {
    expect(loadControllerConfig({})).toMatchObject({ dbPoolSize: 10, reconcilerDbPoolSize: 10, reconcile: { batch: 200, parallel: 64, hostParallel: 8 } });
    const c = loadControllerConfig({
      REMOTEGPU_DB_POOL_SIZE: '40',
      REMOTEGPU_RECONCILER_DB_POOL_SIZE: '6',
      REMOTEGPU_RECONCILE_BATCH: '1000',
      REMOTEGPU_RECONCILE_PARALLEL: '256',
      REMOTEGPU_RECONCILE_HOST_PARALLEL: '4',
    });
    expect(c).toMatchObject({ dbPoolSize: 40, reconcilerDbPoolSize: 6, reconcile: { batch: 1000, parallel: 256, hostParallel: 4 } });
  });

  it.each([
    ['REMOTEGPU_DB_POOL_SIZE', '0', 'REMOTEGPU_DB_POOL_SIZE="0": expected an integer >= 1'],
    ['REMOTEGPU_DB_POOL_SIZE', 'ten', 'REMOTEGPU_DB_POOL_SIZE="ten": expected an integer 1-1000'],
    ['REMOTEGPU_DB_POOL_SIZE', '1001', 'REMOTEGPU_DB_POOL_SIZE="1001": expected an integer <= 1000'],
    ['REMOTEGPU_DB_POOL_SIZE', '-3', 'REMOTEGPU_DB_POOL_SIZE="-3": expected an integer 1-1000'],
    // The pass lock holds one connection while passes run: the reconciler needs one more for its work.
    ['REMOTEGPU_RECONCILER_DB_POOL_SIZE', '1', 'REMOTEGPU_RECONCILER_DB_POOL_SIZE="1": expected an integer >= 2'],
    ['REMOTEGPU_RECONCILER_DB_POOL_SIZE', '2.5', 'REMOTEGPU_RECONCILER_DB_POOL_SIZE="2.5": expected an integer 2-1000'],
    ['REMOTEGPU_RECONCILE_PARALLEL', '0', 'REMOTEGPU_RECONCILE_PARALLEL="0": expected an integer >= 1'],
    ['REMOTEGPU_RECONCILE_BATCH', 'all', 'REMOTEGPU_RECONCILE_BATCH="all": expected an integer 1-10000'],
  ])('refuses %s=%s with a clear message', (name, value, message) => {
    expect(() => loadControllerConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadControllerConfig({ [name]: value })).toThrow(`invalid configuration: ${message}`);
  });
});

describe.each(DB_TARGETS)('the reconciler’s own pool on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agent', () => {
    let dir: string;
    let database: TestDatabase | undefined;
    let controller: RunningController;
    let agent: TestAgent;

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'rgpu-pool-'));
      if (target.name === 'postgres') database = await createTestDatabase(target);
      const grpcPort = await freePort();
      controller = await startController(
        loadControllerConfig({
          DATABASE_URL: database?.url,
          REMOTEGPU_DATA_DIR: dir,
          REMOTEGPU_HTTP_PORT: String(await freePort()),
          REMOTEGPU_HTTP_HOST: '127.0.0.1',
          REMOTEGPU_GRPC_PORT: String(grpcPort),
          REMOTEGPU_GRPC_HOST: '127.0.0.1',
          REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
          REMOTEGPU_JOIN_TOKEN: JOIN,
          REMOTEGPU_DB_POOL_SIZE: '2',
          REMOTEGPU_RECONCILER_DB_POOL_SIZE: '3',
          REMOTEGPU_DB_CONNECT_TIMEOUT_MS: '300',
          // Passes only when woken (a create) or run by the test.
          REMOTEGPU_RECONCILE_INTERVAL_MS: '3600000',
          REMOTEGPU_AGENT_TIMEOUT_MS: '2000',
        }),
        pino({ level: 'silent' }),
      );
      await controller.database.db.insertInto('images').values({ name: 'img:1', docker_ref: 'img:1', jupyter_port: 8888 }).execute();
      agent = await startTestAgent({ controllerAddress: `127.0.0.1:${grpcPort}`, joinToken: JOIN, caPem: controller.services.trust.ca.certPem, gpus: 2 });
    });
    afterAll(async () => {
      await agent?.close();
      await controller?.stop();
      await database?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('brings an environment to running while every connection of the API pool is held', async () => {
      // Rows are read and changed by the test through its own pool (postgres) or the one embedded session.
      const own = database?.db ?? controller.database.db;
      const row = (id: string) => own.selectFrom('environments').select(['status', 'attempt_count']).where('id', '=', id).executeTakeFirstOrThrow();
      agent.setFailure('apply', { code: GrpcStatus.UNAVAILABLE, details: 'engine busy' });
      const created = await restCaller(() => controller.httpUrl)('POST', '/api/v1/environments', ADMIN, { name: 'p', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 1, storage: 2 ** 30 });
      expect(created.status).toBe(201);
      const id = created.body.data.env_id as string;
      // The create woke a pass; the agent's refusal put the environment off.
      await waitUntil('a first attempt', async () => (await row(id)).attempt_count === 1, 20_000, undefined, 50);
      agent.setFailure('apply', undefined);
      await own.updateTable('environments').set({ next_attempt_at: new Date(0) }).where('id', '=', id).execute();

      if (target.name === 'pglite') {
        // One session: the reconciler shares the controller's handle.
        await controller.services.reconciler.runOnce();
        expect((await row(id)).status).toBe('running');
        return;
      }
      // Every connection of the API pool (REMOTEGPU_DB_POOL_SIZE=2) held, as by creates waiting on a lock.
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let held = 0;
      const holders = Array.from({ length: 2 }, () =>
        controller.database.db.connection().execute(async () => {
          held++;
          await gate;
        }),
      );
      try {
        await waitUntil('the API pool held', () => held === 2, 5_000, undefined, 10);
        // The API pool is exhausted: a request's query gets no connection.
        await expect(sql`select 1`.execute(controller.database.db)).rejects.toThrow(/timeout/i);
        await controller.services.reconciler.runOnce();
        expect((await row(id)).status).toBe('running');
        expect(agent.calls.apply).toBeGreaterThanOrEqual(2);
      } finally {
        release();
        await Promise.all(holders);
      }
    });
  });
});

describe.each(DB_TARGETS)('pending work and batched outcomes on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('database', () => {
    let t: TestDatabase | undefined;
    afterEach(async () => {
      await t?.close();
      t = undefined;
    });

    it('shares the embedded session, and opens a pool of its own on PostgreSQL', async () => {
      t = await createTestDatabase(target);
      const reconciler = await openReconcilerDatabase(t, { databaseUrl: t.url, poolSize: 2 });
      try {
        if (target.name === 'pglite') expect(reconciler.db).toBe(t.db);
        else expect(reconciler.db).not.toBe(t.db);
        expect(Number((await sql<{ n: number }>`select count(*) as n from environments`.execute(reconciler.db)).rows[0]!.n)).toBe(0);
      } finally {
        await reconciler.close();
      }
      // Closing the shared handle's stand-in leaves the embedded database open.
      expect((await sql<{ one: number }>`select 1 as one`.execute(t.db)).rows[0]!.one).toBe(1);
    });

    it('lists the pending work through its partial index: every behind, due environment on a reachable host, and nothing else', async () => {
      t = await createTestDatabase(target);
      const index = await sql<{ indexdef: string }>`select indexdef from pg_indexes where tablename = 'environments' and indexname = 'environments_behind_idx'`.execute(t.db);
      expect(index.rows[0]?.indexdef).toMatch(/WHERE \(applied_generation < spec_generation\)/);
      await insertHost(t.db, 'host-on');
      await insertHost(t.db, 'host-off', { liveness: 'offline' });
      await insertHost(t.db, 'host-down');
      await t.db.updateTable('hosts').set({ runtime_down_since: new Date() }).where('id', '=', 'host-down').execute();
      const later = new Date(Date.now() + 3600_000);
      const seed = async (id: string, host: string, fields: Record<string, unknown> = {}, desired: 'running' | 'deleted' = 'running') => {
        await placeEnvironment(t!.db, id, host, { desired });
        if (Object.keys(fields).length > 0) await t!.db.updateTable('environments').set(fields).where('id', '=', id).execute();
      };
      await seed('env-due', 'host-on');
      await seed('env-deleting', 'host-on', {}, 'deleted');
      await seed('env-converged', 'host-on', { applied_generation: 1 });
      await seed('env-backoff', 'host-on', { attempt_generation: 1, next_attempt_at: later });
      await seed('env-newer', 'host-on', { attempt_generation: 1, next_attempt_at: later, spec_generation: 2 }); // a new request: due at once
      await seed('env-past', 'host-on', { attempt_generation: 1, next_attempt_at: new Date(0) });
      await seed('env-offline', 'host-off');
      await seed('env-down', 'host-down');
      await seed('env-pending', 'host-on');
      await t.db.updateTable('environments').set({ host_id: null, status: 'pending' }).where('id', '=', 'env-pending').execute();
      const listed = await listBehind(t.db, 200);
      expect(listed.map((r) => r.id).sort()).toEqual(['env-deleting', 'env-due', 'env-newer', 'env-past', 'env-pending']);
      expect(listed.find((r) => r.id === 'env-newer')).toMatchObject({ host_id: 'host-on', desired_state: 'running', spec_generation: 2 });
      expect(await listBehind(t.db, 2)).toHaveLength(2);
    });

    it('records outcomes in batches as recordOutcome does: a newer generation is left alone, events only for those recorded', async () => {
      t = await createTestDatabase(target);
      await insertHost(t.db, 'host-a');
      for (const id of ['env-a', 'env-b', 'env-c']) await placeEnvironment(t.db, id, 'host-a', { status: 'creating' });
      await t.db.updateTable('environments').set({ spec_generation: 3 }).where('id', '=', 'env-b').execute(); // moved on
      await t.db.updateTable('environments').set({ status_detail: 'old detail' }).where('id', '=', 'env-c').execute();
      const started = new Date('2026-01-02T03:04:05Z');
      const recorded = await t.db.transaction().execute((trx) =>
        recordOutcomes(trx, [
          { envId: 'env-a', generation: 1, outcome: { status: 'running', status_reason: '', started_at: started, observed_state: 'running' }, event: { kind: 'running', message: 'Container recreated with the new spec' } },
          { envId: 'env-b', generation: 1, outcome: { status: 'running', observed_state: 'running' }, event: { kind: 'running', message: 'stale' } },
          { envId: 'env-c', generation: 1, outcome: { status: 'error', status_reason: 'agent said no', observed_state: 'exited' }, event: { kind: 'error', message: 'Error: agent said no' } },
        ]),
      );
      expect([...recorded].sort()).toEqual(['env-a', 'env-c']);
      const rows = await t.db.selectFrom('environments').select(['id', 'status', 'status_reason', 'status_detail', 'started_at', 'observed_state', 'applied_generation', 'spec_generation']).orderBy('id').execute();
      expect(rows).toEqual([
        { id: 'env-a', status: 'running', status_reason: '', status_detail: '', started_at: started, observed_state: 'running', applied_generation: 1, spec_generation: 1 },
        { id: 'env-b', status: 'creating', status_reason: '', status_detail: '', started_at: null, observed_state: 'unknown', applied_generation: 0, spec_generation: 3 },
        { id: 'env-c', status: 'error', status_reason: 'agent said no', status_detail: '', started_at: null, observed_state: 'exited', applied_generation: 1, spec_generation: 1 },
      ]);
      const events = await t.db.selectFrom('environment_events').select(['env_id', 'kind', 'message']).orderBy('env_id').execute();
      expect(events).toEqual([
        { env_id: 'env-a', kind: 'running', message: 'Container recreated with the new spec' },
        { env_id: 'env-c', kind: 'error', message: 'Error: agent said no' },
      ]);

      // Many outcomes at once through the writer: each caller learns its own answer.
      const ids = Array.from({ length: 30 }, (_, i) => `env-w${String(i).padStart(2, '0')}`);
      for (const id of ids) await placeEnvironment(t.db, id, 'host-a', { status: 'creating' });
      await t.db.updateTable('environments').set({ spec_generation: 2 }).where('id', '=', 'env-w07').execute();
      const writer = new OutcomeWriter(t.db);
      const answers = await Promise.all(ids.map((id) => writer.record({ envId: id, generation: 1, outcome: { status: 'running', status_reason: '' } })));
      expect(answers.filter((a) => !a)).toHaveLength(1);
      expect(answers[7]).toBe(false);
      const running = await t.db.selectFrom('environments').select('id').where('id', 'in', ids).where('status', '=', 'running').execute();
      expect(running).toHaveLength(29);
    });

    it('reads the specs of several environments at once as it reads each alone', async () => {
      t = await createTestDatabase(target);
      const gpus = await insertHost(t.db, 'host-a', { gpus: [{}, {}, {}] });
      await placeEnvironment(t.db, 'env-1', 'host-a', { gpuUuids: [gpus[2]!, gpus[0]!] });
      await placeEnvironment(t.db, 'env-2', 'host-a');
      const owner = await t.db.selectFrom('environments').select('owner_id').where('id', '=', 'env-1').executeTakeFirstOrThrow();
      await t.db.insertInto('ssh_keys').values([
        { user_id: owner.owner_id, name: 'b', public_key: 'ssh-ed25519 BBBB b', fingerprint: 'fb' },
        { user_id: owner.owner_id, name: 'a', public_key: 'ssh-ed25519 AAAA a', fingerprint: 'fa' },
      ]).execute();
      const many = await buildAgentSpecs(t.db, ['env-1', 'env-2', 'env-missing']);
      expect([...many.keys()].sort()).toEqual(['env-1', 'env-2']);
      expect(many.get('env-1')).toEqual(await buildAgentSpec(t.db, 'env-1'));
      expect(many.get('env-2')).toEqual(await buildAgentSpec(t.db, 'env-2'));
      expect(many.get('env-1')!.gpuUuids).toHaveLength(2);
      expect(many.get('env-1')!.sshAuthorizedKeys).toEqual(['ssh-ed25519 BBBB b', 'ssh-ed25519 AAAA a']);
    });
  });
});
