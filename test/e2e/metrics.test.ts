import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testDocker, testNamespace, testRunDir } from '../helpers/docker.js';
import { startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { metricValue, PROMTOOL, promtoolCheck, samplesOf } from '../helpers/metrics.js';

// Both /metrics endpoints on the real platform (controller, agent with the recorded 10×A40 server's
// fake GPUs, Docker; embedded PGlite): the agent, with REMOTEGPU_AGENT_METRICS_ADDR, serves per-GPU
// series labelled with the environment whose container holds the GPU, and counts its reports and
// the controller's calls; both outputs pass `promtool check metrics` without a lint problem.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-metrics-admin-token-0123456789ab';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const MIB = 2 ** 20;
const A40 = 'NVIDIA A40';

describe.skipIf(!hasDocker)('metrics on one machine', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  const namespace = testNamespace('metrics');
  let platform: LocalPlatform;
  let dir = '';
  let envId = '';
  const api = restCaller(() => platform.controller.httpUrl);
  const text = async (url: string) => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    return res.text();
  };
  const agentMetrics = () => text(platform.agent!.metricsUrl!);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-metrics-'));
    platform = await startLocalPlatform(
      {
        PATH: process.env.PATH,
        REMOTEGPU_DATA_DIR: path.join(dir, 'data'),
        REMOTEGPU_RUN_DIR: runDir,
        REMOTEGPU_HTTP_PORT: '0',
        REMOTEGPU_GRPC_PORT: '0',
        REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
        REMOTEGPU_AGENT_METRICS_ADDR: '127.0.0.1:0',
        REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_NAMESPACE: namespace,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_SSH_PORT_RANGE: '31480-31489',
        REMOTEGPU_JUPYTER_PORT_RANGE: '31490-31499',
      },
      createLogger({ name: 'e2e-metrics', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitUntil('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const res = await api('POST', '/api/v1/environments', ADMIN, { name: 'metrics', image: 'devbox:1', cpu: 1, memory: 256 * MIB, gpu: 1, storage: 2 ** 30 });
    expect(res.status).toBe(201);
    envId = res.body.data.env_id;
    await waitUntil('running', async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data.status === 'running', 120_000);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitUntil('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(namespace);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('the agent serves every GPU, the one the environment holds labelled with it', async () => {
    const [container] = await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } });
    const held = container?.Labels['remotegpu.gpu-uuids'];
    expect(held).toMatch(/^GPU-/);
    // The label follows the reporter's listing, which sees the container running at its next report.
    await waitUntil('GPU labelled', async () => samplesOf(await agentMetrics(), 'remotegpu_agent_gpu_memory_used_bytes', { environment: envId }).length === 1, 20_000);
    const body = await agentMetrics();
    const memory = samplesOf(body, 'remotegpu_agent_gpu_memory_total_bytes');
    expect(memory).toHaveLength(10);
    expect(memory.every((s) => s.labels.model === A40 && s.labels.uuid?.startsWith('GPU-') && s.value > 40_000 * MIB)).toBe(true);
    const mine = samplesOf(body, 'remotegpu_agent_gpu_temperature_celsius', { environment: envId });
    expect(mine).toHaveLength(1);
    expect(mine[0]!.labels.uuid).toBe(held);
    expect(samplesOf(body, 'remotegpu_agent_gpu_temperature_celsius', { environment: '' })).toHaveLength(9);
    expect(samplesOf(body, 'remotegpu_agent_gpu_utilization_ratio')).toHaveLength(10);
    expect(metricValue(body, 'remotegpu_agent_gpu_healthy')).toBe(10);
  });

  it('the agent counts its reports and the controller\'s calls', async () => {
    const body = await agentMetrics();
    expect(metricValue(body, 'remotegpu_agent_report_duration_seconds_count', { outcome: 'ok' })).toBeGreaterThan(0);
    expect(metricValue(body, 'remotegpu_agent_call_duration_seconds_count', { method: 'ApplyEnvironment', code: 'ok' })).toBeGreaterThan(0);
    expect(body).toContain('remotegpu_agent_process_resident_memory_bytes');
  });

  it('the agent answers 404 off /metrics', async () => {
    expect((await fetch(platform.agent!.metricsUrl!.replace(/\/metrics$/, '/'))).status).toBe(404);
  });

  it('the controller shows the host online and its GPU allocated', async () => {
    const body = await text(`${platform.controller.httpUrl}/metrics`);
    expect(metricValue(body, 'remotegpu_hosts', { status: 'online' })).toBe(1);
    expect(metricValue(body, 'remotegpu_gpus', { model: A40 })).toBe(10);
    expect(metricValue(body, 'remotegpu_gpus_allocated', { model: A40 })).toBe(1);
    expect(metricValue(body, 'remotegpu_create_to_running_seconds_count')).toBe(1);
  });

  it.skipIf(!PROMTOOL)('both endpoints pass promtool check metrics', async () => {
    for (const body of [await agentMetrics(), await text(`${platform.controller.httpUrl}/metrics`)]) {
      const { code, output } = await promtoolCheck(body);
      expect(output).toBe('');
      expect(code).toBe(0);
    }
  });
});
