import { isSchedulable } from './filters.js';
import { gpuView, type GpuView } from './gpus.js';
import type { FreeSlot, HostSnapshot } from './types.js';

/** The free capacity of one host, clamped at zero for over-committed hosts. */
export function freeSlotOf(host: HostSnapshot, view: GpuView): FreeSlot {
  return {
    hostId: host.id,
    hostname: host.hostname,
    gpuCount: view.free.length,
    cpuCores: Math.max(0, host.cpuCores - host.allocatedCpuCores) || 0,
    memoryBytes: Math.max(0, host.memoryBytes - host.allocatedMemoryBytes) || 0,
    storageBytes: Math.max(0, host.storageBytes - host.allocatedStorageBytes) || 0,
  };
}

/**
 * Order of "largest" free slots, largest first. For a GPU request: most free GPUs, then CPU, then
 * memory; for a request without GPUs, CPU then memory then GPUs. Ties by host id.
 */
export function compareSlots(a: FreeSlot, b: FreeSlot, gpuFirst: boolean): number {
  const keys: (keyof FreeSlot)[] = gpuFirst
    ? ['gpuCount', 'cpuCores', 'memoryBytes', 'storageBytes']
    : ['cpuCores', 'memoryBytes', 'gpuCount', 'storageBytes'];
  for (const key of keys) {
    const x = a[key] as number;
    const y = b[key] as number;
    if (x !== y) return y - x;
  }
  return a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0;
}

/**
 * The largest free slot among schedulable (online) hosts, or `null` when there is none. GPUs
 * count when they match `wanted` (see `wantedModel`); `gpuFirst` picks the order of `compareSlots`.
 */
export function largestFreeSlot(hosts: readonly HostSnapshot[], wanted: string | null, gpuFirst: boolean): FreeSlot | null {
  let best: FreeSlot | null = null;
  for (const host of hosts) {
    if (!isSchedulable(host)) continue;
    const slot = freeSlotOf(host, gpuView(host, wanted));
    if (best === null || compareSlots(slot, best, gpuFirst) < 0) best = slot;
  }
  return best;
}
