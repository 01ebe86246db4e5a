import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../../common/secrets.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost } from '../../helpers/hosts.js';

// /api/v1/admin/join-tokens: create (the token shown once, stored hashed), list, get, delete,
// validation errors in the envelope, and the admin-only gate.

const TOKEN_FORMAT = /^(jt_[a-z0-9]{10})\.([A-Za-z0-9_-]{43})@(sha256:[0-9a-f]{64})$/;
const BASE = '/api/v1/admin/join-tokens';

describe.each(DB_TARGETS)('admin join tokens API on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let user: TestUser;
    const post = (body: unknown, token = api.adminToken) => api.request('POST', BASE, { token, body });

    beforeAll(async () => {
      api = await createTestApi(target);
      user = await api.createUser('plain-user');
    });
    afterAll(async () => {
      await api?.close();
    });

    it('creates a join token (201) with the token shown once and the CA pin', async () => {
      const res = await post({ description: 'rack 4', expires_in_seconds: 3600, max_uses: 3, requires_approval: false });
      expect(res.status).toBe(201);
      expect(res.body.code).toBe(0);
      expect(res.body.message).toBe('加入令牌创建成功，请立即保存：它只显示这一次');
      const d = res.body.data;
      const [, id, , pin] = TOKEN_FORMAT.exec(d.token) ?? [];
      expect(id).toBe(d.id);
      expect(pin).toBe(d.ca_cert_hash);
      expect(d.ca_cert_hash).toBe(api.services.trust.caPin);
      const admin = await api.db.selectFrom('users').select('id').where('name', '=', 'admin').executeTakeFirstOrThrow();
      expect(d).toMatchObject({ description: 'rack 4', requires_approval: false, max_uses: 3, uses: 0, state: 'active', created_by: admin.id, last_used_at: null });
      expect(Math.abs(Date.parse(d.expires_at) - (Date.now() + 3_600_000))).toBeLessThan(60_000);
      expect(new Date(d.created_at).toISOString()).toBe(d.created_at);
    });

    it('defaults to a token that requires approval, never expires and has no use limit', async () => {
      const res = await post({});
      expect(res.status).toBe(201);
      expect(res.body.data).toMatchObject({ description: '', requires_approval: true, max_uses: null, expires_at: null, state: 'active' });
      const at = new Date(Date.now() + 30 * 86_400_000);
      at.setUTCMilliseconds(0);
      const dated = await post({ expires_at: at.toISOString().replace('.000Z', '+00:00') });
      expect(dated.status).toBe(201);
      expect(dated.body.data.expires_at).toBe(at.toISOString());
    });

    it('stores no secret: only the hash of the token before "@"', async () => {
      const res = await post({ description: 'hash check' });
      const [, id, secret] = TOKEN_FORMAT.exec(res.body.data.token) ?? [];
      const row = await api.db.selectFrom('join_tokens').selectAll().where('id', '=', id!).executeTakeFirstOrThrow();
      expect(JSON.stringify(row)).not.toContain(secret!);
      expect(row.secret_hash).toBe(hashSecret(`${id}.${secret}`));
    });

    it('lists and gets join tokens without the token, newest first', async () => {
      const created = await post({ description: 'listed' });
      const list = await api.request('GET', `${BASE}?page_size=2`, { token: api.adminToken });
      expect(list.status).toBe(200);
      expect(list.body.data.pagination).toMatchObject({ page: 1, page_size: 2 });
      expect(list.body.data.pagination.total).toBeGreaterThanOrEqual(4);
      expect(list.body.data.items[0]).toMatchObject({ id: created.body.data.id, description: 'listed' });
      for (const item of list.body.data.items) {
        expect(item).not.toHaveProperty('token');
        expect(item).not.toHaveProperty('secret_hash');
      }
      const one = await api.request('GET', `${BASE}/${created.body.data.id}`, { token: api.adminToken });
      expect(one.status).toBe(200);
      const { token: _token, ca_cert_hash: _pin, ...view } = created.body.data;
      expect(one.body.data).toEqual(view);
      expect(one.text).not.toContain(created.body.data.token.split('@')[0]);
    });

    it('shows the state of expired and used-up tokens', async () => {
      const used = (await post({ max_uses: 1 })).body.data.id;
      const expired = (await post({})).body.data.id;
      await api.db.updateTable('join_tokens').set({ uses: 1 }).where('id', '=', used).execute();
      await api.db.updateTable('join_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', expired).execute();
      expect((await api.request('GET', `${BASE}/${used}`, { token: api.adminToken })).body.data.state).toBe('used_up');
      expect((await api.request('GET', `${BASE}/${expired}`, { token: api.adminToken })).body.data.state).toBe('expired');
    });

    it('deletes a join token (204), then 404; hosts registered with it stay', async () => {
      const id = (await post({})).body.data.id;
      await seedHost(api.db, 'host-joined', { gpus: 0 });
      await api.db.updateTable('hosts').set({ join_token_id: id }).where('id', '=', 'host-joined').execute();
      const del = await api.request('DELETE', `${BASE}/${id}`, { token: api.adminToken });
      expect(del.status).toBe(204);
      expect(del.text).toBe('');
      expect((await api.request('GET', `${BASE}/${id}`, { token: api.adminToken })).status).toBe(404);
      const again = await api.request('DELETE', `${BASE}/${id}`, { token: api.adminToken });
      expect(again.status).toBe(404);
      expect(again.body.code).toBe(40401);
      const host = await api.db.selectFrom('hosts').select('join_token_id').where('id', '=', 'host-joined').executeTakeFirstOrThrow();
      expect(host.join_token_id).toBe(id);
    });

    it('answers 404 for an unknown id and 400 for something that is no join token id', async () => {
      const unknown = await api.request('GET', `${BASE}/jt_0000000000`, { token: api.adminToken });
      expect(unknown.status).toBe(404);
      expect(unknown.body.message).toContain('jt_0000000000');
      const bad = await api.request('GET', `${BASE}/nope`, { token: api.adminToken });
      expect(bad.status).toBe(400);
      expect(bad.body.data.fields[0].field).toBe('id');
    });

    it.each([
      ['description', { description: 'd'.repeat(201) }],
      ['description', { description: 42 }],
      ['expires_in_seconds', { expires_in_seconds: 59 }],
      ['expires_in_seconds', { expires_in_seconds: 31_536_001 }],
      ['expires_in_seconds', { expires_in_seconds: 90.5 }],
      ['expires_in_seconds', { expires_in_seconds: '3600' }],
      ['expires_at', { expires_at: 'tomorrow' }],
      ['expires_at', { expires_at: '2020-01-01T00:00:00Z' }],
      ['expires_at', { expires_at: '2099-01-01T00:00:00Z' }],
      ['expires_at', { expires_at: new Date(Date.now() + 86_400_000).toISOString(), expires_in_seconds: 3600 }],
      ['max_uses', { max_uses: 0 }],
      ['max_uses', { max_uses: 100_001 }],
      ['max_uses', { max_uses: 1.5 }],
      ['requires_approval', { requires_approval: 'yes' }],
    ])('refuses a bad %s with 400 (40001) naming the field, creating nothing', async (field, body) => {
      const before = await api.db.selectFrom('join_tokens').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toContain(field);
      expect(res.body.message).toContain(field);
      const after = await api.db.selectFrom('join_tokens').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      expect(Number(after.n)).toBe(Number(before.n));
    });

    it('answers malformed JSON with 40002', async () => {
      const res = await post('{"description": ');
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40002);
    });

    it('is for admins only: 403 for a user token, 401 without one', async () => {
      const id = (await post({})).body.data.id;
      const calls: [string, string, unknown?][] = [
        ['POST', BASE, {}],
        ['GET', BASE],
        ['GET', `${BASE}/${id}`],
        ['DELETE', `${BASE}/${id}`],
      ];
      for (const [method, path, body] of calls) {
        const forbidden = await api.request(method, path, { token: user.token, body });
        expect(forbidden.status, `${method} ${path}`).toBe(403);
        expect(forbidden.body.code).toBe(40301);
        expect((await api.request(method, path, { body })).status, `${method} ${path}`).toBe(401);
      }
      expect((await api.request('GET', `${BASE}/${id}`, { token: api.adminToken })).status).toBe(200);
    });

    it('documents the routes in the OpenAPI document', async () => {
      const doc = (await api.request('GET', '/api/v1/openapi.json')).body;
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/admin/join-tokens', '/api/v1/admin/join-tokens/{id}', '/api/v1/admin/hosts/{host_id}/approve']));
    });
  });
});
