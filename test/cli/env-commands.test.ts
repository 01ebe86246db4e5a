import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, freePort, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { platformEnvAt, startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { cliHome, cliLogin, runCli, type CliRun } from '../helpers/cli.js';

// `remotegpu env ...` (issue 14 item 2): the real CLI process against the real platform
// (controller, agent, Docker, PGlite, fake GPUs). SSH/Jupyter ports 19800-19899.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('CLI env tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'cli-env-admin-token-0123456789abcdef';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const NAMESPACE = `e2e-cli-env-${process.pid}`;
/** Fields the platform refreshes on its own between two reads (usage measured at each report). */
const VOLATILE = ['storage_used', 'rootfs_used', 'usage_measured_at'] as const;

/** One line on stderr, `remotegpu: ...`, for every refused call. */
const oneErrorLine = (run: CliRun) => {
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^remotegpu: /);
};
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const stable = (env: any) => Object.fromEntries(Object.entries(env).filter(([k]) => !(VOLATILE as readonly string[]).includes(k)));

describe.skipIf(!hasDocker)('remotegpu env commands against a running platform', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let home = '';
  let token = '';
  let userId = 0;
  let envId = '';
  const api = restCaller(() => platform.controller.httpUrl);
  const cli = (args: string[], options: Parameters<typeof runCli>[2] = {}) => runCli(home, args, { timeoutMs: 180_000, ...options });
  const mine = async () => (await api('GET', '/api/v1/environments?page_size=100', token)).body.data.items as { env_id: string; name: string }[];
  const status = async () => (await api('GET', `/api/v1/environments/${envId}`, token)).body.data?.status;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-cli-env-'));
    mkdirSync(path.join(dir, 'datasets/imagenet'), { recursive: true });
    platform = await startLocalPlatform(
      platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_AUTH_CACHE_MS: '0',
        REMOTEGPU_SSH_PORT_RANGE: '19800-19849',
        REMOTEGPU_JUPYTER_PORT_RANGE: '19850-19899',
        REMOTEGPU_DATASET_ROOTS: path.join(dir, 'datasets'),
      }),
      createLogger({ name: 'e2e-cli-env', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitUntil('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const user = await api('POST', '/api/v1/admin/users', ADMIN, { name: 'cli-alice' });
    expect(user.status).toBe(201);
    userId = user.body.data.id;
    token = (await api('POST', `/api/v1/admin/users/${userId}/tokens`, ADMIN, { name: 'laptop' })).body.data.token;
    expect((await api('POST', '/api/v1/admin/datasets', ADMIN, { name: 'imagenet', host_path: path.join(dir, 'datasets/imagenet') })).status).toBe(201);
    home = cliHome();
    await cliLogin(home, platform.controller.httpUrl, token);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, token).catch(() => {});
    await waitUntil('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.managed=${NAMESPACE}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    for (const d of [dir, home]) if (d) rmSync(d, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('refuses wrong units before any request: exit 2, one line, no environment', async () => {
    const run = await cli(['env', 'create', 'dev', '--image', 'devbox:1', '--cpu', '1', '--memory', '16GG']);
    expect(run.code).toBe(2);
    oneErrorLine(run);
    expect(run.stderr).toContain('--memory "16GG" is not a size');
    expect(await mine()).toEqual([]);
  });

  it('says an unknown environment is not found: exit 4, by name and by id', async () => {
    for (const ref of ['nope', 'env-doesnotexist']) {
      const run = await cli(['env', 'get', ref]);
      expect(run.code).toBe(4);
      oneErrorLine(run);
    }
  });

  it('says an unreachable controller is unreachable: exit 6, and creates nothing', async () => {
    const closed = await freePort();
    const env = { REMOTEGPU_URL: `http://127.0.0.1:${closed}`, REMOTEGPU_TOKEN: token };
    const ls = await cli(['env', 'ls'], { env });
    expect(ls.code).toBe(6);
    oneErrorLine(ls);
    expect(ls.stderr).toContain(`cannot reach the controller at http://127.0.0.1:${closed}`);
    const create = await cli(['env', 'create', 'dev', '--image', 'devbox:1', '--cpu', '1', '--memory', '512Mi'], { env });
    expect(create.code).toBe(6);
    oneErrorLine(create);
    expect(await mine()).toEqual([]);
  });

  it('says a revoked token is refused: exit 3, one line', async () => {
    const other = (await api('POST', `/api/v1/admin/users/${userId}/tokens`, ADMIN, { name: 'old' })).body.data;
    expect((await api('DELETE', `/api/v1/admin/users/${userId}/tokens/${other.id}`, ADMIN)).status).toBe(204);
    const env = { REMOTEGPU_URL: platform.controller.httpUrl, REMOTEGPU_TOKEN: other.token };
    for (const args of [['env', 'ls'], ['env', 'create', 'dev', '--image', 'devbox:1', '--cpu', '1', '--memory', '512Mi']]) {
      const run = await cli(args, { env });
      expect(run.code).toBe(3);
      oneErrorLine(run);
      expect(run.stderr).toContain('remotegpu login');
    }
    expect(await mine()).toEqual([]);
  });

  it('says an expired token is refused: exit 3, one line, nothing created', async () => {
    const other = (await api('POST', `/api/v1/admin/users/${userId}/tokens`, ADMIN, { name: 'expiring', expires_in_days: 1 })).body.data;
    // A day is the shortest expiry the API gives: the token's day is made to have passed.
    await platform.controller.database.db.updateTable('api_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', other.id).execute();
    const env = { REMOTEGPU_URL: platform.controller.httpUrl, REMOTEGPU_TOKEN: other.token };
    for (const args of [['whoami'], ['env', 'create', 'dev', '--image', 'devbox:1', '--cpu', '1', '--memory', '512Mi']]) {
      const run = await cli(args, { env });
      expect(run.code).toBe(3);
      oneErrorLine(run);
      expect(run.stderr).toMatch(/expired/);
    }
    expect(await mine()).toEqual([]);
  });

  it('creates with --wait: a status line per change on stderr, exit 0 once running', async () => {
    const run = await cli(['env', 'create', 'dev', '--image', 'devbox:1', '--gpu', '2', '--gpu-model', 'A40', '--cpu', '1', '--memory', '512Mi', '--storage', '1Gi', '--wait']);
    expect(run.stderr).toMatch(/^dev \(env-[a-z0-9]+\): running$/m);
    expect(run.code).toBe(0);
    envId = /^id: +(env-\S+)$/m.exec(run.stdout)![1]!;
    expect(run.stdout).toMatch(/^status: +running$/m);
    expect(run.stdout).toMatch(/^gpu: +2×A40$/m);
    expect(run.stdout).toMatch(/^ssh: +ssh root@\S+ -p 198\d\d$/m);
    const detail = (await api('GET', `/api/v1/environments/${envId}`, token)).body.data;
    expect(detail).toMatchObject({ name: 'dev', status: 'running', gpu: 2, cpu: 1, memory: 512 * 2 ** 20, storage: 2 ** 30 });
  }, 180_000);

  it('ls and get: --json is the API\'s data; the table has the columns', async () => {
    // Settled: the agent reports the host keys shortly after sshd has them (then nothing changes but usage).
    await waitUntil('host keys reported', async () => (await api('GET', `/api/v1/environments/${envId}`, token)).body.data.access_info.ssh_host_keys.length > 0, 30_000);
    const ls = await cli(['env', 'ls', '--json']);
    expect(ls.code).toBe(0);
    const get = await cli(['env', 'get', 'dev', '--json']);
    expect(get.code).toBe(0);
    const items = (await api('GET', '/api/v1/environments?page_size=100', token)).body.data.items;
    expect(JSON.parse(ls.stdout).map(stable)).toEqual(items.map(stable));
    expect(stable(JSON.parse(get.stdout))).toEqual(stable((await api('GET', `/api/v1/environments/${envId}`, token)).body.data));
    const running = await cli(['env', 'ls', '--status', 'running']);
    expect(running.stdout.split('\n')[0]).toMatch(/^NAME +ID +STATUS +GPU +CPU +MEMORY +STORAGE +SSH +AGE$/);
    expect(running.stdout).toMatch(new RegExp(`^dev +${envId} +running +2×A40 +1 +512 MiB +1 GiB +\\S+:198\\d\\d +\\d+[smh]$`, 'm'));
    expect(JSON.parse((await cli(['env', 'ls', '--status', 'stopped', '--json'])).stdout)).toEqual([]);
    const bad = await cli(['env', 'ls', '--status', 'sleeping']);
    expect(bad.code).toBe(2);
    oneErrorLine(bad);
  });

  it('logs -n prints the last lines', async () => {
    const run = await cli(['env', 'logs', 'dev', '-n', '3']);
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThanOrEqual(3);
    for (const line of lines) expect(line).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] /);
  });

  it('logs -f receives a line written later (a restart\'s events) and ends with 130 on Ctrl-C', async () => {
    let streaming = false;
    let interrupted = false;
    const follow = cli(['env', 'logs', 'dev', '-n', '1', '-f'], {
      killSignal: 'SIGINT',
      onStdout: (soFar) => {
        streaming = true;
        if (interrupted || !soFar.includes('Restart requested')) return false;
        return (interrupted = true);
      },
    });
    await waitUntil('the follow printed its first line', () => streaming, 30_000);
    const restart = await cli(['env', 'restart', 'dev', '--wait']);
    expect(restart.code).toBe(0);
    expect(restart.stderr).toMatch(/: running$/m);
    const run = await follow;
    expect(run.stdout).toMatch(/^\[[^\]]+\] Restart requested$/m);
    expect(run.code).toBe(130);
  }, 120_000);

  it('stop --wait, then start --gpu 1 --wait', async () => {
    const stop = await cli(['env', 'stop', 'dev', '--wait']);
    expect(stop.code).toBe(0);
    expect(stop.stderr).toMatch(/: stopped$/m);
    expect(await status()).toBe('stopped');
    const start = await cli(['env', 'start', 'dev', '--gpu', '1', '--wait', '--json']);
    expect(start.code).toBe(0);
    expect(JSON.parse(start.stdout)).toMatchObject({ env_id: envId, status: 'running', gpu: 1 });
    expect(await status()).toBe('running');
  }, 120_000);

  it('mount, mounts --json (the API\'s items), unmount', async () => {
    const mount = await cli(['env', 'mount', 'dev', 'imagenet', '--at', '/data/imagenet']);
    expect(mount.code).toBe(0);
    const mounts = await cli(['env', 'mounts', 'dev', '--json']);
    const items = (await api('GET', `/api/v1/environments/${envId}/datasets`, token)).body.data.items;
    expect(items).toMatchObject([{ name: 'imagenet', mount_path: '/data/imagenet', readonly: true }]);
    expect(JSON.parse(mounts.stdout)).toEqual(items);
    expect((await cli(['env', 'mounts', 'dev'])).stdout).toMatch(/^imagenet +\d+ +\/data\/imagenet +ro /m);
    const unknown = await cli(['env', 'mount', 'dev', 'nope', '--at', '/data/nope']);
    expect(unknown.code).toBe(4);
    oneErrorLine(unknown);
    expect((await cli(['env', 'unmount', 'dev', 'imagenet'])).code).toBe(0);
    expect((await api('GET', `/api/v1/environments/${envId}/datasets`, token)).body.data.items).toEqual([]);
  }, 60_000);

  it('rm refuses without a terminal or --yes; rm --yes --wait deletes it and ends a follow with exit 0', async () => {
    const refused = await cli(['env', 'rm', 'dev']);
    expect(refused.code).toBe(2);
    oneErrorLine(refused);
    expect(refused.stderr).toContain('--yes');
    expect(await status()).not.toBeUndefined();
    let streaming = false;
    const follow = cli(['env', 'logs', 'dev', '-n', '1', '-f'], { onStdout: () => ((streaming = true), false) });
    await waitUntil('the follow printed its first line', () => streaming, 30_000);
    const rm = await cli(['env', 'rm', 'dev', '--yes', '--wait']);
    expect(rm.code).toBe(0);
    expect((await api('GET', `/api/v1/environments/${envId}`, token)).status).toBe(404);
    const ended = await follow;
    expect(ended.stdout).toMatch(/Delete requested$/m);
    expect(ended.stderr).toContain('The log stream ended: environment deleted.');
    expect(ended.code).toBe(0);
    const gone = await cli(['env', 'stop', envId]);
    expect(gone.code).toBe(4);
    oneErrorLine(gone);
    envId = '';
  }, 60_000);
});
