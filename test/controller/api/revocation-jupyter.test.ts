import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentSpec } from '../../../controller/environments/spec.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// What a removed or disabled workspace member could read stops working: every member reads the
// Jupyter URL and token of every environment of the workspace, so those tokens are rotated (and a
// running container is recreated with the new one) when a member leaves or is disabled. A create
// that authenticated before its user was disabled inserts nothing. Removing a member and disabling
// the same user at once never deadlocks. test/controller/api/revocation.test.ts covers the rest.

const GiB = 2 ** 30;

describe.each(DB_TARGETS)('revocation of what members could read on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('service', () => {
    // Lock waits need a second session: PGlite has one. Defined on PostgreSQL only (CI fails on a skipped test).
    const onPostgres = target.name === 'postgres' ? it : () => {};
    let api: TestApi;

    beforeAll(async () => {
      api = await createTestApi(target, { poolSize: 6 });
      await seedImage(api.db);
      await seedHost(api.db, 'host-j', { gpus: 8 });
    });
    afterAll(async () => api?.close());

    async function create(user: TestUser, name: string, extra: Record<string, unknown> = {}): Promise<string> {
      const res = await api.request('POST', '/api/v1/environments', {
        token: user.token,
        body: { name, image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 0, storage: GiB, ...extra },
      });
      expect(res.status, res.text).toBe(201);
      return res.body.data.env_id as string;
    }
    async function settle(envId: string, status: 'running' | 'stopped'): Promise<void> {
      const { spec_generation } = await api.db.selectFrom('environments').select('spec_generation').where('id', '=', envId).executeTakeFirstOrThrow();
      await api.db.updateTable('environments').set({ status, desired_state: status, applied_generation: spec_generation, observed_state: status }).where('id', '=', envId).execute();
    }
    const row = (envId: string) =>
      api.db.selectFrom('environments').select(['jupyter_token', 'spec_generation', 'status', 'desired_state', 'owner_id']).where('id', '=', envId).executeTakeFirstOrThrow();
    type Row = Awaited<ReturnType<typeof row>>;
    const lastEvent = async (envId: string) => {
      const e = await api.db.selectFrom('environment_events').select(['kind', 'message']).where('env_id', '=', envId).orderBy('id', 'desc').executeTakeFirstOrThrow();
      return `${e.kind}: ${e.message}`;
    };

    it('removing a member rotates the Jupyter token of every environment of the workspace; running ones are recreated with it', async () => {
      const owen = await api.createUser('jr-owen');
      const mia = await api.createUser('jr-mia');
      const sam = await api.createUser('jr-sam');
      const ws = await api.createWorkspace('jr-team', owen.id);
      await api.addMember(ws, mia.id);
      await api.addMember(ws, sam.id);
      const handed = await create(mia, 'handed', { workspace_id: ws });
      await settle(handed, 'running');
      const samRunning = await create(sam, 'sam-running', { workspace_id: ws });
      await settle(samRunning, 'running');
      const samStopped = await create(sam, 'sam-stopped', { workspace_id: ws });
      await settle(samStopped, 'stopped');
      const elsewhere = await create(sam, 'sam-personal');
      await settle(elsewhere, 'running');
      // What mia could read before she leaves.
      const seen = await api.request('GET', `/api/v1/environments/${samRunning}`, { token: mia.token });
      expect(JSON.stringify(seen.body.data)).toContain((await row(samRunning)).jupyter_token);
      const before = await Promise.all([handed, samRunning, samStopped, elsewhere].map(row));

      await api.services.workspaces.removeMember(ws, mia.id);

      const [h, r, s, e] = (await Promise.all([handed, samRunning, samStopped, elsewhere].map(row))) as [Row, Row, Row, Row];
      const why = `jr-mia (user ${mia.id}) was removed from workspace jr-team (${ws})`;
      expect(h.owner_id).toBe(owen.id);
      expect(h.jupyter_token).not.toBe(before[0]!.jupyter_token);
      expect(r.jupyter_token).not.toBe(before[1]!.jupyter_token);
      expect(r).toMatchObject({ status: 'running', desired_state: 'running', spec_generation: before[1]!.spec_generation + 1 });
      expect(await lastEvent(samRunning)).toBe(`jupyter_token_rotated: Jupyter token rotated: ${why}; a running container is recreated with it, the data is kept`);
      expect((await buildAgentSpec(api.db, samRunning)).jupyterToken).toBe(r.jupyter_token);
      // A stopped one gets the new token at its next start.
      expect(s.jupyter_token).not.toBe(before[2]!.jupyter_token);
      expect(s.spec_generation).toBe(before[2]!.spec_generation);
      expect(await lastEvent(samStopped)).toBe(`jupyter_token_rotated: Jupyter token rotated: ${why}`);
      // Outside the workspace nothing changes.
      expect(e).toEqual(before[3]);
      for (const t of [h, r, s]) expect(t.jupyter_token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    });

    it('disabling a user rotates the tokens of the other environments of their workspaces', async () => {
      const olga = await api.createUser('jd-olga');
      const dan = await api.createUser('jd-dan');
      const eve = await api.createUser('jd-eve');
      const ws = await api.createWorkspace('jd-team', olga.id);
      await api.addMember(ws, dan.id);
      await api.addMember(ws, eve.id);
      const dans = await create(dan, 'dans', { workspace_id: ws });
      await settle(dans, 'running');
      const eves = await create(eve, 'eves', { workspace_id: ws });
      await settle(eves, 'running');
      const before = await Promise.all([dans, eves].map(row));

      const admin = await api.db.selectFrom('users').select('id').where('name', '=', 'admin').executeTakeFirstOrThrow();
      await api.services.users.disable(dan.id, admin.id);

      const [d, e] = (await Promise.all([dans, eves].map(row))) as [Row, Row];
      expect(d).toMatchObject({ desired_state: 'stopped', status: 'stopping', spec_generation: before[0]!.spec_generation + 1 });
      expect(e.jupyter_token).not.toBe(before[1]!.jupyter_token);
      expect(e).toMatchObject({ status: 'running', spec_generation: before[1]!.spec_generation + 1 });
      expect(await lastEvent(eves)).toBe(
        `jupyter_token_rotated: Jupyter token rotated: workspace member jd-dan (user ${dan.id}) was disabled; a running container is recreated with it, the data is kept`,
      );
    });

    it('a create that authenticated before its user was disabled inserts nothing (placed or queued)', async () => {
      const fay = await api.createUser('jc-fay');
      const admin = await api.db.selectFrom('users').select('id').where('name', '=', 'admin').executeTakeFirstOrThrow();
      await api.services.users.disable(fay.id, admin.id);
      const count = async () => Number((await api.db.selectFrom('environments').select((eb) => eb.fn.countAll().as('n')).where('owner_id', '=', fay.id).executeTakeFirstOrThrow()).n);
      const principal = { userId: fay.id, name: 'jc-fay', role: 'user' as const };
      for (const extra of [{}, { cpu: 128, queue: true }]) {
        const input = { name: 'late', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 0, storage: GiB, ...extra };
        await expect(api.services.environments.create(principal, input)).rejects.toMatchObject({ code: 'wrong_state', message: expect.stringContaining('jc-fay') });
      }
      expect(await count()).toBe(0);
    });

    onPostgres('a create in a workspace that waited on its creator being removed from it inserts nothing', async () => {
      const olly = await api.createUser('jx-olly');
      const max = await api.createUser('jx-max');
      const ws = await api.createWorkspace('jx-team', olly.id);
      await api.addMember(ws, max.id);
      // A removal under way: it holds the workspace's row, as removeMember does, until released.
      let release = () => {};
      const gate = new Promise<void>((r) => (release = r));
      let locked = () => {};
      const isLocked = new Promise<void>((r) => (locked = r));
      const removal = api.db.transaction().execute(async (trx) => {
        await trx.selectFrom('workspaces').select('id').where('id', '=', ws).forUpdate().execute();
        locked();
        await gate;
        await trx.deleteFrom('workspace_members').where('workspace_id', '=', ws).where('user_id', '=', max.id).execute();
      });
      await isLocked;
      // The create authenticated and saw the membership; it then waits on the removal's lock.
      const input = { name: 'raced', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: GiB, gpu: 0, storage: GiB, workspaceId: ws };
      const outcome = api.services.environments.create({ userId: max.id, name: 'jx-max', role: 'user' }, input).then(
        () => 'created',
        (err: { code?: string }) => err.code,
      );
      const waiting = sql<{ n: string }>`select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
      for (let i = 0; Number((await waiting.execute(api.db)).rows[0]!.n) === 0; i++) {
        expect(i, 'the create never waited on the lock').toBeLessThan(2000);
        await new Promise((r) => setTimeout(r, 5));
      }
      release();
      await removal;
      expect(await outcome).toBe('not_found');
      const inserted = await api.db.selectFrom('environments').select('id').where('workspace_id', '=', ws).execute();
      expect(inserted).toEqual([]);
    });

    onPostgres('removing a member while disabling the same user never deadlocks', async () => {
      const admin = await api.db.selectFrom('users').select('id').where('name', '=', 'admin').executeTakeFirstOrThrow();
      const { id: imageId } = await api.db.selectFrom('images').select('id').executeTakeFirstOrThrow();
      const insert = (id: string, ownerId: number, workspaceId: number | null) =>
        api.db
          .insertInto('environments')
          .values({ id, owner_id: ownerId, workspace_id: workspaceId, name: id, image_id: imageId, image: 'img', image_ref: 'img', image_ssh_port: 22, image_jupyter_port: null, image_data_path: '/data', cpu: 1, memory_bytes: GiB, storage_bytes: GiB, gpu_model: null, desired_state: 'running', status: 'running', host_id: 'host-j', ssh_port: null, jupyter_port: null, jupyter_token: 't', idempotency_key: null, deleted_at: null })
          .execute();
      const outcomes: Record<string, number> = {};
      const rounds = 24;
      for (let i = 0; i < rounds; i++) {
        const owner = await api.createUser(`dl-o${i}`);
        const m = await api.createUser(`dl-m${i}`);
        const ws = await api.createWorkspace(`dl-w${i}`, owner.id);
        await api.addMember(ws, m.id);
        const ds = await api.db.insertInto('datasets').values({ name: `dl-d${i}`, host_path: `/srv/dl-d${i}`, owner_id: null, workspace_id: ws }).returning('id').executeTakeFirstOrThrow();
        // A personal environment mounting the workspace's dataset sorts before those in the workspace.
        await insert(`env-a${i}`, m.id, null);
        for (let k = 0; k < 10; k++) await insert(`env-m${i}-${k}`, m.id, ws);
        await insert(`env-z${i}`, owner.id, ws);
        await api.db.insertInto('environment_mounts').values({ env_id: `env-a${i}`, dataset_id: ds.id, mount_path: '/data/x', created_at: new Date() }).execute();
        const rs = await Promise.allSettled([api.services.workspaces.removeMember(ws, m.id), api.services.users.disable(m.id, admin.id)]);
        for (const r of rs) {
          const k = r.status === 'fulfilled' ? 'ok' : String((r.reason as { code?: string }).code ?? (r.reason as Error).message);
          outcomes[k] = (outcomes[k] ?? 0) + 1;
        }
      }
      console.log(`remove member + disable, ${rounds} rounds in parallel:`, outcomes);
      expect(outcomes).toEqual({ ok: 2 * rounds });
    });
  });
});
