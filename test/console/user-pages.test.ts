import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, type TestApi, type TestUser } from '../helpers/api.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { seedHost, seedImage } from '../helpers/hosts.js';
import { sql } from 'kysely';
import { hostKeyFingerprint } from '../../common/ssh-host-keys.js';

// The console's user pages, rendered through app.request for a signed-in browser (the session
// cookie), with the same tenancy as the API; and GET /api/v1/capacity, the create form's hint.
const GiB = 2 ** 30;
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop';

describe.each(DB_TARGETS)('console user pages ($name)', (target) => {
  let api: TestApi;
  let alice: TestUser;
  let bob: TestUser;
  let envId = '';

  /** A page as a signed-in browser gets it (`lang` as the ?lang= switch; none: the Accept-Language rule). */
  const page = async (path: string, user: TestUser, headers: Record<string, string> = {}) => {
    const res = await api.app.request(`http://localhost${path}`, { headers: { cookie: `remotegpu_session=${user.token}`, ...headers } });
    return { status: res.status, html: await res.text(), headers: res.headers };
  };

  beforeAll(async () => {
    api = await createTestApi(target);
    alice = await api.createUser('alice');
    bob = await api.createUser('bob');
    await seedHost(api.db, 'host-a40', { gpus: 4, model: 'NVIDIA A40', cpuCores: 32, memoryBytes: 256 * GiB });
    await seedHost(api.db, 'host-h100', { gpus: 2, model: 'NVIDIA H100 80GB HBM3', cpuCores: 16, memoryBytes: 128 * GiB });
    await seedImage(api.db, 'devbox:1');
    await api.services.capacityIndex.refresh();
    const created = await api.request('POST', '/api/v1/environments', {
      token: alice.token,
      body: { name: 'alice-train', image: 'devbox:1', cpu: 4, memory: 16 * GiB, gpu: 2, gpu_model: 'A40', storage: 10 * GiB },
    });
    expect(created.status).toBe(201);
    envId = created.body.data.env_id;
    expect((await api.request('POST', '/api/v1/ssh-keys', { token: alice.token, body: { name: 'laptop', public_key: KEY } })).status).toBe(201);
  });
  afterAll(() => api.close());

  it('lists the caller\'s environments with status colour, GPUs, image, SSH command with a copy button, and the live script', async () => {
    const { status, html } = await page('/environments?lang=en', alice);
    expect(status).toBe(200);
    expect(html).toContain(`href="/environments/${envId}"`);
    expect(html).toContain('alice-train');
    expect(html).toMatch(/class="status status-creating" data-status="creating"/);
    expect(html).toContain('2 × A40');
    expect(html).toMatch(new RegExp(`<code id="ssh-${envId}" class="ssh-command">ssh root@127\\.0\\.0\\.1 -p \\d+</code>`));
    expect(html).toContain(`data-copy="#ssh-${envId}"`);
    expect(html).toContain('/assets/console/environments.js');
    expect(html).toContain('href="/environments/new"');
  });

  it("shows another user none of alice's environments, and her environment's page is a 404 for him", async () => {
    const list = await page('/environments?lang=en', bob);
    expect(list.html).not.toContain('alice-train');
    expect(list.html).toContain('No environments yet.');
    const detail = await page(`/environments/${envId}?lang=en`, bob);
    expect(detail.status).toBe(404);
    expect(detail.html).toContain('There is no such environment, or it is not yours.');
    expect(detail.html).not.toContain('alice-train');
    // The same answer as the API gives him.
    expect((await api.request('GET', `/api/v1/environments/${envId}`, { token: bob.token })).status).toBe(404);
    expect((await page('/environments/env-doesnotexist?lang=en', alice)).status).toBe(404);
  });

  it('shows the SSH host key fingerprints on the detail page once the agent reported the keys, a hint until then', async () => {
    expect((await page(`/environments/${envId}?lang=en`, alice)).html).toContain('<span id="host-keys-pending" class="hint">Shown once the SSH server');
    const [type, key] = KEY.split(' ') as [string, string];
    const keys = sql<{ type: string; key: string }[]>`${JSON.stringify([{ type, key }])}::jsonb`;
    await api.db.updateTable('environments').set({ ssh_host_keys: keys, ssh_host_keys_container: 'c1' }).where('id', '=', envId).execute();
    try {
      const { html } = await page(`/environments/${envId}?lang=zh`, alice);
      expect(html).toContain('SSH 主机密钥指纹');
      expect(html).toContain('<span id="host-keys-pending" class="hint" hidden="">');
      expect(html).toContain(`<code>ssh-ed25519 ${hostKeyFingerprint(key)}</code>`);
    } finally {
      await api.db.updateTable('environments').set({ ssh_host_keys: sql<[]>`'[]'::jsonb`, ssh_host_keys_container: '' }).where('id', '=', envId).execute();
    }
  });

  it('renders the detail page: access info, status, confirmed actions, timeline from events, logs, terminal, datasets', async () => {
    const { status, html } = await page(`/environments/${envId}?lang=en`, alice);
    expect(status).toBe(200);
    expect(html).toMatch(/id="env-status" class="status status-creating"/);
    expect(html).toMatch(/<code id="ssh-command" class="ssh-command">ssh root@127\.0\.0\.1 -p \d+<\/code>/);
    expect(html).toMatch(/http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    for (const action of ['start', 'stop', 'restart']) expect(html).toContain(`data-api-path="/api/v1/environments/${envId}/${action}" data-confirm=`);
    expect(html).toMatch(new RegExp(`data-api-method="DELETE" data-api-path="/api/v1/environments/${envId}" data-confirm="Delete this environment`));
    // creating: start is not allowed (disabled), stop is.
    expect(html).toMatch(/id="action-start" disabled=""/);
    expect(html).not.toMatch(/id="action-stop" disabled/);
    const events = await api.services.environmentLogs.events(envId, 50);
    expect(events.length).toBeGreaterThan(0);
    expect(html).toContain(events[0]!.message.replaceAll('"', '&quot;').split('&')[0]);
    expect(html).toContain('id="logs"');
    expect(html).toMatch(/id="terminal" class="terminal" data-env-id="[^"]+" data-state="closed"/);
    expect(html).toContain('/assets/xterm/lib/xterm.js');
    expect(html).toContain('No datasets mounted.');
  });

  it('renders the create form with the catalog, human units and the free capacity as a hint', async () => {
    const { status, html } = await page('/environments/new?lang=en', alice);
    expect(status).toBe(200);
    expect(html).toContain('<option value="devbox:1">');
    expect(html).toMatch(/<label for="env-memory">Memory \(GiB\)<\/label>/);
    expect(html).toMatch(/<label for="env-storage">Storage \(GiB\)<\/label>/);
    expect(html).toContain('<option value="NVIDIA A40">NVIDIA A40 (2)</option>');
    expect(html).toContain('2 × NVIDIA H100 80GB HBM3 free (at most 2 on one host)');
    expect(html).toContain('2 × NVIDIA A40 free (at most 2 on one host)');
    expect(html).toMatch(/role="alert" id="create-error"/);
  });

  it('lists the SSH keys with delete buttons (confirmed) and the add form', async () => {
    const { status, html } = await page('/ssh-keys?lang=en', alice);
    expect(status).toBe(200);
    expect(html).toContain('laptop');
    expect(html).toMatch(/SHA256:[A-Za-z0-9+/]+/);
    expect(html).toMatch(/data-api-method="DELETE" data-api-path="\/api\/v1\/ssh-keys\/\d+" data-confirm=/);
    expect(html).toContain('<label for="key-public">Public key</label>');
    expect((await page('/ssh-keys?lang=en', bob)).html).not.toContain('laptop');
  });

  it('speaks Chinese by default and English when asked (?lang=, the cookie, Accept-Language)', async () => {
    const zh = await page('/environments', alice);
    expect(zh.html).toContain('<html lang="zh-CN">');
    expect(zh.html).toContain('新建环境');
    expect(zh.html).toContain('创建中');
    const en = await page('/environments', alice, { 'accept-language': 'en-US,en;q=0.9' });
    expect(en.html).toContain('New environment');
    expect((await page('/ssh-keys', alice, { cookie: `remotegpu_session=${alice.token}; remotegpu_lang=en` })).html).toContain('Add key');
    expect((await page('/ssh-keys', alice)).html).toContain('添加公钥');
    expect((await page(`/environments/${envId}`, alice)).html).toContain('打开终端');
    expect((await page('/environments/new', alice)).html).toContain('空闲资源');
  });

  it('sends a browser without a session to sign in from every user page', async () => {
    for (const path of ['/environments', '/environments/new', `/environments/${envId}`, '/ssh-keys']) {
      const res = await api.app.request(`http://localhost${path}`);
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe(`/signin?next=${encodeURIComponent(path)}`);
    }
  });

  it("serves the pages' scripts from the package", async () => {
    for (const file of ['environments.js', 'environment-new.js', 'environment-detail.js', 'terminal.js', 'env-live.js']) {
      const res = await api.app.request(`http://localhost/assets/console/${file}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/javascript/);
    }
  });

  describe('GET /api/v1/capacity', () => {
    it('needs a signed-in caller', async () => {
      const res = await api.request('GET', '/api/v1/capacity');
      expect(res.status).toBe(401);
      expect(res.body.code).toBe(40101);
    });

    it('gives any user the free GPUs per model and the largest free CPU, memory and storage on one host', async () => {
      const res = await api.request('GET', '/api/v1/capacity', { token: bob.token });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({
        schedulable_hosts: 2,
        gpu_models: [
          { model: 'NVIDIA A40', free: 2, max_per_host: 2 },
          { model: 'NVIDIA H100 80GB HBM3', free: 2, max_per_host: 2 },
        ],
        // CPU and memory: the A40 host less alice's environment; storage: the untouched H100 host's disk.
        largest: { gpu: 2, cpu: 28, memory: 240 * GiB, storage: 2 ** 44 },
      });
      expect(JSON.stringify(res.body)).not.toContain('host-a40');
    });

    it('leaves out a cordoned host, and counts it again once uncordoned', async () => {
      expect((await api.request('POST', '/api/v1/admin/hosts/host-h100/cordon', { token: api.adminToken })).status).toBe(200);
      await api.services.capacityIndex.refresh();
      const cordoned = (await api.request('GET', '/api/v1/capacity', { token: alice.token })).body.data;
      expect(cordoned.schedulable_hosts).toBe(1);
      expect(cordoned.gpu_models).toEqual([{ model: 'NVIDIA A40', free: 2, max_per_host: 2 }]);
      expect((await api.request('POST', '/api/v1/admin/hosts/host-h100/uncordon', { token: api.adminToken })).status).toBe(200);
      await api.services.capacityIndex.refresh();
      expect((await api.request('GET', '/api/v1/capacity', { token: alice.token })).body.data.schedulable_hosts).toBe(2);
    });

    it('is in the OpenAPI document', async () => {
      const doc = (await api.request('GET', '/api/v1/openapi.json')).body;
      expect(doc.paths['/api/v1/capacity'].get.summary).toMatch(/Free capacity/);
      expect(doc.components.schemas.Capacity).toBeDefined();
    });
  });
});
