// Property-style tests on thousands of synthetic hosts, checked against a brute-force oracle
// written here independently of the scheduler's own helpers.
import { describe, expect, it } from 'vitest';
import { schedule } from '../../../controller/scheduler/schedule.js';
import type { GpuSnapshot, HostSnapshot, PlacementRequest, ScheduleResult } from '../../../controller/scheduler/types.js';
import { int, prng, randomHost, randomRequest } from './builders.js';

function needGpus(r: PlacementRequest): number {
  return r.gpuCount > 0 ? Math.ceil(r.gpuCount) : 0;
}

function oracleFree(r: PlacementRequest, h: HostSnapshot): GpuSnapshot[] {
  const model = needGpus(r) > 0 ? (r.gpuModel ?? '').trim().toLowerCase() : '';
  return h.gpus.filter((g) => g.healthy && !g.allocated && g.model.toLowerCase().includes(model));
}

function oracleFits(r: PlacementRequest, h: HostSnapshot): boolean {
  const room = (need: number, total: number, used: number) => need <= 0 || need <= total - used;
  return (
    h.status === 'online' &&
    room(r.cpuCores, h.cpuCores, h.allocatedCpuCores) &&
    room(r.memoryBytes, h.memoryBytes, h.allocatedMemoryBytes) &&
    room(r.storageBytes, h.storageBytes, h.allocatedStorageBytes) &&
    oracleFree(r, h).length >= needGpus(r)
  );
}

function checkInvariants(r: PlacementRequest, hosts: readonly HostSnapshot[], result: ScheduleResult): void {
  const byId = new Map(hosts.map((h) => [h.id, h]));
  const feasible = hosts.filter((h) => oracleFits(r, h));
  const rejected = new Set(result.rejections.map((x) => x.hostId));
  const wronglyRejected = result.rejections.filter((x) => !byId.has(x.hostId) || oracleFits(r, byId.get(x.hostId)!));
  expect(wronglyRejected).toEqual([]);

  if (!result.ok) {
    // Brute force: nothing fits, every host is rejected exactly once.
    expect(feasible).toEqual([]);
    expect(result.rejections).toHaveLength(hosts.length);
    expect(rejected.size).toBe(hosts.length);
    const online = hosts.filter((h) => h.status === 'online');
    if (online.length === 0) expect(result.largestFreeSlot).toBeNull();
    else {
      const slot = result.largestFreeSlot!;
      expect(byId.get(slot.hostId)!.status).toBe('online');
      if (needGpus(r) > 0) expect(slot.gpuCount).toBe(Math.max(...online.map((h) => oracleFree(r, h).length)));
      else expect(slot.cpuCores).toBe(Math.max(...online.map((h) => Math.max(0, h.cpuCores - h.allocatedCpuCores))));
    }
    expect(result.message).toMatch(/^no /);
    return;
  }

  // Candidates are exactly the feasible hosts; rejections are the rest.
  // Sorted id lists, not Sets: deep equality on large Sets is quadratic.
  expect(result.candidates.map((c) => c.hostId).sort()).toEqual(feasible.map((h) => h.id).sort());
  expect(result.candidates.length + result.rejections.length).toBe(hosts.length);
  expect(result.candidates.some((c) => rejected.has(c.hostId))).toBe(false);

  // Per-candidate checks collect problems instead of calling expect() thousands of times.
  const need = needGpus(r);
  const problems: string[] = [];
  for (const c of result.candidates) {
    const h = byId.get(c.hostId)!;
    const free = oracleFree(r, h);
    // Every candidate truly fits, takes exactly `need` distinct GPUs, each free and of the model,
    // and they are the lowest free indexes.
    if (!oracleFits(r, h)) problems.push(`${c.hostId} does not fit`);
    if (c.gpuUuids.length !== need || new Set(c.gpuUuids).size !== need) problems.push(`${c.hostId} took ${c.gpuUuids.length} GPUs`);
    const freeUuids = new Set(free.map((g) => g.uuid));
    for (const uuid of c.gpuUuids) {
      const g = h.gpus.find((x) => x.uuid === uuid);
      if (g === undefined || !g.healthy || g.allocated || !freeUuids.has(uuid)) problems.push(`${c.hostId} took bad GPU ${uuid}`);
    }
    const lowest = [...free].sort((a, b) => a.index - b.index).slice(0, need).map((g) => g.uuid);
    if (c.gpuUuids.join() !== lowest.join()) problems.push(`${c.hostId} took ${c.gpuUuids.join()}, not ${lowest.join()}`);
    if (c.score.freeGpusAfter !== free.length - need) problems.push(`${c.hostId} freeGpusAfter ${c.score.freeGpusAfter}`);
  }
  expect(problems).toEqual([]);

  // The first candidate leaves the fewest free matching GPUs of all feasible hosts, and the
  // whole list is sorted by (free GPUs left, load, id).
  const minLeft = Math.min(...feasible.map((h) => oracleFree(r, h).length - need));
  expect(result.candidates[0]!.score.freeGpusAfter).toBe(minLeft);
  for (let i = 1; i < result.candidates.length; i++) {
    const a = result.candidates[i - 1]!;
    const b = result.candidates[i]!;
    const ordered =
      a.score.freeGpusAfter < b.score.freeGpusAfter ||
      (a.score.freeGpusAfter === b.score.freeGpusAfter &&
        (a.score.loadAfter < b.score.loadAfter || (a.score.loadAfter === b.score.loadAfter && a.hostId < b.hostId)));
    if (!ordered) problems.push(`candidates ${a.hostId} and ${b.hostId} out of order`);
  }
  expect(problems).toEqual([]);
}

describe('properties on synthetic clusters', () => {
  const rand = prng(20240601);
  const big = Array.from({ length: 5000 }, (_, i) => randomHost(rand, i));

  it('the synthetic cluster is varied enough to mean something', () => {
    const statuses = new Set(big.map((h) => h.status));
    expect(statuses).toEqual(new Set(['online', 'offline', 'cordoned', 'draining']));
    expect(big.some((h) => h.gpus.some((g) => !g.healthy))).toBe(true);
    expect(big.some((h) => h.allocatedCpuCores > h.cpuCores)).toBe(true);
  });

  it('200 random requests on 5,000 hosts: candidates fit, GPUs are free, best fit comes first', () => {
    let placed = 0;
    for (let i = 0; i < 200; i++) {
      const r = randomRequest(rand);
      const result = schedule(r, big);
      checkInvariants(r, big, result);
      if (result.ok) placed++;
    }
    expect(placed).toBeGreaterThan(100);
  });

  it('2,000 random small clusters: fails exactly when no host fits (brute force)', () => {
    let failures = 0;
    let successes = 0;
    for (let round = 0; round < 2000; round++) {
      const hosts = Array.from({ length: int(rand, 0, 8) }, (_, i) => randomHost(rand, round * 10 + i));
      const r = randomRequest(rand);
      const result = schedule(r, hosts);
      expect(result.ok).toBe(hosts.some((h) => oracleFits(r, h)));
      checkInvariants(r, hosts, result);
      if (result.ok) successes++;
      else failures++;
    }
    // Both branches must be exercised for the property to mean anything.
    expect(failures).toBeGreaterThan(100);
    expect(successes).toBeGreaterThan(100);
  });

  it('rejection reasons agree with the host: status first, then the resource that is short', () => {
    for (let i = 0; i < 50; i++) {
      const r = randomRequest(rand);
      const result = schedule(r, big);
      const byId = new Map(big.map((h) => [h.id, h]));
      const wrong = result.rejections.filter((x) => {
        const h = byId.get(x.hostId)!;
        if (h.status !== 'online') return x.reason !== h.status;
        switch (x.reason) {
          case 'insufficient_cpu':
            return !(r.cpuCores > h.cpuCores - h.allocatedCpuCores);
          case 'insufficient_memory':
            return !(r.memoryBytes > h.memoryBytes - h.allocatedMemoryBytes);
          case 'insufficient_storage':
            return !(r.storageBytes > h.storageBytes - h.allocatedStorageBytes);
          case 'gpu_model_mismatch':
            return !(h.gpus.length > 0 && oracleFree(r, h).length === 0);
          case 'insufficient_gpus':
          case 'unhealthy_gpus':
            return !(oracleFree(r, h).length < needGpus(r));
          default:
            return true;
        }
      });
      expect(wrong).toEqual([]);
    }
  });

  it('is deterministic under shuffling on 5,000 hosts', () => {
    const r: PlacementRequest = { gpuCount: 2, cpuCores: 8, memoryBytes: 64 * 1024 ** 3, storageBytes: 1024 ** 4 };
    const expected = schedule(r, big);
    const shuffled = [...big];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const again = schedule(r, shuffled);
    expect(again.ok && again.candidates).toEqual(expected.ok && expected.candidates);
  });
});
