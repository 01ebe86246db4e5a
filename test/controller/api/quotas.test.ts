import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';
import { insertQueued, statementCounter } from '../../helpers/queued.js';
import { QueuePlacer } from '../../../controller/environments/queue.js';
import { pino } from 'pino';

// Quotas (issue 11, item 10): admin-set limits per user and per workspace, checked in the
// transaction that reserves, shown in GET /api/v1/me, 409 (40904) naming the limit.

const GiB = 2 ** 30;
const env = (name: string, over: Record<string, unknown> = {}) => ({ name, image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 1, storage: GiB, ...over });

describe.each(DB_TARGETS)('quotas on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('limits, usage and the checks', () => {
    let api: TestApi;
    let alice: TestUser;
    let bob: TestUser;
    let workspace: number;

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      for (const id of ['host-1', 'host-2']) await seedHost(api.db, id, { gpus: 8 });
      alice = await api.createUser('alice');
      bob = await api.createUser('bob');
      workspace = await api.createWorkspace('ml-team', alice.id);
      await api.addMember(workspace, bob.id);
    });
    afterAll(async () => api?.close());

    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, ...(body === undefined ? {} : { body }) });
    const create = (user: TestUser, body: Record<string, unknown>) => api.request('POST', '/api/v1/environments', { token: user.token, body });
    const envCount = async () => Number((await api.db.selectFrom('environments').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    /** What the agent's confirmation of a stop does: status stopped, compute released. */
    const settleStopped = async (envId: string) => {
      await api.db.deleteFrom('gpu_reservations').where('env_id', '=', envId).execute();
      await api.db.updateTable('environments').set({ status: 'stopped', reserved_cpu: 0, reserved_memory_bytes: 0 }).where('id', '=', envId).execute();
    };

    it('defaults to unlimited, shown in GET /me with the usage', async () => {
      const me = await api.request('GET', '/api/v1/me', { token: alice.token });
      expect(me.status).toBe(200);
      expect(me.body.data.user).toMatchObject({ id: alice.id, name: 'alice', role: 'user' });
      expect(me.body.data.quota.limits).toEqual({ gpus: null, cpu: null, memory: null, storage: null, environments: null, pending_environments: null });
      expect(me.body.data.quota.usage).toEqual({ gpus: 0, cpu: 0, memory: 0, storage: 0, environments: 0, pending_environments: 0 });
      expect(me.body.data.workspaces).toEqual([expect.objectContaining({ id: workspace, name: 'ml-team', role: 'owner' })]);
      expect((await api.request('GET', '/api/v1/me')).status).toBe(401);
      expect((await api.request('GET', `/api/v1/admin/users/${alice.id}/quota`, { token: alice.token })).status).toBe(403);
    });

    it('validates the limits: 400 naming the field for negative, fractional, unknown; 404 for an unknown user; nothing written', async () => {
      for (const [body, field] of [
        [{ gpus: -1 }, 'gpus'],
        [{ cpu: 1.5 }, 'cpu'],
        [{ memory: '1' }, 'memory'],
        [{ gpu: 4 }, '(body)'],
      ] as const) {
        const res = await admin('PUT', `/api/v1/admin/users/${alice.id}/quota`, body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body.code).toBe(40001);
        expect(res.body.data.fields.map((f: { field: string }) => f.field)).toContain(field);
      }
      expect((await admin('PUT', `/api/v1/admin/users/${alice.id}/quota`, { gpus: -1 })).body.message).toBe('invalid request: gpus: must be at least 0');
      expect((await admin('PUT', '/api/v1/admin/users/9999/quota', { gpus: 1 })).body).toMatchObject({ code: 40401, message: 'user 9999 not found' });
      expect((await admin('GET', '/api/v1/admin/workspaces/9999/quota')).status).toBe(404);
      expect(await api.db.selectFrom('user_quotas').selectAll().execute()).toEqual([]);
    });

    it('refuses a create over the GPU limit with 40904 naming the limit, creating nothing', async () => {
      const set = await admin('PUT', `/api/v1/admin/users/${alice.id}/quota`, { gpus: 4 });
      expect(set.status).toBe(200);
      expect(set.body.data.limits).toMatchObject({ gpus: 4, cpu: null });
      expect((await create(alice, env('a1', { gpu: 3 }))).status).toBe(201);
      const before = await envCount();
      const over = await create(alice, env('a2', { gpu: 2 }));
      expect(over.status).toBe(409);
      expect(over.body).toMatchObject({ code: 40904, data: null });
      expect(over.body.message).toMatch(/^quota exceeded: gpus 3 of 4 in use for user alice; requested 2/);
      expect(await envCount()).toBe(before);
      // What fits the rest still goes.
      expect((await create(alice, env('a3', { gpu: 1 }))).status).toBe(201);
      const me = await api.request('GET', '/api/v1/me', { token: alice.token });
      expect(me.body.data.quota).toMatchObject({ limits: { gpus: 4 }, usage: { gpus: 4, cpu: 2, memory: 2 * GiB, storage: 2 * GiB, environments: 2 } });
      // Bob is not limited by alice's quota.
      expect((await create(bob, env('b1', { gpu: 2 }))).status).toBe(201);
    });

    it('checks a start of a stopped environment again (compute comes back), after its own release', async () => {
      const mine = (await api.db.selectFrom('environments').select(['id', 'name']).where('owner_id', '=', alice.id).execute()).find((e) => e.name === 'a1')!;
      expect((await api.request('POST', `/api/v1/environments/${mine.id}/stop`, { token: alice.token })).status).toBe(200);
      await settleStopped(mine.id);
      // Its 3 GPUs are free again in the quota: another environment takes 2 of them.
      const other = await create(alice, env('a4', { gpu: 2 }));
      expect(other.status).toBe(201);
      const start = await api.request('POST', `/api/v1/environments/${mine.id}/start`, { token: alice.token, body: {} });
      expect(start.status).toBe(409);
      expect(start.body.code).toBe(40904);
      expect(start.body.message).toMatch(/gpus 3 of 4 in use for user alice; requested 3/);
      expect((await api.request('GET', `/api/v1/environments/${mine.id}`, { token: alice.token })).body.data.status).toBe('stopped');
      // Without GPUs it fits.
      expect((await api.request('POST', `/api/v1/environments/${mine.id}/start`, { token: alice.token, body: { gpu: 0 } })).status).toBe(200);
    });

    it('limits environments, pending environments and storage; a queued request over a limit on its own is refused at once', async () => {
      const carol = await api.createUser('carol');
      expect((await admin('PUT', `/api/v1/admin/users/${carol.id}/quota`, { environments: 3, pending_environments: 1, storage: 10 * GiB, gpus: 8 })).status).toBe(200);
      expect((await create(carol, env('c1', { gpu: 0, storage: 4 * GiB }))).status).toBe(201);
      const storage = await create(carol, env('c2', { gpu: 0, storage: 7 * GiB }));
      expect(storage.body).toMatchObject({ code: 40904 });
      expect(storage.body.message).toMatch(/^quota exceeded: storage 4 GiB of 10 GiB in use for user carol; requested 7 GiB/);
      // Fill both hosts' GPUs, so carol's GPU requests queue.
      const filler = await api.createUser('filler');
      for (let i = 0; (await create(filler, env(`f${i}`))).status === 201; i++);
      const held = async () => Number((await api.db.selectFrom('gpu_reservations').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      expect(await held()).toBe(16);
      expect((await create(carol, env('c3', { gpu: 1, queue: true }))).body.data.status).toBe('pending');
      const pending = await create(carol, env('c4', { gpu: 1, queue: true }));
      expect(pending.body).toMatchObject({ code: 40904 });
      expect(pending.body.message).toMatch(/pending_environments 1 of 1 in use for user carol; requested 1/);
      expect((await admin('PUT', `/api/v1/admin/users/${carol.id}/quota`, { environments: 3, gpus: 2 })).status).toBe(200);
      const never = await create(carol, env('c5', { gpu: 4, queue: true }));
      expect(never.body).toMatchObject({ code: 40904 });
      expect(never.body.message).toMatch(/gpus limit is 2 for user carol; requested 4, which never fits/);
      expect((await create(carol, env('c6', { gpu: 0 }))).status).toBe(201);
      const count = await create(carol, env('c7', { gpu: 0 }));
      expect(count.body.message).toMatch(/^quota exceeded: environments 3 of 3 in use for user carol; requested 1/);
      const me = await api.request('GET', '/api/v1/me', { token: carol.token });
      expect(me.body.data.quota.usage).toMatchObject({ environments: 3, pending_environments: 1, gpus: 0, storage: 6 * GiB });
    });

    it('counts a workspace environment against the workspace and against its owner', async () => {
      const dave = await api.createUser('dave');
      await api.addMember(workspace, dave.id);
      expect((await admin('PUT', `/api/v1/admin/workspaces/${workspace}/quota`, { cpu: 4 })).status).toBe(200);
      expect((await create(dave, env('w1', { gpu: 0, cpu: 3, workspace_id: workspace }))).status).toBe(201);
      const over = await create(bob, env('w2', { gpu: 0, cpu: 2, workspace_id: workspace }));
      expect(over.body).toMatchObject({ code: 40904 });
      expect(over.body.message).toMatch(/^quota exceeded: cpu 3 of 4 in use for workspace ml-team; requested 2/);
      // Outside the workspace bob is not limited by it.
      expect((await create(bob, env('w3', { gpu: 0, cpu: 2 }))).status).toBe(201);
      // The owner's own limit counts the workspace environment too.
      expect((await admin('PUT', `/api/v1/admin/users/${dave.id}/quota`, { cpu: 3 })).status).toBe(200);
      const own = await create(dave, env('w4', { gpu: 0, cpu: 1 }));
      expect(own.body.message).toMatch(/^quota exceeded: cpu 3 of 3 in use for user dave; requested 1/);
      const ws = await admin('GET', `/api/v1/admin/workspaces/${workspace}/quota`);
      expect(ws.body.data).toMatchObject({ limits: { cpu: 4 }, usage: { cpu: 3, environments: 1 } });
      const me = await api.request('GET', '/api/v1/me', { token: dave.token });
      expect(me.body.data.workspaces).toEqual([expect.objectContaining({ id: workspace, role: 'member', quota: ws.body.data })]);
    });

    it('lets the queue place an entry only within the quota, saying why it waits', async () => {
      const erin = await api.createUser('erin');
      expect((await admin('PUT', `/api/v1/admin/users/${erin.id}/quota`, { gpus: 1 })).status).toBe(200);
      const held = await create(erin, env('e1', { gpu: 0, cpu: 1 }));
      expect(held.status).toBe(201);
      // Hosts are full of GPUs (the filler): erin's 1-GPU environment queues.
      const queued = await create(erin, env('e2', { gpu: 1, queue: true }));
      expect(queued.body.data.status).toBe('pending');
      // Room frees (three filler GPUs: one for carol's queued environment, older than erin's) but
      // erin meanwhile takes a GPU: quota says no.
      for (const name of ['f0', 'f1', 'f2']) {
        const [fill] = await api.db.selectFrom('environments').select('id').where('name', '=', name).execute();
        await api.db.deleteFrom('gpu_reservations').where('env_id', '=', fill!.id).execute();
        await api.db.updateTable('environments').set({ status: 'stopped', desired_state: 'stopped', reserved_cpu: 0, reserved_memory_bytes: 0 }).where('id', '=', fill!.id).execute();
      }
      const taken = await create(erin, env('e3', { gpu: 1 }));
      expect(taken.status).toBe(201);
      const pass = await api.services.queue.pass();
      const row = await api.db.selectFrom('environments').select(['status', 'status_reason']).where('id', '=', queued.body.data.env_id).executeTakeFirstOrThrow();
      expect(row.status).toBe('pending');
      expect(row.status_reason).toMatch(/^waiting for quota: quota exceeded: gpus 1 of 1 in use for user erin; requested 1/);
      expect(pass.placed).toBe(1); // carol's
      // Erin's other environment is deleted for good: the queue places hers.
      await api.db.deleteFrom('gpu_reservations').where('env_id', '=', taken.body.data.env_id).execute();
      await api.db.updateTable('environments').set({ status: 'deleting', desired_state: 'deleted', reserved_cpu: 0, reserved_memory_bytes: 0 }).where('id', '=', taken.body.data.env_id).execute();
      expect((await api.services.queue.pass()).placed).toBe(1);
      expect((await api.request('GET', `/api/v1/environments/${queued.body.data.env_id}`, { token: erin.token })).body.data.status).toBe('creating');
    });
  });

  describe.skipIf(target.skipReason !== '')('a pass over many entries a quota refuses', () => {
    let api: TestApi;
    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-1', { gpus: 8 });
    });
    afterAll(async () => api?.close());

    it('tries each refusing scope once per pass, not each entry: statements do not grow with the entries', async () => {
      const admin = (path: string, body: unknown) => api.request('PUT', path, { token: api.adminToken, body });
      const quinn = await api.createUser('quinn');
      const wanda = await api.createUser('wanda');
      const lab = await api.createWorkspace('lab', wanda.id);
      expect((await admin(`/api/v1/admin/users/${quinn.id}/quota`, { gpus: 1 })).status).toBe(200);
      expect((await admin(`/api/v1/admin/workspaces/${lab}/quota`, { gpus: 1 })).status).toBe(200);
      // Queued before the limits (inserted as such): 2 GPUs each, then one of 1 GPU each, which fits.
      const t = Date.now() - 60_000;
      const quinn2 = await insertQueued(api.db, { id: quinn.id }, 'q2-', 40, 2, t);
      const [quinn1] = await insertQueued(api.db, { id: quinn.id }, 'q1-', 1, 1, t + 100);
      const lab2 = await insertQueued(api.db, { id: wanda.id, workspaceId: lab }, 'w2-', 40, 2, t);
      const [lab1] = await insertQueued(api.db, { id: wanda.id, workspaceId: lab }, 'w1-', 1, 1, t + 100);
      const counter = statementCounter();
      const placer = new QueuePlacer({ db: api.db.withPlugin(counter.plugin), logger: pino({ level: 'silent' }), ports: { ssh: api.config.sshPortRange, jupyter: api.config.jupyterPortRange } });
      // The first pass places the two 1-GPU entries (a refusal of 2 GPUs does not refuse 1) and notes why the rest wait.
      expect(await placer.pass()).toEqual({ placed: 2, scanned: 82 });
      const status = async (ids: string[]) => api.db.selectFrom('environments').select(['status', 'status_reason']).where('id', 'in', ids).execute();
      expect((await status([quinn1!, lab1!])).map((r) => r.status)).toEqual(['creating', 'creating']);
      // Later passes (the second rewrites the reasons: 1 GPU in use now): each scope refuses once in
      // a transaction; its other 39 entries are passed over in memory.
      expect(await placer.pass()).toEqual({ placed: 0, scanned: 80 });
      counter.n = 0;
      expect(await placer.pass()).toEqual({ placed: 0, scanned: 80 });
      expect(counter.n).toBeLessThanOrEqual(25);
      const reasons = new Set((await status([...quinn2, ...lab2])).map((r) => `${r.status} ${r.status_reason.replace(/;.*/, '')}`));
      expect(reasons).toEqual(
        new Set(['pending waiting for quota: quota exceeded: gpus 1 of 1 in use for user quinn', 'pending waiting for quota: quota exceeded: gpus 1 of 1 in use for workspace lab']),
      );
      console.log(`quota-blocked pass over 80 entries (${target.name}): ${counter.n} statements`);
    });
  });

  describe.skipIf(target.skipReason !== '')('concurrent creates against one limit', () => {
    let api: TestApi;
    beforeAll(async () => {
      api = await createTestApi(target, { poolSize: 20 });
      await seedImage(api.db);
      for (const id of ['host-1', 'host-2', 'host-3']) await seedHost(api.db, id, { gpus: 8 });
    });
    afterAll(async () => api?.close());

    it('40 parallel 1-GPU creates under a limit of 5 GPUs: exactly 5 placed, 35 refused with 40904', async () => {
      const user = await api.createUser('racer');
      expect((await api.request('PUT', `/api/v1/admin/users/${user.id}/quota`, { token: api.adminToken, body: { gpus: 5 } })).status).toBe(200);
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => api.request('POST', '/api/v1/environments', { token: user.token, body: env(`race-${i}`) })));
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(5);
      expect(results.filter((r) => r.status === 409).map((r) => r.body.code)).toEqual(Array(35).fill(40904));
      const held = await api.db.selectFrom('gpu_reservations').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
      expect(Number(held.n)).toBe(5);
      expect(await api.db.selectFrom('environments').select('id').execute()).toHaveLength(5);
    });
  });
});
