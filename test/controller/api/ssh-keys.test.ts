import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCo user@ed25519';
const ED25519_FP = 'SHA256:yVjo7ct6Bbje63ba9ZaPs/x6sFN+3kfndjxtNIU9tpU';
const RSA =
  'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDlWOTo3B6UQmuwPE3scptuuDHpsmdxcY7k+8ujkpLmvUuPvTj0LzF4G9ioZTSXevxhdrISEviqLe20bktqQeL7MPu9C8x/oEOR/glEBVbTqcZx6SR7Xq2VT8GtOhlaV1WRljonsK58iluU2rgJYZHV5pO4dWUQn7Z09vJGB4Hw3zyyBAw1V956rLzfEEL33JGCK2Z2iLpqrCStpCIIffCfre/jylr3txMTdbuyV26oy2N2XNWjxsiIoalrkNh6Km6RWzfrEe5g0wNfusYWzpuPqqF8GzeOSGa5NWYf2aS8d2VpMFFmDuhZk8+gVbXgzhrOx/uU8mWN8frxwdE/ZRpp user@rsa_-b_2048';
const RSA_FP = 'SHA256:rd8V32m/SZUR2kyPZOWn3X8+NhRhxduvQXozcC6lSbU';
const ECDSA =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHGe4uMsFpHQnrLkk6FJ3QfGN0c+9lCp0RfnFm9B6cjL/5dKj6foMrOSQIdUW2Yn4tTJV5YCR+v/ZNpRbZwRayk= user@ecdsa_-b_256';
const PRIVATE = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n';

describe.each(DB_TARGETS)('SSH keys API on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: TestUser;
    let bob: TestUser;

    beforeAll(async () => {
      api = await createTestApi(target);
      alice = await api.createUser('alice');
      bob = await api.createUser('bob');
    });
    afterAll(async () => api?.close());

    it('adds a key (201) with the fingerprint ssh-keygen -lf prints', async () => {
      const res = await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { name: 'laptop', public_key: `${ED25519}\n` } });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ code: 0, message: 'SSH 公钥添加成功' });
      expect(res.body.data).toEqual({ id: expect.any(Number), name: 'laptop', fingerprint: ED25519_FP, public_key: ED25519, created_at: expect.any(String) });
    });

    it('names a key after its comment when no name is given', async () => {
      const res = await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { public_key: RSA }, headers: { 'accept-language': 'en' } });
      expect(res.status).toBe(201);
      expect(res.body.message).toBe('SSH key added');
      expect(res.body.data).toMatchObject({ name: 'user@rsa_-b_2048', fingerprint: RSA_FP });
    });

    it('refuses a key the user already has (409 40903), not one another user has', async () => {
      const dup = await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { name: 'again', public_key: ED25519.replace('user@ed25519', 'other comment') } });
      expect(dup.status).toBe(409);
      expect(dup.body.code).toBe(40903);
      expect(dup.body.message).toContain(ED25519_FP);
      const bobs = await api.request('POST', '/api/v1/ssh-keys', { token: bob.token, body: { name: 'shared', public_key: ED25519 } });
      expect(bobs.status).toBe(201);
    });

    it.each([
      ['a private key', { name: 'k', public_key: PRIVATE }, 'public_key', /PRIVATE key/],
      ['an unknown type', { name: 'k', public_key: 'ssh-foo AAAA' }, 'public_key', /unsupported key type/],
      ['corrupt base64', { name: 'k', public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfX!' }, 'public_key', /base64/],
      ['a type that does not match the blob', { name: 'k', public_key: ECDSA.replace('ecdsa-sha2-nistp256 ', 'ssh-ed25519 ') }, 'public_key', /line says "ssh-ed25519"/],
      ['a truncated key', { name: 'k', public_key: ED25519.slice(0, 60) }, 'public_key', /base64|truncated/],
      ['an empty key', { name: 'k', public_key: '' }, 'public_key', /empty/],
      ['a number as key', { name: 'k', public_key: 42 }, 'public_key', /expected string/],
      ['a missing key', { name: 'k' }, 'public_key', /expected string/],
      ['an empty name', { name: ' ', public_key: ECDSA }, 'name', /empty/],
      ['a 65-character name', { name: 'n'.repeat(65), public_key: ECDSA }, 'name', /64/],
    ])('refuses %s with 400 40001 naming the field', async (_label, body, field, message) => {
      const res = await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.data.fields).toEqual([{ field, message: expect.stringMatching(message) }]);
    });

    it('never echoes a private key back', async () => {
      const res = await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { name: 'oops', public_key: PRIVATE } });
      expect(res.text).not.toContain('b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ');
    });

    it('lists only your own keys', async () => {
      const mine = await api.request('GET', '/api/v1/ssh-keys', { token: alice.token });
      expect(mine.status).toBe(200);
      expect(mine.body.data.items.map((k: { fingerprint: string }) => k.fingerprint)).toEqual([ED25519_FP, RSA_FP]);
      const bobs = await api.request('GET', '/api/v1/ssh-keys', { token: bob.token });
      expect(bobs.body.data.items.map((k: { name: string }) => k.name)).toEqual(['shared']);
    });

    it('deletes your own key (204); another user’s key or an absent one is 404', async () => {
      const bobsKey = (await api.request('GET', '/api/v1/ssh-keys', { token: bob.token })).body.data.items[0].id;
      const notYours = await api.request('DELETE', `/api/v1/ssh-keys/${bobsKey}`, { token: alice.token });
      expect(notYours.status).toBe(404);
      expect(notYours.body.code).toBe(40401);
      const asAdmin = await api.request('DELETE', `/api/v1/ssh-keys/${bobsKey}`, { token: api.adminToken });
      expect(asAdmin.status).toBe(404);
      const res = await api.request('DELETE', `/api/v1/ssh-keys/${bobsKey}`, { token: bob.token });
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect((await api.request('GET', '/api/v1/ssh-keys', { token: bob.token })).body.data.items).toEqual([]);
      expect((await api.request('DELETE', `/api/v1/ssh-keys/${bobsKey}`, { token: bob.token })).status).toBe(404);
      expect((await api.request('DELETE', '/api/v1/ssh-keys/abc', { token: bob.token })).status).toBe(400);
    });

    it('needs a token: 401 without one, with a malformed or unknown one', async () => {
      for (const headers of [{} as Record<string, string>, { authorization: 'Basic abc' }, { authorization: 'Bearer' }, { authorization: 'Bearer rgpu_unknown' }]) {
        const res = await api.request('GET', '/api/v1/ssh-keys', { headers });
        expect(res.status, JSON.stringify(headers)).toBe(401);
        expect(res.body).toMatchObject({ code: 40101, data: null });
      }
      expect((await api.request('POST', '/api/v1/ssh-keys', { body: { public_key: ED25519 } })).status).toBe(401);
      expect((await api.request('DELETE', '/api/v1/ssh-keys/1')).status).toBe(401);
    });

    it.each([
      [0, 0],
      [1, 1],
      [20, 1],
      [21, 2],
    ])('with %i keys reports total_pages %i', async (n, pages) => {
      const user = await api.createUser(`pager${n}`);
      if (n > 0) {
        await api.db
          .insertInto('ssh_keys')
          .values(Array.from({ length: n }, (_, i) => ({ user_id: user.id, name: `k${i}`, public_key: `ssh-ed25519 x${i}`, fingerprint: `SHA256:fake${i}` })))
          .execute();
      }
      const res = await api.request('GET', '/api/v1/ssh-keys', { token: user.token });
      expect(res.body.data.pagination).toEqual({ page: 1, page_size: 20, total: n, total_pages: pages });
      expect(res.body.data.items).toHaveLength(Math.min(n, 20));
      const second = await api.request('GET', '/api/v1/ssh-keys?page=2', { token: user.token });
      expect(second.body.data.items).toHaveLength(Math.max(0, n - 20));
      expect(second.body.data.pagination).toEqual({ page: 2, page_size: 20, total: n, total_pages: pages });
    });
  });
});
