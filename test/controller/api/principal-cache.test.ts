import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrincipalCache } from '../../../controller/users/principal-cache.js';
import { createTestApi, type TestApi } from '../../helpers/api.js';
import { DB_TARGETS } from '../../helpers/databases.js';

// Bearer tokens → principals are remembered for REMOTEGPU_AUTH_CACHE_MS (issue 12): a request costs
// no token query, a revocation or a disable in this process applies at once, and a change made
// behind this process's back (another replica) within the configured time.

const me = (api: TestApi, token: string) => api.request('GET', '/api/v1/me', { token });

describe.each(DB_TARGETS)('principal cache on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('cached', () => {
    let api: TestApi;
    beforeAll(async () => {
      api = await createTestApi(target, { env: { REMOTEGPU_AUTH_CACHE_MS: '60000' } });
    });
    afterAll(async () => api?.close());

    it('answers from memory: a token revoked behind its back (another replica) still works until the cache time ends', async () => {
      const u = await api.createUser('behind');
      expect((await me(api, u.token)).status).toBe(200);
      await api.db.updateTable('api_tokens').set({ revoked_at: new Date() }).where('user_id', '=', u.id).execute();
      expect((await me(api, u.token)).status).toBe(200);
    });

    it('forgets a token revoked through the API at once', async () => {
      const u = await api.createUser('revoked');
      expect((await me(api, u.token)).status).toBe(200);
      const token = await api.db.selectFrom('api_tokens').select('id').where('user_id', '=', u.id).executeTakeFirstOrThrow();
      expect((await api.request('DELETE', `/api/v1/admin/users/${u.id}/tokens/${token.id}`, { token: api.adminToken })).status).toBe(204);
      expect((await me(api, u.token)).status).toBe(401);
    });

    it('forgets every token of a user disabled through the API at once', async () => {
      const u = await api.createUser('disabled');
      expect((await me(api, u.token)).status).toBe(200);
      expect((await api.request('DELETE', `/api/v1/admin/users/${u.id}`, { token: api.adminToken })).status).toBe(204);
      expect((await me(api, u.token)).status).toBe(401);
    });

    it('never trusts a cached token past its expiry', async () => {
      const u = await api.createUser('expiring');
      await api.db.updateTable('api_tokens').set({ expires_at: new Date(Date.now() + 60_000) }).where('user_id', '=', u.id).execute();
      expect((await me(api, u.token)).status).toBe(200);
      const cache = (api.services.users as unknown as { principals: PrincipalCache }).principals;
      expect(cache.get('unknown', Date.now())).toBeUndefined();
      // The entry read above expires with its token, whatever the cache time.
      const hash = [...(cache as unknown as { entries: Map<string, unknown> }).entries.keys()].find((h) => cache.get(h, Date.now())?.principal.userId === u.id)!;
      expect(cache.get(hash, Date.now() + 61_000)).toBeUndefined();
    });
  });

  describe.skipIf(target.skipReason !== '')('not cached (REMOTEGPU_AUTH_CACHE_MS=0)', () => {
    let api: TestApi;
    beforeAll(async () => {
      api = await createTestApi(target, { env: { REMOTEGPU_AUTH_CACHE_MS: '0' } });
    });
    afterAll(async () => api?.close());

    it('sees a revocation made behind its back on the next request', async () => {
      const u = await api.createUser('behind');
      expect((await me(api, u.token)).status).toBe(200);
      await api.db.updateTable('api_tokens').set({ revoked_at: new Date() }).where('user_id', '=', u.id).execute();
      expect((await me(api, u.token)).status).toBe(401);
    });
  });
});

describe('PrincipalCache', () => {
  const entry = (userId: number, tokenId: number) => ({ principal: { userId, name: 'u', role: 'user' as const }, tokenId, expiresAt: null, lastUsedAt: null, readAt: 1_000 });

  it('does not store a read that began before a revocation (the read may have seen the token still valid)', () => {
    const cache = new PrincipalCache(5_000);
    const mark = cache.mark();
    cache.forgetToken(7);
    cache.set('h', entry(1, 7), mark);
    expect(cache.get('h', 1_001)).toBeUndefined();
    cache.set('h', entry(1, 7), cache.mark());
    expect(cache.get('h', 1_001)?.tokenId).toBe(7);
  });

  it('keeps an entry for ttlMs only, forgets by user and drops the oldest when full', () => {
    const cache = new PrincipalCache(5_000, 2);
    cache.set('a', entry(1, 1), cache.mark());
    cache.set('b', entry(2, 2), cache.mark());
    expect(cache.get('a', 5_999)).toBeDefined();
    expect(cache.get('a', 6_000)).toBeUndefined();
    cache.set('c', entry(2, 3), cache.mark());
    cache.set('d', entry(3, 4), cache.mark());
    expect(cache.get('b', 1_001)).toBeUndefined(); // the oldest went
    cache.forgetUser(2);
    expect(cache.get('c', 1_001)).toBeUndefined();
    expect(cache.get('d', 1_001)?.principal.userId).toBe(3);
  });
});
