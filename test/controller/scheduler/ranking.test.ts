import { describe, expect, it } from 'vitest';
import { schedule } from '../../../controller/scheduler/schedule.js';
import type { HostSnapshot, ScheduleResult } from '../../../controller/scheduler/types.js';
import { A100, GiB, H100, L4, gpu, gpus, host, prng, request } from './builders.js';

function ok(result: ScheduleResult) {
  if (!result.ok) throw new Error(`expected a placement, got: ${result.message}`);
  return result;
}

function ids(result: ScheduleResult): string[] {
  return ok(result).candidates.map((c) => c.hostId);
}

/** A host with `free` free GPUs out of `total`, the others allocated. */
function withFreeGpus(id: string, free: number, total = 8, extra: Partial<HostSnapshot> = {}): HostSnapshot {
  return host({ id, gpus: gpus(total).map((g) => ({ ...g, allocated: g.index >= free })), ...extra });
}

describe('ranking', () => {
  it('best fit on GPUs first: the host left with the fewest free GPUs wins', () => {
    const hosts = [withFreeGpus('h-8', 8), withFreeGpus('h-2', 2), withFreeGpus('h-4', 4), withFreeGpus('h-1', 1)];
    const result = ok(schedule(request({ gpuCount: 2 }), hosts));
    expect(result.candidates.map((c) => c.hostId)).toEqual(['h-2', 'h-4', 'h-8']);
    expect(result.candidates.map((c) => c.score.freeGpusAfter)).toEqual([0, 2, 6]);
    expect(result.rejections.map((r) => r.hostId)).toEqual(['h-1']);
  });

  it('keeps a whole 8-GPU host free for a big request', () => {
    const hosts = [withFreeGpus('whole', 8), withFreeGpus('partial', 3)];
    expect(ids(schedule(request({ gpuCount: 1 }), hosts))[0]).toBe('partial');
  });

  it('a request without GPUs prefers hosts with fewer free GPUs (CPU-only first)', () => {
    const hosts = [withFreeGpus('gpu-8', 8), host({ id: 'cpu-only', gpus: [] }), withFreeGpus('gpu-1', 1)];
    expect(ids(schedule(request({ gpuCount: 0 }), hosts))).toEqual(['cpu-only', 'gpu-1', 'gpu-8']);
  });

  it('then least loaded, by the larger of CPU and memory utilisation after placement', () => {
    const hosts = [
      host({ id: 'busy-mem', memoryBytes: 512 * GiB, allocatedMemoryBytes: 400 * GiB }), // mem (400+32)/512 = 0.84
      host({ id: 'busy-cpu', cpuCores: 64, allocatedCpuCores: 48 }), // cpu (48+4)/64 = 0.81
      host({ id: 'idle' }), // max(4/64, 32/512) = 0.0625
      host({ id: 'half', allocatedCpuCores: 28 }), // cpu 32/64 = 0.5
    ];
    const result = ok(schedule(request(), hosts));
    expect(result.candidates.map((c) => c.hostId)).toEqual(['idle', 'half', 'busy-cpu', 'busy-mem']);
    expect(result.candidates[0]!.score.loadAfter).toBeCloseTo(0.0625);
    expect(result.candidates[1]!.score.loadAfter).toBeCloseTo(0.5);
  });

  it('GPU fit outranks load', () => {
    const hosts = [withFreeGpus('idle-8', 8), withFreeGpus('busy-1', 1, 8, { allocatedCpuCores: 60 })];
    expect(ids(schedule(request({ gpuCount: 1 }), hosts))).toEqual(['busy-1', 'idle-8']);
  });

  it('then host id, so equal hosts rank the same way every time', () => {
    const hosts = ['h-c', 'h-a', 'h-b'].map((id) => host({ id }));
    expect(ids(schedule(request(), hosts))).toEqual(['h-a', 'h-b', 'h-c']);
  });

  it('is deterministic: any input order gives the same result', () => {
    const rand = prng(7);
    const hosts = Array.from({ length: 50 }, (_, i) =>
      withFreeGpus(`h-${i}`, Math.floor(rand() * 9), 8, { allocatedCpuCores: Math.floor(rand() * 4) * 8 }),
    );
    const expected = schedule(request({ gpuCount: 2 }), hosts);
    for (let round = 0; round < 20; round++) {
      const shuffled = [...hosts].sort(() => rand() - 0.5);
      const result = schedule(request({ gpuCount: 2 }), shuffled);
      expect(ok(result).candidates).toEqual(ok(expected).candidates);
      expect(new Set(result.rejections)).toEqual(new Set(expected.rejections));
    }
  });

  it('does not modify its inputs', () => {
    const hosts = [withFreeGpus('a', 3), withFreeGpus('b', 1)];
    const r = request({ gpuCount: 1 });
    const before = JSON.stringify({ r, hosts });
    schedule(r, hosts);
    expect(JSON.stringify({ r, hosts })).toBe(before);
  });
});

describe('GPU pick within a host', () => {
  it('takes the lowest free indexes, whatever the input order', () => {
    const h = host({
      gpus: [
        gpu({ index: 5 }),
        gpu({ index: 0, allocated: true }),
        gpu({ index: 3 }),
        gpu({ index: 1, healthy: false }),
        gpu({ index: 2 }),
      ],
    });
    expect(ok(schedule(request({ gpuCount: 2 }), [h])).candidates[0]!.gpuUuids).toEqual(['GPU-2', 'GPU-3']);
  });

  it('never takes an unhealthy or allocated GPU', () => {
    const h = host({
      gpus: [gpu({ index: 0, healthy: false }), gpu({ index: 1, allocated: true }), gpu({ index: 2 }), gpu({ index: 3 })],
    });
    expect(ok(schedule(request({ gpuCount: 2 }), [h])).candidates[0]!.gpuUuids).toEqual(['GPU-2', 'GPU-3']);
  });

  it('takes as many UUIDs as GPUs asked, a fraction rounding up', () => {
    expect(ok(schedule(request({ gpuCount: 3 }), [host()])).candidates[0]!.gpuUuids).toHaveLength(3);
    expect(ok(schedule(request({ gpuCount: 1.5 }), [host()])).candidates[0]!.gpuUuids).toHaveLength(2);
  });
});

describe('GPU model filter', () => {
  const mixed = host({
    id: 'mixed',
    gpus: [gpu({ index: 0, model: A100, uuid: 'A-0' }), gpu({ index: 1, model: H100, uuid: 'H-1' }), gpu({ index: 2, model: A100, uuid: 'A-2' })],
  });

  it.each([
    ['H100', ['H-1']],
    ['h100', ['H-1']],
    ['80GB HBM3', ['H-1']],
    ['a100', ['A-0']],
    ['NVIDIA', ['A-0']],
  ])('model %j takes %j', (model, uuids) => {
    expect(ok(schedule(request({ gpuModel: model }), [mixed])).candidates[0]!.gpuUuids).toEqual(uuids);
  });

  it('ranks by free GPUs of the requested model only', () => {
    // 'few' has one free H100 and many free L4s; 'many' has four free H100s.
    const few = host({ id: 'few', gpus: [gpu({ index: 0 }), ...gpus(7, { model: L4 }).map((g) => ({ ...g, index: g.index + 1, uuid: `L-${g.index}` }))] });
    const many = host({ id: 'many', gpus: gpus(4) });
    const result = ok(schedule(request({ gpuModel: 'H100' }), [many, few]));
    expect(result.candidates.map((c) => [c.hostId, c.score.freeGpusAfter])).toEqual([
      ['few', 0],
      ['many', 3],
    ]);
  });

  it('an unknown model fits nowhere', () => {
    const result = schedule(request({ gpuModel: 'B200' }), [host({ id: 'x' }), host({ id: 'y', gpus: gpus(2, { model: A100 }) })]);
    expect(result.ok).toBe(false);
    expect(result.rejections.map((r) => r.reason)).toEqual(['gpu_model_mismatch', 'gpu_model_mismatch']);
  });
});

describe('odd inputs never throw', () => {
  it.each([
    ['all zero', request({ cpuCores: 0, memoryBytes: 0, gpuCount: 0, storageBytes: 0 })],
    ['negative', request({ cpuCores: -1, memoryBytes: -5, gpuCount: -2, storageBytes: -1 })],
    ['NaN', request({ cpuCores: NaN, memoryBytes: NaN, gpuCount: NaN, storageBytes: NaN })],
  ])('%s request fits an online host and takes no GPU', (_name, r) => {
    const result = ok(schedule(r, [host({ allocatedCpuCores: 100 })]));
    expect(result.candidates[0]!.gpuUuids).toEqual([]);
  });

  it('infinite requests fit nowhere and still give a message', () => {
    const result = schedule(request({ gpuCount: Infinity, cpuCores: Infinity }), [host()]);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toMatch(/^no host has Infinity free GPUs; the largest free slot is 8 GPUs on host-a/);
  });

  it('hosts with zero or NaN totals are scored without NaN', () => {
    const hosts = [
      host({ id: 'zero', cpuCores: 0, memoryBytes: 0, gpus: [] }),
      host({ id: 'nan', cpuCores: NaN, memoryBytes: NaN, allocatedCpuCores: NaN, gpus: [] }),
      host({ id: 'ok', gpus: [] }),
    ];
    const result = ok(schedule(request({ gpuCount: 0, cpuCores: 0, memoryBytes: 0 }), hosts));
    expect(result.candidates.map((c) => c.hostId)).toEqual(['nan', 'ok', 'zero']);
    for (const c of result.candidates) expect(Number.isNaN(c.score.loadAfter)).toBe(false);
  });

  it('an empty host list fails with a message', () => {
    const result = schedule(request(), []);
    expect(result).toEqual({
      ok: false,
      rejections: [],
      largestFreeSlot: null,
      message: 'no hosts are registered; an operator must add a GPU server first',
    });
  });
});
