import { describe, expect, it } from 'vitest';
import { LogStream } from '../../../gen/remotegpu/v1/agent.js';
import { DesiredState, GpuHealth, ObservedState, type EnvironmentStatus } from '../../../gen/remotegpu/v1/types.js';
import {
  eventFromProto,
  gpuFromProto,
  hostFactsFromProto,
  logLineFromProto,
  observedFromProto,
  specToProto,
} from '../../../controller/hosts/convert.js';
import { testGpu } from '../../helpers/test-agent.js';

// Proto ↔ domain conversion at the hosts component's gRPC edges. Pure: no I/O.

const status = (state: ObservedState, extra: Partial<EnvironmentStatus> = {}): EnvironmentStatus => ({
  envId: 'env-1',
  state,
  containerId: 'c',
  specHash: 'h',
  gpuUuids: ['GPU-1'],
  exitCode: 137,
  oomKilled: true,
  startedAtMs: 0,
  finishedAtMs: 1_700_000_000_000,
  message: 'OOM',
  sshReady: false,
  sshHostKeys: [],
  ...extra,
});

describe('hosts proto conversion', () => {
  it('maps every observed state, and unknown values to "unknown"', () => {
    const table: [ObservedState, string][] = [
      [ObservedState.OBSERVED_STATE_ABSENT, 'absent'],
      [ObservedState.OBSERVED_STATE_CREATED, 'created'],
      [ObservedState.OBSERVED_STATE_RUNNING, 'running'],
      [ObservedState.OBSERVED_STATE_EXITED, 'exited'],
      [ObservedState.OBSERVED_STATE_RESTARTING, 'restarting'],
      [ObservedState.OBSERVED_STATE_PAUSED, 'paused'],
      [ObservedState.OBSERVED_STATE_FAILED, 'failed'],
      [ObservedState.OBSERVED_STATE_UNSPECIFIED, 'unknown'],
      [42 as ObservedState, 'unknown'],
    ];
    for (const [proto, domain] of table) expect([proto, observedFromProto(status(proto)).state]).toEqual([proto, domain]);
  });

  it('turns epoch milliseconds into dates, 0 into null', () => {
    const o = observedFromProto(status(ObservedState.OBSERVED_STATE_EXITED));
    expect(o).toMatchObject({ startedAt: null, finishedAt: new Date(1_700_000_000_000), exitCode: 137, oomKilled: true, gpuUuids: ['GPU-1'] });
    const now = new Date(5);
    expect(eventFromProto({ envId: 'e', atMs: 0, kind: 'k', message: 'm' }, now).at).toBe(now);
    expect(eventFromProto({ envId: 'e', atMs: 10, kind: 'k', message: 'm' }).at).toEqual(new Date(10));
  });

  it('bounds what an agent sends: absurd times read as unknown, long texts are cut', () => {
    const now = new Date();
    const e = eventFromProto({ envId: 'e', atMs: 9e15, kind: 'k'.repeat(500), message: 'm'.repeat(100_000) }, now);
    expect(e.at).toBe(now);
    expect(e.kind.length).toBeLessThanOrEqual(65);
    expect(e.message.length).toBeLessThanOrEqual(4097);
    const o = observedFromProto({ ...status(ObservedState.OBSERVED_STATE_RUNNING), startedAtMs: 9e15, message: 'x'.repeat(10_000) });
    expect(o.startedAt).toBeNull();
    expect(o.message.length).toBeLessThanOrEqual(4097);
  });

  it('reads storage and writable-layer usage and the stop reason; absent or absurd figures are unknown (null)', () => {
    const bare = observedFromProto(status(ObservedState.OBSERVED_STATE_RUNNING));
    expect(bare).toMatchObject({ storageUsedBytes: null, rootfsUsedBytes: null, stopReason: '' });
    const full = observedFromProto(status(ObservedState.OBSERVED_STATE_EXITED, { storageUsedBytes: 0, rootfsUsedBytes: 5 * 2 ** 30, stopReason: 'writable layer 11 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT)' }));
    expect(full).toMatchObject({ storageUsedBytes: 0, rootfsUsedBytes: 5 * 2 ** 30, stopReason: 'writable layer 11 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT)' });
    const absurd = observedFromProto(status(ObservedState.OBSERVED_STATE_RUNNING, { storageUsedBytes: 2 ** 60, rootfsUsedBytes: -1, stopReason: 'x'.repeat(10_000) }));
    expect(absurd).toMatchObject({ storageUsedBytes: null, rootfsUsedBytes: null });
    expect(absurd.stopReason.length).toBeLessThanOrEqual(4097);
  });

  it('maps GPU health: unhealthy keeps or gets a reason, unspecified counts as healthy', () => {
    expect(gpuFromProto(testGpu(0, 't', { health: GpuHealth.GPU_HEALTH_UNHEALTHY, healthReason: 'XID 79' }))).toMatchObject({ health: 'unhealthy', healthReason: 'XID 79' });
    expect(gpuFromProto(testGpu(0, 't', { health: GpuHealth.GPU_HEALTH_UNHEALTHY, healthReason: '' })).healthReason).not.toBe('');
    expect(gpuFromProto(testGpu(0, 't', { health: GpuHealth.GPU_HEALTH_UNSPECIFIED, healthReason: 'stale' }))).toMatchObject({ health: 'healthy', healthReason: '' });
  });

  it('fills host driver and CUDA versions from the first GPU when the host left them empty', () => {
    const base = {
      hostname: ' gpu-1 ',
      publicAddress: '10.0.0.1',
      agentAddress: '10.0.0.1:9091',
      agentVersion: '1',
      os: '',
      kernel: '',
      cpuModel: '',
      cpuCores: 8,
      memoryBytes: 1,
      diskTotalBytes: 2,
      diskFreeBytes: 1,
      gpuCondition: '',
      gpuMode: 'nvidia',
      busyPorts: [],
    };
    const f = hostFactsFromProto({ ...base, gpus: [testGpu(0, 't', { driverVersion: '550.1', cudaVersion: '12.4' })], driverVersion: '', cudaVersion: '' });
    expect(f).toMatchObject({ hostname: 'gpu-1', driverVersion: '550.1', cudaVersion: '12.4' });
    const g = hostFactsFromProto({ ...base, gpus: [], driverVersion: '535', cudaVersion: '12.2' });
    expect(g).toMatchObject({ driverVersion: '535', cudaVersion: '12.2', gpus: [] });
    // Agents that predate the disk reserve: none, no pressure.
    expect(g).toMatchObject({ diskReserveBytes: 0, diskPressure: false });
    const pressed = hostFactsFromProto({ ...base, gpus: [], driverVersion: '', cudaVersion: '', diskReserveBytes: 7, diskPressure: true });
    expect(pressed).toMatchObject({ diskReserveBytes: 7, diskPressure: true });
  });

  it('converts a spec to proto with the desired state', () => {
    const p = specToProto({
      envId: 'env-1',
      image: 'img',
      cpuCores: 2,
      memoryBytes: 3,
      gpuUuids: ['GPU-a'],
      storageBytes: 4,
      dataPath: '/root/workspace',
      ports: [{ name: 'ssh', containerPort: 22, hostPort: 30001 }],
      sshAuthorizedKeys: ['k'],
      mounts: [{ datasetId: '1', hostPath: '/srv', containerPath: '/data', readonly: true }],
      env: { A: 'b' },
      labels: { l: 'v' },
      jupyterToken: 'jt',
      desiredState: 'stopped',
    });
    expect(p).toMatchObject({ envId: 'env-1', desiredState: DesiredState.DESIRED_STATE_STOPPED, gpuUuids: ['GPU-a'], env: { A: 'b' }, labels: { l: 'v' } });
    expect(p.ports).toEqual([{ name: 'ssh', containerPort: 22, hostPort: 30001 }]);
    expect(p.mounts).toEqual([{ datasetId: '1', hostPath: '/srv', containerPath: '/data', readonly: true }]);
  });

  it('maps log streams', () => {
    expect(logLineFromProto({ atMs: 1, stream: LogStream.LOG_STREAM_STDERR, text: 'x', continued: false })).toEqual({ at: new Date(1), stream: 'stderr', text: 'x', continued: false });
    expect(logLineFromProto({ atMs: 1, stream: LogStream.LOG_STREAM_STDOUT, text: 'z', continued: true }).continued).toBe(true);
    expect(logLineFromProto({ atMs: 1, stream: LogStream.LOG_STREAM_UNSPECIFIED, text: 'y', continued: false }).stream).toBe('stdout');
  });
});
