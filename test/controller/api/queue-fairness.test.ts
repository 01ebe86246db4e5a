import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KyselyPlugin } from 'kysely';
import { pino } from 'pino';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { imageCopy, seedHost, seedImage } from '../../helpers/hosts.js';
import { QueuePlacer } from '../../../controller/environments/queue.js';
import type { Db } from '../../../controller/db/database.js';
import { insertQueued, statementCounter } from '../../helpers/queued.js';

// Issue 11, items 8 and 9: a request no host could ever hold is refused at create (40902 naming the
// largest host) even with "queue": true; the queue scans fairly (owners take turns, entries that
// do not fit are passed over) on one snapshot per pass.

const GiB = 2 ** 30;
const env = (name: string, over: Record<string, unknown> = {}) => ({ name, image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 1, storage: GiB, ...over });

describe.each(DB_TARGETS)('impossible requests and the fair queue on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('refused at create, queue or not', () => {
    let api: TestApi;
    let alice: TestUser;
    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      alice = await api.createUser('alice');
    });
    afterAll(async () => api?.close());

    const create = (body: Record<string, unknown>) => api.request('POST', '/api/v1/environments', { token: alice.token, body });
    const count = async () => Number((await api.db.selectFrom('environments').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

    it('queues anything while no host is registered (a cluster being set up), and refuses without queue', async () => {
      const queued = await create(env('early', { gpu: 64, queue: true }));
      expect(queued.status).toBe(201);
      expect(queued.body.data.status).toBe('pending');
      const refused = await create(env('early-2', { gpu: 64 }));
      expect(refused.body).toMatchObject({ code: 40902, message: 'no hosts are registered; an operator must add a GPU server first' });
      expect((await api.request('DELETE', `/api/v1/environments/${queued.body.data.env_id}`, { token: alice.token })).status).toBe(204);
    });

    it('refuses 64 GPUs when the largest host has 8, with queue: true, naming the host; creates nothing', async () => {
      await seedHost(api.db, 'host-a', { gpus: 8 });
      const before = await count();
      const res = await create(env('huge', { gpu: 64, queue: true }));
      expect(res.status).toBe(409);
      expect(res.body.code).toBe(40902);
      expect(res.body.message).toBe(
        'no host could ever fit 64 GPUs, 1 CPU core, 1 GiB memory and 1 GiB storage; the largest host is host-a.test (8 GPUs, 128 CPU cores, 1 TiB memory, 16 TiB storage in all); ask for less',
      );
      expect(await count()).toBe(before);
    });

    it('refuses a GPU model nobody has, and CPU, memory or storage beyond the largest host', async () => {
      const model = await create(env('b200', { gpu_model: 'B200', queue: true }));
      expect(model.body.code).toBe(40902);
      expect(model.body.message).toContain('no host has B200 GPUs (models here: NVIDIA H100 80GB HBM3); the largest host is host-a.test');
      for (const over of [{ cpu: 129 }, { memory: 2 * 2 ** 40 }, { storage: 32 * 2 ** 40 }]) {
        const res = await create(env('big', { gpu: 0, queue: true, ...over }));
        expect(res.status, JSON.stringify(over)).toBe(409);
        expect(res.body.message).toMatch(/^no host could ever fit /);
      }
    });

    it('counts approved hosts whatever their liveness or admin state, not unapproved or revoked ones', async () => {
      await seedHost(api.db, 'host-off', { gpus: 16 });
      await api.db.updateTable('hosts').set({ liveness: 'offline', admin_state: 'cordoned' }).where('id', '=', 'host-off').execute();
      await seedHost(api.db, 'host-new', { gpus: 32 });
      await api.db.updateTable('hosts').set({ approved: false }).where('id', '=', 'host-new').execute();
      // 12 GPUs: only the offline, cordoned host could hold them some day: queued.
      const later = await create(env('later', { gpu: 12, queue: true }));
      expect(later.status).toBe(201);
      expect(later.body.data.status).toBe('pending');
      // 24: only the unapproved host has that many: refused, naming the largest approved host.
      const never = await create(env('never', { gpu: 24, queue: true }));
      expect(never.body.code).toBe(40902);
      expect(never.body.message).toMatch(/the largest host is host-off\.test \(16 GPUs/);
    });
  });

  describe.skipIf(target.skipReason !== '')('one pass places a fitting entry behind 120 that do not fit', () => {
    let api: TestApi;
    let a: TestUser;
    let b: TestUser;
    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-1', { gpus: 8 });
      a = await api.createUser('a');
      b = await api.createUser('b');
    });
    afterAll(async () => api?.close());

    it('places B in the first pass; later passes read the hosts once, not once per entry', async () => {
      const filler = await api.createUser('filler');
      const big = await api.request('POST', '/api/v1/environments', { token: filler.token, body: env('f7', { gpu: 7 }) });
      const small = await api.request('POST', '/api/v1/environments', { token: filler.token, body: env('f1', { gpu: 1 }) });
      expect([big.status, small.status]).toEqual([201, 201]);
      // A: 20 entries no host could ever hold any more (as if a host went away after they were
      // queued), then 100 that do not fit now (2 GPUs each, none free). All older than B's.
      const { id: imageId } = await api.db.selectFrom('images').select('id').executeTakeFirstOrThrow();
      const copy = await imageCopy(api.db, imageId);
      const old = Date.now() - 3_600_000;
      await api.db
        .insertInto('environments')
        .values(
          Array.from({ length: 20 }, (_, i) => ({
            id: `env-never${String(i).padStart(5, '0')}`,
            owner_id: a.id,
            workspace_id: null,
            name: `never-${i}`,
            image_id: imageId,
            image: 'ubuntu20-pytorch:2.0',
            ...copy,
            cpu: 1,
            memory_bytes: GiB,
            gpu: 64,
            storage_bytes: GiB,
            gpu_model: null,
            desired_state: 'running' as const,
            status: 'pending' as const,
            status_reason: 'waiting for capacity: no host has 64 free GPUs',
            host_id: null,
            ssh_port: null,
            jupyter_port: null,
            jupyter_token: 't',
            idempotency_key: null,
            created_at: new Date(old + i),
          })),
        )
        .execute();
      for (let i = 0; i < 100; i++) {
        const res = await api.request('POST', '/api/v1/environments', { token: a.token, body: env(`a-${i}`, { gpu: 2, queue: true }) });
        expect(res.body.data?.status).toBe('pending');
      }
      const mine = await api.request('POST', '/api/v1/environments', { token: b.token, body: env('b-1', { gpu: 1, queue: true }) });
      expect(mine.body.data.status).toBe('pending');
      // One GPU frees (the filler's 1-GPU environment stopped).
      await api.db.deleteFrom('gpu_reservations').where('env_id', '=', small.body.data.env_id).execute();
      await api.db.updateTable('environments').set({ status: 'stopped', desired_state: 'stopped', reserved_cpu: 0, reserved_memory_bytes: 0 }).where('id', '=', small.body.data.env_id).execute();

      const first = await api.services.queue.pass();
      expect(first).toEqual({ placed: 1, scanned: 121 });
      const placed = await api.request('GET', `/api/v1/environments/${mine.body.data.env_id}`, { token: b.token });
      expect(placed.body.data).toMatchObject({ status: 'creating', host_id: 'host-1' });
      // The entries that can never fit say so; those that may fit later keep waiting for capacity.
      const reasons = await api.db.selectFrom('environments').select(['name', 'status', 'status_reason']).where('owner_id', '=', a.id).execute();
      expect(reasons.every((r) => r.status === 'pending')).toBe(true);
      expect(reasons.filter((r) => r.name.startsWith('never-')).every((r) => r.status_reason.startsWith('no host could ever fit 64 GPUs'))).toBe(true);
      expect(reasons.filter((r) => r.name.startsWith('a-')).every((r) => r.status_reason.startsWith('waiting for capacity'))).toBe(true);

      // A pass over 120 entries that fit nowhere reads: the queue, the hosts once, their capacity once.
      let queries = 0;
      const counter: KyselyPlugin = {
        transformQuery: (args) => {
          queries++;
          return args.node;
        },
        transformResult: async (args) => args.result,
      };
      const placer = new QueuePlacer({ db: api.db.withPlugin(counter), logger: pino({ level: 'silent' }), ports: { ssh: api.config.sshPortRange, jupyter: api.config.jupyterPortRange } });
      expect(await placer.pass()).toEqual({ placed: 0, scanned: 120 });
      expect(queries).toBeLessThanOrEqual(5);
    });

    it('takes turns across owners: each owner’s oldest entry before anyone’s second', async () => {
      const order = (await import('../../../controller/environments/environments.repo.js')).listQueued;
      const c = await api.createUser('c');
      // c queues 3 entries (no room), after all of a's.
      for (let i = 0; i < 3; i++) expect((await api.request('POST', '/api/v1/environments', { token: c.token, body: env(`c-${i}`, { gpu: 2, queue: true }) })).status).toBe(201);
      const list = await order(api.db, 4);
      const names = new Map((await api.db.selectFrom('environments').select(['id', 'name']).execute()).map((e) => [e.id, e.name]));
      expect(list.map((e) => names.get(e.id))).toEqual(['never-0', 'c-0', 'never-1', 'c-1']);
    });
  });

  describe.skipIf(target.skipReason !== '')('a disabled owner’s queued environments stay queued', () => {
    let api: TestApi;
    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-1', { gpus: 8 });
    });
    afterAll(async () => api?.close());

    const placer = (db: Db) => new QueuePlacer({ db, logger: pino({ level: 'silent' }), ports: { ssh: api.config.sshPortRange, jupyter: api.config.jupyterPortRange } });
    const row = (id: string) => api.db.selectFrom('environments').select(['status', 'host_id']).where('id', '=', id).executeTakeFirstOrThrow();

    it('is not placed when it queued after its owner was disabled (through the admin route)', async () => {
      const dora = await api.createUser('dora');
      expect((await api.request('DELETE', `/api/v1/admin/users/${dora.id}`, { token: api.adminToken })).status).toBe(204);
      // A create that passed its checks just before the disable commits its queued row after it.
      const [id] = await insertQueued(api.db, { id: dora.id }, 'dora', 1, 1, Date.now());
      expect(await placer(api.db).pass()).toEqual({ placed: 0, scanned: 0 });
      expect(await row(id!)).toEqual({ status: 'pending', host_id: null });
    });

    it('is not placed when its owner is disabled after the pass listed it', async () => {
      const emil = await api.createUser('emil');
      const [id] = await insertQueued(api.db, { id: emil.id }, 'emil', 1, 1, Date.now());
      // The disable runs as soon as the queue's listing returns: on PostgreSQL on another
      // connection, awaited; on PGlite queued for its one connection, ahead of the pass's next work.
      let disable: Promise<unknown> | undefined;
      const counter = statementCounter(async (n) => {
        if (n !== 1) return;
        disable = api.db.updateTable('users').set({ disabled_at: new Date() }).where('id', '=', emil.id).execute();
        if (target.name === 'postgres') await disable;
      });
      expect(await placer(api.db.withPlugin(counter.plugin)).pass()).toEqual({ placed: 0, scanned: 1 });
      await disable;
      expect(await row(id!)).toEqual({ status: 'pending', host_id: null });
      // Enabled again: the next pass places it.
      await api.db.updateTable('users').set({ disabled_at: null }).where('id', '=', emil.id).execute();
      expect(await placer(api.db).pass()).toEqual({ placed: 1, scanned: 1 });
    });
  });
});
