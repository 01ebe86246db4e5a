import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

const GiB = 2 ** 30;
const body = (over: Record<string, unknown> = {}) => ({
  name: 'PyTorch Training',
  description: '深度学习训练环境',
  image: 'ubuntu20-pytorch:2.0',
  cpu: 4,
  memory: 17179869184,
  gpu: 1,
  storage: 107374182400,
  ...over,
});

describe.each(DB_TARGETS)('environments API on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: { id: number; token: string };
    let bob: { id: number; token: string };

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-a', { gpus: 8 });
      alice = await api.createUser('alice');
      bob = await api.createUser('bob');
    });
    afterAll(async () => api?.close());

    const count = async () => Number((await api.db.selectFrom('environments').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

    it('creates an environment with the seed response shape (201, code 0, 环境创建成功)', async () => {
      const res = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body() });
      expect(res.status).toBe(201);
      expect(res.body.code).toBe(0);
      expect(res.body.message).toBe('环境创建成功');
      const d = res.body.data;
      expect(d).toMatchObject({ name: 'PyTorch Training', status: 'creating', image: 'ubuntu20-pytorch:2.0', cpu: 4, memory: 17179869184, gpu: 1, storage: 107374182400, host_id: 'host-a' });
      expect(d.env_id).toMatch(/^env-[a-z0-9]{10}$/);
      expect(new Date(d.created_at).toISOString()).toBe(d.created_at);
      expect(d.ssh_port).toBeGreaterThanOrEqual(20000);
      expect(d.ssh_port).toBeLessThanOrEqual(24999);
      expect(d.jupyter_port).toBeGreaterThanOrEqual(25000);
      expect(d.jupyter_port).toBeLessThanOrEqual(28999);
      expect(d.access_info.ssh).toBe(`ssh root@127.0.0.1 -p ${d.ssh_port}`);
      expect(d.access_info.jupyter).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${d.jupyter_port}/\\?token=.{20,}$`));
      const gpus = await api.db.selectFrom('gpu_reservations').selectAll().where('env_id', '=', d.env_id).execute();
      expect(gpus).toHaveLength(1);
    });

    it('answers in English when asked', async () => {
      const res = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body({ gpu: 0 }), headers: { 'accept-language': 'en-US,en;q=0.9' } });
      expect(res.status).toBe(201);
      expect(res.body.message).toBe('Environment created');
    });

    it.each([
      ['cpu', { cpu: -1 }],
      ['cpu', { cpu: 1.5 }],
      ['cpu', { cpu: '4' }],
      ['memory', { memory: 1e30 }],
      ['memory', { memory: 1024 }],
      ['gpu', { gpu: -1 }],
      ['storage', { storage: 10 }],
      ['name', { name: '' }],
      ['name', { name: 'x'.repeat(65) }],
      ['image', { image: 42 }],
      ['workspace_id', { workspace_id: 'abc' }],
    ])('rejects a bad %s with 400 naming the field and creates nothing', async (field, over) => {
      const before = await count();
      const res = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body(over) });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toContain(field);
      expect(res.body.message).toContain(field);
      expect(await count()).toBe(before);
    });

    it('rejects a missing required field, malformed JSON and an unknown image', async () => {
      const { name: _n, ...noName } = body();
      const missing = await api.request('POST', '/api/v1/environments', { token: alice.token, body: noName });
      expect(missing.status).toBe(400);
      expect(missing.body.data.fields[0].field).toBe('name');
      const malformed = await api.request('POST', '/api/v1/environments', { token: alice.token, body: '{"name": ' });
      expect(malformed.status).toBe(400);
      expect(malformed.body.code).toBe(40002);
      const image = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body({ image: 'nope:1' }) });
      expect(image.status).toBe(400);
      expect(image.body.message).toMatch(/nope:1.*not in the catalog/);
    });

    it('answers 409 (40902) naming the largest free slot when nothing fits, or queues', async () => {
      // 8 GPUs while the first test holds one of host-a's 8: no room now, but some day.
      const res = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body({ gpu: 8 }) });
      expect(res.status).toBe(409);
      expect(res.body.code).toBe(40902);
      expect(res.body.message).toMatch(/largest free slot is \d+ .*GPU/);
      // 16 GPUs: no host could ever hold them, refused even with queue (issue 11, item 8).
      const never = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body({ gpu: 16, queue: true }) });
      expect(never.status).toBe(409);
      expect(never.body.code).toBe(40902);
      expect(never.body.message).toMatch(/^no host could ever fit 16 GPUs, .*; the largest host is host-a\.test \(8 GPUs, 128 CPU cores/);
      const queued = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body({ gpu: 8, queue: true }) });
      expect(queued.status).toBe(201);
      expect(queued.body.data.status).toBe('pending');
      expect(queued.body.data.host_id).toBeNull();
      expect(queued.body.data.access_info).toBeNull();
      // Stopped while queued, then started again: back in the queue (never placed, nothing held).
      const id = queued.body.data.env_id;
      expect((await api.request('POST', `/api/v1/environments/${id}/stop`, { token: alice.token })).status).toBe(200);
      expect((await api.request('GET', `/api/v1/environments/${id}`, { token: alice.token })).body.data.status).toBe('stopped');
      const start = await api.request('POST', `/api/v1/environments/${id}/start`, { token: alice.token, body: '', headers: { 'content-type': 'application/json' } });
      expect(start.status).toBe(200);
      expect((await api.request('GET', `/api/v1/environments/${id}`, { token: alice.token })).body.data.status).toBe('pending');
      expect((await api.request('DELETE', `/api/v1/environments/${id}`, { token: alice.token })).status).toBe(204);
    });

    it('returns the same environment for a repeated Idempotency-Key', async () => {
      const headers = { 'idempotency-key': 'abc-123' };
      const first = await api.request('POST', '/api/v1/environments', { token: bob.token, body: body({ gpu: 0 }), headers });
      const again = await api.request('POST', '/api/v1/environments', { token: bob.token, body: body({ gpu: 0 }), headers });
      expect(first.status).toBe(201);
      expect(again.status).toBe(200);
      expect(again.body.data.env_id).toBe(first.body.data.env_id);
    });

    it('refuses a reused Idempotency-Key of a deleted environment, lists the catalog, and limits body size', async () => {
      const headers = { 'idempotency-key': 'gone-1' };
      const first = await api.request('POST', '/api/v1/environments', { token: bob.token, body: body({ gpu: 0 }), headers });
      expect((await api.request('DELETE', `/api/v1/environments/${first.body.data.env_id}`, { token: bob.token })).status).toBe(204);
      const again = await api.request('POST', '/api/v1/environments', { token: bob.token, body: body({ gpu: 0 }), headers });
      expect(again.status).toBe(409);
      expect(again.body.message).toContain('has been deleted');
      const images = await api.request('GET', '/api/v1/images', { token: bob.token });
      expect(images.status).toBe(200);
      expect(images.body.data.items.map((i: { name: string }) => i.name)).toContain('ubuntu20-pytorch:2.0');
      const before = await count();
      const huge = await api.request('POST', '/api/v1/environments', { token: bob.token, body: body({ description: 'x'.repeat(2 * 1024 * 1024) }) });
      expect(huge.status).toBe(413);
      expect(huge.body.code).toBe(41301);
      expect(await count()).toBe(before);
    });

    it('lists newest first with exact pagination, filters and hides other users', async () => {
      const carol = await api.createUser('carol');
      const list = (q: string) => api.request('GET', `/api/v1/environments${q}`, { token: carol.token });
      let res = await list('');
      expect(res.body.data).toEqual({ items: [], pagination: { page: 1, page_size: 20, total: 0, total_pages: 0 } });
      const ids: string[] = [];
      for (let i = 0; i < 21; i++) {
        const r = await api.request('POST', '/api/v1/environments', { token: carol.token, body: body({ name: `e${i}`, gpu: 0, cpu: 1, memory: 64 * 2 ** 20, storage: GiB }) });
        expect(r.status).toBe(201);
        ids.push(r.body.data.env_id);
        if (i === 0) expect((await list('')).body.data.pagination).toEqual({ page: 1, page_size: 20, total: 1, total_pages: 1 });
        if (i === 19) expect((await list('')).body.data.pagination).toEqual({ page: 1, page_size: 20, total: 20, total_pages: 1 });
      }
      res = await list('');
      expect(res.body.data.pagination).toEqual({ page: 1, page_size: 20, total: 21, total_pages: 2 });
      expect(res.body.data.items[0].env_id).toBe(ids[20]);
      expect(res.body.data.items[0]).toHaveProperty('ssh_port');
      res = await list('?page=2&page_size=20');
      expect(res.body.data.items.map((e: { env_id: string }) => e.env_id)).toEqual([ids[0]]);
      expect((await list('?status=creating&page_size=5')).body.data.pagination.total).toBe(21);
      expect((await list('?status=running')).body.data.pagination.total).toBe(0);
      for (const bad of ['?status=bogus', '?page=0', '?page_size=100000', '?page_size=abc', '?workspace_id=-1']) {
        const r = await list(bad);
        expect(r.status, bad).toBe(400);
        expect(r.body.code).toBe(40001);
      }
    });

    it('runs the lifecycle actions with the seed messages and refuses wrong states with 40901', async () => {
      const created = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body({ gpu: 2 }) });
      const id = created.body.data.env_id;
      const act = (a: string, b?: unknown) => api.request('POST', `/api/v1/environments/${id}/${a}`, { token: alice.token, body: b });
      const start = await act('start');
      expect(start.status).toBe(409);
      expect(start.body.code).toBe(40901);
      expect(start.body.message).toContain('creating');
      // The reconciler is not running in this test: settle as running by hand.
      await api.db.updateTable('environments').set({ status: 'running' }).where('id', '=', id).execute();
      const restart = await act('restart');
      expect(restart).toMatchObject({ status: 200, body: { code: 0, message: '环境重启中' } });
      await api.db.updateTable('environments').set({ status: 'running' }).where('id', '=', id).execute();
      const stop = await act('stop');
      expect(stop).toMatchObject({ status: 200, body: { code: 0, message: '环境停止中' } });
      expect((await api.request('GET', `/api/v1/environments/${id}`, { token: alice.token })).body.data.status).toBe('stopping');
      expect((await act('stop')).status).toBe(409);
      const del = await api.request('DELETE', `/api/v1/environments/${id}`, { token: alice.token });
      expect(del.status).toBe(204);
      expect(del.text).toBe('');
      expect((await api.request('GET', `/api/v1/environments/${id}`, { token: alice.token })).status).toBe(404);
      expect((await api.request('DELETE', `/api/v1/environments/${id}`, { token: alice.token })).status).toBe(404);
    });

    it('validates dataset mounts: paths, visibility, duplicates', async () => {
      const created = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body({ gpu: 0 }) });
      const id = created.body.data.env_id;
      const ds = await api.db.insertInto('datasets').values({ name: 'imagenet', host_path: '/srv/imagenet' }).returning('id').executeTakeFirstOrThrow();
      const priv = await api.db.insertInto('datasets').values({ name: 'secret', host_path: '/srv/secret', owner_id: bob.id }).returning('id').executeTakeFirstOrThrow();
      const mount = (b: unknown) => api.request('POST', `/api/v1/environments/${id}/datasets`, { token: alice.token, body: b });
      for (const bad of ['relative/path', '/data/../etc', '/', '/proc', '/proc/x', '/etc/passwd', '/root/.ssh', '/root/workspace', '/data/a,b']) {
        const r = await mount({ dataset_id: ds.id, mount_path: bad });
        expect(r.status, bad).toBe(400);
        expect(r.body.data.fields[0].field).toBe('mount_path');
      }
      expect((await mount({ dataset_id: priv.id, mount_path: '/data/x' })).status).toBe(404);
      expect((await mount({ dataset_id: 'x', mount_path: '/data/x' })).status).toBe(400);
      const ok = await mount({ dataset_id: ds.id, mount_path: '/data/imagenet/', readonly: true });
      expect(ok).toMatchObject({ status: 200, body: { code: 0, message: '数据集挂载成功' } });
      expect((await mount({ dataset_id: ds.id, mount_path: '/data/other' })).status).toBe(409);
      const list = await api.request('GET', `/api/v1/environments/${id}/datasets`, { token: alice.token });
      expect(list.body.data.items).toEqual([expect.objectContaining({ dataset_id: ds.id, mount_path: '/data/imagenet', readonly: true })]);
      expect((await api.request('DELETE', `/api/v1/environments/${id}/datasets/${ds.id}`, { token: alice.token })).status).toBe(204);
      expect((await api.request('DELETE', `/api/v1/environments/${id}/datasets/${ds.id}`, { token: alice.token })).status).toBe(404);
    });

    it('serves logs with platform events formatted as [YYYY-MM-DD HH:MM:SS] text', async () => {
      const created = await api.request('POST', '/api/v1/environments', { token: alice.token, body: body({ gpu: 0 }) });
      const id = created.body.data.env_id;
      // The seeded host has no agent: container output is reported unavailable, events still come.
      const res = await api.request('GET', `/api/v1/environments/${id}/logs?lines=50`, { token: alice.token });
      expect(res.status).toBe(200);
      expect(res.body.data.logs.some((l: string) => /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] Scheduled on host-a/.test(l))).toBe(true);
      for (const bad of ['lines=0', 'lines=10001', 'lines=abc', 'follow=maybe']) {
        expect((await api.request('GET', `/api/v1/environments/${id}/logs?${bad}`, { token: alice.token })).status, bad).toBe(400);
      }
    });
  });
});
