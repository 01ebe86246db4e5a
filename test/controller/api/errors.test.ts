import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestResponse, type TestUser } from '../../helpers/api.js';

/** Every answer is a JSON envelope: never HTML, never a stack trace. */
function expectEnvelope(res: TestResponse, status: number, code: number) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(res.text).not.toMatch(/<html|<!doctype|<body/i);
  expect(res.text).not.toMatch(/\bat .*\.(ts|js):\d+/);
  expect(res.body).toMatchObject({ code });
  expect(typeof res.body.message).toBe('string');
  expect(res.body.message.length).toBeGreaterThan(0);
}

describe.each(DB_TARGETS)('error envelopes on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let user: TestUser;

    beforeAll(async () => {
      api = await createTestApi(target);
      user = await api.createUser('alice');
    });
    afterAll(async () => api?.close());

    it.each(['/api/v1/nope', '/api/v1/admin/nope', '/nope', '/api/v1/ssh-keys/1/extra', '/environmentsx'])('answers an unknown route %s with a 404 envelope', async (path) => {
      for (const token of [user.token, undefined]) {
        const res = await api.request('GET', path, { token });
        expectEnvelope(res, 404, 40401);
        expect(res.body.data).toBeNull();
        expect(res.body.message).toContain(path);
      }
    });

    it.each([
      ['PUT', '/api/v1/ssh-keys', 'GET, POST'],
      ['PATCH', '/api/v1/ssh-keys/1', 'DELETE'],
      ['DELETE', '/api/v1/admin/users', 'GET, POST'],
      ['PUT', '/api/v1/admin/images/3', 'DELETE, GET, PATCH'],
      ['POST', '/api/v1/datasets', 'GET'],
    ])('answers %s %s with a 405 envelope and Allow: %s', async (method, path, allow) => {
      const res = await api.request(method, path, { token: user.token, body: {} });
      expectEnvelope(res, 405, 40501);
      expect(res.headers.get('allow')).toBe(allow);
      expect(res.body.message).toContain(allow);
    });

    it.each(['{"name": "k", "public_key": ', '{name: 1}', 'not json', ''])('answers the malformed JSON body %j with 400 40002', async (body) => {
      const res = await api.request('POST', '/api/v1/ssh-keys', { token: user.token, body, headers: { 'content-type': 'application/json' } });
      expectEnvelope(res, 400, 40002);
    });

    it('answers a JSON body of the wrong shape with 400 40001', async () => {
      for (const body of ['[]', '"text"', '42', 'null']) {
        const res = await api.request('POST', '/api/v1/ssh-keys', { token: user.token, body, headers: { 'content-type': 'application/json' } });
        expectEnvelope(res, 400, 40001);
        expect(res.body.data.fields).toHaveLength(1);
      }
    });

    it('answers in English when asked, Chinese by default', async () => {
      const en = await api.request('GET', '/api/v1/ssh-keys', { token: user.token, headers: { 'accept-language': 'en-US,en;q=0.9,zh;q=0.5' } });
      expect(en.body.message).toBe('success');
      const created = await api.request('POST', '/api/v1/admin/users', { token: api.adminToken, body: { name: 'zh-user' } });
      expect(created.body.message).toBe('用户创建成功');
      const createdEn = await api.request('POST', '/api/v1/admin/users', { token: api.adminToken, body: { name: 'en-user' }, headers: { 'accept-language': 'en' } });
      expect(createdEn.body.message).toBe('User created');
    });

    it('answers an internal fault (database gone) with a 500 envelope and no detail', async () => {
      const broken = await createTestApi(target);
      const token = broken.adminToken;
      await broken.database.close();
      try {
        const res = await broken.request('GET', '/api/v1/admin/users', { token });
        expectEnvelope(res, 500, 50001);
        expect(res.body.data).toBeNull();
        expect(res.text).not.toMatch(/pglite|closed|ECONN|terminat/i);
      } finally {
        await broken.close();
      }
    });
  });
});
