import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentSpec } from '../../../controller/environments/spec.js';
import { createTestApi, type TestApi } from '../../helpers/api.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// `POST /environments/{id}/start {"storage": N}` grows a stopped environment's volume: a larger
// size is reserved on its host and reaches the agent's spec; a smaller one is a 400 naming the
// field (volumes never shrink); growth the host has no room for is a 409. Nothing changes on a refusal.

const GiB = 2 ** 30;

describe.each(DB_TARGETS)('start with storage on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: { id: number; token: string };

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      // 100 GiB of disk.
      await seedHost(api.db, 'host-s', { gpus: 2, diskBytes: 100 * GiB });
      alice = await api.createUser('alice');
    });
    afterAll(async () => api?.close());

    /** A created environment of `storage` bytes, then marked stopped (as its agent would report). */
    async function stopped(storage: number): Promise<string> {
      const res = await api.request('POST', '/api/v1/environments', {
        token: alice.token,
        body: { name: 'grow', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 0, storage },
      });
      expect(res.status).toBe(201);
      const id = res.body.data.env_id as string;
      await api.db.updateTable('environments').set({ status: 'stopped', desired_state: 'stopped' }).where('id', '=', id).execute();
      return id;
    }
    const row = (id: string) => api.db.selectFrom('environments').select(['storage_bytes', 'spec_generation', 'status']).where('id', '=', id).executeTakeFirstOrThrow();
    const start = (id: string, body: unknown) => api.request('POST', `/api/v1/environments/${id}/start`, { token: alice.token, body });

    it('grows the volume: the new size is stored, reserved on the host and in the agent spec', async () => {
      const id = await stopped(10 * GiB);
      const res = await start(id, { storage: 20 * GiB });
      expect(res.status).toBe(200);
      expect(await row(id)).toMatchObject({ storage_bytes: 20 * GiB, status: 'starting' });
      const detail = await api.request('GET', `/api/v1/environments/${id}`, { token: alice.token });
      expect(detail.body.data.storage).toBe(20 * GiB);
      const spec = await buildAgentSpec(api.db, id);
      expect(spec?.storageBytes).toBe(20 * GiB);
      const events = await api.db.selectFrom('environment_events').select('message').where('env_id', '=', id).execute();
      expect(events.map((e) => e.message).join('\n')).toContain(`storage grown to ${20 * GiB} bytes`);
      await api.request('DELETE', `/api/v1/environments/${id}`, { token: alice.token });
    });

    it('a smaller size is a 400 naming storage, and nothing changes', async () => {
      const id = await stopped(10 * GiB);
      const before = await row(id);
      const res = await start(id, { storage: 5 * GiB });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.message).toContain('only grows');
      expect(res.body.data.fields).toEqual([{ field: 'storage', message: expect.stringContaining(`at least ${10 * GiB}`) }]);
      expect(await row(id)).toEqual(before);
      // The same size is fine: nothing to grow.
      expect((await start(id, { storage: 10 * GiB })).status).toBe(200);
      expect((await row(id)).storage_bytes).toBe(10 * GiB);
      await api.request('DELETE', `/api/v1/environments/${id}`, { token: alice.token });
    });

    it('growth the host has no room for is a 409 naming the storage, and nothing changes', async () => {
      const id = await stopped(10 * GiB);
      const before = await row(id);
      const res = await start(id, { storage: 200 * GiB });
      expect(res.status).toBe(409);
      expect(res.body.code).toBe(40902);
      expect(res.body.message).toContain(`${190 * GiB} more bytes of storage`);
      expect(await row(id)).toEqual(before);
      await api.request('DELETE', `/api/v1/environments/${id}`, { token: alice.token });
    });

    it('refuses a storage that is not a size (400 naming storage)', async () => {
      const id = await stopped(10 * GiB);
      const res = await start(id, { storage: 'big' });
      expect(res.status).toBe(400);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toEqual(['storage']);
    });
  });

  describe.skipIf(target.skipReason !== '')('reservation', () => {
    let api: TestApi;
    let alice: { id: number; token: string };

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-r', { gpus: 0, diskBytes: 100 * GiB });
      alice = await api.createUser('alice');
    });
    afterAll(async () => api?.close());

    const create = (name: string, storage: number) =>
      api.request('POST', '/api/v1/environments', { token: alice.token, body: { name, image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 0, storage } });
    const stop = (id: string) => api.db.updateTable('environments').set({ status: 'stopped', desired_state: 'stopped' }).where('id', '=', id).execute();
    const start = (id: string, body: unknown) => api.request('POST', `/api/v1/environments/${id}/start`, { token: alice.token, body });
    const reserved = async () =>
      Object.fromEntries(
        (await api.db.selectFrom('environments').select(['id', 'reserved_storage_bytes']).where('host_id', '=', 'host-r').execute()).map((r) => [r.id, r.reserved_storage_bytes]),
      );
    const allocated = async () => (await api.request('GET', '/api/v1/admin/hosts/host-r', { token: api.adminToken })).body.data.storage_allocated as number;

    it('reserves the whole grown volume, not the growth: the host is not over-committed afterwards', async () => {
      const a = await create('a', 50 * GiB);
      expect(a.status).toBe(201);
      const id = a.body.data.env_id as string;
      await stop(id);
      expect((await start(id, { storage: 60 * GiB })).status).toBe(200);
      expect(await reserved()).toEqual({ [id]: 60 * GiB });
      expect(await allocated()).toBe(60 * GiB);

      // 60 + 45 > 100: refused; 60 + 40 fits exactly.
      const tooBig = await create('b', 45 * GiB);
      expect(tooBig.status).toBe(409);
      expect(tooBig.body.code).toBe(40902);
      const b = await create('b', 40 * GiB);
      expect(b.status).toBe(201);
      expect(await reserved()).toEqual({ [id]: 60 * GiB, [b.body.data.env_id]: 40 * GiB });
      expect(await allocated()).toBe(100 * GiB);

      // The disk is full now: a start without growth still fits (only the growth is checked) and
      // keeps the whole volume reserved; one more byte of growth does not fit.
      await stop(id);
      expect((await start(id, {})).status).toBe(200);
      expect(await reserved()).toEqual({ [id]: 60 * GiB, [b.body.data.env_id]: 40 * GiB });
      await stop(id);
      expect((await start(id, { storage: 60 * GiB })).status).toBe(200);
      expect((await reserved())[id]).toBe(60 * GiB);
      await stop(id);
      const more = await start(id, { storage: 61 * GiB });
      expect(more.status).toBe(409);
      expect(more.body.message).toContain(`${GiB} more bytes of storage`);
      expect(await allocated()).toBe(100 * GiB);
      expect((await create('c', GiB)).status).toBe(409);
    });
  });
});
