import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import createClient, { type Middleware } from 'openapi-fetch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { listenHttp, type HttpListener } from '../../controller/http-server.js';
import type { paths } from '../../gen/openapi/api.js';
import { createTestApi, seedEnvironment, type TestApi } from '../helpers/api.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { seedHost } from '../helpers/hosts.js';

// The OpenAPI document as a generator's user meets it (issue 14, item 0). The real API listens on a
// loopback port; a client generated from gen/openapi/api.ts (openapi-fetch, typed for
// application/json as the CLI's) calls every operation of the document, sends every field the
// server accepts and reads the answers' fields without a cast: that this file typechecks is half
// the proof, the answers the other half. Then the document the server serves must be the
// committed one and pass `redocly lint` (recommended rules) with no error and no warning.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMMITTED = path.join(ROOT, 'gen', 'openapi', 'openapi.json');
const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCo alice@laptop';
const GIB = 2 ** 30;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

// Only the parts of the document these tests read.
const Operation = z.object({ operationId: z.string(), parameters: z.array(z.unknown()).optional(), requestBody: z.unknown().optional(), responses: z.record(z.string(), z.unknown()) });
const PathItem = z.object(Object.fromEntries(METHODS.map((m) => [m, Operation.optional()])));
const Document = z.object({ paths: z.record(z.string(), PathItem) });
const RedoclyReport = z.object({ totals: z.object({ errors: z.number(), warnings: z.number() }), problems: z.array(z.object({ ruleId: z.string(), message: z.string() })) });

/** Every operation of a document: operationId, `METHOD path` and the operation. */
function operationsOf(document: z.infer<typeof Document>) {
  return Object.entries(document.paths).flatMap(([p, item]) =>
    METHODS.flatMap((m) => {
      const op = item[m];
      return op ? [{ id: op.operationId, key: `${m.toUpperCase()} ${p}`, op }] : [];
    }),
  );
}

const committed = Document.parse(JSON.parse(readFileSync(COMMITTED, 'utf8')));
const operationIds = new Map(operationsOf(committed).map((o) => [o.key, o.id]));

/** The success body of an answer with `status`; fails with the error envelope otherwise. */
function ok<T>(result: { data?: T; error?: unknown; response: Response }, status = 200): T {
  expect(result.response.status, JSON.stringify(result.error)).toBe(status);
  if (result.data === undefined) throw new Error(`no body in the ${status} answer`);
  return result.data;
}

/** The error envelope of an answer with `status`. */
function failed<E>(result: { data?: unknown; error?: E; response: Response }, status: number): E {
  expect(result.response.status, JSON.stringify(result.data)).toBe(status);
  if (result.error === undefined) throw new Error(`no error envelope in the ${status} answer`);
  return result.error;
}

const pglite = DB_TARGETS.find((t) => t.name === 'pglite');

describe.skipIf(!pglite)('the OpenAPI document and a client generated from it', () => {
  let api: TestApi;
  let http: HttpListener;
  /** operationIds of the requests that got an answer, from the clients' middleware. */
  const called = new Set<string>();
  const record: Middleware = {
    onResponse({ request, schemaPath }) {
      const id = operationIds.get(`${request.method} ${schemaPath}`);
      if (id) called.add(id);
    },
  };
  const client = (token: string) => {
    const c = createClient<paths, 'application/json'>({ baseUrl: http.url, headers: { authorization: `Bearer ${token}`, 'accept-language': 'en' } });
    c.use(record);
    return c;
  };
  let admin: ReturnType<typeof client>;
  let user: ReturnType<typeof client>;
  let userId: number;
  let workspaceId: number;
  let datasetId: number;

  beforeAll(async () => {
    if (!pglite) return;
    api = await createTestApi(pglite);
    http = await listenHttp(api.app.fetch, '127.0.0.1', 0, undefined);
    admin = client(api.adminToken);
    await seedHost(api.db, 'host-contract', { gpus: 4, model: 'NVIDIA H100 80GB HBM3' });
  });
  afterAll(async () => {
    await http?.close();
    await api?.close();
  });

  it('admin: users and their tokens (the user client signs in with a token made here)', async () => {
    const created = ok(await admin.POST('/api/v1/admin/users', { body: { name: 'carol', email: 'carol@example.com', role: 'user' } }), 201).data;
    expect(created).toMatchObject({ name: 'carol', email: 'carol@example.com', role: 'user', disabled_at: null });
    expect(Date.parse(created.created_at)).not.toBeNaN();
    userId = created.id;
    const page = ok(await admin.GET('/api/v1/admin/users', { params: { query: { page: 1, page_size: 50 } } })).data;
    expect(page.items.map((u) => u.name)).toContain('carol');
    expect(page.pagination.page_size).toBe(50);
    expect(ok(await admin.GET('/api/v1/admin/users/{user_id}', { params: { path: { user_id: userId } } })).data.role).toBe('user');

    const token = ok(await admin.POST('/api/v1/admin/users/{user_id}/tokens', { params: { path: { user_id: userId } }, body: { name: 'laptop', expires_in_days: 30 } }), 201).data;
    expect(token.token.startsWith(token.prefix)).toBe(true);
    expect(Date.parse(token.expires_at ?? '')).toBeGreaterThan(Date.now());
    user = client(token.token);
    const spare = ok(await admin.POST('/api/v1/admin/users/{user_id}/tokens', { params: { path: { user_id: userId } }, body: { name: 'spare' } }), 201).data;
    const tokens = ok(await admin.GET('/api/v1/admin/users/{user_id}/tokens', { params: { path: { user_id: userId }, query: { page: 1, page_size: 10 } } })).data;
    expect(tokens.items.map((t) => t.name).sort()).toEqual(['laptop', 'spare']);
    const revoked = await admin.DELETE('/api/v1/admin/users/{user_id}/tokens/{token_id}', { params: { path: { user_id: userId, token_id: spare.id } } });
    expect(revoked.response.status).toBe(204);

    const dave = ok(await admin.POST('/api/v1/admin/users', { body: { name: 'dave', email: null } }), 201).data;
    expect(dave.role).toBe('user');
    expect((await admin.DELETE('/api/v1/admin/users/{user_id}', { params: { path: { user_id: dave.id } } })).response.status).toBe(204);
    const enabled = await admin.POST('/api/v1/admin/users/{user_id}/enable', { params: { path: { user_id: dave.id } } });
    expect(ok(enabled).data.disabled_at).toBeNull();
  });

  it('admin: workspaces and their members', async () => {
    const ws = ok(await admin.POST('/api/v1/admin/workspaces', { body: { name: 'vision', owner_id: userId } }), 201).data;
    workspaceId = ws.id;
    expect(ws.members.map((m) => m.role)).toEqual(['owner']);
    const other = ok(await admin.POST('/api/v1/admin/users', { body: { name: 'erin' } }), 201).data;
    const added = ok(await admin.POST('/api/v1/admin/workspaces/{workspace_id}/members', { params: { path: { workspace_id: workspaceId } }, body: { user_id: other.id } }), 201).data;
    expect(added).toMatchObject({ user_id: other.id, name: 'erin', role: 'member' });
    const detail = ok(await admin.GET('/api/v1/admin/workspaces/{workspace_id}', { params: { path: { workspace_id: workspaceId } } })).data;
    expect(detail.members.map((m) => m.name).sort()).toEqual(['carol', 'erin']);
    const removed = await admin.DELETE('/api/v1/admin/workspaces/{workspace_id}/members/{user_id}', { params: { path: { workspace_id: workspaceId, user_id: other.id } } });
    expect(removed.response.status).toBe(204);
    const list = ok(await admin.GET('/api/v1/admin/workspaces', { params: { query: { page: 1, page_size: 5 } } })).data;
    expect(list.items.find((w) => w.id === workspaceId)?.member_count).toBe(1);
    expect(ok(await admin.GET('/api/v1/admin/workspaces/{workspace_id}', { params: { path: { workspace_id: workspaceId } } })).data.owner_id).toBe(userId);
    const gone = ok(await admin.POST('/api/v1/admin/workspaces', { body: { name: 'scratch', owner_id: other.id } }), 201).data;
    expect((await admin.DELETE('/api/v1/admin/workspaces/{workspace_id}', { params: { path: { workspace_id: gone.id } } })).response.status).toBe(204);
  });

  it('admin: the image catalog, and the catalog users see', async () => {
    const body = { name: 'devbox:1', docker_ref: 'remotegpu/devbox:1', description: 'CUDA devbox', ssh_port: 22, jupyter_port: 8888, data_path: '/root/workspace' };
    const image = ok(await admin.POST('/api/v1/admin/images', { body }), 201).data;
    expect(image).toMatchObject(body);
    const changed = ok(await admin.PATCH('/api/v1/admin/images/{image_id}', { params: { path: { image_id: image.id } }, body: { description: 'CUDA 12 devbox', jupyter_port: null } })).data;
    expect(changed).toMatchObject({ description: 'CUDA 12 devbox', jupyter_port: null, ssh_port: 22 });
    expect(ok(await admin.GET('/api/v1/admin/images/{image_id}', { params: { path: { image_id: image.id } } })).data.name).toBe('devbox:1');
    expect(ok(await admin.GET('/api/v1/admin/images', { params: { query: { page: 1, page_size: 10 } } })).data.items.map((i) => i.name)).toEqual(['devbox:1']);
    expect(ok(await user.GET('/api/v1/images', { params: { query: { page: 1, page_size: 10 } } })).data.items.map((i) => i.docker_ref)).toEqual(['remotegpu/devbox:1']);
    const spare = ok(await admin.POST('/api/v1/admin/images', { body: { name: 'spare:1', docker_ref: 'spare:1' } }), 201).data;
    expect((await admin.DELETE('/api/v1/admin/images/{image_id}', { params: { path: { image_id: spare.id } } })).response.status).toBe(204);
  });

  it('admin: datasets, and the datasets users may mount', async () => {
    const body = { name: 'imagenet', description: 'ILSVRC 2012', host_path: '/srv/datasets/imagenet', owner_id: null, workspace_id: workspaceId, writable: false };
    const dataset = ok(await admin.POST('/api/v1/admin/datasets', { body }), 201).data;
    expect(dataset).toMatchObject(body);
    datasetId = dataset.id;
    const mine = ok(await admin.POST('/api/v1/admin/datasets', { body: { name: 'scratch', host_path: '/srv/datasets/scratch', owner_id: userId, workspace_id: null, writable: true } }), 201).data;
    const changed = ok(await admin.PATCH('/api/v1/admin/datasets/{dataset_id}', { params: { path: { dataset_id: datasetId } }, body: { name: 'imagenet-1k', description: 'ILSVRC', writable: false } })).data;
    expect(changed).toMatchObject({ name: 'imagenet-1k', writable: false });
    expect(ok(await admin.GET('/api/v1/admin/datasets/{dataset_id}', { params: { path: { dataset_id: datasetId } } })).data.host_path).toBe('/srv/datasets/imagenet');
    expect(ok(await admin.GET('/api/v1/admin/datasets', { params: { query: { page: 1, page_size: 10 } } })).data.pagination.total).toBe(2);
    const visible = ok(await user.GET('/api/v1/datasets', { params: { query: { page: 1, page_size: 10 } } })).data.items;
    expect(visible.map((d) => [d.name, d.scope]).sort()).toEqual([
      ['imagenet-1k', 'workspace'],
      ['scratch', 'user'],
    ]);
    expect(ok(await user.GET('/api/v1/datasets/{dataset_id}', { params: { path: { dataset_id: mine.id } } })).data.writable).toBe(true);
    expect((await admin.DELETE('/api/v1/admin/datasets/{dataset_id}', { params: { path: { dataset_id: mine.id } } })).response.status).toBe(204);
  });

  it('ssh keys', async () => {
    const key = ok(await user.POST('/api/v1/ssh-keys', { body: { name: 'laptop', public_key: ED25519 } }), 201).data;
    expect(key.fingerprint).toMatch(/^SHA256:/);
    expect(ok(await user.GET('/api/v1/ssh-keys', { params: { query: { page: 1, page_size: 10 } } })).data.items.map((k) => k.name)).toEqual(['laptop']);
    expect((await user.DELETE('/api/v1/ssh-keys/{key_id}', { params: { path: { key_id: key.id } } })).response.status).toBe(204);
  });

  it('admin: hosts (listing, detail, cordon, uncordon, drain, approve, revoke, remove)', async () => {
    const hosts = ok(await admin.GET('/api/v1/admin/hosts', { params: { query: { status: 'online', gpu_model: 'h100', page: 1, page_size: 10 } } })).data.items;
    expect(hosts.map((h) => [h.host_id, h.status, h.gpu_count])).toEqual([['host-contract', 'online', 4]]);
    const detail = ok(await admin.GET('/api/v1/admin/hosts/{host_id}', { params: { path: { host_id: 'host-contract' } } })).data;
    expect(detail.gpus.map((g) => g.health)).toEqual(['healthy', 'healthy', 'healthy', 'healthy']);
    const hostPath = { params: { path: { host_id: 'host-contract' } } };
    expect(ok(await admin.POST('/api/v1/admin/hosts/{host_id}/cordon', hostPath)).code).toBe(0);
    expect(ok(await admin.GET('/api/v1/admin/hosts/{host_id}', hostPath)).data.status).toBe('cordoned');
    expect(ok(await admin.POST('/api/v1/admin/hosts/{host_id}/drain', hostPath)).code).toBe(0);
    expect(ok(await admin.POST('/api/v1/admin/hosts/{host_id}/uncordon', hostPath)).code).toBe(0);
    expect(ok(await admin.POST('/api/v1/admin/hosts/{host_id}/approve', hostPath)).data).toMatchObject({ status: 'online', approved: true });

    await seedHost(api.db, 'host-gone', { gpus: 0 });
    const gonePath = { params: { path: { host_id: 'host-gone' } } };
    expect(ok(await admin.POST('/api/v1/admin/hosts/{host_id}/revoke', gonePath)).data.approved).toBe(false);
    const removed = await admin.DELETE('/api/v1/admin/hosts/{host_id}', { params: { path: { host_id: 'host-gone' }, query: { force: true } } });
    expect(removed.response.status).toBe(204);
  });

  it('admin: join tokens', async () => {
    const body = { description: 'rack 4', expires_in_seconds: 3600, max_uses: 3, requires_approval: false };
    const created = ok(await admin.POST('/api/v1/admin/join-tokens', { body }), 201).data;
    expect(created).toMatchObject({ description: 'rack 4', max_uses: 3, uses: 0, requires_approval: false, state: 'active' });
    expect(created.token).toMatch(/^jt_/);
    const dated = ok(await admin.POST('/api/v1/admin/join-tokens', { body: { expires_at: new Date(Date.now() + 86_400_000).toISOString() } }), 201).data;
    expect(dated.requires_approval).toBe(true);
    const list = ok(await admin.GET('/api/v1/admin/join-tokens', { params: { query: { page: 1, page_size: 10 } } })).data;
    expect(list.items.map((t) => t.id).sort()).toEqual([created.id, dated.id].sort());
    expect(ok(await admin.GET('/api/v1/admin/join-tokens/{id}', { params: { path: { id: created.id } } })).data.state).toBe('active');
    expect((await admin.DELETE('/api/v1/admin/join-tokens/{id}', { params: { path: { id: dated.id } } })).response.status).toBe(204);
  });

  it('environments: create with every field and an Idempotency-Key, list with every filter, get, start, stop, restart, delete', async () => {
    const body = {
      name: 'train',
      description: 'ResNet run',
      workspace_id: workspaceId,
      image: 'devbox:1',
      cpu: 4,
      memory: 16 * GIB,
      gpu: 2,
      storage: 100 * GIB,
      gpu_model: 'H100',
      queue: false,
    };
    const params = { header: { 'Idempotency-Key': 'contract-create-1' } };
    const env = ok(await user.POST('/api/v1/environments', { params, body }), 201).data;
    expect(env).toMatchObject({ name: 'train', status: 'creating', gpu: 2, workspace_id: workspaceId, host_id: 'host-contract' });
    expect(env.access_info?.ssh_host_keys).toEqual([]);
    const replay = ok(await user.POST('/api/v1/environments', { params, body }), 200).data;
    expect(replay.env_id).toBe(env.env_id);

    const listed = ok(await user.GET('/api/v1/environments', { params: { query: { status: 'creating', workspace_id: workspaceId, page: 1, page_size: 5 } } })).data;
    expect(listed.items.map((e) => e.env_id)).toEqual([env.env_id]);
    const envPath = { params: { path: { env_id: env.env_id } } };
    const got = ok(await user.GET('/api/v1/environments/{env_id}', envPath)).data;
    expect([got.status, got.gpu_model, got.started_at]).toEqual(['creating', 'H100', null]);

    // No agent runs here: the stop is accepted (the environment is stopping), a restart of a
    // stopping environment is the wrong-state conflict.
    expect(ok(await user.POST('/api/v1/environments/{env_id}/stop', envPath)).message).toBe('Environment stopping');
    expect(ok(await user.GET('/api/v1/environments/{env_id}', envPath)).data.status).toBe('stopping');
    expect(failed(await user.POST('/api/v1/environments/{env_id}/restart', envPath), 409).code).toBe(40901);
    const stopped = await seedEnvironment(api.db, { ownerId: userId, imageId: await imageId(), desiredState: 'stopped' });
    const start = await user.POST('/api/v1/environments/{env_id}/start', { params: { path: { env_id: stopped } }, body: { gpu: 0, storage: 2 * GIB } });
    expect(ok(start).message).toBe('Environment starting');
    expect(ok(await user.GET('/api/v1/environments/{env_id}', { params: { path: { env_id: stopped } } })).data).toMatchObject({ gpu: 0, storage: 2 * GIB });
    expect((await user.DELETE('/api/v1/environments/{env_id}', envPath)).response.status).toBe(204);
  });

  it('environments: dataset mounts, logs as JSON and as an event stream, terminal ticket', async () => {
    const env = await seedEnvironment(api.db, { ownerId: userId, imageId: await imageId(), workspaceId });
    const envPath = { params: { path: { env_id: env } } };
    const mounted = await user.POST('/api/v1/environments/{env_id}/datasets', { ...envPath, body: { dataset_id: datasetId, mount_path: '/data/imagenet', readonly: true } });
    expect(ok(mounted).code).toBe(0);
    const mounts = ok(await user.GET('/api/v1/environments/{env_id}/datasets', envPath)).data.items;
    expect(mounts.map((m) => [m.dataset_id, m.mount_path, m.readonly])).toEqual([[datasetId, '/data/imagenet', true]]);
    const unmounted = await user.DELETE('/api/v1/environments/{env_id}/datasets/{dataset_id}', { params: { path: { env_id: env, dataset_id: datasetId } } });
    expect(unmounted.response.status).toBe(204);

    // Without follow the 200 is JSON, typed as such with no narrowing.
    const logs = ok(await user.GET('/api/v1/environments/{env_id}/logs', { params: { path: { env_id: env }, query: { lines: 50, follow: false } } })).data.logs;
    expect(logs.some((line) => line.endsWith(`Dataset imagenet-1k (${datasetId}) mounted at /data/imagenet read-only`))).toBe(true);
    expect(logs.every((line) => /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] /.test(line))).toBe(true);
    // With follow=true the same operation answers text/event-stream: read as a stream, first event.
    const abort = new AbortController();
    const follow = await user.GET('/api/v1/environments/{env_id}/logs', { params: { path: { env_id: env }, query: { lines: 1, follow: true } }, parseAs: 'stream', signal: abort.signal });
    expect(follow.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const first = await firstEvent(follow.response);
    abort.abort();
    expect(first).toMatch(/^data: \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] /);

    // A terminal needs the environment running on a host: put it on one (no agent answers there,
    // but the ticket is only the first step).
    await api.db.updateTable('environments').set({ host_id: 'host-contract' }).where('id', '=', env).execute();
    const ticket = ok(await user.POST('/api/v1/environments/{env_id}/terminal/ticket', envPath), 201).data;
    expect(ticket.ticket).toMatch(/^rgt_/);
    expect(Date.parse(ticket.expires_at)).toBeGreaterThan(Date.now());
  });

  it('quotas, the caller and the free capacity', async () => {
    const limits = { gpus: 8, cpu: 64, memory: 256 * GIB, storage: 2048 * GIB, environments: 10, pending_environments: 2 };
    const userPath = { params: { path: { user_id: userId } } };
    expect(ok(await admin.PUT('/api/v1/admin/users/{user_id}/quota', { ...userPath, body: limits })).data.limits).toEqual(limits);
    expect(ok(await admin.GET('/api/v1/admin/users/{user_id}/quota', userPath)).data.limits.gpus).toBe(8);
    const wsPath = { params: { path: { workspace_id: workspaceId } } };
    const wsLimits = { ...limits, gpus: null, environments: null };
    expect(ok(await admin.PUT('/api/v1/admin/workspaces/{workspace_id}/quota', { ...wsPath, body: wsLimits })).data.limits).toEqual(wsLimits);
    expect(ok(await admin.GET('/api/v1/admin/workspaces/{workspace_id}/quota', wsPath)).data.limits.gpus).toBeNull();
    const me = ok(await user.GET('/api/v1/me')).data;
    expect([me.user.name, me.quota.limits.gpus, me.workspaces.map((w) => [w.name, w.role])]).toEqual(['carol', 8, [['vision', 'owner']]]);
    const capacity = ok(await user.GET('/api/v1/capacity')).data;
    expect(capacity.gpu_models.map((m) => m.model)).toEqual(['NVIDIA H100 80GB HBM3']);
  });

  it('parses the error answers typed: 400 naming the field, 413 for a body over 1 MiB, 401', async () => {
    const tooLong = failed(await user.GET('/api/v1/environments/{env_id}', { params: { path: { env_id: 'e'.repeat(65) } } }), 400);
    expect(tooLong.data?.fields.map((f) => f.field)).toEqual(['env_id']);
    const lines = failed(await user.GET('/api/v1/environments/{env_id}/logs', { params: { path: { env_id: 'env-x' }, query: { lines: 10_001 } } }), 400);
    expect(lines.data?.fields.map((f) => f.field)).toEqual(['lines']);
    const big = failed(await user.POST('/api/v1/ssh-keys', { body: { public_key: 'x'.repeat(1024 * 1024 + 1) } }), 413);
    expect(big.code).toBe(41301);
    const anonymous = createClient<paths, 'application/json'>({ baseUrl: http.url });
    anonymous.use(record);
    expect(failed(await anonymous.GET('/api/v1/me'), 401).code).toBe(40101);
  });

  it('called every operation of the document', () => {
    const missing = [...operationIds.values()].filter((id) => !called.has(id));
    expect(missing).toEqual([]);
    expect(called.size).toBe(operationIds.size);
  });

  it('serves the committed document, which redocly lint passes with no error and no warning', async () => {
    const served = await fetch(`${http.url}/api/v1/openapi.json`);
    expect(served.status).toBe(200);
    const text = await served.text();
    expect(JSON.parse(text)).toEqual(JSON.parse(readFileSync(COMMITTED, 'utf8')));
    const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-openapi-'));
    try {
      const file = path.join(dir, 'openapi.json');
      writeFileSync(file, text);
      const report = RedoclyReport.parse(JSON.parse(await redoclyLint(file)));
      expect(report.problems.map((p) => `${p.ruleId}: ${p.message}`)).toEqual([]);
      expect(report.totals).toEqual({ errors: 0, warnings: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('documents 400 wherever there is input, 413 wherever there is a body, 500 and 503 everywhere', () => {
    for (const { key, op } of operationsOf(committed)) {
      const statuses = Object.keys(op.responses);
      const expected = ['500', '503', ...(op.parameters?.length || op.requestBody ? ['400'] : []), ...(op.requestBody ? ['413'] : [])];
      expect(statuses, key).toEqual(expect.arrayContaining(expected));
    }
  });

  /** The id of the catalog image created above. */
  async function imageId(): Promise<number> {
    const row = await api.db.selectFrom('images').select('id').where('name', '=', 'devbox:1').executeTakeFirstOrThrow();
    return row.id;
  }
});

/** The first server-sent event of a streaming response (comments skipped). */
async function firstEvent(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) throw new Error('no response body');
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the stream ended before an event: ${text}`);
    text += Buffer.from(value).toString();
    const event = text.split('\n\n').find((e) => e.startsWith('data:'));
    if (event) return event;
  }
}

/** `redocly lint --format=json FILE` with the repository's redocly.yaml: its JSON report (stdout). */
function redoclyLint(file: string): Promise<string> {
  const bin = path.join(ROOT, 'node_modules', '.bin', 'redocly');
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
  // It exits 1 when it finds errors; the report is on stdout either way, and the test reads it.
  const child = spawn(bin, ['lint', '--format=json', file], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', () => (stdout.trim() ? resolve(stdout) : reject(new Error(`redocly lint wrote no report: ${stderr}`))));
  });
}
