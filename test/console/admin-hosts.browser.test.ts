import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { platformEnvAt, startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { launchBrowser, screenshot, signIn } from '../helpers/browser.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// The admin console in a real headless Chromium against the real platform (controller, agent,
// Docker, the simulated 10×A40 host): while a 2-GPU environment runs, the hosts page shows exactly
// two tiles allocated (to that environment and its owner) and eight free; cordon, drain (with its
// confirmation) and uncordon from the page; the user, workspace, image and dataset pages; a
// screenshot of each (test-results/screenshots/admin-*.png).

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('admin browser test skipped: no Docker engine at /var/run/docker.sock (CI has one)');

const ADMIN = 'admin-browser-admin-token-0123456789';
const NAMESPACE = `admin-browser-${process.pid}`;
const MIB = 2 ** 20;

describe.skipIf(!hasDocker)('admin pages in Chromium on the real platform', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let browser: Browser;
  let page: Page;
  let dir = '';
  let envId = '';
  let hostId = '';
  const api = restCaller(() => platform.controller.httpUrl);
  const base = () => platform.controller.httpUrl;
  const hostStatus = async () => (await api('GET', `/api/v1/admin/hosts/${hostId}`, ADMIN)).body.data.status as string;
  const card = () => page.locator(`article[data-host-id="${hostId}"]`);
  const tiles = (state: string) => card().locator(`.gpu-tile[data-state="${state}"]`);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-admin-browser-'));
    platform = await startLocalPlatform(
      platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_SSH_PORT_RANGE: '19300-19349',
        REMOTEGPU_JUPYTER_PORT_RANGE: '19350-19399',
      }),
      createLogger({ name: 'admin-browser', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitUntil('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    hostId = (await api('GET', '/api/v1/admin/hosts', ADMIN)).body.data.items[0].host_id;
    // Carol, a user, runs a 2-GPU environment (created through the REST API with her own token).
    const carol = await api('POST', '/api/v1/admin/users', ADMIN, { name: 'carol' });
    const token = await api('POST', `/api/v1/admin/users/${carol.body.data.id}/tokens`, ADMIN, { name: 'test' });
    const created = await api('POST', '/api/v1/environments', token.body.data.token, { name: 'two-gpus', image: 'devbox:1', cpu: 1, memory: 256 * MIB, gpu: 2, storage: 2 ** 30 });
    expect(created.status).toBe(201);
    envId = created.body.data.env_id;
    await waitUntil('running', async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data.status === 'running', 120_000);
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await signIn(page, base(), ADMIN, 'en');
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitUntil('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('shows the 10×A40 host with exactly 2 tiles allocated to the running environment and its owner, 8 free', async () => {
    await page.goto(`${base()}/admin/hosts`);
    await expect.poll(() => card().locator('.gpu-tile').count()).toBe(10);
    expect(await tiles('allocated').count()).toBe(2);
    expect(await tiles('free').count()).toBe(8);
    expect(await tiles('unhealthy').count()).toBe(0);
    for (const text of await tiles('allocated').allInnerTexts()) {
      expect(text).toContain('two-gpus');
      expect(text).toContain('carol');
      expect(text).toContain('A40');
    }
    expect(await card().locator('[data-host-status]').innerText()).toBe('online');
    expect(await card().innerText()).toContain('2 of 10 allocated, 0 unhealthy');
    await screenshot(page, 'admin-hosts-1280');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base()}/admin/hosts`);
    // Nothing wider than the screen: the page scrolls only vertically.
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await screenshot(page, 'admin-hosts-390');
    await page.setViewportSize({ width: 1280, height: 900 });
  }, 60_000);

  it('cordons from the page, shows the new status without a reload, then uncordons with the keyboard', async () => {
    await page.goto(`${base()}/admin/hosts`);
    const marker = await page.evaluate<number>('window.testMarker = Math.random()');
    await card().getByRole('button', { name: 'Cordon', exact: true }).click();
    await expect.poll(() => card().locator('[data-host-status]').innerText(), { timeout: 15_000 }).toBe('cordoned');
    expect(await hostStatus()).toBe('cordoned');
    await screenshot(page, 'admin-hosts-cordoned');
    const uncordon = card().getByRole('button', { name: 'Uncordon' });
    await uncordon.focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => card().locator('[data-host-status]').innerText(), { timeout: 15_000 }).toBe('online');
    expect(await hostStatus()).toBe('online');
    // The same document all along: the grid was refreshed in place.
    expect(await page.evaluate<number>('window.testMarker')).toBe(marker);
  }, 60_000);

  it('asks before draining: dismissed changes nothing, accepted drains', async () => {
    await page.goto(`${base()}/admin/hosts`);
    page.once('dialog', (d) => void d.dismiss());
    await card().getByRole('button', { name: 'Drain' }).click();
    expect(await hostStatus()).toBe('online');
    let asked = '';
    page.once('dialog', (d) => {
      asked = d.message();
      void d.accept();
    });
    await card().getByRole('button', { name: 'Drain' }).click();
    await expect.poll(() => card().locator('[data-host-status]').innerText(), { timeout: 15_000 }).toBe('draining');
    expect(asked).toMatch(/^Drain host /);
    expect(await hostStatus()).toBe('draining');
    await card().getByRole('button', { name: 'Uncordon' }).click();
    await expect.poll(() => hostStatus(), { timeout: 15_000 }).toBe('online');
  }, 60_000);

  it("shows the host's detail: its GPUs with their holder, the environment on it", async () => {
    await page.goto(`${base()}/admin/hosts`);
    await card().getByRole('link').first().click();
    await page.waitForURL(`**/admin/hosts/${hostId}`);
    expect(await page.locator('#gpu-table tbody tr').count()).toBe(10);
    expect(await page.locator('#gpu-table tbody tr', { hasText: 'carol' }).count()).toBe(2);
    expect(await page.getByRole('link', { name: 'two-gpus' }).count()).toBeGreaterThan(0);
    await screenshot(page, 'admin-host-detail');
  }, 60_000);

  it('creates a user and a token shown once, which works, then revokes it', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base()}/admin/users`);
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await screenshot(page, 'admin-users-390');
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${base()}/admin/users`);
    await screenshot(page, 'admin-users');
    await page.getByLabel('Name', { exact: false }).first().fill('dave');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.waitForURL(/\/admin\/users\/\d+$/);
    await page.getByLabel('Token name').fill('laptop');
    await page.getByRole('button', { name: 'Create token' }).click();
    const shown = page.locator('#new-token-value');
    await expect.poll(() => shown.inputValue()).toMatch(/^rgpu_/);
    const token = await shown.inputValue();
    expect((await api('GET', '/api/v1/environments', token)).status).toBe(200);
    await screenshot(page, 'admin-user-detail');
    await page.reload();
    expect(await page.locator('#new-token-value').inputValue()).toBe('');
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(() => page.locator('#tokens').innerText(), { timeout: 15_000 }).toContain('Revoked');
    expect((await api('GET', '/api/v1/environments', token)).status).toBe(401);
  }, 60_000);

  it('creates a workspace, adds a member, and shows the image and dataset catalogs', async () => {
    await page.goto(`${base()}/admin/workspaces`);
    await page.getByLabel('Name', { exact: false }).first().fill('vision');
    await page.getByLabel('Owner').selectOption({ label: 'carol (#2)' });
    await page.getByRole('button', { name: 'Create workspace' }).click();
    await page.waitForURL(/\/admin\/workspaces\/\d+$/);
    await page.getByLabel('User').selectOption({ index: 0 });
    await page.getByRole('button', { name: 'Add member' }).click();
    await expect.poll(() => page.locator('#members tbody tr').count()).toBe(2);
    await screenshot(page, 'admin-workspace-detail');
    await page.goto(`${base()}/admin/workspaces`);
    await screenshot(page, 'admin-workspaces');
    await page.goto(`${base()}/admin/images`);
    expect(await page.locator('#images').innerText()).toContain('remotegpu/devbox:1');
    await screenshot(page, 'admin-images');
    await page.goto(`${base()}/admin/datasets`);
    await page.getByLabel('Name', { exact: false }).first().fill('imagenet');
    await page.getByLabel('Host path').fill('/mnt/datasets/imagenet');
    await page.getByRole('button', { name: 'Add dataset' }).click();
    // The table is on the page (empty) before the form's answer arrives: wait for the row itself.
    await expect.poll(() => page.locator('#datasets').innerText(), { timeout: 15_000 }).toContain('/mnt/datasets/imagenet');
    await screenshot(page, 'admin-datasets');
  }, 60_000);

  it('frees the tiles on the open page when the environment stops (live refresh)', async () => {
    await page.goto(`${base()}/admin/hosts?lang=zh`);
    expect(await tiles('allocated').count()).toBe(2);
    expect((await api('POST', `/api/v1/environments/${envId}/stop`, ADMIN)).status).toBe(200);
    await expect.poll(() => tiles('free').count(), { timeout: 30_000 }).toBe(10);
    await screenshot(page, 'admin-hosts-zh');
  }, 60_000);
});
