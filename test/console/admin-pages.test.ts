import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, type TestApi, type TestUser } from '../helpers/api.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { seedHost, seedImage } from '../helpers/hosts.js';

// The console's admin pages, rendered by the controller (app.request, both databases): only admins
// see them; the hosts page shows each GPU of a seeded host as a tile with its state and holder.

const GIB = 2 ** 30;

/** The GPU tiles of one host card in a page: state, index and the text inside. */
function tilesOf(html: string, hostId: string) {
  const card = html.split(`data-host-id="${hostId}"`)[1]?.split('</article>')[0] ?? '';
  return [...card.matchAll(/<li class="gpu-tile" data-state="(\w+)" data-index="(\d+)">(.*?)<\/li>/g)].map((m) => ({ state: m[1], index: Number(m[2]), text: m[3]! }));
}

/** Ids of form controls without a <label for> (hidden fields aside). */
function unlabelled(html: string): string[] {
  const labelled = new Set([...html.matchAll(/<label for="([^"]+)"/g)].map((m) => m[1]));
  const controls = [...html.matchAll(/<(input|select|textarea)\b([^>]*)>/g)].filter((m) => !/type="hidden"/.test(m[2]!));
  return controls.map((m) => /id="([^"]+)"/.exec(m[2]!)?.[1] ?? `(no id) ${m[0]}`).filter((id) => !labelled.has(id));
}

describe.each(DB_TARGETS)('console admin pages ($name)', (target) => {
  describe.skipIf(target.skipReason !== '')('pages', () => {
    let api: TestApi;
    let alice: TestUser;
    let envId = '';
    let workspaceId = 0;
    let imageId = 0;
    let datasetId = 0;

    const page = async (path: string, token = api.adminToken, lang: 'en' | 'zh' = 'en') => {
      const res = await api.app.request(`http://localhost${path}${path.includes('?') ? '&' : '?'}lang=${lang}`, { headers: { cookie: `remotegpu_session=${token}` } });
      return { status: res.status, html: await res.text(), type: res.headers.get('content-type') ?? '' };
    };

    beforeAll(async () => {
      api = await createTestApi(target);
      alice = await api.createUser('alice');
      await seedHost(api.db, 'host-a', { gpus: 4, model: 'NVIDIA A40' });
      await seedImage(api.db, 'img:1');
      imageId = (await api.db.selectFrom('images').select('id').executeTakeFirstOrThrow()).id;
      // Alice takes 2 GPUs through the API (placement reserves them on host-a).
      const created = await api.request('POST', '/api/v1/environments', { token: alice.token, body: { name: 'train', image: 'img:1', cpu: 2, memory: 4 * GIB, gpu: 2, storage: GIB } });
      expect(created.status).toBe(201);
      envId = created.body.data.env_id;
      // GPU 3 reports an Xid error.
      await api.db.updateTable('host_gpus').set({ health: 'unhealthy', health_reason: 'Xid 79: fallen off the bus' }).where('uuid', '=', 'GPU-host-a-3').execute();
      workspaceId = await api.createWorkspace('vision', alice.id);
      const ds = await api.request('POST', '/api/v1/admin/datasets', { token: api.adminToken, body: { name: 'imagenet', host_path: '/mnt/datasets/imagenet' } });
      datasetId = ds.body.data.id;
    });
    afterAll(() => api?.close());

    const ADMIN_PAGES = () => [
      '/admin',
      '/admin/hosts',
      '/admin/hosts/grid',
      '/admin/hosts/host-a',
      '/admin/users',
      `/admin/users/${alice.id}`,
      '/admin/workspaces',
      `/admin/workspaces/${workspaceId}`,
      '/admin/images',
      `/admin/images/${imageId}`,
      '/admin/datasets',
      `/admin/datasets/${datasetId}`,
    ];

    it('answers 403 to a signed-in user who is not an admin, on every admin page, and sends a browser without a session to sign in', async () => {
      for (const path of ADMIN_PAGES()) {
        const res = await page(path, alice.token);
        expect(res.status, path).toBe(403);
        expect(res.html, path).not.toContain('gpu-tile');
        const anonymous = await api.app.request(`http://localhost${path}`);
        expect(anonymous.status, path).toBe(303);
        expect(anonymous.headers.get('location'), path).toMatch(/^\/signin/);
      }
    });

    it('renders every admin page for an admin, each form control labelled', async () => {
      for (const path of ADMIN_PAGES().filter((p) => p !== '/admin')) {
        const res = await page(path);
        expect(res.status, path).toBe(200);
        expect(res.type, path).toMatch(/text\/html/);
        expect(unlabelled(res.html), path).toEqual([]);
      }
      expect((await page('/admin')).status).toBe(303);
    });

    it('shows the host with a tile per GPU: two allocated to alice\'s environment, one free, one unhealthy with its reason', async () => {
      const { html } = await page('/admin/hosts');
      const tiles = tilesOf(html, 'host-a');
      expect(tiles.map((t) => [t.index, t.state])).toEqual([[0, 'allocated'], [1, 'allocated'], [2, 'free'], [3, 'unhealthy']]);
      for (const t of tiles.filter((x) => x.state === 'allocated')) {
        expect(t.text).toContain(`href="/environments/${envId}"`);
        expect(t.text).toContain('>train<');
        expect(t.text).toContain('>alice<');
        expect(t.text).toContain('NVIDIA A40');
        expect(t.text).toContain('79.6 GiB');
      }
      expect(tiles[3]!.text).toContain('Xid 79: fallen off the bus');
      expect(tiles[2]!.text).not.toContain('gpu-holder');
      expect(html).toContain('data-host-status="online"');
      expect(html).toContain('2 of 4 allocated, 1 unhealthy');
      // The meters: 2 of 128 cores allocated.
      expect(html).toMatch(/<meter id="cpu-host-a" min="0" max="128" value="2"/);
      expect(html).toContain('data-api-path="/api/v1/admin/hosts/host-a/cordon"');
      expect(html).toMatch(/data-api-path="\/api\/v1\/admin\/hosts\/host-a\/drain" data-confirm="Drain host host-a.test\?/);
    });

    it('speaks Chinese by default and English when asked', async () => {
      const zh = await page('/admin/hosts', api.adminToken, 'zh');
      expect(zh.html).toContain('<html lang="zh-CN">');
      expect(zh.html).toContain('已分配');
      expect(zh.html).toContain('空闲');
      expect(zh.html).toContain('封锁');
      const en = await page('/admin/hosts');
      expect(en.html).toContain('<html lang="en">');
      expect(en.html).toContain('>allocated<');
      expect(en.html).not.toContain('已分配');
      const users = await page('/admin/users', api.adminToken, 'zh');
      expect(users.html).toContain('创建用户');
    });

    it('follows a cordon made through the API on the next refresh of the grid fragment', async () => {
      const cordon = await api.request('POST', '/api/v1/admin/hosts/host-a/cordon', { token: api.adminToken });
      expect(cordon.status).toBe(200);
      const grid = await page('/admin/hosts/grid');
      expect(grid.html.startsWith('<div id="host-grid"')).toBe(true);
      expect(grid.html).toContain('data-host-status="cordoned"');
      expect(grid.html).toContain('data-api-path="/api/v1/admin/hosts/host-a/uncordon"');
      expect(grid.html).not.toContain('data-api-path="/api/v1/admin/hosts/host-a/cordon"');
      await api.request('POST', '/api/v1/admin/hosts/host-a/uncordon', { token: api.adminToken });
    });

    it("shows a host's detail: facts, the GPUs with their holder, the environments on it and their events", async () => {
      const { html } = await page('/admin/hosts/host-a');
      expect(html).toContain('Host host-a.test');
      const gpuTable = html.split('id="gpu-table"')[1]!.split('</table>')[0]!;
      expect(gpuTable.match(/>alice</g)).toHaveLength(2);
      expect(gpuTable).toContain('Xid 79');
      expect(html).toContain(`<a href="/environments/${envId}">train</a>`);
      expect(html).toContain('scheduled');
      expect((await page('/admin/hosts/host-nope')).status).toBe(404);
    });

    it('lists users, tokens, workspaces, images and datasets, with their forms pointing at the REST API', async () => {
      const users = await page('/admin/users');
      expect(users.html).toContain(`<a href="/admin/users/${alice.id}">alice</a>`);
      expect(users.html).toContain('data-api-path="/api/v1/admin/users"');
      const detail = await page(`/admin/users/${alice.id}`);
      expect(detail.html).toContain(`data-api-path="/api/v1/admin/users/${alice.id}/tokens"`);
      expect(detail.html).toMatch(/data-api-path="\/api\/v1\/admin\/users\/\d+\/tokens\/\d+" data-confirm=/);
      expect(detail.html).toContain('id="new-token" class="new-token" hidden');
      const ws = await page(`/admin/workspaces/${workspaceId}`);
      expect(ws.html).toContain(`data-api-path="/api/v1/admin/workspaces/${workspaceId}/members"`);
      expect((await page('/admin/workspaces')).html).toContain('>vision<');
      expect((await page('/admin/images')).html).toContain('<code>remotegpu/devbox:1</code>');
      expect((await page(`/admin/images/${imageId}`)).html).toContain(`data-api-method="PATCH" data-api-path="/api/v1/admin/images/${imageId}"`);
      expect((await page('/admin/datasets')).html).toContain('<code>/mnt/datasets/imagenet</code>');
      for (const missing of ['/admin/users/999999', '/admin/users/x', '/admin/workspaces/999999', '/admin/images/999999', '/admin/datasets/999999']) {
        expect((await page(missing)).status, missing).toBe(404);
      }
    });
  });
});
