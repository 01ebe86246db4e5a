import { describe, expect, it } from 'vitest';
import { formatBytes, summarizeRejections } from '../../../controller/scheduler/format.js';
import { schedule } from '../../../controller/scheduler/schedule.js';
import type { HostSnapshot, Rejection, ScheduleResult } from '../../../controller/scheduler/types.js';
import { A100, GiB, TiB, gpus, host, request } from './builders.js';

function failure(result: ScheduleResult) {
  if (result.ok) throw new Error(`expected no placement, got ${result.candidates.length} candidates`);
  return result;
}

/** A host with `free` of its `total` H100s free and the given free CPU and memory. */
function slotHost(id: string, free: number, total: number, cpuFree: number, memFreeGiB: number): HostSnapshot {
  return host({
    id,
    cpuCores: 64,
    allocatedCpuCores: 64 - cpuFree,
    memoryBytes: 512 * GiB,
    allocatedMemoryBytes: (512 - memFreeGiB) * GiB,
    storageBytes: 4 * TiB,
    allocatedStorageBytes: 2 * TiB,
    gpus: gpus(total).map((g) => ({ ...g, allocated: g.index >= free })),
  });
}

describe('failure message and largest free slot', () => {
  it('names the missing GPUs and the largest free slot', () => {
    const hosts = [slotHost('host-1b2c', 2, 8, 60, 500), slotHost('host-7f3a', 4, 8, 32, 256), { ...slotHost('host-off', 8, 8, 64, 512), status: 'offline' as const }];
    const result = failure(schedule(request({ gpuCount: 8, gpuModel: 'H100' }), hosts));
    expect(result.message).toBe(
      'no host has 8 free H100 GPUs; the largest free slot is 4 H100 GPUs on host-7f3a (32 CPU cores, 256 GiB memory, 2 TiB storage free)',
    );
    expect(result.largestFreeSlot).toEqual({
      hostId: 'host-7f3a',
      hostname: 'host-7f3a',
      gpuCount: 4,
      cpuCores: 32,
      memoryBytes: 256 * GiB,
      storageBytes: 2 * TiB,
    });
  });

  it('when enough GPUs are free somewhere but something else is short, describes the whole request', () => {
    const result = failure(schedule(request({ gpuCount: 2, cpuCores: 48 }), [slotHost('h', 4, 8, 16, 100)]));
    expect(result.message).toBe(
      'no host has room for 2 GPUs, 48 CPU cores, 32 GiB memory and 100 GiB storage; the largest free slot is 4 GPUs on h (16 CPU cores, 100 GiB memory, 2 TiB storage free)',
    );
  });

  it('a request without GPUs ranks slots by CPU, then memory', () => {
    const hosts = [slotHost('gpu-rich', 8, 8, 8, 64), slotHost('cpu-rich', 0, 8, 32, 64), slotHost('mem-rich', 0, 8, 32, 16)];
    const result = failure(schedule(request({ gpuCount: 0, cpuCores: 40 }), hosts));
    expect(result.largestFreeSlot?.hostId).toBe('cpu-rich');
    expect(result.message).toBe(
      'no host has room for 40 CPU cores, 32 GiB memory and 100 GiB storage; the largest free slot is on cpu-rich (32 CPU cores, 64 GiB memory, 2 TiB storage free)',
    );
  });

  it('a CPU-only slot leaves GPUs out of the message', () => {
    const result = failure(schedule(request({ gpuCount: 0, cpuCores: 100 }), [host({ id: 'c', gpus: [] })]));
    expect(result.message).toBe(
      'no host has room for 100 CPU cores, 32 GiB memory and 100 GiB storage; the largest free slot is on c (64 CPU cores, 512 GiB memory, 4 TiB storage free)',
    );
  });

  it('says so when no online host has a GPU of the model', () => {
    const result = failure(schedule(request({ gpuModel: 'H100' }), [host({ id: 'a', gpus: gpus(4, { model: A100 }) })]));
    expect(result.message).toBe('no host has 1 free H100 GPU; no online host has a free H100 GPU');
    expect(result.largestFreeSlot?.gpuCount).toBe(0);
  });

  it('with no online host, has no slot and summarises why', () => {
    const hosts = [host({ id: 'a', status: 'offline' }), host({ id: 'b', status: 'cordoned' }), host({ id: 'c', status: 'offline' })];
    const result = failure(schedule(request(), hosts));
    expect(result.largestFreeSlot).toBeNull();
    expect(result.message).toBe('no host is taking new environments (3 hosts: 2 offline, 1 cordoned); try again later or ask an operator');
  });

  it('cordoned and draining hosts are never the largest free slot', () => {
    const hosts = [host({ id: 'big', status: 'draining' }), slotHost('small', 1, 1, 4, 8)];
    expect(failure(schedule(request({ gpuCount: 2 }), hosts)).largestFreeSlot?.hostId).toBe('small');
  });
});

describe('summarizeRejections', () => {
  const r = (reason: Rejection['reason'], hostId = 'h'): Rejection => ({ hostId, reason, detail: '' });

  it.each<[Rejection[], string]>([
    [[], '0 hosts'],
    [[r('offline')], '1 host: 1 offline'],
    [[r('offline'), r('insufficient_gpus'), r('insufficient_gpus')], '3 hosts: 2 insufficient_gpus, 1 offline'],
    [[r('draining'), r('cordoned')], '2 hosts: 1 cordoned, 1 draining'],
  ])('%j → %s', (rejections, text) => {
    expect(summarizeRejections(rejections)).toBe(text);
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 bytes'],
    [1, '1 byte'],
    [1023, '1023 bytes'],
    [1024, '1 KiB'],
    [1.5 * GiB, '1.5 GiB'],
    [256 * GiB, '256 GiB'],
    [2 * TiB, '2 TiB'],
    [-GiB, '-1 GiB'],
    [Infinity, 'Infinity'],
  ])('%d → %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});
