import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';

describe.each(DB_TARGETS)('datasets API (users) on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: TestUser;
    let bob: TestUser;
    const ids: Record<string, number> = {};

    beforeAll(async () => {
      api = await createTestApi(target);
      alice = await api.createUser('alice');
      bob = await api.createUser('bob');
      const team = await api.createWorkspace('team', alice.id);
      const other = await api.createWorkspace('other', bob.id);
      const rows: [string, number | null, number | null][] = [
        ['public', null, null],
        ['alice-own', alice.id, null],
        ['bob-own', bob.id, null],
        ['team', null, team],
        ['other-team', null, other],
      ];
      for (const [name, owner, ws] of rows) {
        const r = await api.db
          .insertInto('datasets')
          .values({ name, host_path: `/data/${name}`, owner_id: owner, workspace_id: ws })
          .returning('id')
          .executeTakeFirstOrThrow();
        ids[name] = r.id;
      }
    });
    afterAll(async () => api?.close());

    const names = (res: { body: { data: { items: { name: string }[] } } }) => res.body.data.items.map((d) => d.name);

    it('lists public datasets, your own and your workspaces’, without host paths', async () => {
      const res = await api.request('GET', '/api/v1/datasets', { token: alice.token });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ code: 0, message: 'success' });
      expect(names(res)).toEqual(['public', 'alice-own', 'team']);
      expect(res.body.data.pagination).toEqual({ page: 1, page_size: 20, total: 3, total_pages: 1 });
      expect(res.body.data.items[0]).toEqual({
        id: ids.public,
        name: 'public',
        description: '',
        scope: 'public',
        owner_id: null,
        workspace_id: null,
        writable: false,
        created_at: expect.any(String),
      });
      expect(res.body.data.items.map((d: { scope: string }) => d.scope)).toEqual(['public', 'user', 'workspace']);
      expect(res.text).not.toContain('/data/');
    });

    it('shows users whether each dataset is writable (an admin flag)', async () => {
      await api.db.updateTable('datasets').set({ writable: true }).where('id', '=', ids.team!).execute();
      try {
        const res = await api.request('GET', '/api/v1/datasets', { token: alice.token });
        expect(res.body.data.items.map((d: { name: string; writable: boolean }) => [d.name, d.writable])).toEqual([
          ['public', false],
          ['alice-own', false],
          ['team', true],
        ]);
        const one = await api.request('GET', `/api/v1/datasets/${ids.team}`, { token: alice.token });
        expect(one.body.data.writable).toBe(true);
      } finally {
        await api.db.updateTable('datasets').set({ writable: false }).where('id', '=', ids.team!).execute();
      }
    });

    it('shows workspace datasets to members once they join', async () => {
      expect(names(await api.request('GET', '/api/v1/datasets', { token: bob.token }))).toEqual(['public', 'bob-own', 'other-team']);
      const ws = await api.db.selectFrom('workspaces').select('id').where('name', '=', 'team').executeTakeFirstOrThrow();
      await api.addMember(ws.id, bob.id);
      expect(names(await api.request('GET', '/api/v1/datasets', { token: bob.token }))).toEqual(['public', 'bob-own', 'team', 'other-team']);
      await api.db.deleteFrom('workspace_members').where('workspace_id', '=', ws.id).where('user_id', '=', bob.id).execute();
    });

    it('shows admins every dataset', async () => {
      const res = await api.request('GET', '/api/v1/datasets?page_size=100', { token: api.adminToken });
      expect(res.body.data.pagination.total).toBe(5);
    });

    it('paginates exactly', async () => {
      const res = await api.request('GET', '/api/v1/datasets?page=2&page_size=2', { token: alice.token });
      expect(names(res)).toEqual(['team']);
      expect(res.body.data.pagination).toEqual({ page: 2, page_size: 2, total: 3, total_pages: 2 });
      const beyond = await api.request('GET', '/api/v1/datasets?page=9&page_size=2', { token: alice.token });
      expect(beyond.body.data.items).toEqual([]);
      expect(beyond.body.data.pagination.total).toBe(3);
    });

    it.each(['page=0', 'page=-1', 'page=abc', 'page_size=0', 'page_size=101', 'page_size=1.5', 'page=1&page=2'])('answers 400 for %s', async (query) => {
      const res = await api.request('GET', `/api/v1/datasets?${query}`, { token: alice.token });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields[0].field).toMatch(/^page(_size)?$/);
    });

    it('gets a visible dataset, 404 for one you cannot see, 400 for a bad id', async () => {
      const own = await api.request('GET', `/api/v1/datasets/${ids['alice-own']}`, { token: alice.token });
      expect(own.status).toBe(200);
      expect(own.body.data).toMatchObject({ name: 'alice-own', scope: 'user', owner_id: alice.id });
      const hidden = await api.request('GET', `/api/v1/datasets/${ids['bob-own']}`, { token: alice.token });
      expect(hidden.status).toBe(404);
      expect(hidden.body.code).toBe(40401);
      const missing = await api.request('GET', '/api/v1/datasets/999999', { token: alice.token });
      expect(missing.status).toBe(404);
      // Same answer for absent and hidden, so ids don't leak.
      expect(hidden.body.message.replace(/\d+/g, 'N')).toBe(missing.body.message.replace(/\d+/g, 'N'));
      expect((await api.request('GET', '/api/v1/datasets/abc', { token: alice.token })).status).toBe(400);
    });

    it('needs a token (401)', async () => {
      expect((await api.request('GET', '/api/v1/datasets')).status).toBe(401);
      expect((await api.request('GET', `/api/v1/datasets/${ids.public}`, { token: 'rgpu_nope' })).status).toBe(401);
    });
  });
});
