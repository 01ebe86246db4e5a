import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// What a dockerd restart does to an environment, without restarting the shared dockerd: the
// daemon stops every container on its way down (the environment's container exits, the observer
// marks it `error`), and on its way up starts again those whose restart policy says so
// (unless-stopped, docker-spec.ts). Here `docker kill` makes the container exit the way the
// daemon's shutdown does, and `docker start` starts it again as the restart policy would: the
// environment must come back to `running` by itself, with an event and its reason cleared, the
// same container (nothing recreated). A container whose process dies without Docker being asked
// (kill -9 from the host) is started again by its restart policy alone, and ends `running` too.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-recover-admin-token-0123456789ab';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const MIB = 2 ** 20;
const NAMESPACE = `e2e-recover-${process.pid}`;

describe.skipIf(!hasDocker)('an environment whose container Docker started again', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let envId = '';
  const api = restCaller(() => platform.controller.httpUrl);
  const env = async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data;
  const logs = async () => JSON.stringify((await api('GET', `/api/v1/environments/${envId}/logs?lines=200`, ADMIN)).body.data);
  const container = () => docker.getContainer(`remotegpu-${envId}`);
  const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => waitUntil(what, check, timeoutMs, undefined, 250);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-recover-'));
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
        REMOTEGPU_NAMESPACE: NAMESPACE,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_SSH_PORT_RANGE: '31200-31249',
        REMOTEGPU_JUPYTER_PORT_RANGE: '31250-31299',
      },
      createLogger({ name: 'e2e-recover', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const res = await api('POST', '/api/v1/environments', ADMIN, { name: 'recover', image: 'devbox:1', cpu: 1, memory: 512 * MIB, gpu: 1, storage: 2 ** 30 });
    expect(res.status).toBe(201);
    envId = res.body.data.env_id;
    await waitFor('running', async () => (await env()).status === 'running', 120_000);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitFor('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('gets restart policy unless-stopped, which a daemon restart honours', async () => {
    const info = await container().inspect();
    expect(info.HostConfig.RestartPolicy?.Name).toBe('unless-stopped');
  });

  it('comes back to running from error when its exited container is started again', async () => {
    const before = await container().inspect();
    await container().kill();
    await waitFor('error after the exit', async () => (await env()).status === 'error', 30_000);
    expect((await env()).status_reason).toMatch(/^container exited with code \d+$/);

    await container().start();
    await waitFor('running again', async () => (await env()).status === 'running', 30_000);
    const after = await env();
    expect(after.status_reason).toBe('');
    expect(await logs()).toContain('Container running again after it exited with code');
    // The same container, checked against its spec, not recreated.
    const info = await container().inspect();
    expect(info.Id).toBe(before.Id);
    expect(info.State.Running).toBe(true);
  }, 90_000);

  it('ends running when its process is killed behind Docker’s back and the restart policy starts it', async () => {
    const before = await container().inspect();
    const exits = (text: string) => text.split('Container exited with code').length - 1;
    const exitsBefore = exits(await logs());
    process.kill(before.State.Pid, 'SIGKILL');
    await waitFor('Docker started it again', async () => {
      const info = await container().inspect();
      return info.State.Running && info.State.StartedAt !== before.State.StartedAt;
    }, 30_000);
    expect((await container().inspect()).RestartCount).toBeGreaterThanOrEqual(1);
    await waitFor('the agent reported the exit', async () => exits(await logs()) > exitsBefore, 30_000);
    // Whether or not a report caught it exited in between (then `error`), it ends running.
    await waitFor('running', async () => (await env()).status === 'running', 30_000);
    expect((await container().inspect()).Id).toBe(before.Id);
  }, 90_000);
});
