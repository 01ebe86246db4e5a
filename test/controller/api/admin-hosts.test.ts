import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { gpus, insertHost, placeEnvironment } from '../hosts/seed.js';

// /api/v1/admin/hosts: listing with computed columns and filters, detail with GPUs, cordon,
// uncordon, drain, remove, and the auth answers. Rows are inserted straight into the database.

const GIB = 2 ** 30;

describe.each(DB_TARGETS)('admin hosts API on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let user: TestUser;
    let alphaGpus: string[];
    const get = (path: string, token = api.adminToken) => api.request('GET', path, { token });

    beforeAll(async () => {
      api = await createTestApi(target);
      user = await api.createUser('plain-user');
      alphaGpus = await insertHost(api.db, 'host-alpha', {
        hostname: 'alpha',
        cpuCores: 64,
        memoryBytes: 512 * GIB,
        diskBytes: 2000 * GIB,
        gpus: [...gpus(3), { utilizationPercent: 55 }, { health: 'unhealthy' }],
      });
      await insertHost(api.db, 'host-bravo', { hostname: 'bravo', gpus: [...gpus(1, 'NVIDIA A40'), ...gpus(2, 'NVIDIA H100 80GB HBM3')] });
      await insertHost(api.db, 'host-charlie', { hostname: 'charlie', liveness: 'offline' });
      await insertHost(api.db, 'host-delta', { hostname: 'delta', adminState: 'cordoned', gpus: gpus(2, 'NVIDIA L40S') });
      await placeEnvironment(api.db, 'env-a1', 'host-alpha', { cpu: 8, memoryBytes: 64 * GIB, storageBytes: 100 * GIB, gpuUuids: [alphaGpus[0]!, alphaGpus[1]!] });
      await placeEnvironment(api.db, 'env-a2', 'host-alpha', { cpu: 4, memoryBytes: 16 * GIB, storageBytes: 50 * GIB, gpuUuids: [alphaGpus[3]!] });
      await placeEnvironment(api.db, 'env-a3', 'host-alpha', { cpu: 2, memoryBytes: 8 * GIB, storageBytes: 20 * GIB, desired: 'stopped' });
      await placeEnvironment(api.db, 'env-a4', 'host-alpha', { cpu: 2, storageBytes: 20 * GIB, desired: 'deleted' });
    });
    afterAll(async () => {
      await api?.close();
    });

    it('lists hosts with allocations, GPU model and counts computed from the rows', async () => {
      const res = await get('/api/v1/admin/hosts');
      expect(res.status).toBe(200);
      expect(res.body.code).toBe(0);
      expect(res.body.data.pagination).toEqual({ page: 1, page_size: 20, total: 4, total_pages: 1 });
      const items = res.body.data.items as Record<string, unknown>[];
      expect(items.map((h) => h.hostname)).toEqual(['alpha', 'bravo', 'charlie', 'delta']);
      expect(items[0]).toMatchObject({
        host_id: 'host-alpha',
        status: 'online',
        gpu_model: 'NVIDIA H100 80GB HBM3',
        gpu_count: 5,
        gpus_allocated: 3,
        gpus_unhealthy: 1,
        cpu_total: 64,
        cpu_allocated: 12,
        memory_total: 512 * GIB,
        memory_allocated: 80 * GIB,
        storage_total: 2000 * GIB,
        storage_allocated: 170 * GIB,
        environment_count: 3,
        agent_version: '0.1.0',
        driver_version: '535.104.05',
        cuda_version: '12.2',
        gpu_condition: '',
      });
      expect(Date.parse(items[0]!.last_report_at as string)).not.toBeNaN();
      expect(items[1]).toMatchObject({ gpu_model: 'mixed: NVIDIA H100 80GB HBM3, NVIDIA A40', gpu_count: 3, gpus_allocated: 0, environment_count: 0, cpu_allocated: 0 });
      expect(items[2]).toMatchObject({ status: 'offline', gpu_model: null, gpu_count: 0 });
      expect(items[3]).toMatchObject({ status: 'cordoned', gpu_model: 'NVIDIA L40S' });
    });

    it('filters by status and by GPU model (case-insensitive substring), with exact totals', async () => {
      const offline = await get('/api/v1/admin/hosts?status=offline');
      expect(offline.body.data.items.map((h: { host_id: string }) => h.host_id)).toEqual(['host-charlie']);
      const online = await get('/api/v1/admin/hosts?status=online');
      expect(online.body.data.items.map((h: { host_id: string }) => h.host_id)).toEqual(['host-alpha', 'host-bravo']);

      const h100 = await get('/api/v1/admin/hosts?gpu_model=h100');
      expect(h100.body.data.items.map((h: { host_id: string }) => h.host_id)).toEqual(['host-alpha', 'host-bravo']);
      expect(h100.body.data.pagination.total).toBe(2);
      const a40Online = await get('/api/v1/admin/hosts?gpu_model=A40&status=online');
      expect(a40Online.body.data.items.map((h: { host_id: string }) => h.host_id)).toEqual(['host-bravo']);
      const wildcard = await get('/api/v1/admin/hosts?gpu_model=%25');
      expect(wildcard.body.data.items).toEqual([]);
    });

    it('paginates', async () => {
      const page2 = await get('/api/v1/admin/hosts?page=2&page_size=3');
      expect(page2.body.data.items.map((h: { host_id: string }) => h.host_id)).toEqual(['host-delta']);
      expect(page2.body.data.pagination).toEqual({ page: 2, page_size: 3, total: 4, total_pages: 2 });
    });

    it('answers 400 (40001) naming the field for a bad status filter or page size', async () => {
      const bad = await get('/api/v1/admin/hosts?status=sleeping');
      expect(bad.status).toBe(400);
      expect(bad.body.code).toBe(40001);
      expect(bad.body.data.fields.map((f: { field: string }) => f.field)).toEqual(['status']);
      expect(bad.body.message).toContain('status');
      const size = await get('/api/v1/admin/hosts?page_size=101');
      expect(size.status).toBe(400);
      expect(size.body.data.fields[0].field).toBe('page_size');
    });

    it('shows a host with every GPU and the environment holding it', async () => {
      const res = await get('/api/v1/admin/hosts/host-alpha');
      expect(res.status).toBe(200);
      const d = res.body.data;
      expect(d).toMatchObject({ host_id: 'host-alpha', status: 'online', gpus_allocated: 3, agent_address: '127.0.0.1:1' });
      expect(d.gpus.map((g: { index: number; env_id: string | null; health: string }) => [g.index, g.env_id, g.health])).toEqual([
        [0, 'env-a1', 'healthy'],
        [1, 'env-a1', 'healthy'],
        [2, null, 'healthy'],
        [3, 'env-a2', 'healthy'],
        [4, null, 'unhealthy'],
      ]);
      expect(d.gpus[3]).toMatchObject({ uuid: alphaGpus[3], model: 'NVIDIA H100 80GB HBM3', memory_bytes: 80 * GIB, utilization_percent: 55, mig_enabled: false, present: true });
      expect(d.gpus[4].health_reason).toMatch(/XID/);
    });

    it('answers 404 (40401) for an unknown host on every route', async () => {
      for (const [method, path] of [
        ['GET', '/api/v1/admin/hosts/host-nope'],
        ['POST', '/api/v1/admin/hosts/host-nope/cordon'],
        ['POST', '/api/v1/admin/hosts/host-nope/uncordon'],
        ['POST', '/api/v1/admin/hosts/host-nope/drain'],
        ['DELETE', '/api/v1/admin/hosts/host-nope'],
      ] as const) {
        const res = await api.request(method, path, { token: api.adminToken });
        expect([method, path, res.status, res.body.code]).toEqual([method, path, 404, 40401]);
        expect(res.body.message).toContain('host-nope');
      }
    });

    it('needs a token (401) of an admin (403)', async () => {
      const none = await api.request('GET', '/api/v1/admin/hosts');
      expect([none.status, none.body.code]).toEqual([401, 40101]);
      const notAdmin = await get('/api/v1/admin/hosts', user.token);
      expect([notAdmin.status, notAdmin.body.code]).toEqual([403, 40301]);
      const cordon = await api.request('POST', '/api/v1/admin/hosts/host-alpha/cordon', { token: user.token });
      expect(cordon.status).toBe(403);
      const del = await api.request('DELETE', '/api/v1/admin/hosts/host-alpha', { token: user.token });
      expect(del.status).toBe(403);
      const state = await api.db.selectFrom('hosts').select('admin_state').where('id', '=', 'host-alpha').executeTakeFirstOrThrow();
      expect(state.admin_state).toBe('active');
    });

    it('cordons, drains and uncordons; the listing status follows', async () => {
      const status = async () => (await get('/api/v1/admin/hosts/host-bravo')).body.data.status;
      const cordon = await api.request('POST', '/api/v1/admin/hosts/host-bravo/cordon', { token: api.adminToken, headers: { 'accept-language': 'en' } });
      expect(cordon.status).toBe(200);
      expect(cordon.body).toEqual({ code: 0, message: 'Host cordoned' });
      expect(await status()).toBe('cordoned');

      const drain = await api.request('POST', '/api/v1/admin/hosts/host-bravo/drain', { token: api.adminToken });
      expect(drain.body).toEqual({ code: 0, message: '主机排空中' });
      expect(await status()).toBe('draining');
      expect((await get('/api/v1/admin/hosts?status=draining')).body.data.items.map((h: { host_id: string }) => h.host_id)).toEqual(['host-bravo']);

      const uncordon = await api.request('POST', '/api/v1/admin/hosts/host-bravo/uncordon', { token: api.adminToken });
      expect(uncordon.status).toBe(200);
      expect(await status()).toBe('online');
    });

    it('refuses to remove a host with environments (409, 40901) and removes an empty one (204)', async () => {
      const busy = await api.request('DELETE', '/api/v1/admin/hosts/host-alpha', { token: api.adminToken });
      expect(busy.status).toBe(409);
      expect(busy.body.code).toBe(40901);
      // env-a4 is deleted, but its agent has not confirmed the removal: it still counts.
      expect(busy.body.message).toMatch(/4 environment/);
      expect(busy.body.message).toContain('env-a1');
      expect(busy.body.message).toContain('env-a4 deleting: its agent has not confirmed the removal yet');

      // Only a deleted environment (with a GPU reservation not yet released) is left on it: its
      // container and data are still on the host until the agent removes them (issue 11, item 13).
      const uuids = await insertHost(api.db, 'host-echo', { hostname: 'echo', gpus: gpus(1) });
      await placeEnvironment(api.db, 'env-e1', 'host-echo', { desired: 'deleted', gpuUuids: [uuids[0]!] });
      const events = () => api.db.selectFrom('environment_events').select(['kind', 'message']).where('env_id', '=', 'env-e1').execute();
      const pending = await api.request('DELETE', '/api/v1/admin/hosts/host-echo', { token: api.adminToken });
      expect(pending.status).toBe(409);
      expect(pending.body).toEqual({ code: 40901, message: expect.stringContaining('env-e1 deleting: its agent has not confirmed the removal yet'), data: null });
      expect(await api.db.selectFrom('hosts').select('id').where('id', '=', 'host-echo').executeTakeFirst()).toEqual({ id: 'host-echo' });
      expect(await api.db.selectFrom('gpu_reservations').select('env_id').where('host_id', '=', 'host-echo').execute()).toEqual([{ env_id: 'env-e1' }]);
      expect((await api.db.selectFrom('environments').select('host_id').where('id', '=', 'env-e1').executeTakeFirstOrThrow()).host_id).toBe('host-echo');
      expect(await events()).toEqual([]);

      // force=true does not override environments that are not deleted.
      const live = await api.request('DELETE', '/api/v1/admin/hosts/host-alpha?force=true', { token: api.adminToken });
      expect(live.status).toBe(409);
      expect(live.body.message).toContain('env-a1');
      const bad = await api.request('DELETE', '/api/v1/admin/hosts/host-echo?force=maybe', { token: api.adminToken });
      expect(bad.status).toBe(400);
      expect(bad.body.data.fields).toEqual([{ field: 'force', message: 'must be true or false' }]);
      expect(await events()).toEqual([]);

      // The agent confirmed the removal (what the reconciler records): the host can go.
      await api.db.updateTable('environments').set({ applied_generation: sql<number>`spec_generation` }).where('id', '=', 'env-e1').execute();
      const removed = await api.request('DELETE', '/api/v1/admin/hosts/host-echo', { token: api.adminToken });
      expect(removed.status).toBe(204);
      expect(removed.text).toBe('');
      expect(await api.db.selectFrom('hosts').select('id').where('id', '=', 'host-echo').executeTakeFirst()).toBeUndefined();
      expect(await api.db.selectFrom('host_gpus').select('uuid').where('host_id', '=', 'host-echo').execute()).toEqual([]);
      const env = await api.db.selectFrom('environments').select('host_id').where('id', '=', 'env-e1').executeTakeFirstOrThrow();
      expect(env.host_id).toBeNull();
      expect((await get('/api/v1/admin/hosts/host-echo')).status).toBe(404);
    });

    it('removes a host gone for good with force=true, giving up on its pending removals with an event saying so', async () => {
      const uuids = await insertHost(api.db, 'host-foxtrot', { hostname: 'foxtrot', gpus: gpus(1), liveness: 'offline' });
      await placeEnvironment(api.db, 'env-f1', 'host-foxtrot', { desired: 'deleted', gpuUuids: [uuids[0]!] });
      expect((await api.request('DELETE', '/api/v1/admin/hosts/host-foxtrot', { token: api.adminToken })).body.message).toContain('?force=true');
      const forced = await api.request('DELETE', '/api/v1/admin/hosts/host-foxtrot?force=true', { token: api.adminToken });
      expect(forced.status).toBe(204);
      expect(await api.db.selectFrom('hosts').select('id').where('id', '=', 'host-foxtrot').executeTakeFirst()).toBeUndefined();
      expect(await api.db.selectFrom('gpu_reservations').select('env_id').where('env_id', '=', 'env-f1').execute()).toEqual([]);
      const env = await api.db.selectFrom('environments').select(['host_id', 'spec_generation', 'applied_generation', 'observed_state']).where('id', '=', 'env-f1').executeTakeFirstOrThrow();
      expect(env).toEqual({ host_id: null, spec_generation: 1, applied_generation: 1, observed_state: 'unknown' });
      const events = await api.db.selectFrom('environment_events').select(['kind', 'message']).where('env_id', '=', 'env-f1').execute();
      expect(events).toEqual([
        { kind: 'removal_abandoned', message: 'Host host-foxtrot was removed by an admin before its agent confirmed this removal: the container and its data may remain on that server' },
      ]);
    });

    it('documents the routes in the OpenAPI document', async () => {
      const doc = await api.request('GET', '/api/v1/openapi.json');
      expect(Object.keys(doc.body.paths)).toEqual(
        expect.arrayContaining([
          '/api/v1/admin/hosts',
          '/api/v1/admin/hosts/{host_id}',
          '/api/v1/admin/hosts/{host_id}/cordon',
          '/api/v1/admin/hosts/{host_id}/uncordon',
          '/api/v1/admin/hosts/{host_id}/drain',
        ]),
      );
    });
  });
});
