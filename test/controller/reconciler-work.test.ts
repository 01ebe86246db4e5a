import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { sql } from 'kysely';
import { DB_TARGETS } from '../helpers/databases.js';
import { createTestApi, serveControlPlane, type ServedControlPlane, type TestApi } from '../helpers/api.js';
import { imageCopy, seedImage } from '../helpers/hosts.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { waitUntil } from '../helpers/rest.js';
import pg from 'pg';
import { RECONCILER_LOCK_KEY, RETRY_BACKOFF } from '../../controller/reconciler/reconciler.js';
import { listBehind } from '../../controller/environments/environments.repo.js';
import { ObservedState } from '../../gen/remotegpu/v1/types.js';

// Issue 11, items 12, 13 and 16, through the real reconciler, real gRPC over loopback and test
// agents (no background loops: each test runs passes itself with runOnce()).
// - A host whose agent never answers, with more environments behind than a pass takes, must not
//   starve a good host: the good host's environment is applied in the first pass, while the dead
//   host's calls are still hanging; the dead host's environments are put off with a backoff.
// - Removing a host while an environment on it awaits removal is refused, and nothing is recorded
//   as removed without the agent.
// - A restart of an environment left in `error` by a stop that failed ends running.

const AGENT_TIMEOUT_MS = 8_000;
const BEHIND_ON_DEAD_HOST = 250;

describe.each(DB_TARGETS)('reconciler work list on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agents', () => {
    let api: TestApi;
    let controlPlane: ServedControlPlane | undefined;
    let good: TestAgent;
    let dead: TestAgent;
    let goodEnv = '';

    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
    const row = (id: string) =>
      api.db.selectFrom('environments').select(['status', 'status_reason', 'desired_state', 'attempt_count', 'next_attempt_at', 'spec_generation', 'applied_generation', 'host_id']).where('id', '=', id).executeTakeFirstOrThrow();
    const dbNow = async () => (await sql<{ now: Date }>`select now() as now`.execute(api.db)).rows[0]!.now;
    const pass = () => api.services.reconciler.runOnce();
    /** Whether another replica could take the reconciler lock now (PostgreSQL only). */
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
      api = await createTestApi(target, { env: { REMOTEGPU_AGENT_TIMEOUT_MS: String(AGENT_TIMEOUT_MS) } });
      controlPlane = await serveControlPlane(api);
      const { agentOptions } = controlPlane;
      good = await startTestAgent({ ...agentOptions, hostname: 'good' });
      dead = await startTestAgent({ ...agentOptions, hostname: 'dead' });
      await seedImage(api.db, 'img:1', 'img:1');
    });
    afterAll(async () => {
      await dead?.close();
      await good?.close();
      await controlPlane?.close();
      await api?.close();
    });

    it('applies a good host’s environment in the first pass while a dead host with more than a pass of work hangs', async () => {
      // The dead host: online (it registered), but its agent never answers. It takes no new
      // environments (cordoned), so the one created below lands on the good host.
      for (const method of ['apply', 'stop', 'remove'] as const) dead.setFailure(method, 'hang');
      expect((await admin('POST', `/api/v1/admin/hosts/${dead.hostId}/cordon`)).status).toBe(200);
      const owner = await api.createUser('owner');
      const image = await api.db.selectFrom('images').select('id').where('name', '=', 'img:1').executeTakeFirstOrThrow();
      const copy = await imageCopy(api.db, image.id);
      const longAgo = new Date(Date.now() - 3600_000);
      await api.db
        .insertInto('environments')
        .values(
          Array.from({ length: BEHIND_ON_DEAD_HOST }, (_, i) => ({
            id: `env-dead${String(i).padStart(6, '0')}`,
            owner_id: owner.id,
            workspace_id: null,
            name: `dead-${i}`,
            image_id: image.id,
            image: 'img:1',
            ...copy,
            cpu: 1,
            memory_bytes: 2 ** 20,
            storage_bytes: 2 ** 20,
            gpu_model: null,
            desired_state: 'running' as const,
            status: 'creating' as const,
            host_id: dead.hostId,
            ssh_port: null,
            jupyter_port: null,
            jupyter_token: 't',
            idempotency_key: null,
            created_at: longAgo,
            updated_at: longAgo,
          })),
        )
        .execute();
      const created = await admin('POST', '/api/v1/environments', { name: 'good', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
      expect(created.status).toBe(201);
      goodEnv = created.body.data.env_id;
      expect(created.body.data.host_id).toBe(good.hostId);

      const startedAt = await dbNow();
      let passDone = false;
      const t0 = Date.now();
      const first = pass().finally(() => (passDone = true));
      await waitUntil('the good host’s environment running', async () => (await row(goodEnv)).status === 'running', 4 * AGENT_TIMEOUT_MS, undefined, 20);
      const appliedMs = Date.now() - t0;
      // Applied while the dead host's calls still hang: hosts do not wait on each other.
      expect(passDone).toBe(false);
      expect(good.calls.apply).toBe(1);
      // Nor do passes: a create on the good host meanwhile is applied by the next pass, which leaves
      // the dead host to the first one.
      const next = await admin('POST', '/api/v1/environments', { name: 'next', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
      await pass();
      expect((await row(next.body.data.env_id)).status).toBe('running');
      expect(passDone).toBe(false);
      // On PostgreSQL both passes ran under this process's one hold of the reconciler lock.
      if (target.name === 'postgres') expect(await lockFree()).toBe(false);
      const deadCalls = dead.calls.apply;
      await first;
      console.log(`[${target.name}] good host applied ${appliedMs} ms into the first pass; that pass ended after ${Date.now() - t0} ms (dead host: agent timeout ${AGENT_TIMEOUT_MS} ms)`);
      expect(dead.calls.apply).toBe(deadCalls);
      if (target.name === 'postgres') expect(await lockFree()).toBe(true);
      expect((await admin('DELETE', `/api/v1/environments/${next.body.data.env_id}`)).status).toBe(204);
      // The dead host got a few calls at once (its share of the pass), then none once it proved unreachable.
      expect(dead.calls.apply).toBeGreaterThanOrEqual(1);
      expect(dead.calls.apply).toBeLessThanOrEqual(8);
      const deferred = await api.db
        .selectFrom('environments')
        .select(['attempt_count', 'next_attempt_at'])
        .where('host_id', '=', dead.hostId)
        .where('attempt_count', '>', 0)
        .execute();
      // The pass took 200 environments, round-robin across hosts: the good one and 199 of the dead host.
      expect(deferred).toHaveLength(199);
      for (const d of deferred) {
        expect(d.attempt_count).toBe(1);
        expect(d.next_attempt_at!.getTime()).toBeGreaterThanOrEqual(startedAt.getTime() + RETRY_BACKOFF.baseMs);
      }
      // Nothing was recorded as applied on the dead host.
      expect(await api.db.selectFrom('environments').select('id').where('host_id', '=', dead.hostId).where('applied_generation', '>', 0).execute()).toEqual([]);
    });

    it('backs off exponentially up to the cap, skips environments not due, and tries a new request at once', async () => {
      const id = 'env-dead000000';
      const due = () => api.db.updateTable('environments').set({ next_attempt_at: new Date(0) }).where('id', '=', id).execute();
      // Only this environment is due: the others are put off far ahead.
      await api.db.updateTable('environments').set({ next_attempt_at: new Date(Date.now() + 3600_000), attempt_generation: 1 }).where('host_id', '=', dead.hostId).execute();
      dead.setFailure('apply', { code: GrpcStatus.UNAVAILABLE, details: 'engine down' });
      const callsBefore = dead.calls.apply;
      await pass();
      expect(dead.calls.apply).toBe(callsBefore); // not due: no call

      await due();
      await api.db.updateTable('environments').set({ attempt_count: 1 }).where('id', '=', id).execute();
      let before = await dbNow();
      await pass();
      let after = await dbNow();
      expect(dead.calls.apply).toBe(callsBefore + 1);
      let r = await row(id);
      expect(r.attempt_count).toBe(2);
      // The second failure waits twice the base.
      expect(r.next_attempt_at!.getTime()).toBeGreaterThanOrEqual(before.getTime() + 2 * RETRY_BACKOFF.baseMs);
      expect(r.next_attempt_at!.getTime()).toBeLessThanOrEqual(after.getTime() + 2 * RETRY_BACKOFF.baseMs);

      await due();
      await api.db.updateTable('environments').set({ attempt_count: 12 }).where('id', '=', id).execute();
      before = await dbNow();
      await pass();
      after = await dbNow();
      r = await row(id);
      expect(r.attempt_count).toBe(13);
      expect(r.next_attempt_at!.getTime()).toBeGreaterThanOrEqual(before.getTime() + RETRY_BACKOFF.capMs);
      expect(r.next_attempt_at!.getTime()).toBeLessThanOrEqual(after.getTime() + RETRY_BACKOFF.capMs);

      // A user's new request (a new spec generation) is tried at once, and counts from 1 again.
      expect((await admin('POST', `/api/v1/environments/${id}/stop`)).status).toBe(200);
      dead.setFailure('stop', { code: GrpcStatus.UNAVAILABLE, details: 'engine down' });
      const stopsBefore = dead.calls.stop;
      await pass();
      expect(dead.calls.stop).toBe(stopsBefore + 1);
      expect((await row(id)).attempt_count).toBe(1);
    });

    it('refuses to remove a host while an environment on it awaits removal, and records no removal without the agent', async () => {
      const created = await admin('POST', '/api/v1/environments', { name: 'doomed', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
      const doomed = created.body.data.env_id as string;
      await pass();
      expect((await row(doomed)).status).toBe('running');
      good.setFailure('remove', { code: GrpcStatus.INTERNAL, details: 'volume is in use' });
      const removes = good.calls.remove;
      expect((await admin('DELETE', `/api/v1/environments/${doomed}`)).status).toBe(204);
      await pass();
      expect(good.calls.remove).toBe(removes + 1);
      expect((await row(doomed)).status_reason).toMatch(/removal failed, retrying: .*volume is in use/);
      expect((await row(doomed)).attempt_count).toBe(1);
      // Its next attempt is a long way off (as after many failures).
      await api.db.updateTable('environments').set({ next_attempt_at: new Date(Date.now() + 3600_000) }).where('id', '=', doomed).execute();

      // The good host also runs goodEnv: delete it too so that only the pending removal is left.
      good.setFailure('remove', undefined);
      expect((await admin('DELETE', `/api/v1/environments/${goodEnv}`)).status).toBe(204);
      await pass();
      expect(good.containers.has(goodEnv)).toBe(false);

      const refused = await admin('DELETE', `/api/v1/admin/hosts/${good.hostId}`);
      expect(refused.status).toBe(409);
      expect(refused.body).toEqual({ code: 40901, message: expect.stringContaining(`${doomed} deleting: its agent has not confirmed the removal yet`), data: null });
      expect(refused.body.message).toMatch(/1 environment/);
      await pass();
      // Still on the host, still held, and its log does not claim a removal.
      expect(good.containers.has(doomed)).toBe(true);
      expect((await row(doomed)).host_id).toBe(good.hostId);
      const kinds = (await api.db.selectFrom('environment_events').select('kind').where('env_id', '=', doomed).execute()).map((e) => e.kind);
      expect(kinds).not.toContain('removed');

      // The agent removes it at the next attempt; then the host can go.
      await api.db.updateTable('environments').set({ next_attempt_at: new Date(0) }).where('id', '=', doomed).execute();
      await pass();
      expect(good.containers.has(doomed)).toBe(false);
      expect((await admin('DELETE', `/api/v1/admin/hosts/${good.hostId}`)).status).toBe(204);
    });
  });

  describe.skipIf(target.skipReason !== '')('restart after a failed stop', () => {
    let api: TestApi;
    let controlPlane: ServedControlPlane | undefined;
    let agent: TestAgent;

    beforeAll(async () => {
      api = await createTestApi(target);
      controlPlane = await serveControlPlane(api);
      agent = await startTestAgent(controlPlane.agentOptions);
      await seedImage(api.db, 'img:1', 'img:1');
    });
    afterAll(async () => {
      await agent?.close();
      await controlPlane?.close();
      await api?.close();
    });

    it('forgets the backoff once an environment converged: it is not listed nor called again', async () => {
      const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
      const created = await admin('POST', '/api/v1/environments', { name: 'b', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
      const id = created.body.data.env_id as string;
      agent.setFailure('apply', { code: GrpcStatus.UNAVAILABLE, details: 'engine restarting' });
      await api.services.reconciler.runOnce();
      expect((await api.db.selectFrom('environments').select('attempt_count').where('id', '=', id).executeTakeFirstOrThrow()).attempt_count).toBe(1);
      agent.setFailure('apply', undefined);
      await api.db.updateTable('environments').set({ next_attempt_at: new Date(0) }).where('id', '=', id).execute();
      await api.services.reconciler.runOnce();
      expect((await admin('GET', `/api/v1/environments/${id}`)).body.data.status).toBe('running');
      const applies = agent.calls.apply;
      expect(await listBehind(api.db, 200)).toEqual([]);
      await api.services.reconciler.runOnce();
      expect(agent.calls.apply).toBe(applies);
      await admin('DELETE', `/api/v1/environments/${id}`);
      await api.services.reconciler.runOnce();
    });

    it('ends running when an environment left in error by a failed stop is restarted', async () => {
      const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
      const created = await admin('POST', '/api/v1/environments', { name: 'r', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
      const id = created.body.data.env_id as string;
      const detail = async () => (await admin('GET', `/api/v1/environments/${id}`)).body.data;
      await api.services.reconciler.runOnce();
      expect((await detail()).status).toBe('running');

      agent.setFailure('stop', { code: GrpcStatus.INTERNAL, details: 'device or resource busy' });
      expect((await admin('POST', `/api/v1/environments/${id}/stop`)).status).toBe(200);
      await api.services.reconciler.runOnce();
      expect(await detail()).toMatchObject({ status: 'error', status_reason: expect.stringContaining('device or resource busy') });
      agent.setFailure('stop', undefined);

      expect((await admin('POST', `/api/v1/environments/${id}/restart`)).status).toBe(200);
      await api.services.reconciler.runOnce();
      expect(await detail()).toMatchObject({ status: 'running', status_reason: '' });
      expect(agent.containers.get(id)?.status.state).toBe(ObservedState.OBSERVED_STATE_RUNNING);
      const logs = (await admin('GET', `/api/v1/environments/${id}/logs?lines=50`)).body.data.logs as string[];
      expect(logs.some((l) => l.includes('Container restarted'))).toBe(true);
    });
  });
});
