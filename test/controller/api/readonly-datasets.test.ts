import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migrator, type Migration, type MigrationProvider } from 'kysely';
import { DB_TARGETS, createTestDatabase } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';
import { buildAgentSpec } from '../../../controller/environments/spec.js';
import { migrateToLatest } from '../../../controller/db/migrate.js';
import * as m0001 from '../../../controller/db/migrations/0001_initial.js';
import * as m0002 from '../../../controller/db/migrations/0002_settings.js';
import * as m0003 from '../../../controller/db/migrations/0003_host_trust.js';
import * as m0004 from '../../../controller/db/migrations/0004_dataset_writable.js';

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

    it('makes existing mounts read-only at the next apply when an admin turns writable off (no generation bump)', async () => {
      expect((await mount({ dataset_id: writable, mount_path: '/data/scratch', readonly: false })).status).toBe(200);
      const before = await state();
      const patched = await api.request('PATCH', `/api/v1/admin/datasets/${writable}`, { token: api.adminToken, body: { writable: false } });
      expect(patched.status).toBe(200);
      expect(patched.body.data.writable).toBe(false);
      const after = await state();
      expect(after.row.spec_generation).toBe(before.row.spec_generation);
      expect(after.mounts).toEqual(before.mounts);
      expect((await buildAgentSpec(api.db, envId)).mounts).toEqual([{ datasetId: String(writable), hostPath: '/srv/scratch', containerPath: '/data/scratch', readonly: true }]);
      expect(after.listed.data.items).toEqual([expect.objectContaining({ dataset_id: writable, readonly: true })]);
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

  describe.skipIf(target.skipReason !== '')('migration 0004', () => {
    it('makes datasets that existed before it read-only, and their read-write mounts read-only in the spec', async () => {
      const t = await createTestDatabase(target);
      try {
        const migrator = new Migrator({ db: t.db, provider: new AllMigrations() });
        const down = await migrator.migrateDown();
        expect(down.error).toBeUndefined();
        expect(down.results?.map((r) => [r.migrationName, r.status])).toEqual([['0004_dataset_writable', 'Success']]);
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
          })
          .execute();
        await t.db.insertInto('environment_mounts').values({ env_id: 'env-old0000001', dataset_id: ds.id, mount_path: '/data/old', readonly: false }).execute();

        expect(await migrateToLatest(t.db)).toEqual(['0004_dataset_writable']);
        expect(await t.db.selectFrom('datasets').select(['id', 'writable']).execute()).toEqual([{ id: ds.id, writable: false }]);
        expect((await buildAgentSpec(t.db, 'env-old0000001')).mounts).toEqual([{ datasetId: String(ds.id), hostPath: '/srv/old', containerPath: '/data/old', readonly: true }]);
      } finally {
        await t.close();
      }
    });
  });
});

class AllMigrations implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return { '0001_initial': m0001, '0002_settings': m0002, '0003_host_trust': m0003, '0004_dataset_writable': m0004 };
  }
}
