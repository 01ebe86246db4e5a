import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// Host approval (issue 9): a host registered with a join token that requires approval is listed
// pending_approval, takes no placement until POST /admin/hosts/{id}/approve, and then does.

const env = (over: Record<string, unknown> = {}) => ({
  name: 'train',
  image: 'ubuntu20-pytorch:2.0',
  cpu: 4,
  memory: 17179869184,
  gpu: 1,
  storage: 107374182400,
  ...over,
});

describe.each(DB_TARGETS)('host approval on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: TestUser;
    let queuedId: string;
    const admin = (method: string, path: string) => api.request(method, path, { token: api.adminToken, headers: { 'accept-language': 'en' } });
    const pending = async (id: string, joinTokenId: string | null = 'jt_0123456789') =>
      api.db.updateTable('hosts').set({ approved: false, approved_at: null, join_token_id: joinTokenId }).where('id', '=', id).execute();

    beforeAll(async () => {
      api = await createTestApi(target);
      alice = await api.createUser('alice');
      await seedImage(api.db);
      await seedHost(api.db, 'host-new', { gpus: 8 });
      await pending('host-new');
    });
    afterAll(async () => {
      await api?.close();
    });

    it('lists an unapproved host as pending_approval, with approval details in the detail view', async () => {
      const list = await admin('GET', '/api/v1/admin/hosts');
      expect(list.body.data.items).toEqual([expect.objectContaining({ host_id: 'host-new', status: 'pending_approval' })]);
      const filtered = await admin('GET', '/api/v1/admin/hosts?status=pending_approval');
      expect(filtered.body.data.items.map((h: { host_id: string }) => h.host_id)).toEqual(['host-new']);
      expect((await admin('GET', '/api/v1/admin/hosts?status=online')).body.data.items).toEqual([]);
      const detail = await admin('GET', '/api/v1/admin/hosts/host-new');
      expect(detail.body.data).toMatchObject({ status: 'pending_approval', approved: false, approved_at: null, join_token_id: 'jt_0123456789' });
    });

    it('places nothing on it: 409 (40902) naming pending approval, or queued', async () => {
      const refused = await api.request('POST', '/api/v1/environments', { token: alice.token, body: env() });
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe(40902);
      expect(refused.body.message).toContain('pending_approval');
      const queued = await api.request('POST', '/api/v1/environments', { token: alice.token, body: env({ name: 'queued', queue: true }) });
      expect(queued.status).toBe(201);
      expect(queued.body.data).toMatchObject({ status: 'pending', host_id: null });
      queuedId = queued.body.data.env_id;
      expect(await api.services.queue.placeQueued()).toBe(0);
      expect(await api.db.selectFrom('gpu_reservations').selectAll().execute()).toEqual([]);
    });

    it('is approved by an admin only: 403 for a user, 404 for an unknown host', async () => {
      const forbidden = await api.request('POST', '/api/v1/admin/hosts/host-new/approve', { token: alice.token });
      expect(forbidden.status).toBe(403);
      expect(forbidden.body.code).toBe(40301);
      expect((await api.request('POST', '/api/v1/admin/hosts/host-new/approve')).status).toBe(401);
      const unknown = await admin('POST', '/api/v1/admin/hosts/host-nope/approve');
      expect(unknown.status).toBe(404);
      expect(unknown.body.code).toBe(40401);
      expect((await admin('GET', '/api/v1/admin/hosts/host-new')).body.data.approved).toBe(false);
    });

    it('approves: 200 with the host, online, the scheduler woken; queued environments then fit', async () => {
      let woken = 0;
      api.services.wake.listen(() => woken++);
      const res = await admin('POST', '/api/v1/admin/hosts/host-new/approve');
      expect(res.status).toBe(200);
      expect(res.body.code).toBe(0);
      expect(res.body.message).toBe('Host approved');
      expect(res.body.data).toMatchObject({ host_id: 'host-new', status: 'online', approved: true, join_token_id: 'jt_0123456789' });
      expect(Date.now() - Date.parse(res.body.data.approved_at)).toBeLessThan(60_000);
      expect(woken).toBe(1);

      expect(await api.services.queue.placeQueued()).toBe(1);
      const placed = await api.request('GET', `/api/v1/environments/${queuedId}`, { token: alice.token });
      expect(placed.body.data).toMatchObject({ status: 'creating', host_id: 'host-new' });
      const created = await api.request('POST', '/api/v1/environments', { token: alice.token, body: env({ name: 'direct' }) });
      expect(created.status).toBe(201);
      expect(created.body.data.host_id).toBe('host-new');
    });

    it('is idempotent: approving an approved host answers it unchanged', async () => {
      const before = (await admin('GET', '/api/v1/admin/hosts/host-new')).body.data;
      const again = await admin('POST', '/api/v1/admin/hosts/host-new/approve');
      expect(again.status).toBe(200);
      expect(again.body.data).toEqual(before);
      // A host registered with the bootstrap token never needed approval: it keeps approved_at null.
      await seedHost(api.db, 'host-boot', { gpus: 0 });
      const boot = await admin('POST', '/api/v1/admin/hosts/host-boot/approve');
      expect(boot.body.data).toMatchObject({ status: 'online', approved: true, approved_at: null, join_token_id: null });
    });

    it('revokes a host, also with environments on it: 200 with the host, no longer approved, its certificates gone; admin only', async () => {
      await seedHost(api.db, 'host-bad', { gpus: 0 });
      await api.db
        .insertInto('host_certificates')
        .values({ serial: 'ab01', host_id: 'host-bad', key_sha256: 'k'.repeat(64), cert_sha256: 'c'.repeat(64), not_after: new Date(Date.now() + 3_600_000) })
        .execute();
      expect((await api.request('POST', '/api/v1/admin/hosts/host-bad/revoke', { token: alice.token })).status).toBe(403);
      const res = await admin('POST', '/api/v1/admin/hosts/host-bad/revoke');
      expect(res.status).toBe(200);
      expect(res.body.message).toBe('Host revoked');
      expect(res.body.data).toMatchObject({ host_id: 'host-bad', approved: false, approved_at: null });
      expect(await api.db.selectFrom('host_certificates').selectAll().where('host_id', '=', 'host-bad').execute()).toEqual([]);
      expect((await admin('POST', '/api/v1/admin/hosts/host-nope/revoke')).status).toBe(404);
    });

    it('shows offline over pending_approval, and pending_approval over cordoned', async () => {
      await seedHost(api.db, 'host-off', { gpus: 0 });
      await pending('host-off');
      await api.db.updateTable('hosts').set({ liveness: 'offline' }).where('id', '=', 'host-off').execute();
      await seedHost(api.db, 'host-cord', { gpus: 0 });
      await pending('host-cord', null);
      await api.db.updateTable('hosts').set({ admin_state: 'cordoned' }).where('id', '=', 'host-cord').execute();
      expect((await admin('GET', '/api/v1/admin/hosts/host-off')).body.data.status).toBe('offline');
      expect((await admin('GET', '/api/v1/admin/hosts/host-cord')).body.data.status).toBe('pending_approval');
      const approved = await admin('POST', '/api/v1/admin/hosts/host-cord/approve');
      expect(approved.body.data.status).toBe('cordoned');
    });
  });
});
