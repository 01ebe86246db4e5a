import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../../controller/users/tokens.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// Terminal tickets and the terminal route's checks before the upgrade (issue 13, item 1), through
// app.request on both databases. The WebSocket itself is tested on the real platform in
// test/e2e/terminal.test.ts.

describe.each(DB_TARGETS)('terminal tickets on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: TestUser;
    let bob: TestUser;
    let envId = '';
    const ticketOf = (token: string, id = envId) => api.request('POST', `/api/v1/environments/${id}/terminal/ticket`, { token });
    const upgrade = (query: string, headers: Record<string, string> = {}) =>
      api.request('GET', `/api/v1/environments/${envId}/terminal?${query}`, { headers: { upgrade: 'websocket', connection: 'Upgrade', ...headers } });
    const setStatus = (status: 'running' | 'stopped', desired: 'running' | 'stopped') =>
      api.db.updateTable('environments').set({ status, desired_state: desired }).where('id', '=', envId).execute();

    beforeAll(async () => {
      api = await createTestApi(target);
      alice = await api.createUser('alice');
      bob = await api.createUser('bob');
      await seedHost(api.db, 'host-t1', { gpus: 0 });
      const image = await seedImage(api.db);
      const res = await api.request('POST', '/api/v1/environments', { token: alice.token, body: { name: 'box', image, cpu: 1, memory: 2 ** 28, gpu: 0, storage: 2 ** 30 } });
      expect(res.status).toBe(201);
      envId = res.body.data.env_id;
      await setStatus('running', 'running');
    });
    afterAll(async () => api?.close());

    it('issues a single-use 30-second ticket, storing only its hash, bound to the caller and token', async () => {
      const res = await ticketOf(alice.token);
      expect(res.status).toBe(201);
      expect(res.body.code).toBe(0);
      const { ticket, expires_at } = res.body.data as { ticket: string; expires_at: string };
      expect(ticket).toMatch(/^rgt_[A-Za-z0-9_-]{43}$/);
      const ttl = new Date(expires_at).getTime() - Date.now();
      expect(ttl).toBeGreaterThan(20_000);
      expect(ttl).toBeLessThanOrEqual(31_000);
      const rows = await api.db.selectFrom('terminal_tickets').selectAll().execute();
      expect(rows.some((r) => r.ticket_hash === ticket || r.token_hash === alice.token)).toBe(false);
      const row = rows.find((r) => r.ticket_hash === hashToken(ticket))!;
      expect(row).toMatchObject({ env_id: envId, user_id: alice.id, token_hash: hashToken(alice.token), used_at: null });

      const caller = await api.services.terminals.redeem(ticket, envId);
      expect(caller.principal).toMatchObject({ userId: alice.id, name: 'alice' });
      await expect(api.services.terminals.redeem(ticket, envId)).rejects.toMatchObject({ code: 'unauthenticated' });
    });

    it('redeems a ticket once when several redemptions race (replicas share the table)', async () => {
      const { ticket } = (await ticketOf(alice.token)).body.data;
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => api.services.terminals.redeem(ticket, envId)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    });

    it('refuses an expired ticket, one for another environment, and one whose token was revoked', async () => {
      const expired = (await ticketOf(alice.token)).body.data.ticket;
      await api.db.updateTable('terminal_tickets').set({ expires_at: new Date(Date.now() - 1000) }).where('ticket_hash', '=', hashToken(expired)).execute();
      await expect(api.services.terminals.redeem(expired, envId)).rejects.toMatchObject({ code: 'unauthenticated' });
      const other = (await ticketOf(alice.token)).body.data.ticket;
      await expect(api.services.terminals.redeem(other, 'env-other')).rejects.toMatchObject({ code: 'unauthenticated' });

      const carol = await api.createUser('carol', 'admin');
      const carols = (await ticketOf(carol.token)).body.data.ticket;
      await api.db.updateTable('api_tokens').set({ revoked_at: new Date() }).where('token_hash', '=', hashToken(carol.token)).execute();
      await expect(api.services.terminals.redeem(carols, envId)).rejects.toMatchObject({ code: 'unauthenticated', message: expect.stringMatching(/token revoked/) });
      expect((await upgrade(`ticket=${carols}`)).status).toBe(401);
    });

    it("answers 404 for someone else's environment and an unknown one, 401 without a token; admins may", async () => {
      for (const res of [await ticketOf(bob.token), await ticketOf(alice.token, 'env-nope')]) {
        expect(res.status).toBe(404);
        expect(res.body.code).toBe(40401);
      }
      expect((await api.request('POST', `/api/v1/environments/${envId}/terminal/ticket`)).status).toBe(401);
      expect((await ticketOf(api.adminToken)).status).toBe(201);
      expect((await upgrade('cols=80', { authorization: `Bearer ${bob.token}` })).status).toBe(404);
    });

    it('answers 409 while the environment is not running', async () => {
      await setStatus('stopped', 'stopped');
      try {
        const res = await ticketOf(alice.token);
        expect(res.status).toBe(409);
        expect(res.body).toMatchObject({ code: 40901, data: null });
        expect(res.body.message).toMatch(/is not running \(status stopped\); start it/);
        expect((await upgrade('cols=80', { authorization: `Bearer ${alice.token}` })).status).toBe(409);
      } finally {
        await setStatus('running', 'running');
      }
    });

    it('needs the CSRF header for a ticket asked with the session cookie, and Origin for a cookie WebSocket', async () => {
      const cookie = `remotegpu_session=${alice.token}`;
      expect((await api.request('POST', `/api/v1/environments/${envId}/terminal/ticket`, { headers: { cookie } })).status).toBe(403);
      expect((await upgrade('cols=80', { cookie, origin: 'https://evil.example' })).status).toBe(403);
      expect((await upgrade('cols=80', { cookie })).status).toBe(403);
    });

    it('answers 400 to a plain GET and to a bad size, 401 to a garbage ticket', async () => {
      const plain = await api.request('GET', `/api/v1/environments/${envId}/terminal`, { token: alice.token });
      expect(plain.status).toBe(400);
      expect(plain.body.message).toMatch(/WebSocket/);
      expect((await upgrade('cols=0&rows=24', { authorization: `Bearer ${alice.token}` })).status).toBe(400);
      expect((await upgrade('cols=abc', { authorization: `Bearer ${alice.token}` })).status).toBe(400);
      expect((await upgrade('ticket=rgt_garbage')).status).toBe(401);
      expect((await upgrade('')).status).toBe(401);
    });

    it('documents the ticket route in the OpenAPI document', async () => {
      const doc = (await api.request('GET', '/api/v1/openapi.json')).body;
      expect(Object.keys(doc.paths['/api/v1/environments/{env_id}/terminal/ticket'])).toEqual(['post']);
    });
  });
});
