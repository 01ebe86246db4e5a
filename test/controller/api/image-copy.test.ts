import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS, createTestDatabase } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost } from '../../helpers/hosts.js';
import { buildAgentSpec } from '../../../controller/environments/spec.js';
import { migrateToLatest, migrator } from '../../../controller/db/migrate.js';
import type { NewEnvironment } from '../../../controller/db/schema.js';

// Issue 11, item 11: an environment keeps the image it was created with. Editing a catalog image
// (Docker reference, sshd and Jupyter ports, data path) changes only environments created after the
// edit: the agent spec, the Jupyter port a start reserves and the data path mounts must avoid all
// come from the environment's own copy. Migration 0008 copies the image of existing environments.

const ORIGINAL = { name: 'pytorch:2.0', docker_ref: 'registry.example.com/ml/pytorch:2.0', ssh_port: 22, jupyter_port: 8888, data_path: '/root/workspace' };
const EDITED = { docker_ref: 'registry.example.com/ml/pytorch:2.1', ssh_port: 2222, jupyter_port: null, data_path: '/workspace' };
const body = { name: 'train', image: ORIGINAL.name, cpu: 1, memory: 2 ** 30, gpu: 0 };

describe.each(DB_TARGETS)('image copied onto environments on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('catalog edits', () => {
    let api: TestApi;
    let alice: TestUser;
    let before: string;
    let after: string;
    let imageId: number;

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedHost(api.db, 'host-a', { gpus: 0 });
      alice = await api.createUser('alice');
      const image = await api.request('POST', '/api/v1/admin/images', { token: api.adminToken, body: ORIGINAL });
      expect(image.status).toBe(201);
      imageId = image.body.data.id;
      const created = await api.request('POST', '/api/v1/environments', { token: alice.token, body });
      expect(created.status).toBe(201);
      before = created.body.data.env_id;
      const edit = await api.request('PATCH', `/api/v1/admin/images/${imageId}`, { token: api.adminToken, body: EDITED });
      expect(edit.status).toBe(200);
      const later = await api.request('POST', '/api/v1/environments', { token: alice.token, body: { ...body, name: 'later' } });
      expect(later.status).toBe(201);
      after = later.body.data.env_id;
    });
    afterAll(async () => api?.close());

    it('builds the agent spec of an existing environment from what it was created with', async () => {
      const spec = await buildAgentSpec(api.db, before);
      expect(spec.image).toBe(ORIGINAL.docker_ref);
      expect(spec.dataPath).toBe(ORIGINAL.data_path);
      expect(spec.ports.map((p) => [p.name, p.containerPort])).toEqual([
        ['ssh', 22],
        ['jupyter', 8888],
      ]);
      const detail = (await api.request('GET', `/api/v1/environments/${before}`, { token: alice.token })).body.data;
      expect(detail.image).toBe(ORIGINAL.name);
      expect(detail.access_info.jupyter).not.toBeNull();
    });

    it('gives an environment created after the edit the edited image', async () => {
      const spec = await buildAgentSpec(api.db, after);
      expect(spec.image).toBe(EDITED.docker_ref);
      expect(spec.dataPath).toBe(EDITED.data_path);
      expect(spec.ports.map((p) => [p.name, p.containerPort])).toEqual([['ssh', 2222]]);
      expect((await api.request('GET', `/api/v1/environments/${after}`, { token: alice.token })).body.data.jupyter_port).toBeNull();
    });

    it('checks mounts against the environment’s own data path', async () => {
      const ds = await api.request('POST', '/api/v1/admin/datasets', { token: api.adminToken, body: { name: 'imagenet', host_path: '/srv/imagenet' } });
      expect(ds.status).toBe(201);
      const mount = (envId: string, mountPath: string) =>
        api.request('POST', `/api/v1/environments/${envId}/datasets`, { token: alice.token, body: { dataset_id: ds.body.data.id, mount_path: mountPath } });
      const underOld = await mount(before, '/root/workspace/imagenet');
      expect(underOld.status).toBe(400);
      expect(underOld.body.message).toContain('/root/workspace');
      // /workspace is the edited image's data path, not this environment's: mounting there is fine.
      expect((await mount(before, '/workspace/imagenet')).status).toBe(200);
      expect((await mount(after, '/workspace/imagenet')).status).toBe(400);
    });

    it('keeps the Jupyter port on a start after the image dropped Jupyter', async () => {
      await api.request('POST', `/api/v1/environments/${before}/stop`, { token: alice.token });
      // What the reconciler records once the agent stopped it (no reconciler runs in this test).
      await api.db.updateTable('environments').set({ status: 'stopped', reserved_cpu: 0, reserved_memory_bytes: 0 }).where('id', '=', before).execute();
      const start = await api.request('POST', `/api/v1/environments/${before}/start`, { token: alice.token });
      expect(start.status).toBe(200);
      const detail = (await api.request('GET', `/api/v1/environments/${before}`, { token: alice.token })).body.data;
      expect(detail.jupyter_port).not.toBeNull();
      expect((await buildAgentSpec(api.db, before)).ports.map((p) => p.name)).toEqual(['ssh', 'jupyter']);
    });
  });

  describe.skipIf(target.skipReason !== '')('migration 0008', () => {
    it('copies the current image of every existing environment', async () => {
      const t = await createTestDatabase(target);
      try {
        const down = await migrator(t.db).migrateTo('0006_isolation_recreate');
        expect(down.error).toBeUndefined();
        const user = await t.db.insertInto('users').values({ name: 'alice' }).returning('id').executeTakeFirstOrThrow();
        const image = await t.db.insertInto('images').values({ ...ORIGINAL, jupyter_port: null }).returning('id').executeTakeFirstOrThrow();
        for (const [id, desired] of [['env-old0000001', 'running'], ['env-old0000002', 'deleted']] as const) {
          await t.db
            .insertInto('environments')
            .values({
              id,
              owner_id: user.id,
              workspace_id: null,
              name: id,
              image_id: image.id,
              image: ORIGINAL.name,
              cpu: 1,
              memory_bytes: 2 ** 30,
              storage_bytes: 2 ** 30,
              gpu_model: null,
              desired_state: desired,
              status: desired === 'deleted' ? 'deleting' : 'running',
              host_id: null,
              ssh_port: null,
              jupyter_port: null,
              jupyter_token: 't',
              idempotency_key: null,
            } as NewEnvironment) // the columns of that version (no image copy yet)
            .execute();
        }
        expect(await migrateToLatest(t.db)).toContain('0008_env_image_copy_and_backoff');
        const rows = await t.db.selectFrom('environments').select(['id', 'image_ref', 'image_ssh_port', 'image_jupyter_port', 'image_data_path', 'attempt_count', 'next_attempt_at']).orderBy('id').execute();
        const copy = { image_ref: ORIGINAL.docker_ref, image_ssh_port: 22, image_jupyter_port: null, image_data_path: ORIGINAL.data_path, attempt_count: 0, next_attempt_at: null };
        expect(rows).toEqual([
          { id: 'env-old0000001', ...copy },
          { id: 'env-old0000002', ...copy },
        ]);
        // Later edits of the image leave them alone.
        await t.db.updateTable('images').set({ docker_ref: 'other:1', data_path: '/elsewhere' }).where('id', '=', image.id).execute();
        const spec = await buildAgentSpec(t.db, 'env-old0000001');
        expect([spec.image, spec.dataPath]).toEqual([ORIGINAL.docker_ref, ORIGINAL.data_path]);
      } finally {
        await t.close();
      }
    });
  });
});
