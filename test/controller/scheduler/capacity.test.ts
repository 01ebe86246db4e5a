import { describe, expect, it } from 'vitest';
import { afterPlacement, neverFits } from '../../../controller/scheduler/capacity.js';
import { schedule } from '../../../controller/scheduler/schedule.js';
import { A100, GiB, TiB, gpus, host, int, prng, randomHost, randomRequest, request } from './builders.js';

describe('neverFits: what no host could ever hold', () => {
  it('refuses more GPUs than the largest host has, naming that host', () => {
    const hosts = [host({ id: 'h-small', hostname: 'small', gpus: gpus(4) }), host({ id: 'h-big', hostname: 'big', gpus: gpus(8), cpuCores: 128 })];
    expect(neverFits(request({ gpuCount: 64 }), hosts)).toBe(
      'no host could ever fit 64 GPUs, 4 CPU cores, 32 GiB memory and 100 GiB storage; the largest host is big (8 GPUs, 128 CPU cores, 512 GiB memory, 4 TiB storage in all); ask for less',
    );
  });

  it('refuses a GPU model nobody has, listing the models there are', () => {
    const message = neverFits(request({ gpuModel: 'B200' }), [host({ gpus: gpus(8, { model: A100 }) })]);
    expect(message).toContain('no host has B200 GPUs (models here: NVIDIA A100-SXM4-80GB)');
    expect(message).toContain('the largest host is host-a');
  });

  it('accepts what fits an empty host, however busy, unhealthy, offline or cordoned it is now', () => {
    const busy = host({
      status: 'offline',
      diskPressure: true,
      allocatedCpuCores: 64,
      allocatedMemoryBytes: 512 * GiB,
      allocatedStorageBytes: 4 * TiB,
      gpus: gpus(8, { allocated: true, healthy: false }),
    });
    expect(neverFits(request({ gpuCount: 8, cpuCores: 64, memoryBytes: 512 * GiB, storageBytes: 4 * TiB }), [busy])).toBeNull();
    expect(neverFits(request({ cpuCores: 65 }), [busy])).toMatch(/^no host could ever fit .*65 CPU cores/);
  });

  it('needs one host holding everything: no summing across hosts', () => {
    const hosts = [host({ id: 'a', cpuCores: 128, memoryBytes: 64 * GiB }), host({ id: 'b', cpuCores: 16, memoryBytes: 1024 * GiB })];
    expect(neverFits(request({ cpuCores: 100, memoryBytes: 512 * GiB }), hosts)).not.toBeNull();
  });

  it('has nothing to compare against without hosts (null)', () => {
    expect(neverFits(request({ gpuCount: 64 }), [])).toBeNull();
  });

  it('never refuses a request that schedule() places (1000 random clusters)', () => {
    const rand = prng(11);
    for (let i = 0; i < 1000; i++) {
      const hosts = Array.from({ length: int(rand, 1, 6) }, (_, n) => randomHost(rand, n));
      const req = randomRequest(rand);
      if (schedule(req, hosts).ok) expect(neverFits(req, hosts)).toBeNull();
    }
  });
});

describe('afterPlacement: the queue pass schedules on one snapshot', () => {
  it('takes the placed GPUs, cores, memory and storage out of that host only', () => {
    const hosts = [host({ id: 'a' }), host({ id: 'b' })];
    const req = request({ gpuCount: 2, cpuCores: 60 });
    const first = schedule(req, hosts);
    if (!first.ok) throw new Error('must fit');
    const chosen = first.candidates[0]!;
    const after = afterPlacement(hosts, chosen.hostId, req, chosen.gpuUuids);
    const placedOn = after.find((h) => h.id === chosen.hostId)!;
    expect(placedOn.allocatedCpuCores).toBe(60);
    expect(placedOn.gpus.filter((g) => g.allocated).map((g) => g.uuid)).toEqual(chosen.gpuUuids);
    expect(after.find((h) => h.id !== chosen.hostId)).toBe(hosts.find((h) => h.id !== chosen.hostId));
    expect(hosts[0]!.allocatedCpuCores).toBe(0); // the input is not modified
    // The same request again goes to the other host: 4 cores left there.
    const second = schedule(req, after);
    expect(second.ok && second.candidates.map((c) => c.hostId)).toEqual([hosts.find((h) => h.id !== chosen.hostId)!.id]);
  });
});
