import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, dockerExec, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// Storage usage on the real platform (controller, agent, Docker, loop volumes; embedded PGlite):
// what is written to the data path shows as storage_used (statfs of the environment's ext4 volume),
// what is written elsewhere as rootfs_used (docker inspect --size, measured within 10 s of a start);
// a container that starts over REMOTEGPU_ROOTFS_LIMIT gets the grace notice naming its data path.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-usage-admin-token-0123456789ab';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const MIB = 2 ** 20;

describe.skipIf(!hasDocker)('storage usage on one machine', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let envId = '';
  const api = restCaller(() => platform.controller.httpUrl);
  const env = async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data;
  const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => waitUntil(what, check, timeoutMs, undefined, 250);
  const sh = async (cmd: string) => {
    const r = await dockerExec(docker, `remotegpu-${envId}`, ['sh', '-c', cmd]);
    expect(r.exitCode, r.stderr).toBe(0);
  };
  const restart = async () => {
    const started = (await env()).started_at;
    expect((await api('POST', `/api/v1/environments/${envId}/restart`, ADMIN)).status).toBe(200);
    await waitFor('running again', async () => {
      const e = await env();
      return e.status === 'running' && e.started_at !== started;
    });
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-usage-'));
    platform = await startLocalPlatform(
      {
        PATH: process.env.PATH,
        REMOTEGPU_DATA_DIR: path.join(dir, 'data'),
        REMOTEGPU_RUN_DIR: runDir,
        REMOTEGPU_HTTP_PORT: '0',
        REMOTEGPU_GRPC_PORT: '0',
        REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
        REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_NAMESPACE: `e2e-usage-${process.pid}`,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_SSH_PORT_RANGE: '32400-32449',
        REMOTEGPU_JUPYTER_PORT_RANGE: '32450-32499',
        REMOTEGPU_ROOTFS_LIMIT: String(100 * MIB),
      },
      createLogger({ name: 'e2e-usage', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const res = await api('POST', '/api/v1/environments', ADMIN, { name: 'usage', image: 'devbox:1', cpu: 1, memory: 512 * MIB, gpu: 0, storage: 2 ** 30 });
    expect(res.status).toBe(201);
    envId = res.body.data.env_id;
    await waitFor('running', async () => (await env()).status === 'running', 120_000);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitFor('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(`e2e-usage-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('shows what is written to the data path as storage_used and elsewhere as rootfs_used', async () => {
    await waitFor('first figures', async () => (await env()).storage_used !== null && (await env()).rootfs_used !== null, 30_000);
    const before = await env();
    await sh('dd if=/dev/zero of=/root/workspace/data.bin bs=1048576 count=30 2>/dev/null && sync');
    await sh('dd if=/dev/zero of=/tmp/scratch.bin bs=1048576 count=20 2>/dev/null');
    await waitFor('storage_used grows by 30 MiB', async () => (await env()).storage_used >= before.storage_used + 30 * MIB, 20_000);
    // The writable layer is measured within 10 s of a start, then once a minute: a restart measures it soon.
    await restart();
    await waitFor('rootfs_used grows by 20 MiB', async () => (await env()).rootfs_used >= before.rootfs_used + 20 * MIB, 30_000);
    const after = await env();
    expect(after.storage_used).toBeLessThan(before.storage_used + 40 * MIB);
    expect(after.rootfs_used).toBeLessThan(before.rootfs_used + 25 * MIB);
    expect(Date.parse(after.usage_measured_at)).toBeGreaterThan(Date.now() - 60_000);
  }, 120_000);

  it('gives a container that starts over REMOTEGPU_ROOTFS_LIMIT the grace notice, naming its data path', async () => {
    await sh('dd if=/dev/zero of=/tmp/more.bin bs=1048576 count=90 2>/dev/null');
    await restart();
    const notice = 'over its 100 MiB limit (REMOTEGPU_ROOTFS_LIMIT); files outside /root/workspace count against it. Delete some within 5 minutes';
    await waitFor('the grace notice in the logs', async () => {
      const logs = (await api('GET', `/api/v1/environments/${envId}/logs?lines=100`, ADMIN)).body.data.logs as string[];
      return logs.some((l) => l.includes(notice));
    });
    expect((await env()).status).toBe('running');
    expect((await env()).rootfs_used).toBeGreaterThanOrEqual(100 * MIB);
  }, 120_000);
});
