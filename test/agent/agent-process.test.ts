import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import { tlsChannelCredentials } from '../../common/grpc-tls.js';
import { createCa, issueKeyAndCertificate, type Identity, type KeyAndCert } from '../../common/pki.js';
import { AgentServiceClient, type ExecOutput } from '../../gen/remotegpu/v1/agent.js';
import { DesiredState } from '../../gen/remotegpu/v1/types.js';
import { loadControllerConfig } from '../../controller/config.js';
import { startController, type RunningController } from '../../controller/server.js';
import { dockerAvailable, ensureBusyboxImage, freePort, releaseRunDir, removeNamespace, testRunDir } from '../helpers/docker.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// The real agent program as operators run it (a separate process), with a fake nvidia-smi printing
// a recorded 8×H100 capture: it registers over TLS with the pinned bootstrap join token, runs
// environments, accepts calls only from the controller's certificate, reports an OOM kill, and after
// SIGKILL and a restart re-adopts its running containers without restarting them and without
// registering a second host.

const run = promisify(execFile);
const hasDocker = await dockerAvailable();
const ADMIN = 'agent-process-admin-token-0123456789';
const JOIN = 'agent-process-join-token-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!hasDocker)('agent process', () => {
  const runDir = testRunDir();
  let dir: string;
  let controller: RunningController;
  let agent: ChildProcess | undefined;
  let agentPort: number;
  let output = '';
  const envIds: string[] = [];

  const call = restCaller(() => controller.httpUrl);
  const api = (method: string, p: string, body?: unknown) => call(method, p, ADMIN, body);
  const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) =>
    waitUntil(what, check, timeoutMs, () => `agent output (last lines):\n${output.split('\n').slice(-30).join('\n')}`);
  const startAgentProcess = () => {
    agent = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts'], {
      env: {
        PATH: process.env.PATH,
        REMOTEGPU_CONTROLLER: `127.0.0.1:${controller.grpcPort}`,
        REMOTEGPU_JOIN_TOKEN: controller.bootstrapJoinToken!,
        REMOTEGPU_AGENT_LISTEN: `127.0.0.1:${agentPort}`,
        REMOTEGPU_PUBLIC_ADDRESS: '127.0.0.1',
        REMOTEGPU_DATA_DIR: path.join(dir, 'agent'),
        REMOTEGPU_RUN_DIR: runDir,
        REMOTEGPU_FAKE_GPUS: path.resolve('test/fixtures/nvidia-smi/h100-80gb-hbm3-sxm_x8_nvidia-smi-q.txt'),
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_LOG_LEVEL: 'info',
        // Other test files run agents on the same Docker engine at the same time.
        REMOTEGPU_NAMESPACE: `agent-process-${process.pid}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  };
  /** An AgentService client presenting a certificate for `identity` from `ca` (default: the cluster CA, as the controller). */
  const agentClient = async (identity: Identity = { kind: 'controller' }, ca: KeyAndCert = controller.services.trust.ca) => {
    const hostId = (await api('GET', '/api/v1/admin/hosts')).body.data.items[0].host_id as string;
    const own = await issueKeyAndCertificate({ ca, identity, validityMs: 3_600_000 });
    const caPem = controller.services.trust.ca.certPem;
    return new AgentServiceClient(`127.0.0.1:${agentPort}`, tlsChannelCredentials({ caPem, keyPem: own.keyPem, certPem: own.certPem, expect: { kind: 'host', hostId } }));
  };
  const inspect = async (envId: string) => {
    const { stdout } = await run('docker', ['inspect', '--format', '{{.Id}} {{.State.StartedAt}} {{.State.Status}}', `remotegpu-${envId}`]);
    return stdout.trim();
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-agent-proc-'));
    await ensureBusyboxImage();
    agentPort = await freePort();
    const config = loadControllerConfig({
      REMOTEGPU_DATA_DIR: path.join(dir, 'controller'),
      REMOTEGPU_HTTP_PORT: '0',
      REMOTEGPU_HTTP_HOST: '127.0.0.1',
      REMOTEGPU_GRPC_PORT: '0',
      REMOTEGPU_GRPC_HOST: '127.0.0.1',
      REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
      REMOTEGPU_JOIN_TOKEN: JOIN,
      REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
      // Below the ephemeral range (32768-60999): an outgoing connection never holds these ports.
      REMOTEGPU_SSH_PORT_RANGE: '32000-32099',
      REMOTEGPU_JUPYTER_PORT_RANGE: '32100-32199',
    });
    controller = await startController(config, pino({ level: 'silent' }));
    await controller.database.db.insertInto('images').values({ name: 'busybox:test', docker_ref: 'remotegpu/busybox-test:1', jupyter_port: null }).execute();
    startAgentProcess();
    await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts')).body.data.items.length === 1);
  }, 180_000);

  afterAll(async () => {
    agent?.kill('SIGKILL');
    await removeNamespace(`agent-process-${process.pid}`);
    for (const id of envIds) await run('docker', ['rm', '-f', `remotegpu-${id}`]).catch(() => {});
    for (const id of envIds) await run('docker', ['volume', 'rm', '-f', `remotegpu-${id}-data`]).catch(() => {});
    await controller?.stop();
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 60_000);

  it('reports the 8 recorded H100s with their UUIDs', async () => {
    const hosts = (await api('GET', '/api/v1/admin/hosts')).body.data.items;
    expect(hosts[0]).toMatchObject({ gpu_count: 8, status: 'online' });
    expect(hosts[0].gpu_model).toMatch(/H100/);
    const detail = (await api('GET', `/api/v1/admin/hosts/${hosts[0].host_id}`)).body.data;
    expect(detail.gpus.map((g: { index: number }) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(detail.gpus.every((g: { uuid: string }) => /^GPU-[0-9a-f-]{36}$/.test(g.uuid))).toBe(true);
  });

  it('keeps its key and certificate in the identity file (mode 0600), no bearer credential', () => {
    const file = path.join(dir, 'agent', 'agent-identity.json');
    const identity = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(identity).toMatchObject({ version: 2, caPem: controller.services.trust.ca.certPem });
    expect(identity.keyPem).toMatch(/PRIVATE KEY/);
    expect(identity.certPem).toMatch(/BEGIN CERTIFICATE/);
    expect(identity.credential).toBeUndefined();
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('accepts AgentService calls only from the controller: no certificate, another CA, another host are refused', async () => {
    const call = (client: AgentServiceClient) =>
      new Promise<ServiceError | undefined>((resolve) =>
        client.inspectEnvironment({ envId: 'env-x' }, new Metadata(), { deadline: Date.now() + 5000 }, (e) => {
          client.close();
          resolve(e ?? undefined);
        }),
      );
    expect(await call(await agentClient())).toBeUndefined();
    const hostId = (await api('GET', '/api/v1/admin/hosts')).body.data.items[0].host_id as string;
    const anonymous = new AgentServiceClient(`127.0.0.1:${agentPort}`, tlsChannelCredentials({ caPem: controller.services.trust.ca.certPem, expect: { kind: 'host', hostId } }));
    expect((await call(anonymous))?.code).toBe(GrpcStatus.UNAVAILABLE);
    expect((await call(await agentClient({ kind: 'controller' }, await createCa('another cluster'))))?.code).toBe(GrpcStatus.UNAVAILABLE);
    const otherHost = await call(await agentClient({ kind: 'host', hostId: 'host-other' }));
    expect(otherHost?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(otherHost?.details).toBe('only the controller may call the agent; the client presents host host-other');
  });

  it('refuses, even from the controller certificate, an ApplyEnvironment mounting /, the Docker socket or its own data directory: nothing created', async () => {
    const listManaged = async () =>
      (await run('sh', ['-c', `docker ps -a --format '{{.Names}}' --filter label=remotegpu.managed=agent-process-${process.pid}; docker volume ls -q`])).stdout;
    const before = await listManaged();
    for (const [i, hostPath] of ['/', '/var/run/docker.sock', path.join(dir, 'agent')].entries()) {
      const client = await agentClient();
      const spec = {
        envId: `env-evil${i}`,
        image: 'remotegpu/busybox-test:1',
        cpuCores: 1,
        memoryBytes: 64 * 2 ** 20,
        gpuUuids: [],
        storageBytes: 2 ** 30,
        dataPath: '/root/workspace',
        ports: [],
        sshAuthorizedKeys: [],
        mounts: [{ datasetId: '1', hostPath, containerPath: '/data/x', readonly: false }],
        env: {},
        labels: {},
        jupyterToken: '',
        desiredState: DesiredState.DESIRED_STATE_RUNNING,
        shmBytes: 0,
        pidsLimit: 0,
      };
      const err = await new Promise<ServiceError | undefined>((resolve) =>
        client.applyEnvironment({ spec }, new Metadata(), { deadline: Date.now() + 10_000 }, (e) => {
          client.close();
          resolve(e ?? undefined);
        }),
      );
      expect(err?.code, hostPath).toBe(GrpcStatus.PERMISSION_DENIED);
      expect(err?.details).toContain('refused');
    }
    expect(await listManaged()).toBe(before);
  });

  it('opens a terminal in an environment through Exec (node-pty + docker exec), with resize and exit code', async () => {
    const res = await api('POST', '/api/v1/environments', { name: 'exec', image: 'busybox:test', cpu: 1, memory: 64 * 2 ** 20, gpu: 0, storage: 2 ** 30 });
    const id = res.body.data.env_id as string;
    envIds.push(id);
    await waitFor(`${id} running`, async () => (await api('GET', `/api/v1/environments/${id}`)).body.data.status === 'running');
    const client = await agentClient();
    const call = client.exec();
    let out = '';
    let exitCode: number | undefined;
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: ExecOutput) => {
        if (m.output?.$case === 'data') out += Buffer.from(m.output.value).toString();
        if (m.output?.$case === 'exitCode') exitCode = m.output.value;
      });
      call.on('end', resolve);
      call.on('error', reject);
    });
    call.write({ input: { $case: 'start', value: { envId: id, command: ['sh'], cols: 80, rows: 24 } } });
    call.write({ input: { $case: 'resize', value: { cols: 132, rows: 43 } } });
    await sleep(500);
    call.write({ input: { $case: 'stdin', value: Buffer.from('stty size; echo in-$REMOTEGPU_ENV_ID; exit 3\n') } });
    await done;
    client.close();
    expect(out).toContain('43 132');
    expect(out).toContain(`in-${id}`);
    expect(exitCode).toBe(3);
    expect((await api('DELETE', `/api/v1/environments/${id}`)).status).toBe(204);
    envIds.pop();
    // This machine may have only 2 cores: wait until the deleted environment's CPU is free again.
    await waitFor('reservations freed', async () => (await api('GET', '/api/v1/admin/hosts')).body.data.items[0].cpu_allocated === 0);
  }, 120_000);

  it('runs two environments and reports an OOM kill inside one', async () => {
    for (const gpu of [2, 3]) {
      const res = await api('POST', '/api/v1/environments', { name: `p${gpu}`, image: 'busybox:test', cpu: 1, memory: 64 * 2 ** 20, gpu, storage: 2 ** 30 });
      expect(res.status).toBe(201);
      envIds.push(res.body.data.env_id);
    }
    for (const id of envIds) await waitFor(`${id} running`, async () => (await api('GET', `/api/v1/environments/${id}`)).body.data.status === 'running');
    // A process inside the first environment allocates past its 64 MiB limit.
    await run('docker', ['exec', `remotegpu-${envIds[0]}`, 'sh', '-c', 'x=$(head -c 300000000 /dev/zero | tr "\\0" a); echo $x | wc -c']).catch(() => undefined);
    await waitFor('OOM reported', async () => {
      const logs = (await api('GET', `/api/v1/environments/${envIds[0]}/logs?lines=100`)).body.data.logs as string[];
      return logs.some((l) => /OOM|out of memory|memory limit/i.test(l));
    }, 30_000);
  }, 120_000);

  it('re-adopts running containers after SIGKILL and restart: same ids, not restarted, same GPUs, one host', async () => {
    const before = await Promise.all(envIds.map(inspect));
    const gpusBefore = (await api('GET', `/api/v1/admin/hosts/${(await api('GET', '/api/v1/admin/hosts')).body.data.items[0].host_id}`)).body.data.gpus.map((g: { uuid: string; env_id: string | null }) => `${g.uuid}=${g.env_id}`);
    agent!.kill('SIGKILL');
    await new Promise((r) => agent!.once('exit', r));
    expect(before.every((b) => b.endsWith('running'))).toBe(true);
    startAgentProcess();
    const hostId = (await api('GET', '/api/v1/admin/hosts')).body.data.items[0].host_id;
    const reportedAfter = Date.now();
    await waitFor('a report from the restarted agent', async () => {
      const h = (await api('GET', `/api/v1/admin/hosts/${hostId}`)).body.data;
      return new Date(h.last_report_at).getTime() > reportedAfter + 600;
    });
    const after = await Promise.all(envIds.map(inspect));
    if (JSON.stringify(after) !== JSON.stringify(before)) {
      const logs = await Promise.all(envIds.map(async (id) => (await api('GET', `/api/v1/environments/${id}/logs?lines=40`)).body.data.logs));
      console.error(`containers changed across the agent restart; agent output:\n${output.slice(-6000)}\nenvironment logs:\n${JSON.stringify(logs, null, 1)}`);
    }
    expect(after).toEqual(before);
    const hosts = (await api('GET', '/api/v1/admin/hosts')).body.data.items;
    expect(hosts).toHaveLength(1);
    expect(hosts[0].host_id).toBe(hostId);
    const gpusAfter = (await api('GET', `/api/v1/admin/hosts/${hostId}`)).body.data.gpus.map((g: { uuid: string; env_id: string | null }) => `${g.uuid}=${g.env_id}`);
    expect(gpusAfter).toEqual(gpusBefore);
    for (const id of envIds) expect((await api('GET', `/api/v1/environments/${id}`)).body.data.status).toBe('running');
    // The restarted agent serves the controller again with the same certificate: stop one environment.
    expect((await api('POST', `/api/v1/environments/${envIds[1]}/stop`)).status).toBe(200);
    await waitFor('stopped', async () => (await api('GET', `/api/v1/environments/${envIds[1]}`)).body.data.status === 'stopped');
    expect(await inspect(envIds[1]!)).toMatch(/exited$/);
  }, 120_000);
});
