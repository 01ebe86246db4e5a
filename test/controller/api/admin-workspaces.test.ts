import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, seedEnvironment, type TestApi, type TestUser } from '../../helpers/api.js';

describe.each(DB_TARGETS)('admin workspaces API on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: TestUser;
    let bob: TestUser;
    let imageId: number;
    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
    const createWs = async (name: string, ownerId: number) => {
      const res = await admin('POST', '/api/v1/admin/workspaces', { name, owner_id: ownerId });
      expect(res.status).toBe(201);
      return res.body.data.id as number;
    };

    beforeAll(async () => {
      api = await createTestApi(target);
      alice = await api.createUser('alice');
      bob = await api.createUser('bob');
      imageId = (await api.db.insertInto('images').values({ name: 'img:1', docker_ref: 'img:1', jupyter_port: null }).returning('id').executeTakeFirstOrThrow()).id;
    });
    afterAll(async () => api?.close());

    it('creates a workspace whose owner is a member with role owner', async () => {
      const res = await admin('POST', '/api/v1/admin/workspaces', { name: 'vision', owner_id: alice.id });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ code: 0, message: '工作空间创建成功' });
      const ws = res.body.data;
      expect(ws).toMatchObject({ name: 'vision', owner_id: alice.id, member_count: 1 });
      expect(ws.members).toEqual([{ user_id: alice.id, name: 'alice', role: 'owner', created_at: expect.any(String) }]);
      const got = await admin('GET', `/api/v1/admin/workspaces/${ws.id}`);
      expect(got.status).toBe(200);
      expect(got.body.data).toEqual(ws);
    });

    it.each([
      ['missing name', { owner_id: 1 }, 'name'],
      ['empty name', { name: '  ', owner_id: 1 }, 'name'],
      ['65-character name', { name: 'w'.repeat(65), owner_id: 1 }, 'name'],
      ['string owner', { name: 'w', owner_id: '1' }, 'owner_id'],
      ['zero owner', { name: 'w', owner_id: 0 }, 'owner_id'],
      ['unknown owner', { name: 'w', owner_id: 999999 }, 'owner_id'],
    ])('refuses %s with 400 naming the field', async (_label, body, field) => {
      const res = await admin('POST', '/api/v1/admin/workspaces', body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toEqual([field]);
    });

    it('adds and removes members; the owner cannot be removed', async () => {
      const id = await createWs('nlp', alice.id);
      const add = await admin('POST', `/api/v1/admin/workspaces/${id}/members`, { user_id: bob.id });
      expect(add.status).toBe(201);
      expect(add.body.data).toMatchObject({ user_id: bob.id, name: 'bob', role: 'member' });
      const detail = await admin('GET', `/api/v1/admin/workspaces/${id}`);
      expect(detail.body.data.member_count).toBe(2);
      expect(detail.body.data.members.map((m: { user_id: number; role: string }) => [m.user_id, m.role])).toEqual([
        [alice.id, 'owner'],
        [bob.id, 'member'],
      ]);

      const again = await admin('POST', `/api/v1/admin/workspaces/${id}/members`, { user_id: bob.id });
      expect(again.status).toBe(409);
      expect(again.body.code).toBe(40903);
      const unknown = await admin('POST', `/api/v1/admin/workspaces/${id}/members`, { user_id: 999999 });
      expect(unknown.status).toBe(400);
      expect(unknown.body.data.fields[0].field).toBe('user_id');
      expect((await admin('POST', `/api/v1/admin/workspaces/${id}/members`, { user_id: 'bob' })).status).toBe(400);
      expect((await admin('POST', '/api/v1/admin/workspaces/999999/members', { user_id: bob.id })).status).toBe(404);

      const owner = await admin('DELETE', `/api/v1/admin/workspaces/${id}/members/${alice.id}`);
      expect(owner.status).toBe(409);
      expect(owner.body.code).toBe(40901);
      const remove = await admin('DELETE', `/api/v1/admin/workspaces/${id}/members/${bob.id}`);
      expect(remove.status).toBe(204);
      expect(remove.text).toBe('');
      expect((await admin('DELETE', `/api/v1/admin/workspaces/${id}/members/${bob.id}`)).status).toBe(404);
      expect((await admin('GET', `/api/v1/admin/workspaces/${id}`)).body.data.member_count).toBe(1);
      expect((await admin('DELETE', `/api/v1/admin/workspaces/${id}/members/x`)).status).toBe(400);
    });

    it('lists workspaces with member counts and exact pagination', async () => {
      const res = await admin('GET', '/api/v1/admin/workspaces?page_size=1');
      expect(res.status).toBe(200);
      const n = Number((await api.db.selectFrom('workspaces').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      expect(res.body.data.pagination).toEqual({ page: 1, page_size: 1, total: n, total_pages: n });
      expect(res.body.data.items[0]).toEqual({ id: expect.any(Number), name: 'vision', owner_id: alice.id, member_count: 1, created_at: expect.any(String) });
      expect(res.body.data.items[0]).not.toHaveProperty('members');
    });

    it('deletes a workspace only without live environments or mounted datasets (409 40901)', async () => {
      const id = await createWs('doomed', alice.id);
      await api.addMember(id, bob.id);
      const live = await seedEnvironment(api.db, { ownerId: alice.id, imageId, workspaceId: id });
      const dataset = await api.db
        .insertInto('datasets')
        .values({ name: 'ws-data', host_path: '/data/ws', workspace_id: id })
        .returning('id')
        .executeTakeFirstOrThrow();

      const refused = await admin('DELETE', `/api/v1/admin/workspaces/${id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe(40901);
      expect(refused.body.message).toContain(live);

      // The environment is deleted, but bob's personal environment mounts the workspace's dataset.
      await api.db.updateTable('environments').set({ desired_state: 'deleted', status: 'deleting', deleted_at: new Date() }).where('id', '=', live).execute();
      const mounting = await seedEnvironment(api.db, { ownerId: bob.id, imageId });
      await api.db.insertInto('environment_mounts').values({ env_id: mounting, dataset_id: dataset.id, mount_path: '/data/ws' }).execute();
      await api.db.insertInto('environment_mounts').values({ env_id: live, dataset_id: dataset.id, mount_path: '/data/ws' }).execute();
      const stillMounted = await admin('DELETE', `/api/v1/admin/workspaces/${id}`);
      expect(stillMounted.status).toBe(409);
      expect(stillMounted.body.message).toContain(mounting);

      await api.db.updateTable('environments').set({ desired_state: 'deleted' }).where('id', '=', mounting).execute();
      const ok = await admin('DELETE', `/api/v1/admin/workspaces/${id}`);
      expect(ok.status).toBe(204);
      expect((await admin('GET', `/api/v1/admin/workspaces/${id}`)).status).toBe(404);
      // Members and datasets went with it; the deleted environments' history stays.
      expect(await api.db.selectFrom('workspace_members').selectAll().where('workspace_id', '=', id).execute()).toHaveLength(0);
      expect(await api.db.selectFrom('datasets').selectAll().where('id', '=', dataset.id).execute()).toHaveLength(0);
      const history = await api.db.selectFrom('environments').select('workspace_id').where('id', '=', live).executeTakeFirstOrThrow();
      expect(history.workspace_id).toBeNull();
      expect((await admin('DELETE', `/api/v1/admin/workspaces/${id}`)).status).toBe(404);
    });
  });
});
