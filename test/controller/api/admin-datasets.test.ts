import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, seedEnvironment, type TestApi, type TestUser } from '../../helpers/api.js';

describe.each(DB_TARGETS)('admin datasets API on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: TestUser;
    let workspaceId: number;
    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });

    beforeAll(async () => {
      api = await createTestApi(target);
      alice = await api.createUser('alice');
      workspaceId = await api.createWorkspace('team', alice.id);
    });
    afterAll(async () => api?.close());

    it('registers a public dataset (201)', async () => {
      const res = await admin('POST', '/api/v1/admin/datasets', { name: 'imagenet', host_path: '/mnt/datasets/imagenet', description: 'ILSVRC 2012' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ code: 0, message: '数据集创建成功' });
      expect(res.body.data).toEqual({
        id: expect.any(Number),
        name: 'imagenet',
        description: 'ILSVRC 2012',
        host_path: '/mnt/datasets/imagenet',
        owner_id: null,
        workspace_id: null,
        writable: false,
        created_at: expect.any(String),
      });
      const got = await admin('GET', `/api/v1/admin/datasets/${res.body.data.id}`);
      expect(got.status).toBe(200);
      expect(got.body.data).toEqual(res.body.data);
    });

    it('registers datasets restricted to a user or a workspace', async () => {
      const own = await admin('POST', '/api/v1/admin/datasets', { name: 'mine', host_path: '/data/alice', owner_id: alice.id });
      expect(own.status).toBe(201);
      expect(own.body.data).toMatchObject({ owner_id: alice.id, workspace_id: null });
      const ws = await admin('POST', '/api/v1/admin/datasets', { name: 'team', host_path: '/data/team', workspace_id: workspaceId, owner_id: null });
      expect(ws.status).toBe(201);
      expect(ws.body.data).toMatchObject({ owner_id: null, workspace_id: workspaceId });
    });

    it.each([
      ['missing name', { host_path: '/data/x' }, 'name'],
      ['empty name', { name: '', host_path: '/data/x' }, 'name'],
      ['129-character name', { name: 'd'.repeat(129), host_path: '/data/x' }, 'name'],
      ['missing host_path', { name: 'x' }, 'host_path'],
      ['relative host_path', { name: 'x', host_path: 'data/x' }, 'host_path'],
      ['host_path with ..', { name: 'x', host_path: '/data/../etc' }, 'host_path'],
      ['host_path /data/./x', { name: 'x', host_path: '/data/./x' }, 'host_path'],
      ['host_path with trailing /', { name: 'x', host_path: '/data/x/' }, 'host_path'],
      ['host_path /', { name: 'x', host_path: '/' }, 'host_path'],
      ['host_path under /etc', { name: 'x', host_path: '/etc/ssl' }, 'host_path'],
      ['host_path /proc', { name: 'x', host_path: '/proc' }, 'host_path'],
      ['host_path as a number', { name: 'x', host_path: 5 }, 'host_path'],
      ['owner_id as text', { name: 'x', host_path: '/data/x', owner_id: 'alice' }, 'owner_id'],
      ['unknown owner', { name: 'x', host_path: '/data/x', owner_id: 999999 }, 'owner_id'],
      ['unknown workspace', { name: 'x', host_path: '/data/x', workspace_id: 999999 }, 'workspace_id'],
      ['negative workspace', { name: 'x', host_path: '/data/x', workspace_id: -3 }, 'workspace_id'],
      ['writable as text', { name: 'x', host_path: '/data/x', writable: 'yes' }, 'writable'],
      ['writable as null', { name: 'x', host_path: '/data/x', writable: null }, 'writable'],
    ])('refuses %s with 400 40001 naming the field', async (_label, body, field) => {
      const res = await admin('POST', '/api/v1/admin/datasets', body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toEqual([field]);
      expect(res.body.message).toContain(field);
    });

    it('lists all datasets for admins, whoever they belong to', async () => {
      const res = await admin('GET', '/api/v1/admin/datasets');
      expect(res.status).toBe(200);
      expect(res.body.data.items.map((d: { name: string }) => d.name)).toEqual(['imagenet', 'mine', 'team']);
      expect(res.body.data.items.map((d: { writable: boolean }) => d.writable)).toEqual([false, false, false]);
      expect(res.body.data.pagination).toEqual({ page: 1, page_size: 20, total: 3, total_pages: 1 });
    });

    it('registers a writable dataset, and changes writable, name and description with PATCH', async () => {
      const created = await admin('POST', '/api/v1/admin/datasets', { name: 'scratch', host_path: '/data/scratch', writable: true });
      expect(created.status).toBe(201);
      expect(created.body.data).toMatchObject({ name: 'scratch', writable: true });
      const id = created.body.data.id;
      expect((await api.db.selectFrom('datasets').select('writable').where('id', '=', id).executeTakeFirstOrThrow()).writable).toBe(true);

      const off = await api.request('PATCH', `/api/v1/admin/datasets/${id}`, { token: api.adminToken, body: { writable: false }, headers: { 'accept-language': 'en' } });
      expect(off.status).toBe(200);
      expect(off.body).toMatchObject({ code: 0, message: 'Dataset updated' });
      expect(off.body.data).toEqual({ ...created.body.data, writable: false });
      expect((await admin('GET', `/api/v1/admin/datasets/${id}`)).body.data.writable).toBe(false);

      const renamed = await admin('PATCH', `/api/v1/admin/datasets/${id}`, { name: ' scratch2 ', description: 'temporary files', writable: true });
      expect(renamed.status).toBe(200);
      expect(renamed.body.message).toBe('数据集更新成功');
      expect(renamed.body.data).toEqual({ ...created.body.data, name: 'scratch2', description: 'temporary files', writable: true });
      // Only the fields sent change; an empty body changes nothing.
      const same = await admin('PATCH', `/api/v1/admin/datasets/${id}`, {});
      expect(same.status).toBe(200);
      expect(same.body.data).toEqual(renamed.body.data);

      const listed = await admin('GET', '/api/v1/admin/datasets?page_size=100');
      expect(listed.body.data.items.find((d: { id: number }) => d.id === id)).toEqual(renamed.body.data);
      await admin('DELETE', `/api/v1/admin/datasets/${id}`);
    });

    it.each([
      ['writable as text', { writable: 'true' }, 'writable'],
      ['writable as null', { writable: null }, 'writable'],
      ['empty name', { name: '  ' }, 'name'],
      ['long description', { description: 'd'.repeat(1025) }, 'description'],
    ])('refuses a PATCH with %s (400 naming the field, nothing changed)', async (_label, body, field) => {
      const id = (await admin('GET', '/api/v1/admin/datasets')).body.data.items[0].id;
      const before = await api.db.selectFrom('datasets').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      const res = await admin('PATCH', `/api/v1/admin/datasets/${id}`, body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toEqual([field]);
      expect(await api.db.selectFrom('datasets').selectAll().where('id', '=', id).executeTakeFirstOrThrow()).toEqual(before);
    });

    it('answers 404 for a PATCH of an unknown dataset, 400 for a bad id', async () => {
      const res = await admin('PATCH', '/api/v1/admin/datasets/999999', { writable: true });
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ code: 40401, message: 'dataset 999999 not found', data: null });
      expect((await admin('PATCH', '/api/v1/admin/datasets/0', { writable: true })).status).toBe(400);
    });

    it('lets no user set writable: create and PATCH are 403 for non-admins and change nothing', async () => {
      const id = (await admin('GET', '/api/v1/admin/datasets')).body.data.items[0].id;
      const before = await api.db.selectFrom('datasets').selectAll().orderBy('id').execute();
      const patch = await api.request('PATCH', `/api/v1/admin/datasets/${id}`, { token: alice.token, body: { writable: true } });
      expect(patch.status).toBe(403);
      expect(patch.body).toEqual({ code: 40301, message: 'this route needs the admin role', data: null });
      const create = await api.request('POST', '/api/v1/admin/datasets', { token: alice.token, body: { name: 'w', host_path: '/data/w', writable: true } });
      expect(create.status).toBe(403);
      // The user routes have no write method at all.
      expect((await api.request('PATCH', `/api/v1/datasets/${id}`, { token: alice.token, body: { writable: true } })).status).toBe(405);
      expect((await api.request('POST', '/api/v1/datasets', { token: alice.token, body: { name: 'w', host_path: '/data/w', writable: true } })).status).toBe(405);
      expect(await api.db.selectFrom('datasets').selectAll().orderBy('id').execute()).toEqual(before);
    });

    it('deletes a dataset unless a live environment mounts it (409 40901)', async () => {
      const created = await admin('POST', '/api/v1/admin/datasets', { name: 'mounted', host_path: '/data/mounted' });
      const id = created.body.data.id;
      const image = await api.db.insertInto('images').values({ name: 'img', docker_ref: 'img', jupyter_port: null }).returning('id').executeTakeFirstOrThrow();
      const live = await seedEnvironment(api.db, { ownerId: alice.id, imageId: image.id });
      const gone = await seedEnvironment(api.db, { ownerId: alice.id, imageId: image.id, desiredState: 'deleted' });
      await api.db.insertInto('environment_mounts').values({ env_id: live, dataset_id: id, mount_path: '/data' }).execute();
      await api.db.insertInto('environment_mounts').values({ env_id: gone, dataset_id: id, mount_path: '/data' }).execute();

      const refused = await admin('DELETE', `/api/v1/admin/datasets/${id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe(40901);
      expect(refused.body.message).toContain(live);
      expect(refused.body.message).not.toContain(gone);

      await api.db.deleteFrom('environment_mounts').where('env_id', '=', live).execute();
      const res = await admin('DELETE', `/api/v1/admin/datasets/${id}`);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect((await admin('GET', `/api/v1/admin/datasets/${id}`)).status).toBe(404);
      expect((await admin('DELETE', `/api/v1/admin/datasets/${id}`)).status).toBe(404);
      expect((await admin('DELETE', '/api/v1/admin/datasets/0')).status).toBe(400);
    });
  });

  // A writable dataset must not nest with another dataset (share, contain or be inside its
  // directory): a tenant mounting it read-write could replace the other one's directory with a
  // symlink (to /etc, to another team's private dataset) that the next mount of it follows.
  describe.skipIf(target.skipReason !== '')('nesting', () => {
    let api: TestApi;
    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
    const create = (name: string, hostPath: string, writable = false) => admin('POST', '/api/v1/admin/datasets', { name, host_path: hostPath, writable });
    const all = () => api.db.selectFrom('datasets').selectAll().orderBy('id').execute();
    /** A 400 naming `field` whose message names the other dataset, and nothing written. */
    async function refused(res: Awaited<ReturnType<typeof create>>, field: string, before: unknown, other: string) {
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.message).toMatch(new RegExp(`^${field}: `));
      expect(res.body.message).toContain(`dataset "${other}"`);
      expect(res.body.message).toContain('symlink');
      expect(res.body.data.fields).toEqual([{ field, message: expect.stringContaining(`dataset "${other}"`) }]);
      expect(await all()).toEqual(before);
    }

    beforeAll(async () => {
      api = await createTestApi(target);
    });
    afterAll(async () => api?.close());

    it('refuses a writable dataset inside, containing or at the directory of another dataset (400 naming host_path)', async () => {
      expect((await create('ro', '/srv/n/ro')).status).toBe(201);
      const before = await all();
      await refused(await create('w-inside', '/srv/n/ro/sub', true), 'host_path', before, 'ro');
      await refused(await create('w-outside', '/srv/n', true), 'host_path', before, 'ro');
      await refused(await create('w-outside2', '/srv', true), 'host_path', before, 'ro');
      await refused(await create('w-same', '/srv/n/ro', true), 'host_path', before, 'ro');
      // A sibling whose name only starts the same is not nested.
      expect((await create('w-sibling', '/srv/n/ro2', true)).status).toBe(201);
      expect((await create('w-sibling2', '/srv/n/r', true)).status).toBe(201);
    });

    it('refuses a read-only dataset inside, containing or at the directory of a writable one (400 naming host_path)', async () => {
      expect((await create('w', '/mnt/w', true)).status).toBe(201);
      const before = await all();
      await refused(await create('ro-inside', '/mnt/w/deep/inner'), 'host_path', before, 'w');
      await refused(await create('ro-outside', '/mnt'), 'host_path', before, 'w');
      await refused(await create('ro-same', '/mnt/w'), 'host_path', before, 'w');
      expect((await create('ro-sibling', '/mnt/wx')).status).toBe(201);
    });

    it('lets read-only datasets nest among themselves', async () => {
      expect((await create('r', '/data/r')).status).toBe(201);
      expect((await create('r-inner', '/data/r/inner')).status).toBe(201);
      expect((await create('r-again', '/data/r')).status).toBe(201);
      expect((await create('r-outer', '/data')).status).toBe(201);
    });

    it('refuses PATCH writable: true on a dataset that nests with another one (400 naming writable)', async () => {
      const id = async (name: string) => (await api.db.selectFrom('datasets').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
      const patch = async (name: string, body: unknown) => admin('PATCH', `/api/v1/admin/datasets/${await id(name)}`, body);
      const before = await all();
      // Contains other datasets, is inside one, shares its directory with one.
      await refused(await patch('r', { writable: true }), 'writable', before, 'r-inner');
      await refused(await patch('r-inner', { writable: true }), 'writable', before, 'r');
      await refused(await patch('r-again', { writable: true, name: 'renamed' }), 'writable', before, 'r');
      // Other changes of a nested read-only dataset are fine; so is writable on a lone one.
      expect((await patch('r-inner', { description: 'still read-only', writable: false })).status).toBe(200);
      expect((await create('lone', '/opt/lone')).status).toBe(201);
      const lone = await patch('lone', { writable: true });
      expect(lone.status).toBe(200);
      expect(lone.body.data.writable).toBe(true);
      // Already writable: writable: true again is a no-op.
      expect((await patch('w', { writable: true })).status).toBe(200);
    });
  });
});
