import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createLogger } from '../../common/logger.js';
import { platformEnvAt, startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { launchBrowser, screenshot, signIn } from '../helpers/browser.js';
import { dockerAvailable, dockerExec, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// The user's console in a real headless Chromium against the real platform (controller, agent,
// Docker, 10 simulated A40s): sign in, add an SSH key, see the 40902 message in the create form,
// create a 2-GPU environment from the form, watch it reach running on the list without a reload,
// follow its PID-1 log on its page, run `ls /dev/nvidia*` in its terminal (xterm.js over the
// terminal WebSocket), mount a dataset, stop, start and delete it from the buttons. Screenshots
// of every page go to test-results/screenshots/ (a CI artefact).

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('console browser test skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'console-user-admin-token-0123456789ab';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const NAMESPACE = `console-user-${process.pid}`;
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop';
/** What the devbox image's entrypoint (PID 1 until it execs sshd) prints last (scripts/test-image/rootfs/entrypoint.sh). */
const PID1_LINE = 'devbox: sshd starting on port 22';
const LONG = 120_000;

describe.skipIf(!hasDocker)('the user console in a real browser', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let dir = '';
  let platform: LocalPlatform;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let token = '';
  let envId = '';
  const api = restCaller(() => platform.controller.httpUrl);
  const base = () => platform.controller.httpUrl;
  /** Runs a command in the environment's container (a recreated container has the same name). */
  const inContainer = (cmd: string[]) => dockerExec(docker, `remotegpu-${envId}`, cmd).catch(() => ({ exitCode: -1, stdout: '', stderr: '' }));
  /** At 390 px wide the page itself does not scroll sideways (wide tables scroll inside .table-wrap). */
  const expectNarrowFits = async (name: string) => {
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, name);
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.setViewportSize({ width: 1280, height: 900 });
  };
  const statusOf = (p: Page, selector: string) => p.locator(selector).getAttribute('data-status');

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-console-user-'));
    platform = await startLocalPlatform(
      platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_PLACEMENT_INDEX_MAX_AGE_MS: '500',
        REMOTEGPU_SSH_PORT_RANGE: '19200-19249',
        REMOTEGPU_JUPYTER_PORT_RANGE: '19250-19299',
        REMOTEGPU_DATASET_ROOTS: path.join(dir, 'datasets'),
      }),
      createLogger({ name: 'console-user', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitUntil('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const user = await api('POST', '/api/v1/admin/users', ADMIN, { name: 'alice' });
    expect(user.status).toBe(201);
    const created = await api('POST', `/api/v1/admin/users/${user.body.data.id}/tokens`, ADMIN, { name: 'browser' });
    expect(created.status).toBe(201);
    token = created.body.data.token;
    // A public dataset (a directory on this host, the agent's host) the user may mount.
    const data = path.join(dir, 'datasets', 'mini');
    mkdirSync(data, { recursive: true });
    writeFileSync(path.join(data, 'README'), 'a tiny dataset\n');
    expect((await api('POST', '/api/v1/admin/datasets', ADMIN, { name: 'mini', host_path: data })).status).toBe(201);
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    // Every data-confirm asks the browser's confirm(): accept it, as a user clicking OK.
    page.on('dialog', (d) => void d.accept());
  }, 300_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitUntil('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    if (dir) rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('signs in and adds an SSH key from the SSH keys page', async () => {
    await signIn(page, base(), token, 'en');
    expect(new URL(page.url()).pathname).toBe('/environments');
    await page.goto(`${base()}/ssh-keys`);
    await page.getByLabel('Name').fill('laptop');
    await page.getByLabel('Public key').fill(KEY);
    await page.getByRole('button', { name: 'Add key' }).click();
    await page.locator('#ssh-keys tr[data-key-id]').first().waitFor();
    expect(await page.locator('#ssh-keys').textContent()).toContain('laptop');
    await screenshot(page, 'user-ssh-keys');
    await expectNarrowFits('user-ssh-keys-390');
  });

  it('shows the 40902 message in the create form when nothing fits, with the free capacity as a hint', async () => {
    await page.goto(`${base()}/environments/new`);
    expect(await page.locator('#capacity').textContent()).toContain('10 × NVIDIA A40 free (at most 10 on one host)');
    await page.getByLabel('Name').fill('too-big');
    await page.getByLabel('GPUs').fill('12');
    await page.getByRole('button', { name: 'Create' }).click();
    const alert = page.locator('#create-error');
    await alert.waitFor({ state: 'visible' });
    expect(await alert.textContent()).toMatch(/\(40902\)$/);
    expect(new URL(page.url()).pathname).toBe('/environments/new');
    await screenshot(page, 'user-create-40902');
    await expectNarrowFits('user-create-40902-390');
  });

  it('creates a 2-GPU environment from the form and sees it reach running on the list without a reload', async () => {
    await page.goto(`${base()}/environments/new`);
    await page.getByLabel('Name').fill('browser-env');
    await page.getByLabel('CPU cores').fill('1');
    await page.getByLabel('Memory (GiB)').fill('0.5');
    await page.getByLabel('Storage (GiB)').fill('1');
    await page.getByLabel('GPUs').fill('2');
    await page.getByLabel('GPU model').selectOption('NVIDIA A40');
    await screenshot(page, 'user-create-form');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(/\/environments\/env-/);
    envId = new URL(page.url()).pathname.split('/').pop()!;
    const env = (await api('GET', `/api/v1/environments/${envId}`, token)).body.data;
    expect(env).toMatchObject({ name: 'browser-env', gpu: 2, gpu_model: 'NVIDIA A40', cpu: 1, memory: 512 * 2 ** 20, storage: 2 ** 30 });

    await page.goto(`${base()}/environments`);
    const row = `#environments tr[data-env-id="${envId}"]`;
    const first = await statusOf(page, `${row} .status`);
    // A mark that a reload would lose, and every status the row shows as the script updates it.
    // (Browser-side code as strings: the tests are compiled without the DOM types.)
    await page.evaluate(`(() => {
      window.notReloaded = true;
      window.seen = [];
      const badge = document.querySelector(${JSON.stringify(`${row} .status`)});
      new MutationObserver(() => window.seen.push(badge.getAttribute('data-status'))).observe(badge, { attributes: true, attributeFilter: ['data-status'] });
    })()`);
    await page.locator(`${row} .status[data-status="running"]`).waitFor({ timeout: LONG });
    const seen = (await page.evaluate('({ notReloaded: window.notReloaded, seen: window.seen ?? [] })')) as { notReloaded?: boolean; seen: string[] };
    console.log(`list: first rendered as ${first}, then updated in place to ${seen.seen.join(' → ') || '(already running)'}`);
    expect(seen.notReloaded).toBe(true);
    expect(await page.locator(`${row} .status`).textContent()).toBe('running');
    expect(await page.locator(`#ssh-${envId}`).textContent()).toMatch(/^ssh root@127\.0\.0\.1 -p 192\d\d$/);
    expect(await page.locator(`${row}`).textContent()).toContain('2 × NVIDIA A40');
    await screenshot(page, 'user-environments');
    await expectNarrowFits('user-environments-390');
  }, LONG + 60_000);

  it("follows the container's PID-1 log live on the environment's page", async () => {
    await page.getByRole('link', { name: 'browser-env' }).click();
    await page.waitForURL(`**/environments/${envId}`);
    await page.locator('#logs', { hasText: PID1_LINE }).waitFor({ timeout: LONG });
    expect(await statusOf(page, '#env-status')).toBe('running');
    expect(await page.locator('#ssh-command').textContent()).toMatch(/^ssh root@127\.0\.0\.1 -p 192\d\d$/);
    expect(await page.locator('#timeline li').count()).toBeGreaterThan(0);
    await screenshot(page, 'user-environment-detail');
    await expectNarrowFits('user-environment-detail-390');
  }, LONG + 30_000);

  it('opens the terminal, lists exactly its 2 GPU device nodes (and the control nodes), and exits', async () => {
    const db = platform.controller.database.db;
    const indexes = await db
      .selectFrom('gpu_reservations as r')
      .innerJoin('host_gpus as g', (j) => j.onRef('g.uuid', '=', 'r.gpu_uuid').onRef('g.host_id', '=', 'r.host_id'))
      .select('g.index')
      .where('r.env_id', '=', envId)
      .execute();
    expect(indexes).toHaveLength(2);
    // The agent passes the environment's /dev/nvidiaN and the control nodes every GPU process needs.
    const expected = [...indexes.map((g) => `/dev/nvidia${g.index}`), '/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools'].sort();
    await page.getByRole('button', { name: 'Open terminal' }).click();
    await page.locator('#terminal[data-state="open"]').waitFor();
    const rows = async () => (await page.locator('#terminal .xterm-rows > div').allTextContents()).map((row) => row.replace(/\u00a0/g, ' '));
    // The shell's prompt (root@env-…:~# ) first: typed ahead, the echo would mix with its banner.
    await waitUntil('shell prompt', async () => (await rows()).some((row) => row.trimEnd().endsWith('#')), 30_000);
    await page.keyboard.type('ls /dev/nvidia*');
    await page.keyboard.press('Enter');
    // What ls printed (in columns on a terminal): the /dev/nvidia… words on the rows after the command.
    const listed = async () => {
      const all = await rows();
      const at = all.findLastIndex((row) => row.includes('ls /dev/nvidia*'));
      return all
        .slice(at + 1)
        .flatMap((row) => row.split(/\s+/))
        .filter((word) => word.startsWith('/dev/nvidia'));
    };
    await waitUntil('ls output', async () => (await listed()).includes('/dev/nvidiactl'), 30_000);
    expect((await listed()).sort()).toEqual(expected);
    await screenshot(page, 'user-environment-terminal');
    // A flood of output: the page acknowledges what xterm.js processed (?flow=ack), the controller
    // holds the shell back while too much is unacknowledged, and the page stays responsive.
    const terminals = () => platform.controller.services.terminals.sessions.stats();
    expect(terminals()).toMatchObject({ sessions: 1, ackMode: 1 });
    await page.keyboard.type('yes | head -n 1000000; echo flood-$((40+2))');
    await page.keyboard.press('Enter');
    await waitUntil('the prompt after the flood', async () => {
      const all = await rows();
      const at = all.findLastIndex((row) => row.includes('flood-42') && !row.includes('echo'));
      return at >= 0 && all.slice(at + 1).some((row) => row.trimEnd().endsWith('#'));
    }, 60_000);
    expect(await page.evaluate(() => 6 * 7)).toBe(42); // a round trip through the page's main thread
    expect(await page.locator('#terminal').getAttribute('data-state')).toBe('open');
    const s = terminals();
    console.log(`yes | head -n 1000000 (2 MB) in the console's terminal: at most ${(s.maxQueuedBytes / 1024).toFixed(0)} KiB unacknowledged`);
    expect(s.maxQueuedBytes).toBeLessThan(4 * 2 ** 20);
    await waitUntil('all output acknowledged', () => terminals().queuedBytes === 0, 10_000);
    await page.keyboard.type('exit');
    await page.keyboard.press('Enter');
    await page.locator('#terminal[data-state="closed"]').waitFor();
    expect(await page.locator('#terminal-status').textContent()).toContain('shell exited with code 0');
  }, LONG);

  it('stops and starts it from the buttons (confirmed), the status following live', async () => {
    await page.locator('#action-stop').click();
    await page.locator('#env-status[data-status="stopped"]').waitFor({ timeout: LONG });
    expect((await api('GET', `/api/v1/environments/${envId}`, token)).body.data.status).toBe('stopped');
    expect(await page.locator('#action-start').isEnabled()).toBe(true);
    expect(await page.locator('#timeline').textContent()).toContain('status is now stopped');
    // A terminal needs a running environment: the ticket's 409 message shows under the button.
    await page.getByRole('button', { name: 'Open terminal' }).click();
    await page.locator('#terminal-error').waitFor({ state: 'visible' });
    expect(await page.locator('#terminal-error').textContent()).toMatch(/\(409\d\d\)$/);
    expect(await page.locator('#terminal').getAttribute('data-state')).toBe('closed');
    await page.locator('#action-start').click();
    await page.locator('#env-status[data-status="running"]').waitFor({ timeout: LONG });
    expect((await api('GET', `/api/v1/environments/${envId}`, token)).body.data.status).toBe('running');
  }, 2 * LONG);

  it('mounts a dataset from its page and unmounts it (confirmed)', async () => {
    await page.getByLabel('Mount path').fill('/data/mini');
    await page.getByRole('button', { name: 'Mount', exact: true }).click();
    await page.locator('#mounts', { hasText: '/data/mini' }).waitFor();
    const mounts = (await api('GET', `/api/v1/environments/${envId}/datasets`, token)).body.data.items;
    expect(mounts).toMatchObject([{ name: 'mini', mount_path: '/data/mini', readonly: true }]);
    // The running environment is recreated with the mount (data kept): the container sees the dataset.
    await waitUntil('dataset in the container', async () => (await inContainer(['cat', '/data/mini/README'])).stdout === 'a tiny dataset\n', LONG);
    await page.locator('#env-status[data-status="running"]').waitFor({ timeout: LONG });
    await screenshot(page, 'user-environment-detail-dataset');
    await page.getByRole('button', { name: 'Unmount: mini' }).click();
    await page.getByText('No datasets mounted.').waitFor();
    expect((await api('GET', `/api/v1/environments/${envId}/datasets`, token)).body.data.items).toEqual([]);
    await waitUntil('dataset gone from the container', async () => (await inContainer(['ls', '/data/mini/README'])).exitCode !== 0, LONG);
    await page.locator('#env-status[data-status="running"]').waitFor({ timeout: LONG });
  }, 2 * LONG);

  it('deletes it from its page (confirmed) and goes back to the list', async () => {
    await page.locator('#action-delete').click();
    await page.waitForURL(`${base()}/environments`);
    expect(await page.locator(`#environments tr[data-env-id="${envId}"]`).count()).toBe(0);
    expect((await api('GET', `/api/v1/environments/${envId}`, token)).status).toBe(404);
  });
});
