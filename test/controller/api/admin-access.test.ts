import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';

/** Every admin route of the users/workspaces/images/datasets modules, with a valid body. */
const ADMIN_ROUTES: { method: string; path: string; body?: unknown }[] = [
  { method: 'POST', path: '/api/v1/admin/users', body: { name: 'x' } },
  { method: 'GET', path: '/api/v1/admin/users' },
  { method: 'GET', path: '/api/v1/admin/users/1' },
  { method: 'DELETE', path: '/api/v1/admin/users/1' },
  { method: 'POST', path: '/api/v1/admin/users/1/enable' },
  { method: 'POST', path: '/api/v1/admin/users/1/tokens', body: { name: 'x' } },
  { method: 'GET', path: '/api/v1/admin/users/1/tokens' },
  { method: 'DELETE', path: '/api/v1/admin/users/1/tokens/1' },
  { method: 'POST', path: '/api/v1/admin/workspaces', body: { name: 'x', owner_id: 1 } },
  { method: 'GET', path: '/api/v1/admin/workspaces' },
  { method: 'GET', path: '/api/v1/admin/workspaces/1' },
  { method: 'DELETE', path: '/api/v1/admin/workspaces/1' },
  { method: 'POST', path: '/api/v1/admin/workspaces/1/members', body: { user_id: 1 } },
  { method: 'DELETE', path: '/api/v1/admin/workspaces/1/members/1' },
  { method: 'POST', path: '/api/v1/admin/images', body: { name: 'x', docker_ref: 'x' } },
  { method: 'GET', path: '/api/v1/admin/images' },
  { method: 'GET', path: '/api/v1/admin/images/1' },
  { method: 'PATCH', path: '/api/v1/admin/images/1', body: {} },
  { method: 'DELETE', path: '/api/v1/admin/images/1' },
  { method: 'POST', path: '/api/v1/admin/datasets', body: { name: 'x', host_path: '/data/x' } },
  { method: 'GET', path: '/api/v1/admin/datasets' },
  { method: 'GET', path: '/api/v1/admin/datasets/1' },
  { method: 'PATCH', path: '/api/v1/admin/datasets/1', body: { writable: true } },
  { method: 'DELETE', path: '/api/v1/admin/datasets/1' },
  { method: 'GET', path: '/api/v1/admin/users/1/quota' },
  { method: 'PUT', path: '/api/v1/admin/users/1/quota', body: { gpus: 1 } },
  { method: 'GET', path: '/api/v1/admin/workspaces/1/quota' },
  { method: 'PUT', path: '/api/v1/admin/workspaces/1/quota', body: { gpus: 1 } },
];

const USER_ROUTES: { method: string; path: string; body?: unknown }[] = [
  { method: 'GET', path: '/api/v1/datasets' },
  { method: 'GET', path: '/api/v1/datasets/1' },
  { method: 'GET', path: '/api/v1/ssh-keys' },
  { method: 'POST', path: '/api/v1/ssh-keys', body: { public_key: 'x' } },
  { method: 'DELETE', path: '/api/v1/ssh-keys/1' },
  { method: 'GET', path: '/api/v1/me' },
];

describe.each(DB_TARGETS)('admin route access on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let user: TestUser;
    let expired: string;

    beforeAll(async () => {
      api = await createTestApi(target);
      user = await api.createUser('plain');
      const e = await api.createUser('expired');
      await api.db.updateTable('api_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('user_id', '=', e.id).execute();
      expired = e.token;
    });
    afterAll(async () => api?.close());

    it.each(ADMIN_ROUTES)('$method $path: 401 without a token or with a bad one, 403 for a user, never a change', async (route) => {
      const before = await snapshot(api);
      for (const headers of [{} as Record<string, string>, { authorization: 'Bearer rgpu_not-a-token' }, { authorization: `Token ${api.adminToken}` }]) {
        const res = await api.request(route.method, route.path, { headers, body: route.body });
        expect(res.status, JSON.stringify(headers)).toBe(401);
        expect(res.body).toEqual({ code: 40101, message: expect.any(String), data: null });
      }
      expect((await api.request(route.method, route.path, { token: expired, body: route.body })).status).toBe(401);
      const forbidden = await api.request(route.method, route.path, { token: user.token, body: route.body });
      expect(forbidden.status).toBe(403);
      expect(forbidden.body).toEqual({ code: 40301, message: 'this route needs the admin role', data: null });
      expect(await snapshot(api)).toEqual(before);
    });

    it.each(USER_ROUTES)('$method $path: 401 without a token', async (route) => {
      const res = await api.request(route.method, route.path, { body: route.body });
      expect(res.status).toBe(401);
      expect(res.body.code).toBe(40101);
    });

    it('checks the token before the body: a bad body without a token is 401', async () => {
      const res = await api.request('POST', '/api/v1/admin/users', { body: { name: 5 } });
      expect(res.status).toBe(401);
    });

    it('documents every route in /api/v1/openapi.json', async () => {
      const res = await api.request('GET', '/api/v1/openapi.json');
      expect(res.status).toBe(200);
      const paths = res.body.paths as Record<string, Record<string, unknown>>;
      for (const route of [...ADMIN_ROUTES, ...USER_ROUTES]) {
        const templ = route.path.replace(/\/\d+/g, '/{}');
        const match = Object.entries(paths).find(([p]) => p.replace(/\{[^}]+\}/g, '{}') === templ);
        expect(match, route.path).toBeDefined();
        expect(match![1], `${route.method} ${route.path}`).toHaveProperty(route.method.toLowerCase());
      }
      const createUser = paths['/api/v1/admin/users']!.post as { requestBody: { content: Record<string, { schema: { properties: object } }> } };
      expect(Object.keys(createUser.requestBody.content['application/json']!.schema.properties)).toEqual(['name', 'email', 'role']);
      const get = paths['/api/v1/admin/users/{user_id}']!.get as { parameters: { name: string; in: string; schema: { type: string } }[] };
      expect(get.parameters).toEqual([expect.objectContaining({ name: 'user_id', in: 'path', schema: expect.objectContaining({ type: 'integer' }) })]);
    });
  });
});

async function snapshot(api: TestApi) {
  const count = async (table: 'users' | 'api_tokens' | 'workspaces' | 'workspace_members' | 'images' | 'datasets') =>
    Number((await api.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const disabled = await api.db.selectFrom('users').select('id').where('disabled_at', 'is not', null).execute();
  const revoked = await api.db.selectFrom('api_tokens').select('id').where('revoked_at', 'is not', null).execute();
  return {
    users: await count('users'),
    tokens: await count('api_tokens'),
    workspaces: await count('workspaces'),
    members: await count('workspace_members'),
    images: await count('images'),
    datasets: await count('datasets'),
    disabled: disabled.length,
    revoked: revoked.length,
  };
}
