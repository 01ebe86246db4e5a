import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi } from '../../helpers/api.js';

describe.each(DB_TARGETS)('admin users API on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });

    beforeAll(async () => {
      api = await createTestApi(target);
    });
    afterAll(async () => api?.close());

    it('creates a user (201) with the envelope and ISO dates', async () => {
      const res = await admin('POST', '/api/v1/admin/users', { name: 'alice.smith-1_x', email: 'alice@example.com' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ code: 0, message: '用户创建成功' });
      const u = res.body.data;
      expect(u).toMatchObject({ name: 'alice.smith-1_x', email: 'alice@example.com', role: 'user', disabled_at: null });
      expect(u.id).toBeGreaterThan(1);
      expect(new Date(u.created_at).toISOString()).toBe(u.created_at);

      const got = await admin('GET', `/api/v1/admin/users/${u.id}`);
      expect(got.status).toBe(200);
      expect(got.body.data).toEqual(u);
    });

    it('creates an admin when asked, ignoring unknown fields', async () => {
      const res = await admin('POST', '/api/v1/admin/users', { name: 'root2', role: 'admin', shoe_size: 44 });
      expect(res.status).toBe(201);
      expect(res.body.data.role).toBe('admin');
      expect(res.body.data).not.toHaveProperty('shoe_size');
      expect(res.body.data.email).toBeNull();
    });

    it.each([
      ['missing name', {}, 'name'],
      ['empty name', { name: '' }, 'name'],
      ['65-character name', { name: 'a'.repeat(65) }, 'name'],
      ['name with a space', { name: 'bad name' }, 'name'],
      ['name with a slash', { name: '../x' }, 'name'],
      ['numeric name', { name: 42 }, 'name'],
      ['bad email', { name: 'eve', email: 'not-an-email' }, 'email'],
      ['unknown role', { name: 'eve', role: 'root' }, 'role'],
    ])('refuses %s with 400 40001 naming the field', async (_label, body, field) => {
      const res = await admin('POST', '/api/v1/admin/users', body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toContain(field);
      expect(res.body.message).toContain(field);
    });

    it('accepts a 64-character name', async () => {
      const res = await admin('POST', '/api/v1/admin/users', { name: 'b'.repeat(64) });
      expect(res.status).toBe(201);
    });

    it('refuses a duplicate name with 409 40903', async () => {
      await admin('POST', '/api/v1/admin/users', { name: 'dup' });
      const res = await admin('POST', '/api/v1/admin/users', { name: 'dup' });
      expect(res.status).toBe(409);
      expect(res.body).toMatchObject({ code: 40903, data: null });
      expect(res.body.message).toContain('dup');
    });

    it.each(['abc', '0', '-1', '1.5', '99999999999', '2147483648'])('answers 400 for the user id %s', async (id) => {
      const res = await admin('GET', `/api/v1/admin/users/${id}`);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields[0].field).toBe('user_id');
    });

    it('answers 404 40401 for an absent user', async () => {
      const res = await admin('GET', '/api/v1/admin/users/2147483647');
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: 40401, data: null });
    });

    it('lists users with pagination, disabled ones included', async () => {
      const res = await admin('GET', '/api/v1/admin/users?page=1&page_size=2');
      expect(res.status).toBe(200);
      const total = await api.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      expect(res.body.data.pagination).toEqual({ page: 1, page_size: 2, total: Number(total.n), total_pages: Math.ceil(Number(total.n) / 2) });
      expect(res.body.data.items).toHaveLength(2);
      expect(res.body.data.items[0].name).toBe('admin');
      const ids = res.body.data.items.map((u: { id: number }) => u.id);
      const next = await admin('GET', '/api/v1/admin/users?page=2&page_size=2');
      expect(next.body.data.items.map((u: { id: number }) => u.id)).not.toContain(ids[0]);
    });

    it('creates a token shown once; it works as Bearer; listings never show it; revoking it ends it', async () => {
      const user = await admin('POST', '/api/v1/admin/users', { name: 'tokenholder' });
      const id = user.body.data.id as number;
      const created = await admin('POST', `/api/v1/admin/users/${id}/tokens`, { name: 'laptop', expires_in_days: 30 });
      expect(created.status).toBe(201);
      expect(created.body.message).toBe('令牌创建成功，请立即保存：它只显示这一次');
      const t = created.body.data;
      expect(t.token).toMatch(/^rgpu_[A-Za-z0-9_-]{43}$/);
      expect(t).toMatchObject({ name: 'laptop', prefix: t.token.slice(0, 9), revoked_at: null, last_used_at: null });
      const expires = new Date(t.expires_at).getTime() - new Date(t.created_at).getTime();
      expect(Math.round(expires / 86_400_000)).toBe(30);

      const asUser = await api.request('GET', '/api/v1/ssh-keys', { token: t.token });
      expect(asUser.status).toBe(200);

      const list = await admin('GET', `/api/v1/admin/users/${id}/tokens`);
      expect(list.status).toBe(200);
      expect(list.body.data.items).toHaveLength(1);
      expect(list.body.data.items[0]).toEqual({
        id: t.id,
        name: 'laptop',
        prefix: t.prefix,
        created_at: t.created_at,
        last_used_at: expect.any(String),
        expires_at: t.expires_at,
        revoked_at: null,
      });
      expect(list.text).not.toContain(t.token);
      expect(list.text).not.toMatch(/token_hash|[0-9a-f]{64}/);
      expect((await admin('GET', '/api/v1/admin/users?page_size=100')).text).not.toContain(t.token);

      const revoke = await admin('DELETE', `/api/v1/admin/users/${id}/tokens/${t.id}`);
      expect(revoke.status).toBe(204);
      expect(revoke.text).toBe('');
      const after = await api.request('GET', '/api/v1/ssh-keys', { token: t.token });
      expect(after.status).toBe(401);
      expect(after.body.code).toBe(40101);
      expect((await admin('GET', `/api/v1/admin/users/${id}/tokens`)).body.data.items[0].revoked_at).toEqual(expect.any(String));
      // Revoking again is a no-op, a token of another user is not found.
      expect((await admin('DELETE', `/api/v1/admin/users/${id}/tokens/${t.id}`)).status).toBe(204);
      expect((await admin('DELETE', `/api/v1/admin/users/1/tokens/${t.id}`)).status).toBe(404);
    });

    it('creates a token without expiry and validates the token body', async () => {
      const u = await api.createUser('tokenless');
      const res = await admin('POST', `/api/v1/admin/users/${u.id}/tokens`, { name: 'ci' });
      expect(res.status).toBe(201);
      expect(res.body.data.expires_at).toBeNull();
      for (const body of [{}, { name: '' }, { name: 'x'.repeat(65) }, { name: 'ci', expires_in_days: 0 }, { name: 'ci', expires_in_days: 'ten' }, { name: 'ci', expires_in_days: 1.5 }]) {
        const bad = await admin('POST', `/api/v1/admin/users/${u.id}/tokens`, body);
        expect(bad.status, JSON.stringify(body)).toBe(400);
        expect(bad.body.code).toBe(40001);
      }
      expect((await admin('POST', '/api/v1/admin/users/999999/tokens', { name: 'x' })).status).toBe(404);
      expect((await admin('GET', '/api/v1/admin/users/999999/tokens')).status).toBe(404);
    });

    it('disables a user (204): the row stays, disabled_at is set, every token stops working', async () => {
      const u = await api.createUser('leaver');
      const second = await admin('POST', `/api/v1/admin/users/${u.id}/tokens`, { name: 'second' });
      expect((await api.request('GET', '/api/v1/ssh-keys', { token: u.token })).status).toBe(200);

      const res = await admin('DELETE', `/api/v1/admin/users/${u.id}`);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect((await api.request('GET', '/api/v1/ssh-keys', { token: u.token })).status).toBe(401);
      expect((await api.request('GET', '/api/v1/ssh-keys', { token: second.body.data.token })).status).toBe(401);
      const got = await admin('GET', `/api/v1/admin/users/${u.id}`);
      expect(got.status).toBe(200);
      expect(got.body.data.disabled_at).toEqual(expect.any(String));
      const tokens = await admin('GET', `/api/v1/admin/users/${u.id}/tokens`);
      expect(tokens.body.data.items.every((t: { revoked_at: string | null }) => t.revoked_at !== null)).toBe(true);
      // Idempotent; no new token for a disabled user.
      expect((await admin('DELETE', `/api/v1/admin/users/${u.id}`)).status).toBe(204);
      const refused = await admin('POST', `/api/v1/admin/users/${u.id}/tokens`, { name: 'again' });
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe(40901);
      expect((await admin('DELETE', '/api/v1/admin/users/999999')).status).toBe(404);
    });

    it('refuses to disable your own account or the last enabled admin', async () => {
      const me = await api.db.selectFrom('users').select('id').where('name', '=', 'admin').executeTakeFirstOrThrow();
      const self = await admin('DELETE', `/api/v1/admin/users/${me.id}`);
      expect(self.status).toBe(409);
      expect(self.body.code).toBe(40901);

      // Another admin may disable the bootstrap admin only while a third admin stays enabled.
      const other = await api.createUser('second-admin', 'admin');
      await api.db.updateTable('users').set({ disabled_at: new Date() }).where('role', '=', 'admin').where('id', 'not in', [me.id, other.id]).execute();
      const last = await api.request('DELETE', `/api/v1/admin/users/${me.id}`, { token: other.token });
      expect(last.status).toBe(204);
      const lastAdmin = await api.request('DELETE', `/api/v1/admin/users/${other.id}`, { token: other.token });
      expect(lastAdmin.status).toBe(409);
    });
  });
});
