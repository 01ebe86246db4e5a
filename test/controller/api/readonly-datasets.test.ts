import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS, createTestDatabase } from '../../helpers/databases.js';
import { createTestApi, seedEnvironment, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';
import { buildAgentSpec } from '../../../controller/environments/spec.js';
import { migrateToLatest, migrator } from '../../../controller/db/migrate.js';
import type { NewEnvironment } from '../../../controller/db/schema.js';

// Issue 10, read-only shared datasets: a dataset is mounted read-only unless an admin marked it
// writable; users can only narrow (readonly: false on a read-only dataset is a 400 naming
// readonly), and the agent spec mounts a non-writable dataset read-only whatever the mount row says.

const environmentBody = { name: 'train', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30, gpu: 0 };

describe.each(DB_TARGETS)('read-only datasets on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('mounts', () => {
    let api: TestApi;
    let alice: TestUser;
    let bob: TestUser;
    let envId: string;
    let readOnly: number;
    let writable: number;
    let hidden: number;

    const mount = (body: unknown, token = alice.token) => api.request('POST', `/api/v1/environments/${envId}/datasets`, { token, body });
    const mountRows = () => api.db.selectFrom('environment_mounts').selectAll().where('env_id', '=', envId).orderBy('mount_path').execute();
    const unmountAll = () => api.db.deleteFrom('environment_mounts').where('env_id', '=', envId).execute();
    /** Everything a refused mount must leave alone: mount rows, events, the generations, the detail. */
    const state = async () => ({
      mounts: await mountRows(),
      events: await api.db.selectFrom('environment_events').select(['id', 'kind', 'message']).where('env_id', '=', envId).orderBy('id').execute(),
      row: await api.db.selectFrom('environments').select(['spec_generation', 'applied_generation', 'status', 'updated_at']).where('id', '=', envId).executeTakeFirstOrThrow(),
      detail: (await api.request('GET', `/api/v1/environments/${envId}`, { token: alice.token })).body,
      listed: (await api.request('GET', `/api/v1/environments/${envId}/datasets`, { token: alice.token })).body,
    });

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-a', { gpus: 0 });
      alice = await api.createUser('alice');
      bob = await api.createUser('bob');
      const created = await api.request('POST', '/api/v1/environments', { token: alice.token, body: environmentBody });
      expect(created.status).toBe(201);
      envId = created.body.data.env_id;
      const admin = (body: unknown) => api.request('POST', '/api/v1/admin/datasets', { token: api.adminToken, body });
      readOnly = (await admin({ name: 'imagenet', host_path: '/srv/imagenet' })).body.data.id;
      writable = (await admin({ name: 'scratch', host_path: '/srv/scratch', writable: true })).body.data.id;
      hidden = (await admin({ name: 'bobs', host_path: '/srv/bobs', owner_id: bob.id })).body.data.id;
    });
    afterAll(async () => api?.close());

    it('refuses readonly: false on a read-only dataset with 400 naming readonly, and changes nothing', async () => {
      const before = await state();
      const res = await api.request('POST', `/api/v1/environments/${envId}/datasets`, {
        token: alice.token,
        body: { dataset_id: readOnly, mount_path: '/data/imagenet', readonly: false },
        headers: { 'accept-language': 'en' },
      });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        code: 40001,
        message: expect.stringContaining('readonly'),
        data: { fields: [{ field: 'readonly', message: expect.stringContaining('read-only') }] },
      });
      expect(res.body.message).toContain('imagenet');
      expect(await state()).toEqual(before);
      expect(before.mounts).toEqual([]);
    });

    it('keeps the dataset visibility rule first: an invisible dataset is 404 even with readonly: false', async () => {
      const before = await state();
      const res = await mount({ dataset_id: hidden, mount_path: '/data/bobs', readonly: false });
      expect(res.status).toBe(404);
      expect(res.body.data.fields).toEqual([{ field: 'dataset_id', message: 'unknown dataset' }]);
      expect(await state()).toEqual(before);
    });

    it.each([
      ['text', 'false'],
      ['null', null],
      ['a number', 0],
    ])('refuses readonly as %s (400 naming readonly)', async (_label, value) => {
      const before = await state();
      const res = await mount({ dataset_id: writable, mount_path: '/data/scratch', readonly: value });
      expect(res.status).toBe(400);
      expect(res.body.data.fields.map((f: { field: string }) => f.field)).toEqual(['readonly']);
      expect(await state()).toEqual(before);
    });

    it('mounts a read-only dataset read-only when readonly is omitted or true', async () => {
      for (const body of [{ dataset_id: readOnly, mount_path: '/data/imagenet' }, { dataset_id: readOnly, mount_path: '/data/imagenet', readonly: true }]) {
        const generation = (await state()).row.spec_generation;
        const res = await mount(body);
        expect(res).toMatchObject({ status: 200, body: { code: 0, message: '数据集挂载成功' } });
        expect(await mountRows()).toEqual([expect.objectContaining({ dataset_id: readOnly, mount_path: '/data/imagenet', readonly: true })]);
        const after = await state();
        expect(after.row.spec_generation).toBe(generation + 1);
        expect(after.events.at(-1)).toMatchObject({ kind: 'dataset_mounted', message: expect.stringContaining('read-only') });
        const spec = await buildAgentSpec(api.db, envId);
        expect(spec.mounts).toEqual([{ datasetId: String(readOnly), hostPath: '/srv/imagenet', containerPath: '/data/imagenet', readonly: true }]);
        await unmountAll();
      }
    });

    it('mounts a writable dataset read-write on request, and read-only by default', async () => {
      const rw = await mount({ dataset_id: writable, mount_path: '/data/scratch', readonly: false });
      expect(rw.status).toBe(200);
      expect(await mountRows()).toEqual([expect.objectContaining({ dataset_id: writable, readonly: false })]);
      const listed = await api.request('GET', `/api/v1/environments/${envId}/datasets`, { token: alice.token });
      expect(listed.body.data.items).toEqual([expect.objectContaining({ dataset_id: writable, mount_path: '/data/scratch', readonly: false })]);
      expect((await buildAgentSpec(api.db, envId)).mounts).toEqual([{ datasetId: String(writable), hostPath: '/srv/scratch', containerPath: '/data/scratch', readonly: false }]);
      await unmountAll();

      expect((await mount({ dataset_id: writable, mount_path: '/data/scratch' })).status).toBe(200);
      expect(await mountRows()).toEqual([expect.objectContaining({ dataset_id: writable, readonly: true })]);
      expect((await buildAgentSpec(api.db, envId)).mounts[0]!.readonly).toBe(true);
      await unmountAll();
    });

    it('builds the agent spec read-only for any mount of a non-writable dataset, whatever the mount row says', async () => {
      // A row as one written before migration 0004 (or by an older controller) could be.
      await api.db.insertInto('environment_mounts').values({ env_id: envId, dataset_id: readOnly, mount_path: '/data/imagenet', readonly: false }).execute();
      await api.db.insertInto('environment_mounts').values({ env_id: envId, dataset_id: writable, mount_path: '/data/scratch', readonly: false }).execute();
      const spec = await buildAgentSpec(api.db, envId);
      expect(spec.mounts).toEqual([
        { datasetId: String(readOnly), hostPath: '/srv/imagenet', containerPath: '/data/imagenet', readonly: true },
        { datasetId: String(writable), hostPath: '/srv/scratch', containerPath: '/data/scratch', readonly: false },
      ]);
      // The API shows what will be mounted, not the stale row.
      const listed = await api.request('GET', `/api/v1/environments/${envId}/datasets`, { token: alice.token });
      expect(listed.body.data.items.map((m: { dataset_id: number; readonly: boolean }) => [m.dataset_id, m.readonly])).toEqual([
        [readOnly, true],
        [writable, false],
      ]);
      await unmountAll();
    });

    it('remounts read-write mounts read-only now when an admin turns writable off (a generation bump and an event)', async () => {
      expect((await mount({ dataset_id: writable, mount_path: '/data/scratch', readonly: false })).status).toBe(200);
      const before = await state();
      let woken = 0;
      api.services.wake.listen(() => woken++);
      const patched = await api.request('PATCH', `/api/v1/admin/datasets/${writable}`, { token: api.adminToken, body: { writable: false } });
      expect(patched.status).toBe(200);
      expect(patched.body.data.writable).toBe(false);
      expect(woken).toBe(1);
      const after = await state();
      expect(after.row.spec_generation).toBe(before.row.spec_generation + 1);
      expect(after.events.slice(before.events.length)).toEqual([
        { id: expect.anything(), kind: 'dataset_readonly', message: `Dataset scratch (${writable}) is read-only now: remounting it read-only` },
      ]);
      expect(after.mounts).toEqual(before.mounts);
      expect((await buildAgentSpec(api.db, envId)).mounts).toEqual([{ datasetId: String(writable), hostPath: '/srv/scratch', containerPath: '/data/scratch', readonly: true }]);
      expect(after.listed.data.items).toEqual([expect.objectContaining({ dataset_id: writable, readonly: true })]);
      // Read-only already: sending writable: false again moves nothing.
      expect((await api.request('PATCH', `/api/v1/admin/datasets/${writable}`, { token: api.adminToken, body: { writable: false } })).status).toBe(200);
      expect((await state()).row.spec_generation).toBe(after.row.spec_generation);
      expect(woken).toBe(1);
      // A new read-write request is refused now.
      await unmountAll();
      const refused = await mount({ dataset_id: writable, mount_path: '/data/scratch', readonly: false });
      expect(refused.status).toBe(400);
      expect(refused.body.data.fields[0].field).toBe('readonly');
      expect(await mountRows()).toEqual([]);

      // Turned on again, the mount asked for read-write is read-write again at the next apply.
      await api.db.insertInto('environment_mounts').values({ env_id: envId, dataset_id: writable, mount_path: '/data/scratch', readonly: false }).execute();
      await api.request('PATCH', `/api/v1/admin/datasets/${writable}`, { token: api.adminToken, body: { writable: true } });
      expect((await buildAgentSpec(api.db, envId)).mounts[0]!.readonly).toBe(false);
      await unmountAll();
    });

    it('documents the rule in /api/v1/openapi.json', async () => {
      const doc = (await api.request('GET', '/api/v1/openapi.json')).body;
      const schemas = doc.components.schemas;
      expect(schemas.MountDataset.properties.readonly).toMatchObject({ type: 'boolean', default: true, description: expect.stringContaining('writable') });
      expect(schemas.AdminDataset.properties.writable).toMatchObject({ type: 'boolean' });
      expect(schemas.AdminDataset.required).toContain('writable');
      expect(schemas.Dataset.properties.writable).toMatchObject({ type: 'boolean' });
      const patch = doc.paths['/api/v1/admin/datasets/{dataset_id}'].patch;
      expect(Object.keys(patch.requestBody.content['application/json'].schema.properties)).toEqual(['name', 'description', 'writable']);
      const create = doc.paths['/api/v1/admin/datasets'].post;
      expect(create.requestBody.content['application/json'].schema.properties.writable).toMatchObject({ type: 'boolean', default: false });
    });
  });

  describe.skipIf(target.skipReason !== '')('turning writable off', () => {
    let api: TestApi;
    let alice: TestUser;

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      alice = await api.createUser('alice');
    });
    afterAll(async () => api?.close());

    it('moves on exactly the environments that mount it read-write and are not deleted, in one transaction with their events', async () => {
      const image = await api.db.selectFrom('images').select('id').executeTakeFirstOrThrow();
      const seed = (options: { desiredState?: 'running' | 'stopped' | 'deleted' } = {}) => seedEnvironment(api.db, { ownerId: alice.id, imageId: image.id, ...options });
      const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
      const shared = (await admin('POST', '/api/v1/admin/datasets', { name: 'shared', host_path: '/srv/shared', writable: true })).body.data.id as number;
      const other = (await admin('POST', '/api/v1/admin/datasets', { name: 'other', host_path: '/srv/other', writable: true })).body.data.id as number;
      const envs = {
        running: await seed(),
        stopped: await seed({ desiredState: 'stopped' }),
        readOnlyMount: await seed(),
        otherDataset: await seed(),
        noMount: await seed(),
        deleted: await seed({ desiredState: 'deleted' }),
      };
      const mountRow = (env: string, dataset: number, readonly: boolean) => ({ env_id: env, dataset_id: dataset, mount_path: '/data/x', readonly });
      await api.db
        .insertInto('environment_mounts')
        .values([
          mountRow(envs.running, shared, false),
          mountRow(envs.stopped, shared, false),
          mountRow(envs.readOnlyMount, shared, true),
          mountRow(envs.otherDataset, other, false),
          mountRow(envs.deleted, shared, false),
        ])
        .execute();
      const rows = async () =>
        Object.fromEntries((await api.db.selectFrom('environments').select(['id', 'spec_generation']).execute()).map((r) => [r.id, r.spec_generation]));
      const eventsOf = async (id: string) => (await api.db.selectFrom('environment_events').select(['kind', 'message']).where('env_id', '=', id).execute());
      const before = await rows();
      let woken = 0;
      api.services.wake.listen(() => woken++);

      const res = await admin('PATCH', `/api/v1/admin/datasets/${shared}`, { writable: false });
      expect(res.status).toBe(200);
      expect(woken).toBe(1);
      const after = await rows();
      const moved = Object.keys(after).filter((id) => after[id] !== before[id]).sort();
      expect(moved).toEqual([envs.running, envs.stopped].sort());
      for (const id of moved) {
        expect(after[id]).toBe(before[id]! + 1);
        expect(await eventsOf(id)).toEqual([{ kind: 'dataset_readonly', message: `Dataset shared (${shared}) is read-only now: remounting it read-only` }]);
        expect((await buildAgentSpec(api.db, id)).mounts).toEqual([{ datasetId: String(shared), hostPath: '/srv/shared', containerPath: '/data/x', readonly: true }]);
      }
      for (const id of [envs.readOnlyMount, envs.otherDataset, envs.noMount, envs.deleted]) expect(await eventsOf(id)).toEqual([]);
      expect((await buildAgentSpec(api.db, envs.otherDataset)).mounts[0]!.readonly).toBe(false);

      // A PATCH that does not turn it off (a rename, writable on again) moves nothing and wakes nobody.
      expect((await admin('PATCH', `/api/v1/admin/datasets/${shared}`, { name: 'shared2' })).status).toBe(200);
      expect((await admin('PATCH', `/api/v1/admin/datasets/${shared}`, { writable: true })).status).toBe(200);
      expect(await rows()).toEqual(after);
      expect(woken).toBe(1);
    });
  });

  describe.skipIf(target.skipReason !== '')('migration 0004', () => {
    it('makes datasets that existed before it read-only, and their read-write mounts read-only in the spec', async () => {
      const t = await createTestDatabase(target);
      try {
        const down = await migrator(t.db).migrateTo('0003_host_trust');
        expect(down.error).toBeUndefined();
        expect(down.results?.filter((r) => r.status !== 'Success')).toEqual([]);
        expect(down.results?.map((r) => r.migrationName).at(-1)).toBe('0004_dataset_writable');
        // Rows as a controller before 0004 wrote them: a dataset with no writable column, a read-write mount.
        const user = await t.db.insertInto('users').values({ name: 'alice' }).returning('id').executeTakeFirstOrThrow();
        const image = await t.db.insertInto('images').values({ name: 'img', docker_ref: 'img', jupyter_port: null }).returning('id').executeTakeFirstOrThrow();
        const ds = await t.db.insertInto('datasets').values({ name: 'old', host_path: '/srv/old' }).returning('id').executeTakeFirstOrThrow();
        await t.db
          .insertInto('environments')
          .values({
            id: 'env-old0000001',
            owner_id: user.id,
            workspace_id: null,
            name: 'old',
            image_id: image.id,
            image: 'img',
            cpu: 1,
            memory_bytes: 2 ** 30,
            storage_bytes: 2 ** 30,
            gpu_model: null,
            desired_state: 'running',
            status: 'running',
            host_id: null,
            ssh_port: null,
            jupyter_port: null,
            jupyter_token: 't',
            idempotency_key: null,
          } as NewEnvironment) // the columns of that version (no image copy yet)
          .execute();
        await t.db.insertInto('environment_mounts').values({ env_id: 'env-old0000001', dataset_id: ds.id, mount_path: '/data/old', readonly: false }).execute();

        expect((await migrateToLatest(t.db))[0]).toBe('0004_dataset_writable');
        expect(await t.db.selectFrom('datasets').select(['id', 'writable']).execute()).toEqual([{ id: ds.id, writable: false }]);
        expect((await buildAgentSpec(t.db, 'env-old0000001')).mounts).toEqual([{ datasetId: String(ds.id), hostPath: '/srv/old', containerPath: '/data/old', readonly: true }]);
      } finally {
        await t.close();
      }
    });
  });
});
