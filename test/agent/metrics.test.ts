import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../agent/metrics.js';
import type { GpuDiscovery, GpuInfo } from '../../agent/discovery/types.js';
import type { ObservedStatus } from '../../agent/runtime/types.js';
import { metricValue, PROMTOOL, promtoolCheck, samplesOf } from '../helpers/metrics.js';

// The agent's metrics without I/O: per-GPU series from a discovery, the environment label from a
// container listing (running containers only), unknown readings left out rather than shown as -1.

const GIB = 2 ** 30;
const gpu = (index: number, over: Partial<GpuInfo> = {}): GpuInfo => ({
  index,
  uuid: `GPU-test-${index}`,
  model: 'NVIDIA A100-SXM4-80GB',
  memoryBytes: 80 * GIB,
  memoryUsedBytes: index * GIB,
  utilizationPercent: 10 * index,
  temperatureC: 30 + index,
  pciBusId: `00000000:0${index}:00.0`,
  driverVersion: '550.54.15',
  cudaVersion: '12.4',
  health: 'healthy',
  healthReason: '',
  migEnabled: false,
  ...over,
});
const container = (envId: string, state: ObservedStatus['state'], gpuUuids: string[]): ObservedStatus => ({
  envId,
  state,
  containerId: `c-${envId}`,
  specHash: 'h',
  gpuUuids,
  exitCode: 0,
  oomKilled: false,
  startedAtMs: 0,
  finishedAtMs: 0,
  message: '',
});

describe('agent metrics', () => {
  const discovery: GpuDiscovery = {
    kind: 'gpu-lost',
    condition: 'GPU lost',
    gpus: [gpu(0), gpu(1), gpu(2, { utilizationPercent: -1, migEnabled: true }), gpu(3, { health: 'unhealthy', healthReason: 'GPU is lost', temperatureC: -1 })],
  };

  it('labels a GPU with the environment whose running container holds it, and no other', async () => {
    const metrics = new AgentMetrics(() => discovery);
    metrics.observe([container('env-run', 'running', ['GPU-test-1']), container('env-stopped', 'exited', ['GPU-test-0'])]);
    const text = await metrics.registry.metrics();
    expect(samplesOf(text, 'remotegpu_agent_gpu_memory_used_bytes', { environment: 'env-run' }).map((s) => s.labels.uuid)).toEqual(['GPU-test-1']);
    expect(samplesOf(text, 'remotegpu_agent_gpu_memory_used_bytes', { uuid: 'GPU-test-0' })[0]!.labels.environment).toBe('');
    expect(text).not.toContain('env-stopped');
    expect(metricValue(text, 'remotegpu_agent_gpu_utilization_ratio', { uuid: 'GPU-test-1' })).toBeCloseTo(0.1);
    expect(metricValue(text, 'remotegpu_agent_gpu_memory_used_bytes', { uuid: 'GPU-test-1', index: '1' })).toBe(GIB);
    // The container stopped: the next listing frees the label.
    metrics.observe([container('env-run', 'exited', ['GPU-test-1'])]);
    expect(samplesOf(await metrics.registry.metrics(), 'remotegpu_agent_gpu_memory_used_bytes', { environment: 'env-run' })).toHaveLength(0);
  });

  it('leaves out readings the GPU does not give (MIG utilization, a lost GPU\'s temperature) and marks the lost GPU unhealthy', async () => {
    const text = await new AgentMetrics(() => discovery).registry.metrics();
    expect(samplesOf(text, 'remotegpu_agent_gpu_utilization_ratio').map((s) => s.labels.uuid)).toEqual(['GPU-test-0', 'GPU-test-1', 'GPU-test-3']);
    expect(samplesOf(text, 'remotegpu_agent_gpu_temperature_celsius')).toHaveLength(3);
    expect(metricValue(text, 'remotegpu_agent_gpu_healthy', { uuid: 'GPU-test-3' })).toBe(0);
    expect(metricValue(text, 'remotegpu_agent_gpu_healthy')).toBe(3);
  });

  it('counts reports and AgentService calls by outcome', async () => {
    const metrics = new AgentMetrics(() => ({ kind: 'cpu-only', condition: '', gpus: [] }));
    metrics.reportStarted()('ok');
    metrics.reportStarted()('error');
    metrics.call('ApplyEnvironment', 'ok', 0.2);
    metrics.call('ApplyEnvironment', 'port_conflict', 0.1);
    const text = await metrics.registry.metrics();
    expect(metricValue(text, 'remotegpu_agent_report_duration_seconds_count', { outcome: 'ok' })).toBe(1);
    expect(metricValue(text, 'remotegpu_agent_report_duration_seconds_count', { outcome: 'error' })).toBe(1);
    expect(metricValue(text, 'remotegpu_agent_call_duration_seconds_count', { method: 'ApplyEnvironment' })).toBe(2);
    expect(samplesOf(text, 'remotegpu_agent_gpu_utilization_ratio')).toHaveLength(0);
  });

  it.skipIf(!PROMTOOL)('passes promtool check metrics', async () => {
    const metrics = new AgentMetrics(() => discovery);
    metrics.observe([container('env-run', 'running', ['GPU-test-1'])]);
    metrics.reportStarted()('ok');
    const { code, output } = await promtoolCheck(await metrics.registry.metrics());
    expect(output).toBe('');
    expect(code).toBe(0);
  });
});
