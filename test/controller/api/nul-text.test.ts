import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBaseApp } from '../../../controller/api/app.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// PostgreSQL text cannot hold U+0000: a NUL that reached a query used to fail with SQLSTATE
// 22021 and answer 500. Every text field is checked at validation (400 naming the field), and
// anything that still reaches the database (a path parameter, a query) is a 400 too.

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCo';
const NUL = '\u0000';

describe.each(DB_TARGETS)('NUL and control characters in text on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('routes', () => {
    let api: TestApi;
    let alice: TestUser;
    let imageId: number;
    let datasetId: number;
    let envId: string;

    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });

    /** Row counts of every table a refused request could have written to. */
    async function counts(): Promise<Record<string, number>> {
      const out: Record<string, number> = {};
      for (const table of ['environments', 'images', 'datasets', 'workspaces', 'users', 'api_tokens', 'ssh_keys', 'join_tokens', 'environment_events', 'environment_mounts'] as const) {
        const row = await api.db.selectFrom(table).select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow();
        out[table] = Number(row.n);
      }
      return out;
    }

    beforeAll(async () => {
      api = await createTestApi(target);
      alice = await api.createUser('alice');
      await seedHost(api.db, 'host-nul', { gpus: 2 });
      await seedImage(api.db);
      imageId = (await api.db.selectFrom('images').select('id').executeTakeFirstOrThrow()).id;
      const ds = await admin('POST', '/api/v1/admin/datasets', { name: 'imagenet', host_path: '/mnt/datasets/imagenet' });
      expect(ds.status).toBe(201);
      datasetId = ds.body.data.id;
      const env = await api.request('POST', '/api/v1/environments', { token: alice.token, body: { name: 'ok', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30 } });
      expect(env.status).toBe(201);
      envId = env.body.data.env_id;
    });
    afterAll(async () => api?.close());

    const envBody = { name: 'train', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30, queue: true };
    const cases: [string, string, string, () => unknown, string][] = [
      ['environment name', 'POST', '/api/v1/environments', () => ({ ...envBody, name: `tr${NUL}ain` }), 'name'],
      ['environment description', 'POST', '/api/v1/environments', () => ({ ...envBody, description: `a${NUL}b` }), 'description'],
      ['environment image', 'POST', '/api/v1/environments', () => ({ ...envBody, image: `ubuntu${NUL}` }), 'image'],
      ['environment gpu_model', 'POST', '/api/v1/environments', () => ({ ...envBody, gpu: 1, gpu_model: `H1${NUL}00` }), 'gpu_model'],
      ['mount path', 'POST', '/api/v1/environments/{env}/datasets', () => ({ dataset_id: datasetId, mount_path: `/data/x${NUL}` }), 'mount_path'],
      ['image name', 'POST', '/api/v1/admin/images', () => ({ name: `img${NUL}`, docker_ref: 'x' }), 'name'],
      ['image docker_ref', 'POST', '/api/v1/admin/images', () => ({ name: 'img', docker_ref: `x${NUL}` }), 'docker_ref'],
      ['image description', 'POST', '/api/v1/admin/images', () => ({ name: 'img', docker_ref: 'x', description: `d${NUL}` }), 'description'],
      ['image data_path', 'POST', '/api/v1/admin/images', () => ({ name: 'img', docker_ref: 'x', data_path: `/root/w${NUL}` }), 'data_path'],
      ['image description (update)', 'PATCH', '/api/v1/admin/images/{image}', () => ({ description: `d${NUL}` }), 'description'],
      ['image docker_ref (update)', 'PATCH', '/api/v1/admin/images/{image}', () => ({ docker_ref: `x${NUL}` }), 'docker_ref'],
      ['dataset name', 'POST', '/api/v1/admin/datasets', () => ({ name: `ds${NUL}`, host_path: '/mnt/datasets/other' }), 'name'],
      ['dataset description', 'POST', '/api/v1/admin/datasets', () => ({ name: 'ds', host_path: '/mnt/datasets/other', description: `d${NUL}` }), 'description'],
      ['dataset host_path', 'POST', '/api/v1/admin/datasets', () => ({ name: 'ds', host_path: `/mnt/datasets/o${NUL}ther` }), 'host_path'],
      ['dataset name (update)', 'PATCH', '/api/v1/admin/datasets/{dataset}', () => ({ name: `ds${NUL}` }), 'name'],
      ['dataset description (update)', 'PATCH', '/api/v1/admin/datasets/{dataset}', () => ({ description: `d${NUL}` }), 'description'],
      ['workspace name', 'POST', '/api/v1/admin/workspaces', () => ({ name: `team${NUL}`, owner_id: alice.id }), 'name'],
      ['user name', 'POST', '/api/v1/admin/users', () => ({ name: `bob${NUL}` }), 'name'],
      ['token name', 'POST', '/api/v1/admin/users/{alice}/tokens', () => ({ name: `laptop${NUL}` }), 'name'],
      ['join token description', 'POST', '/api/v1/admin/join-tokens', () => ({ description: `rack${NUL}4` }), 'description'],
      ['ssh key name', 'POST', '/api/v1/ssh-keys', () => ({ name: `k${NUL}`, public_key: ED25519 }), 'name'],
      ['ssh key comment', 'POST', '/api/v1/ssh-keys', () => ({ public_key: `${ED25519} alice${NUL}@laptop` }), 'public_key'],
      ['ssh key comment (named key)', 'POST', '/api/v1/ssh-keys', () => ({ name: 'k', public_key: `${ED25519} a${NUL}` }), 'public_key'],
    ];

    function resolve(path: string): string {
      return path
        .replace('{env}', envId)
        .replace('{image}', String(imageId))
        .replace('{dataset}', String(datasetId))
        .replace('{alice}', String(alice.id));
    }

    it.each(cases)('refuses a NUL in the %s with 400 40001 naming the field, and writes nothing', async (_label, method, path, body, field) => {
      const before = await counts();
      const token = path.includes('/admin/') ? api.adminToken : alice.token;
      const res = await api.request(method, resolve(path), { token, body: body() });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.body.code).toBe(40001);
      // Each issue names the field; a name with a character pattern may add that pattern's own issue.
      const fields: { field: string; message: string }[] = res.body.data.fields;
      expect(fields.map((f) => f.field)).toEqual(fields.map(() => field));
      // (names limited to letters, digits and a few signs say so instead)
      expect(fields.some((f) => /control character|not allowed \(NUL|hold only letters|letters, digits/.test(f.message))).toBe(true);
      expect(await counts()).toEqual(before);
    });

    it.each([
      ['environment name', { ...envBody, name: 'tr\u0007ain' }, 'name'],
      ['environment description', { ...envBody, description: 'bell\u001b[31m' }, 'description'],
    ])('refuses other control characters in the %s', async (_label, body, field) => {
      const res = await api.request('POST', '/api/v1/environments', { token: alice.token, body });
      expect(res.status).toBe(400);
      expect(res.body.data.fields).toEqual([{ field, message: expect.stringMatching(/control character/) }]);
    });

    it('keeps newlines and tabs in descriptions', async () => {
      const res = await admin('PATCH', `/api/v1/admin/datasets/${datasetId}`, { description: 'line one\n\tline two' });
      expect(res.status).toBe(200);
      expect(res.body.data.description).toBe('line one\n\tline two');
    });

    it.each([
      ['GET', `/api/v1/environments/env-${encodeURIComponent(NUL)}`],
      ['GET', `/api/v1/admin/hosts/host-${encodeURIComponent(NUL)}`],
      ['GET', `/api/v1/admin/hosts?gpu_model=H1${encodeURIComponent(NUL)}00`],
    ])('answers %s %s (a NUL in a path or query parameter) with a 400 envelope, not a 500', async (method, path) => {
      const res = await api.request(method, path, { token: api.adminToken });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe(40001);
      expect(res.body.message).toMatch(/control character/);
    });

    it('answers 400, not 500, when a NUL still reaches a query (the safety net behind the schemas)', async () => {
      const app = createBaseApp(pino({ level: 'silent' }));
      app.get('/probe', async (c) => {
        await api.db.selectFrom('users').select('id').where('name', '=', `a${NUL}b`).execute();
        return c.text('unreachable');
      });
      const res = await app.request('/probe');
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 40001, message: expect.stringMatching(/NUL/), data: null });
    });
  });
});
