import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { platformEnvAt, startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { cliHome, cliShim, runCli, type CliOptions } from '../helpers/cli.js';
import { bashComplete } from '../helpers/completion.js';

// `remotegpu images|datasets|admin …` as an operator runs them: the real CLI process against the
// real platform (controller, agent, Docker, PGlite; ten fake A40s). Ports 19900-19999.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'rgpu_e2e-cli-admin-token-0123456789abcd';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const NAMESPACE = `e2e-cli-admin-${process.pid}`;
const MIB = 2 ** 20;

/**
 * A host's JSON without what each agent report (every 500 ms here) changes, so the CLI's answer and
 * the API's, fetched a moment apart, compare: the report time, free disk, GPU readings.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function steady(host: any): unknown {
  const copy = structuredClone(host);
  expect(typeof copy.last_report_at).toBe('string');
  delete copy.last_report_at;
  delete copy.disk_free_bytes;
  for (const g of copy.gpus ?? []) {
    delete g.memory_used_bytes;
    delete g.utilization_percent;
    delete g.temperature_c;
  }
  return copy;
}

describe.skipIf(!hasDocker)('remotegpu admin, images, datasets on the real platform', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let home = '';
  let envId = '';
  const api = restCaller(() => platform.controller.httpUrl);
  /** The CLI with the controller and a token from REMOTEGPU_URL/REMOTEGPU_TOKEN (no login). */
  const cli = (args: string[], token = ADMIN, options: CliOptions = {}) =>
    runCli(home, args, { ...options, env: { REMOTEGPU_URL: platform.controller.httpUrl, REMOTEGPU_TOKEN: token, ...options.env } });
  const apiHost = async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body.data.items[0];
  /** The table's row of the only host (header first). */
  const hostRow = async () => {
    const run = await cli(['admin', 'hosts']);
    expect(run.code).toBe(0);
    const [header, row, ...rest] = run.stdout.trimEnd().split('\n');
    expect(rest).toEqual([]);
    expect(header).toMatch(/^NAME\s+ID\s+STATUS\s+GPUS\s+CPU\s+MEMORY\s+ENVS\s+AGENT$/);
    return row!;
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-cli-admin-'));
    home = cliHome();
    platform = await startLocalPlatform(
      platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_AUTH_CACHE_MS: '0',
        REMOTEGPU_SSH_PORT_RANGE: '19900-19949',
        REMOTEGPU_JUPYTER_PORT_RANGE: '19950-19999',
      }),
      createLogger({ name: 'e2e-cli-admin', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitUntil('host registered with its GPUs', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.[0]?.gpu_count === 10, 60_000);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitUntil('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('admin hosts: one row per host with GPUs used/total per model; --json is the API\'s items', async () => {
    const host = await apiHost();
    const row = await hostRow();
    expect(row).toContain(host.hostname);
    expect(row).toContain(host.host_id);
    expect(row).toMatch(/\bonline\b/);
    expect(row).toContain(' 0/10 A40 ');
    expect(row).toContain(` 0/${host.cpu_total} `);
    expect(row).toContain(host.agent_version);

    const json = await cli(['admin', 'hosts', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).map(steady)).toEqual((await api('GET', '/api/v1/admin/hosts', ADMIN)).body.data.items.map(steady));
  });

  it('shows 2/10 once an environment holds two GPUs, and host get names the environment on each', async () => {
    const res = await api('POST', '/api/v1/environments', ADMIN, { name: 'cli-admin', image: 'devbox:1', cpu: 1, memory: 512 * MIB, gpu: 2, storage: 2 ** 30 });
    expect(res.status).toBe(201);
    envId = res.body.data.env_id;
    await waitUntil('GPUs reserved', async () => (await apiHost()).gpus_allocated === 2, 60_000);
    const row = await hostRow();
    expect(row).toContain(' 2/10 A40 ');
    expect(row).toMatch(/ 1 +\S+$/); // ENVS, then AGENT

    const host = await apiHost();
    const get = await cli(['admin', 'host', 'get', host.hostname]);
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(new RegExp(`^id:\\s+${host.host_id}$`, 'm'));
    expect(get.stdout.split('\n').filter((l) => l.endsWith(` ${envId}`))).toHaveLength(2);
    const json = await cli(['admin', 'host', 'get', host.host_id, '--json']);
    expect(steady(JSON.parse(json.stdout))).toEqual(steady((await api('GET', `/api/v1/admin/hosts/${host.host_id}`, ADMIN)).body.data));
  });

  it('cordon, drain and uncordon by name or id change what the API shows', async () => {
    const host = await apiHost();
    const cordon = await cli(['admin', 'host', 'cordon', host.hostname]);
    expect(cordon.code).toBe(0);
    expect(cordon.stderr).toContain(`${host.hostname} (${host.host_id}) takes no new environments`);
    expect((await apiHost()).status).toBe('cordoned');
    expect(await hostRow()).toMatch(/\bcordoned\b/);
    expect((await cli(['admin', 'host', 'drain', host.host_id])).code).toBe(0);
    expect((await apiHost()).status).toBe('draining');
    expect((await cli(['admin', 'host', 'uncordon', host.hostname])).code).toBe(0);
    expect((await apiHost()).status).toBe('online');

    const unknown = await cli(['admin', 'host', 'cordon', 'no-such-host']);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toBe('remotegpu: no host named or with id "no-such-host" (see `remotegpu admin hosts`)\n');
  });

  it('users create + tokens create give a token that works; only the token is on stdout; revoke ends it', async () => {
    const created = await cli(['admin', 'users', 'create', 'cli-alice', '--email', 'alice@example.com']);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^role:\s+user$/m);
    const ops = await cli(['admin', 'users', 'create', 'cli-ops', '--admin', '--json']);
    expect(JSON.parse(ops.stdout)).toMatchObject({ name: 'cli-ops', role: 'admin', email: null });
    const users = await cli(['admin', 'users', 'ls', '--json']);
    expect(JSON.parse(users.stdout)).toEqual((await api('GET', '/api/v1/admin/users?page_size=100', ADMIN)).body.data.items);
    const alice = JSON.parse(users.stdout).find((u: { name: string }) => u.name === 'cli-alice');

    const token = await cli(['admin', 'tokens', 'create', 'cli-alice', '--name', 'laptop']);
    expect(token.code).toBe(0);
    expect(token.stdout).toMatch(/^rgpu_\S+\n$/);
    expect(token.stderr).toContain('shown only this once');
    expect(token.stderr).not.toContain(token.stdout.trim());
    const secret = token.stdout.trim();
    const whoami = await cli(['whoami', '--json'], secret);
    expect(whoami.code).toBe(0);
    expect(JSON.parse(whoami.stdout).user.name).toBe('cli-alice');

    const list = await cli(['admin', 'tokens', 'ls', String(alice.id), '--json']);
    const tokens = JSON.parse(list.stdout);
    expect(tokens).toEqual((await api('GET', `/api/v1/admin/users/${alice.id}/tokens`, ADMIN)).body.data.items);
    expect(tokens.map((t: { name: string }) => t.name)).toEqual(['laptop']);
    expect(secret.startsWith(tokens[0].prefix)).toBe(true);
    const table = await cli(['admin', 'tokens', 'ls', 'cli-alice']);
    expect(table.stdout).not.toContain(secret);

    const revoke = await cli(['admin', 'tokens', 'revoke', 'cli-alice', String(tokens[0].id)]);
    expect(revoke.code).toBe(0);
    expect((await cli(['whoami'], secret)).code).toBe(3);
  });

  it('refuses a non-admin with exit 3 and the API\'s message on one line; bad input changes nothing', async () => {
    expect((await cli(['admin', 'users', 'create', 'cli-bob'])).code).toBe(0);
    const bob = (await cli(['admin', 'tokens', 'create', 'cli-bob'])).stdout.trim();
    for (const args of [['admin', 'hosts'], ['admin', 'host', 'cordon', 'x'], ['admin', 'users', 'ls'], ['admin', 'tokens', 'create', 'cli-bob']]) {
      const run = await cli(args, bob);
      expect(run.code).toBe(3);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^remotegpu: [^\n]*admin[^\n]*\n$/i);
    }
    const before = (await api('GET', '/api/v1/admin/users?page_size=100', ADMIN)).body.data.items;
    const badName = await cli(['admin', 'users', 'create', 'bad name!']);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/^remotegpu: invalid request: name: must be 1 to 64 characters[^\n]*\n$/);
    const badDays = await cli(['admin', 'tokens', 'create', 'cli-bob', '--expires-in-days', 'soon']);
    expect(badDays.code).toBe(2);
    expect((await cli(['admin', 'tokens', 'create', 'nobody'])).code).toBe(4);
    expect((await api('GET', '/api/v1/admin/users?page_size=100', ADMIN)).body.data.items).toEqual(before);
  });

  it('images and datasets --json are the API\'s items; the tables name them', async () => {
    const images = await cli(['images', '--json']);
    expect(images.code).toBe(0);
    expect(JSON.parse(images.stdout)).toEqual((await api('GET', '/api/v1/images?page_size=100', ADMIN)).body.data.items);
    expect((await cli(['images'])).stdout).toMatch(/^devbox:1\s/m);

    const created = await api('POST', '/api/v1/admin/datasets', ADMIN, { name: 'cli-imagenet', host_path: path.join(dir, 'imagenet'), description: 'the pictures' });
    expect(created.status).toBe(201);
    const datasets = await cli(['datasets', '--json']);
    expect(JSON.parse(datasets.stdout)).toEqual((await api('GET', '/api/v1/datasets?page_size=100', ADMIN)).body.data.items);
    expect((await cli(['datasets'])).stdout).toMatch(/\bcli-imagenet\s+public\s+read-only\b.*the pictures$/m);
  });

  it('bash completion offers environment, host and user names from the controller', async () => {
    const script = path.join(dir, 'remotegpu.bash');
    writeFileSync(script, (await cli(['completion', 'bash'])).stdout);
    const env = { PATH: `${cliShim(dir)}:${process.env.PATH}`, HOME: home, REMOTEGPU_URL: platform.controller.httpUrl, REMOTEGPU_TOKEN: ADMIN };
    const host = await apiHost();
    expect(await bashComplete(script, ['remotegpu', 'admin', 'host', 'cordon', ''], env)).toEqual([host.hostname]);
    expect(await bashComplete(script, ['remotegpu', 'admin', 'tokens', 'ls', 'cli-a'], env)).toEqual(['cli-alice']);
    expect(await bashComplete(script, ['remotegpu', 'ssh', 'cli-'], env)).toEqual(['cli-admin']);
    // A controller that cannot be reached: nothing offered, no error on the terminal.
    expect(await bashComplete(script, ['remotegpu', 'admin', 'host', 'get', ''], { ...env, REMOTEGPU_URL: 'http://127.0.0.1:9' })).toEqual([]);
  });
});
