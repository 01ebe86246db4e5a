import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, seedEnvironment, type TestApi } from '../../helpers/api.js';

describe.each(DB_TARGETS)('admin images API on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });

    beforeAll(async () => {
      api = await createTestApi(target);
    });
    afterAll(async () => api?.close());

    it('adds an image with the defaults (ssh 22, jupyter 8888, /root/workspace)', async () => {
      const res = await admin('POST', '/api/v1/admin/images', { name: 'ubuntu20-pytorch:2.0', docker_ref: 'registry.example.com/ml/pytorch:2.0-cuda12' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ code: 0, message: '镜像添加成功' });
      expect(res.body.data).toEqual({
        id: expect.any(Number),
        name: 'ubuntu20-pytorch:2.0',
        docker_ref: 'registry.example.com/ml/pytorch:2.0-cuda12',
        description: '',
        ssh_port: 22,
        jupyter_port: 8888,
        data_path: '/root/workspace',
        created_at: expect.any(String),
      });
      const got = await admin('GET', `/api/v1/admin/images/${res.body.data.id}`);
      expect(got.body.data).toEqual(res.body.data);
    });

    it('takes every field, jupyter_port null included', async () => {
      const res = await admin('POST', '/api/v1/admin/images', {
        name: 'cuda:12.4',
        docker_ref: 'nvidia/cuda:12.4.1-base-ubuntu22.04',
        description: 'bare CUDA',
        ssh_port: 2222,
        jupyter_port: null,
        data_path: '/workspace',
      });
      expect(res.status).toBe(201);
      expect(res.body.data).toMatchObject({ description: 'bare CUDA', ssh_port: 2222, jupyter_port: null, data_path: '/workspace' });
    });

    it.each([
      ['missing name', { docker_ref: 'x' }, 'name'],
      ['empty name', { name: '', docker_ref: 'x' }, 'name'],
      ['129-character name', { name: 'n'.repeat(129), docker_ref: 'x' }, 'name'],
      ['name with spaces', { name: 'my image', docker_ref: 'x' }, 'name'],
      ['numeric name', { name: 7, docker_ref: 'x' }, 'name'],
      ['missing docker_ref', { name: 'a' }, 'docker_ref'],
      ['docker_ref with spaces', { name: 'a', docker_ref: 'a b' }, 'docker_ref'],
      ['ssh_port 0', { name: 'a', docker_ref: 'x', ssh_port: 0 }, 'ssh_port'],
      ['ssh_port 65536', { name: 'a', docker_ref: 'x', ssh_port: 65536 }, 'ssh_port'],
      ['ssh_port as text', { name: 'a', docker_ref: 'x', ssh_port: '22' }, 'ssh_port'],
      ['jupyter_port 1.5', { name: 'a', docker_ref: 'x', jupyter_port: 1.5 }, 'jupyter_port'],
      ['relative data_path', { name: 'a', docker_ref: 'x', data_path: 'workspace' }, 'data_path'],
      ['data_path with ..', { name: 'a', docker_ref: 'x', data_path: '/root/../etc' }, 'data_path'],
      ['data_path with //', { name: 'a', docker_ref: 'x', data_path: '/root//ws' }, 'data_path'],
      ['data_path with trailing /', { name: 'a', docker_ref: 'x', data_path: '/root/ws/' }, 'data_path'],
      ['data_path /', { name: 'a', docker_ref: 'x', data_path: '/' }, 'data_path'],
      ['description as a number', { name: 'a', docker_ref: 'x', description: 5 }, 'description'],
    ])('refuses %s with 400 40001 naming the field', async (_label, body, field) => {
      const res = await admin('POST', '/api/v1/admin/images', body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toEqual([field]);
    });

    it('suggests the normalized form of a data_path', async () => {
      const res = await admin('POST', '/api/v1/admin/images', { name: 'a', docker_ref: 'x', data_path: '/root/./ws/' });
      expect(res.body.data.fields[0].message).toContain('"/root/ws"');
    });

    it('refuses a duplicate name with 409 40903, on create and on rename', async () => {
      const first = await admin('POST', '/api/v1/admin/images', { name: 'dup:1', docker_ref: 'x' });
      expect(first.status).toBe(201);
      const dup = await admin('POST', '/api/v1/admin/images', { name: 'dup:1', docker_ref: 'y' });
      expect(dup.status).toBe(409);
      expect(dup.body.code).toBe(40903);
      const other = await admin('POST', '/api/v1/admin/images', { name: 'dup:2', docker_ref: 'x' });
      const rename = await admin('PATCH', `/api/v1/admin/images/${other.body.data.id}`, { name: 'dup:1' });
      expect(rename.status).toBe(409);
      expect(rename.body.code).toBe(40903);
    });

    it('changes only the fields sent', async () => {
      const created = await admin('POST', '/api/v1/admin/images', { name: 'patch-me', docker_ref: 'x', description: 'keep' });
      const id = created.body.data.id;
      const res = await admin('PATCH', `/api/v1/admin/images/${id}`, { docker_ref: 'x:2', jupyter_port: null, unknown: true });
      expect(res.status).toBe(200);
      expect(res.body.message).toBe('镜像更新成功');
      expect(res.body.data).toEqual({ ...created.body.data, docker_ref: 'x:2', jupyter_port: null });
      const empty = await admin('PATCH', `/api/v1/admin/images/${id}`, {});
      expect(empty.body.data).toEqual(res.body.data);
      const bad = await admin('PATCH', `/api/v1/admin/images/${id}`, { data_path: 'rel' });
      expect(bad.status).toBe(400);
      expect(bad.body.data.fields[0].field).toBe('data_path');
      expect((await admin('PATCH', '/api/v1/admin/images/999999', { description: 'x' })).status).toBe(404);
    });

    it('lists images by name with pagination', async () => {
      const res = await admin('GET', '/api/v1/admin/images?page=1&page_size=100');
      expect(res.status).toBe(200);
      const names = res.body.data.items.map((i: { name: string }) => i.name);
      expect(names).toEqual([...names].sort());
      expect(res.body.data.pagination).toEqual({ page: 1, page_size: 100, total: names.length, total_pages: 1 });
    });

    it('deletes an image unless a live environment uses it (409 40901)', async () => {
      const created = await admin('POST', '/api/v1/admin/images', { name: 'in-use', docker_ref: 'x' });
      const id = created.body.data.id;
      const user = await api.createUser('envowner');
      const env = await seedEnvironment(api.db, { ownerId: user.id, imageId: id, desiredState: 'stopped' });
      const refused = await admin('DELETE', `/api/v1/admin/images/${id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe(40901);
      expect(refused.body.message).toContain(env);

      const unused = await admin('POST', '/api/v1/admin/images', { name: 'unused', docker_ref: 'x' });
      const res = await admin('DELETE', `/api/v1/admin/images/${unused.body.data.id}`);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect((await admin('GET', `/api/v1/admin/images/${unused.body.data.id}`)).status).toBe(404);
      expect((await admin('DELETE', `/api/v1/admin/images/${unused.body.data.id}`)).status).toBe(404);
    });

    it('answers 409 (not 500) while deleted environments still reference the image', async () => {
      const created = await admin('POST', '/api/v1/admin/images', { name: 'history', docker_ref: 'x' });
      const user = await api.createUser('historian');
      await seedEnvironment(api.db, { ownerId: user.id, imageId: created.body.data.id, desiredState: 'deleted' });
      const res = await admin('DELETE', `/api/v1/admin/images/${created.body.data.id}`);
      expect(res.status).toBe(409);
      expect(res.body.code).toBe(40901);
      expect(res.body.message).toMatch(/deleted environments/);
    });
  });
});
