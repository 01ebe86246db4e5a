import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentSpec } from '../../../controller/environments/spec.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// Revocation reaches what is already there: SSH key changes, disabling a user and removing a
// workspace member move the generations of (and record events on) the environments concerned,
// and the agent spec built afterwards carries the right keys. The reconciler is not running here;
// test/e2e/revocation.test.ts drives the same through a real agent, Docker and ssh.

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCo user@ed25519';
const ED25519_FP = 'SHA256:yVjo7ct6Bbje63ba9ZaPs/x6sFN+3kfndjxtNIU9tpU';
const ECDSA =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHGe4uMsFpHQnrLkk6FJ3QfGN0c+9lCp0RfnFm9B6cjL/5dKj6foMrOSQIdUW2Yn4tTJV5YCR+v/ZNpRbZwRayk= owner@ecdsa';
const GiB = 2 ** 30;

describe.each(DB_TARGETS)('revocation on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-r', { gpus: 8 });
    });
    afterAll(async () => api?.close());

    /** An environment created through the API (placed on host-r), optionally in a workspace. */
    async function create(user: TestUser, name: string, extra: Record<string, unknown> = {}): Promise<string> {
      const res = await api.request('POST', '/api/v1/environments', {
        token: user.token,
        body: { name, image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 0, storage: GiB, ...extra },
      });
      expect(res.status, res.text).toBe(201);
      return res.body.data.env_id as string;
    }

    /** What the reconciler records once the agent carried the environment out. */
    async function settle(envId: string, status: 'running' | 'stopped' | 'error', observed = status === 'error' ? 'exited' : status): Promise<void> {
      const { spec_generation } = await api.db.selectFrom('environments').select('spec_generation').where('id', '=', envId).executeTakeFirstOrThrow();
      await api.db
        .updateTable('environments')
        .set({ status, desired_state: status === 'stopped' ? 'stopped' : 'running', applied_generation: spec_generation, observed_state: observed })
        .where('id', '=', envId)
        .execute();
    }

    const row = (envId: string) =>
      api.db.selectFrom('environments').select(['spec_generation', 'applied_generation', 'status', 'desired_state', 'owner_id', 'idempotency_key']).where('id', '=', envId).executeTakeFirstOrThrow();
    const events = async (envId: string) =>
      (await api.db.selectFrom('environment_events').select(['kind', 'message']).where('env_id', '=', envId).orderBy('id').execute()).map((e) => `${e.kind}: ${e.message}`);
    const keysOf = async (envId: string) => (await buildAgentSpec(api.db, envId)).sshAuthorizedKeys;

    describe('SSH keys', () => {
      let alice: TestUser;
      let bob: TestUser;
      let running = '';
      let stopped = '';
      let failed = '';
      let bobs = '';

      beforeAll(async () => {
        alice = await api.createUser('keys-alice');
        bob = await api.createUser('keys-bob');
        running = await create(alice, 'running');
        await settle(running, 'running');
        stopped = await create(alice, 'stopped');
        await settle(stopped, 'stopped');
        failed = await create(alice, 'failed');
        await settle(failed, 'error');
        bobs = await create(bob, 'bobs');
        await settle(bobs, 'running');
      });

      it('adding a key reaches the running environments of its owner only, with an event naming the key', async () => {
        const before = await Promise.all([running, stopped, failed, bobs].map(row));
        const res = await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { name: 'laptop', public_key: ED25519 } });
        expect(res.status).toBe(201);
        const after = await Promise.all([running, stopped, failed, bobs].map(row));
        // Only the running one moves: the reconciler applies it again (the agent rewrites the keys file).
        expect(after.map((r, i) => r.spec_generation - before[i]!.spec_generation)).toEqual([1, 0, 0, 0]);
        expect(after[0]).toMatchObject({ status: 'running', desired_state: 'running' });
        expect(await events(running)).toContain(`ssh_keys_updated: SSH keys updated: key "laptop" (${ED25519_FP}) added`);
        expect((await events(running)).join('\n')).not.toContain('AAAAC3NzaC1lZDI1NTE5');
        expect(await keysOf(running)).toEqual([ED25519]);
        // A stopped one gets the keys from its spec when it starts.
        expect(await keysOf(stopped)).toEqual([ED25519]);
        expect(await keysOf(bobs)).toEqual([]);
      });

      it('reaches an environment in error whose container was seen running again', async () => {
        await api.db.updateTable('environments').set({ observed_state: 'running' }).where('id', '=', failed).execute();
        const before = await row(failed);
        const res = await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { name: 'desk', public_key: ECDSA } });
        expect(res.status).toBe(201);
        expect((await row(failed)).spec_generation).toBe(before.spec_generation + 1);
        await settle(failed, 'error', 'exited');
      });

      it('deleting a key takes it out of the running environments at the next apply', async () => {
        const keys = await api.request('GET', '/api/v1/ssh-keys', { token: alice.token });
        const laptop = keys.body.data.items.find((k: { name: string }) => k.name === 'laptop');
        await settle(running, 'running');
        const before = await row(running);
        const res = await api.request('DELETE', `/api/v1/ssh-keys/${laptop.id}`, { token: alice.token });
        expect(res.status).toBe(204);
        const after = await row(running);
        expect(after.spec_generation).toBe(before.spec_generation + 1);
        expect(after.applied_generation).toBeLessThan(after.spec_generation);
        expect((await events(running)).at(-1)).toBe(`ssh_keys_updated: SSH keys updated: key "laptop" (${ED25519_FP}) removed`);
        expect(await keysOf(running)).toEqual([ECDSA]);
      });

      it('a refused key or a missing key changes nothing', async () => {
        const before = await row(running);
        expect((await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { name: 'again', public_key: ECDSA } })).status).toBe(409);
        expect((await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { public_key: 'ssh-foo AAAA' } })).status).toBe(400);
        expect((await api.request('DELETE', '/api/v1/ssh-keys/999999', { token: alice.token })).status).toBe(404);
        expect((await row(running)).spec_generation).toBe(before.spec_generation);
      });
    });

    describe('disabling a user', () => {
      let carol: TestUser;
      let member: TestUser;
      let workspaceId = 0;
      let running = '';
      let stopped = '';
      let queued = '';

      beforeAll(async () => {
        carol = await api.createUser('dis-carol');
        member = await api.createUser('dis-member');
        workspaceId = await api.createWorkspace('dis-ws', carol.id);
        await api.addMember(workspaceId, member.id);
        expect((await api.request('POST', '/api/v1/ssh-keys', { token: carol.token, body: { name: 'k', public_key: ED25519 } })).status).toBe(201);
        running = await create(carol, 'running', { workspace_id: workspaceId });
        await settle(running, 'running');
        stopped = await create(carol, 'stopped', { workspace_id: workspaceId });
        await settle(stopped, 'stopped');
        queued = await create(carol, 'queued', { cpu: 128, queue: true, workspace_id: workspaceId });
      });

      it('stops every environment of theirs (data kept), and their spec carries no key', async () => {
        expect((await row(queued)).status).toBe('pending');
        const before = await Promise.all([running, stopped, queued].map(row));
        expect(await keysOf(running)).toEqual([ED25519]);

        expect((await admin('DELETE', `/api/v1/admin/users/${carol.id}`)).status).toBe(204);

        const [r, s, q] = await Promise.all([running, stopped, queued].map(row));
        expect(r).toMatchObject({ desired_state: 'stopped', status: 'stopping', spec_generation: before[0]!.spec_generation + 1 });
        expect((await events(running)).at(-1)).toBe(`stop_requested: Stop requested: owner dis-carol (user ${carol.id}) was disabled; the data is kept`);
        // Already stopped: nothing to do, nothing recorded.
        expect(s).toEqual(before[1]);
        // Queued: holds nothing, no agent knows it: stopped at once.
        expect(q).toMatchObject({ desired_state: 'stopped', status: 'stopped' });
        // Whatever reaches the agent now (the stop's apply, a later start) installs no key.
        expect(await keysOf(running)).toEqual([]);
        expect(await keysOf(stopped)).toEqual([]);
        expect((await api.request('GET', '/api/v1/environments', { token: carol.token })).status).toBe(401);
      });

      it('refuses to start or restart their environments for anyone else (409), changing nothing', async () => {
        await settle(running, 'stopped');
        const reservations = async () => (await api.db.selectFrom('gpu_reservations').select('env_id').where('env_id', 'in', [running, stopped, queued]).execute()).length;
        const reserved = await reservations();
        for (const [who, token] of [
          ['admin', api.adminToken],
          ['workspace member', member.token],
        ] as const) {
          for (const envId of [running, queued]) {
            const before = await row(envId);
            const res = await api.request('POST', `/api/v1/environments/${envId}/start`, { token });
            expect(res.status, `${who} starting ${envId}`).toBe(409);
            expect(res.body.code).toBe(40901);
            expect(res.body.message).toContain(`its owner dis-carol (user ${carol.id}) is disabled`);
            expect(await row(envId)).toEqual(before);
          }
        }
        expect(await reservations()).toBe(reserved);
      });

      it('enabling starts nothing; starting is allowed again afterwards, with their keys', async () => {
        const before = await Promise.all([running, stopped, queued].map(row));
        const res = await admin('POST', `/api/v1/admin/users/${carol.id}/enable`);
        expect(res.status).toBe(200);
        expect(res.body.data).toMatchObject({ id: carol.id, disabled_at: null });
        expect(await Promise.all([running, stopped, queued].map(row))).toEqual(before);
        // Their tokens stay revoked.
        expect((await api.request('GET', '/api/v1/environments', { token: carol.token })).status).toBe(401);
        expect(await keysOf(running)).toEqual([ED25519]);
        const start = await api.request('POST', `/api/v1/environments/${running}/start`, { token: member.token });
        expect(start.status).toBe(200);
        expect(await row(running)).toMatchObject({ desired_state: 'running', status: 'starting' });
      });

      it('enable is idempotent and answers 404 for an unknown user', async () => {
        expect((await admin('POST', `/api/v1/admin/users/${carol.id}/enable`)).status).toBe(200);
        expect((await admin('POST', '/api/v1/admin/users/999999/enable')).body.code).toBe(40401);
      });
    });

    describe('removing a workspace member', () => {
      let owen: TestUser;
      let mia: TestUser;
      let workspaceId = 0;
      let datasetId = 0;
      let inWorkspace = '';
      let stoppedInWorkspace = '';
      let personal = '';
      let untouched = '';

      beforeAll(async () => {
        owen = await api.createUser('ws-owen');
        mia = await api.createUser('ws-mia');
        workspaceId = await api.createWorkspace('ws-team', owen.id);
        await api.addMember(workspaceId, mia.id);
        const ds = await api.db.insertInto('datasets').values({ name: 'team-data', host_path: '/srv/team-data', owner_id: null, workspace_id: workspaceId }).returning('id').executeTakeFirstOrThrow();
        datasetId = ds.id;
        expect((await api.request('POST', '/api/v1/ssh-keys', { token: mia.token, body: { name: 'mia', public_key: ED25519 } })).status).toBe(201);
        expect((await api.request('POST', '/api/v1/ssh-keys', { token: owen.token, body: { name: 'owen', public_key: ECDSA } })).status).toBe(201);
        // Both used the same Idempotency-Key: the hand-over must not collide on it.
        const keyed = await api.request('POST', '/api/v1/environments', {
          token: mia.token,
          headers: { 'idempotency-key': 'same-key' },
          body: { name: 'train', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 1, storage: GiB, workspace_id: workspaceId },
        });
        inWorkspace = keyed.body.data.env_id;
        await api.request('POST', '/api/v1/environments', {
          token: owen.token,
          headers: { 'idempotency-key': 'same-key' },
          body: { name: 'owens', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 0, storage: GiB },
        });
        await settle(inWorkspace, 'running');
        stoppedInWorkspace = await create(mia, 'parked', { workspace_id: workspaceId });
        await settle(stoppedInWorkspace, 'stopped');
        personal = await create(mia, 'personal');
        await settle(personal, 'running');
        untouched = await create(mia, 'untouched');
        await settle(untouched, 'running');
        for (const envId of [inWorkspace, personal]) {
          const res = await api.request('POST', `/api/v1/environments/${envId}/datasets`, { token: mia.token, body: { dataset_id: datasetId, mount_path: '/data/team' } });
          expect(res.status, res.text).toBe(200);
          await settle(envId, 'running');
        }
      });

      it('hands their workspace environments to the owner, stopped, and unmounts the datasets from their own', async () => {
        const before = await Promise.all([inWorkspace, stoppedInWorkspace, personal, untouched].map(row));
        expect(await keysOf(inWorkspace)).toEqual([ED25519]);

        expect((await admin('DELETE', `/api/v1/admin/workspaces/${workspaceId}/members/${mia.id}`)).status).toBe(204);

        const [w, ws, p, u] = await Promise.all([inWorkspace, stoppedInWorkspace, personal, untouched].map(row));
        expect(w).toMatchObject({ owner_id: owen.id, desired_state: 'stopped', status: 'stopping', idempotency_key: null, spec_generation: before[0]!.spec_generation + 1 });
        const why = `ws-mia (user ${mia.id}) was removed from workspace ws-team (${workspaceId})`;
        expect((await events(inWorkspace)).slice(-2)).toEqual([
          `owner_changed: Owner changed from ws-mia (user ${mia.id}) to ws-owen (user ${owen.id}): ${why}`,
          `stop_requested: Stop requested: ${why}; nothing they started keeps running, the data is kept`,
        ]);
        // The keys that reach it now are the new owner's; the workspace's dataset stays mounted there.
        const spec = await buildAgentSpec(api.db, inWorkspace);
        expect(spec.sshAuthorizedKeys).toEqual([ECDSA]);
        expect(spec.mounts.map((m) => m.containerPath)).toEqual(['/data/team']);
        // A stopped one changes owner only; it starts with the owner's keys.
        expect(ws).toMatchObject({ owner_id: owen.id, status: 'stopped', spec_generation: before[1]!.spec_generation });
        expect(await keysOf(stoppedInWorkspace)).toEqual([ECDSA]);
        // Their own environment keeps running, without the workspace's dataset (a recreate).
        expect(p).toMatchObject({ owner_id: mia.id, desired_state: 'running', status: 'running', spec_generation: before[2]!.spec_generation + 1 });
        expect((await events(personal)).at(-1)).toBe(`dataset_unmounted: Dataset team-data (${datasetId}) unmounted: ${why}`);
        expect((await buildAgentSpec(api.db, personal)).mounts).toEqual([]);
        expect(u).toEqual(before[3]);
      });

      it('the removed member no longer sees them; the owner does', async () => {
        for (const envId of [inWorkspace, stoppedInWorkspace]) {
          expect((await api.request('GET', `/api/v1/environments/${envId}`, { token: mia.token })).status).toBe(404);
          expect((await api.request('POST', `/api/v1/environments/${envId}/start`, { token: mia.token })).status).toBe(404);
          expect((await api.request('GET', `/api/v1/environments/${envId}`, { token: owen.token })).status).toBe(200);
        }
        const list = await api.request('GET', '/api/v1/environments?page_size=100', { token: mia.token });
        expect(list.body.data.items.map((e: { env_id: string }) => e.env_id).sort()).toEqual([personal, untouched].sort());
        expect((await api.request('GET', `/api/v1/datasets/${datasetId}`, { token: mia.token })).status).toBe(404);
      });

      it('refuses to remove the owner or a non-member, changing nothing', async () => {
        const before = await row(stoppedInWorkspace);
        expect((await admin('DELETE', `/api/v1/admin/workspaces/${workspaceId}/members/${owen.id}`)).status).toBe(409);
        expect((await admin('DELETE', `/api/v1/admin/workspaces/${workspaceId}/members/${mia.id}`)).status).toBe(404);
        expect((await admin('DELETE', `/api/v1/admin/workspaces/999999/members/${mia.id}`)).status).toBe(404);
        expect(await row(stoppedInWorkspace)).toEqual(before);
      });
    });
  });
});
