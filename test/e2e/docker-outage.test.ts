import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// A Docker engine that goes away and comes back, without restarting the shared dockerd: the agent
// talks to Docker through a unix-socket proxy this test closes (every connection cut, the event
// stream included; new ones refused) and opens again. During the outage the agent keeps
// reporting (flagged: runtime unavailable), so the host stays online past the host timeout and no
// environment changes status. Meanwhile the real engine does what a restart does to containers:
// one environment was stopped just before (it went `error`) and is started again by the restart
// policy, one is killed and restarted by its policy, one is stopped and not started again. After
// the proxy is back every environment ends `running` with its container running; the time it
// takes is printed. The real dockerd restart runs in the fault suite (test/faults/).

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-docker-outage-admin-token-0123456';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const MIB = 2 ** 20;
const NAMESPACE = `e2e-docker-outage-${process.pid}`;
const HOST_TIMEOUT_MS = 5_000;

/** A unix socket forwarding to the real Docker socket, that can be closed (Docker "down") and opened again. */
class DockerSocketProxy {
  private server: Server | undefined;
  private readonly open = new Set<Socket>();

  constructor(
    readonly socketPath: string,
    private readonly target = '/var/run/docker.sock',
  ) {}

  async up(): Promise<void> {
    const server = createServer((client) => {
      const engine = connect(this.target);
      for (const s of [client, engine]) {
        this.open.add(s);
        s.on('close', () => this.open.delete(s));
        s.on('error', () => {
          client.destroy();
          engine.destroy();
        });
      }
      client.pipe(engine).pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.socketPath, resolve));
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.open) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(this.socketPath, { force: true });
  }
}

describe.skipIf(!hasDocker)('a Docker engine that goes away and comes back', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let proxy: DockerSocketProxy;
  const ids: Record<'untouched' | 'policyRestarted' | 'notRestarted' | 'errored', string> = { untouched: '', policyRestarted: '', notRestarted: '', errored: '' };
  const api = restCaller(() => platform.controller.httpUrl);
  const env = async (id: string) => (await api('GET', `/api/v1/environments/${id}`, ADMIN)).body.data;
  const host = async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body.data.items[0];
  const logs = async (id: string) => JSON.stringify((await api('GET', `/api/v1/environments/${id}/logs?lines=200`, ADMIN)).body.data);
  const container = (id: string) => docker.getContainer(`remotegpu-${id}`);
  const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => waitUntil(what, check, timeoutMs, undefined, 100);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-docker-outage-'));
    proxy = new DockerSocketProxy(path.join(dir, 'docker.sock'));
    await proxy.up();
    platform = await startLocalPlatform(
      {
        PATH: process.env.PATH,
        DOCKER_HOST: `unix://${proxy.socketPath}`,
        REMOTEGPU_DATA_DIR: path.join(dir, 'data'),
        REMOTEGPU_RUN_DIR: runDir,
        REMOTEGPU_HTTP_PORT: '0',
        REMOTEGPU_GRPC_PORT: '0',
        REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
        REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_NAMESPACE: NAMESPACE,
        REMOTEGPU_REPORT_INTERVAL_MS: '2000',
        // Four environments of one core each on a small CI machine (cores are reserved, not pinned).
        REMOTEGPU_CPU_CORES: '8',
        REMOTEGPU_HOST_TIMEOUT_MS: String(HOST_TIMEOUT_MS),
        REMOTEGPU_SSH_PORT_RANGE: '29900-29949',
        REMOTEGPU_JUPYTER_PORT_RANGE: '29950-29999',
      },
      createLogger({ name: 'e2e-docker-outage', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    for (const name of Object.keys(ids) as (keyof typeof ids)[]) {
      const res = await api('POST', '/api/v1/environments', ADMIN, { name: name.toLowerCase(), image: 'devbox:1', cpu: 1, memory: 256 * MIB, gpu: 1, storage: 2 ** 30 });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      ids[name] = res.body.data.env_id;
    }
    for (const id of Object.values(ids)) await waitFor(`${id} running`, async () => (await env(id)).status === 'running', 120_000);
  }, 300_000);

  afterAll(async () => {
    await proxy?.up().catch(() => {});
    for (const id of Object.values(ids)) if (id) await api('DELETE', `/api/v1/environments/${id}`, ADMIN).catch(() => {});
    await waitFor('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.managed=${NAMESPACE}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await proxy?.down();
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('keeps the host online and the environments as they were during the outage, and converges after it', async () => {
    // The engine stops one container on its way down; the agent still sees that one exit.
    await container(ids.errored).kill();
    await waitFor('errored in error', async () => (await env(ids.errored)).status === 'error', 30_000);
    const startedBefore = (await logs(ids.notRestarted)).split('Container started').length;

    const outageStarted = Date.now();
    await proxy.down();
    await waitFor('the agent reported its runtime unavailable', async () => (await host()).runtime_error !== '', 30_000);
    expect((await host()).runtime_unavailable_since).not.toBeNull();
    // What the restart does behind the agent's back: a process killed and started again by the
    // restart policy, a container stopped and not started again, the errored one started again.
    const before = await container(ids.policyRestarted).inspect();
    process.kill(before.State.Pid, 'SIGKILL');
    await container(ids.notRestarted).kill();
    await container(ids.errored).start();
    await waitFor('Docker started it again', async () => {
      const info = await container(ids.policyRestarted).inspect();
      return info.State.Running && info.State.StartedAt !== before.State.StartedAt;
    }, 30_000);
    // The outage outlasts the host timeout.
    await new Promise((r) => setTimeout(r, Math.max(0, outageStarted + HOST_TIMEOUT_MS + 2_000 - Date.now())));
    expect((await host()).status).toBe('online');
    expect((await env(ids.untouched)).status).toBe('running');
    expect((await env(ids.policyRestarted)).status).toBe('running');
    expect((await env(ids.notRestarted)).status).toBe('running');
    expect((await env(ids.errored)).status).toBe('error');

    const back = Date.now();
    await proxy.up();
    await waitFor(
      'every environment running, its container too',
      async () => {
        for (const id of Object.values(ids)) {
          if ((await env(id)).status !== 'running') return false;
          if (!(await container(id).inspect()).State.Running) return false;
        }
        return (await host()).runtime_error === '';
      },
      60_000,
    );
    const convergedMs = Date.now() - back;
    console.log(`docker outage (${back - outageStarted} ms): every environment running ${convergedMs} ms after the engine answered again`);
    // The agent's event stream resumed: the start of the container Docker left stopped came through it.
    await waitFor('the start event', async () => (await logs(ids.notRestarted)).split('Container started').length > startedBefore, 30_000);
    expect(await logs(ids.errored)).toContain('Container runtime (Docker) answers again after an outage');
    expect((await env(ids.errored)).status_reason).toBe('');
  }, 180_000);
});
