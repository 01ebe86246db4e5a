import { describe, expect, it } from 'vitest';
import { schedule } from '../../../controller/scheduler/schedule.js';
import type { HostSnapshot, PlacementRequest, RejectReason } from '../../../controller/scheduler/types.js';
import { A100, GiB, TiB, gpu, gpus, host, request } from './builders.js';

interface Case {
  name: string;
  host: HostSnapshot;
  request: PlacementRequest;
  reason: RejectReason;
  detail: string | RegExp;
}

// One row per rejection reason (and the variants worth telling apart). Each host would fit the
// request but for the one thing the row is about.
const CASES: Case[] = [
  { name: 'offline host', host: host({ status: 'offline' }), request: request(), reason: 'offline', detail: 'host is offline' },
  { name: 'cordoned host', host: host({ status: 'cordoned' }), request: request(), reason: 'cordoned', detail: /cordoned/ },
  { name: 'draining host', host: host({ status: 'draining' }), request: request(), reason: 'draining', detail: /draining/ },
  {
    name: 'host awaiting approval',
    host: host({ id: 'h-new', status: 'pending_approval' }),
    request: request(),
    reason: 'pending_approval',
    detail: "host awaits an admin's approval (POST /api/v1/admin/hosts/h-new/approve)",
  },
  {
    name: 'data disk under pressure',
    host: host({ diskPressure: true }),
    request: request(),
    reason: 'disk_pressure',
    detail: 'host is under disk pressure (its data disk has less free space than the reserve, REMOTEGPU_DISK_RESERVE): it takes no new environments',
  },
  {
    name: 'container runtime unavailable',
    host: host({ runtimeUnavailable: true }),
    request: request(),
    reason: 'runtime_unavailable',
    detail: "host's container runtime (Docker) does not answer: it takes no new environments until it does",
  },
  {
    name: 'unknown status counts as offline',
    host: host({ status: 'rebooting' as HostSnapshot['status'] }),
    request: request(),
    reason: 'offline',
    detail: 'host status is "rebooting", not online',
  },
  {
    name: 'not enough CPU',
    host: host({ cpuCores: 16, allocatedCpuCores: 14 }),
    request: request({ cpuCores: 4 }),
    reason: 'insufficient_cpu',
    detail: 'needs 4 CPU cores, 2 free of 16',
  },
  {
    name: 'over-committed CPU reports 0 free',
    host: host({ cpuCores: 16, allocatedCpuCores: 20 }),
    request: request({ cpuCores: 1 }),
    reason: 'insufficient_cpu',
    detail: 'needs 1 CPU core, 0 free of 16',
  },
  {
    name: 'not enough memory',
    host: host({ memoryBytes: 256 * GiB, allocatedMemoryBytes: 240 * GiB }),
    request: request({ memoryBytes: 32 * GiB }),
    reason: 'insufficient_memory',
    detail: 'needs 32 GiB memory, 16 GiB free of 256 GiB',
  },
  {
    name: 'not enough storage',
    host: host({ storageBytes: 2 * TiB, allocatedStorageBytes: 1.5 * TiB }),
    request: request({ storageBytes: 1 * TiB }),
    reason: 'insufficient_storage',
    detail: 'needs 1 TiB storage, 512 GiB free of 2 TiB',
  },
  {
    name: 'not enough GPUs, some in use',
    host: host({ gpus: gpus(4).map((g) => ({ ...g, allocated: g.index < 2 })) }),
    request: request({ gpuCount: 4 }),
    reason: 'insufficient_gpus',
    detail: 'needs 4 GPUs, 2 free (2 in use)',
  },
  {
    name: 'not enough GPUs even if the unhealthy one were repaired',
    host: host({ gpus: [gpu({ index: 0 }), gpu({ index: 1, healthy: false }), gpu({ index: 2, allocated: true })] }),
    request: request({ gpuCount: 3 }),
    reason: 'insufficient_gpus',
    detail: 'needs 3 GPUs, 1 free (1 unhealthy, 1 in use)',
  },
  {
    name: 'host without GPUs',
    host: host({ gpus: [] }),
    request: request({ gpuCount: 1 }),
    reason: 'insufficient_gpus',
    detail: 'needs 1 GPU, host has none',
  },
  {
    name: 'host without GPUs, model asked',
    host: host({ gpus: [] }),
    request: request({ gpuCount: 2, gpuModel: 'H100' }),
    reason: 'insufficient_gpus',
    detail: 'needs 2 H100 GPUs, host has none',
  },
  {
    name: 'unhealthy GPUs make the difference',
    host: host({ gpus: [gpu({ index: 0 }), gpu({ index: 1 }), gpu({ index: 2, healthy: false }), gpu({ index: 3, healthy: false })] }),
    request: request({ gpuCount: 4 }),
    reason: 'unhealthy_gpus',
    detail: 'needs 4 GPUs, 2 free (2 unhealthy)',
  },
  {
    name: 'an allocated unhealthy GPU counts as in use, not as repairable',
    host: host({ gpus: [gpu({ index: 0 }), gpu({ index: 1, healthy: false, allocated: true })] }),
    request: request({ gpuCount: 2 }),
    reason: 'insufficient_gpus',
    detail: 'needs 2 GPUs, 1 free (1 in use)',
  },
  {
    name: 'GPUs of another model',
    host: host({ gpus: gpus(8, { model: A100 }) }),
    request: request({ gpuCount: 1, gpuModel: 'H100' }),
    reason: 'gpu_model_mismatch',
    detail: `needs H100 GPUs, host has ${A100}`,
  },
  {
    name: 'mixed host: only the matching GPUs count',
    host: host({ gpus: [gpu({ index: 0, model: A100 }), gpu({ index: 1, model: A100 }), gpu({ index: 2 })] }),
    request: request({ gpuCount: 2, gpuModel: 'h100' }),
    reason: 'insufficient_gpus',
    detail: 'needs 2 h100 GPUs, 1 free',
  },
];

describe('filters: one rejection reason per case', () => {
  it.each(CASES)('$name → $reason', ({ host: h, request: r, reason, detail }) => {
    const result = schedule(r, [h]);
    expect(result.ok).toBe(false);
    expect(result.rejections).toHaveLength(1);
    const [rejection] = result.rejections;
    expect(rejection).toMatchObject({ hostId: h.id, reason });
    if (typeof detail === 'string') expect(rejection!.detail).toBe(detail);
    else expect(rejection!.detail).toMatch(detail);
  });

  it('covers every reason of the RejectReason union', () => {
    const all: Record<RejectReason, true> = {
      offline: true,
      cordoned: true,
      draining: true,
      pending_approval: true,
      disk_pressure: true,
      runtime_unavailable: true,
      insufficient_cpu: true,
      insufficient_memory: true,
      insufficient_storage: true,
      insufficient_gpus: true,
      gpu_model_mismatch: true,
      unhealthy_gpus: true,
    };
    expect(new Set(CASES.map((c) => c.reason))).toEqual(new Set(Object.keys(all)));
  });

  it('reports only the first failing filter: status before GPUs before CPU, memory, storage', () => {
    const broke = host({ cpuCores: 1, memoryBytes: 1, storageBytes: 1, gpus: [] });
    const big = request({ gpuCount: 1, cpuCores: 8 });
    expect(schedule(big, [{ ...broke, status: 'cordoned' }]).rejections[0]!.reason).toBe('cordoned');
    expect(schedule(big, [broke]).rejections[0]!.reason).toBe('insufficient_gpus');
    expect(schedule({ ...big, gpuCount: 0 }, [broke]).rejections[0]!.reason).toBe('insufficient_cpu');
    expect(schedule({ ...big, gpuCount: 0, cpuCores: 0 }, [broke]).rejections[0]!.reason).toBe('insufficient_memory');
    expect(schedule({ ...big, gpuCount: 0, cpuCores: 0, memoryBytes: 0 }, [broke]).rejections[0]!.reason).toBe(
      'insufficient_storage',
    );
  });

  it('under disk pressure a host takes no new environment, but a start there (no new storage) still fits; it offers no free slot', () => {
    const pressed = host({ diskPressure: true });
    const refused = schedule(request(), [pressed]);
    expect(refused.ok).toBe(false);
    expect(refused.ok === false && refused.largestFreeSlot).toBeNull();
    expect(refused.ok === false && refused.message).toBe('no host is taking new environments (1 host: 1 disk_pressure); try again later or ask an operator');
    expect(schedule(request({ storageBytes: 0 }), [pressed]).ok).toBe(true);
    // Another host without pressure takes it.
    const result = schedule(request(), [pressed, host({ id: 'host-b' })]);
    expect(result.ok && result.candidates.map((c) => c.hostId)).toEqual(['host-b']);
    // Disk pressure is told before the sizes.
    expect(schedule(request({ gpuCount: 99 }), [pressed]).rejections[0]!.reason).toBe('disk_pressure');
  });

  it('with its container runtime down a host takes no new environment, but a start there (no new storage) still fits', () => {
    const down = host({ runtimeUnavailable: true });
    const refused = schedule(request(), [down]);
    expect(refused.ok === false && refused.largestFreeSlot).toBeNull();
    expect(schedule(request({ storageBytes: 0 }), [down]).ok).toBe(true);
    const result = schedule(request(), [down, host({ id: 'host-b' })]);
    expect(result.ok && result.candidates.map((c) => c.hostId)).toEqual(['host-b']);
  });

  it('fits exactly at the limit', () => {
    const h = host({ cpuCores: 8, allocatedCpuCores: 4, memoryBytes: 64 * GiB, allocatedMemoryBytes: 32 * GiB, gpus: gpus(2) });
    const r = request({ cpuCores: 4, memoryBytes: 32 * GiB, gpuCount: 2, storageBytes: 4 * TiB });
    const result = schedule(r, [h]);
    expect(result.ok).toBe(true);
  });

  it('a request without GPUs ignores the GPU model and GPU health', () => {
    const h = host({ gpus: gpus(2, { model: A100, healthy: false }) });
    const result = schedule(request({ gpuCount: 0, gpuModel: 'H100' }), [h]);
    expect(result.ok && result.candidates[0]!.gpuUuids).toEqual([]);
  });

  it('a blank model means any model', () => {
    const result = schedule(request({ gpuModel: '  ' }), [host({ gpus: gpus(1, { model: A100 }) })]);
    expect(result.ok).toBe(true);
  });
});
