import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// Every environment route × {no token, bad token, other user, workspace member, admin}: the
// expected status, and no route leaks another user's environment.

type Who = 'none' | 'bad' | 'other' | 'member' | 'admin';
const WHO: Who[] = ['none', 'bad', 'other', 'member', 'admin'];

const ROUTES: { method: string; path: (id: string) => string; body?: unknown; ok: number[] }[] = [
  { method: 'GET', path: (id) => `/api/v1/environments/${id}`, ok: [200] },
  { method: 'POST', path: (id) => `/api/v1/environments/${id}/start`, ok: [409] },
  { method: 'POST', path: (id) => `/api/v1/environments/${id}/stop`, ok: [200] },
  { method: 'POST', path: (id) => `/api/v1/environments/${id}/restart`, ok: [200] },
  { method: 'DELETE', path: (id) => `/api/v1/environments/${id}`, ok: [204] },
  { method: 'POST', path: (id) => `/api/v1/environments/${id}/datasets`, body: { dataset_id: 1, mount_path: '/data/x' }, ok: [200] },
  { method: 'GET', path: (id) => `/api/v1/environments/${id}/datasets`, ok: [200] },
  { method: 'DELETE', path: (id) => `/api/v1/environments/${id}/datasets/1`, ok: [404] },
  { method: 'GET', path: (id) => `/api/v1/environments/${id}/logs?lines=5`, ok: [200] },
];

describe.each(DB_TARGETS)('authorization matrix on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('environment routes', () => {
    let api: TestApi;
    let tokens: Record<Who, string | undefined>;
    let owner: { id: number; token: string };
    let workspaceId: number;

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-a', { gpus: 0 });
      owner = await api.createUser('owner');
      const member = await api.createUser('member');
      const other = await api.createUser('other');
      const ws = await api.db.insertInto('workspaces').values({ name: 'team', owner_id: owner.id }).returning('id').executeTakeFirstOrThrow();
      workspaceId = ws.id;
      await api.addMember(workspaceId, owner.id);
      await api.addMember(workspaceId, member.id);
      await api.db.insertInto('datasets').values({ id: 1, name: 'public', host_path: '/srv/public' }).execute();
      tokens = { none: undefined, bad: 'rgpu_not-a-real-token', other: other.token, member: member.token, admin: api.adminToken };
    });
    afterAll(async () => api?.close());

    const newEnv = async () => {
      const res = await api.request('POST', '/api/v1/environments', {
        token: owner.token,
        body: { name: 'x', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30, storage: 2 ** 30, workspace_id: workspaceId },
      });
      expect(res.status).toBe(201);
      await api.db.updateTable('environments').set({ status: 'running' }).where('id', '=', res.body.data.env_id).execute();
      return res.body.data.env_id as string;
    };

    for (const route of ROUTES) {
      for (const who of WHO) {
        const expected = who === 'none' || who === 'bad' ? [401] : who === 'other' ? [404] : route.ok;
        it(`${route.method} ${route.path(':id')} as ${who} → ${expected.join('|')}`, async () => {
          const id = await newEnv();
          const res = await api.request(route.method, route.path(id), { token: tokens[who], body: route.body });
          expect(expected).toContain(res.status);
          if (res.status >= 400) {
            expect(res.body.code).toBe(res.status * 100 + 1);
            expect(res.body.data ?? null).toBeNull();
          }
        });
      }
    }

    it('never lists another user\'s environment, and filters by workspace for members', async () => {
      const id = await newEnv();
      const other = await api.request('GET', '/api/v1/environments?page_size=100', { token: tokens.other });
      expect(other.status).toBe(200);
      expect(other.body.data.items.map((e: { env_id: string }) => e.env_id)).not.toContain(id);
      const member = await api.request('GET', `/api/v1/environments?page_size=100&workspace_id=${workspaceId}`, { token: tokens.member });
      expect(member.body.data.items.map((e: { env_id: string }) => e.env_id)).toContain(id);
      const otherWs = await api.request('POST', '/api/v1/environments', {
        token: tokens.other,
        body: { name: 'x', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30, storage: 2 ** 30, workspace_id: workspaceId },
      });
      expect(otherWs.status).toBe(404);
      expect(otherWs.body.data.fields[0].field).toBe('workspace_id');
    });

    it('needs a token on the list and create routes, and the admin role on admin routes', async () => {
      expect((await api.request('GET', '/api/v1/environments')).status).toBe(401);
      expect((await api.request('POST', '/api/v1/environments', { body: {} })).status).toBe(401);
      for (const path of ['/api/v1/admin/hosts', '/api/v1/admin/users']) {
        expect((await api.request('GET', path, { token: tokens.member })).status, path).toBe(403);
        expect((await api.request('GET', path, { token: tokens.admin })).status, path).toBe(200);
      }
    });
  });
});
