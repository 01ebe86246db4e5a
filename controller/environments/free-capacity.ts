import { isSchedulable, type HostSnapshot } from '../scheduler/index.js';

/** Free GPUs of one model on the hosts that take new environments. */
export interface FreeGpuModel {
  readonly model: string;
  /** Healthy, unallocated GPUs of this model, over all schedulable hosts. */
  readonly free: number;
  /** The most of them free on one host: the largest GPU count one environment of this model can get now. */
  readonly maxPerHost: number;
}

/**
 * What a user may create now, for the console's create form (GET /capacity): free GPUs per model,
 * and the most free of each resource on one host. Only schedulable hosts count (online, runtime
 * answering, no disk pressure); no host is named. Each "largest" is a per-resource maximum: one
 * host may have the most CPU and another the most memory, so a request within every figure may
 * still not fit on a single host (the create's 40902 names the largest free slot then).
 */
export interface FreeCapacity {
  readonly schedulableHosts: number;
  readonly gpuModels: FreeGpuModel[];
  readonly largest: { readonly gpu: number; readonly cpuCores: number; readonly memoryBytes: number; readonly storageBytes: number };
}

export function freeCapacity(hosts: readonly HostSnapshot[]): FreeCapacity {
  const models = new Map<string, { free: number; maxPerHost: number }>();
  const largest = { gpu: 0, cpuCores: 0, memoryBytes: 0, storageBytes: 0 };
  let schedulableHosts = 0;
  for (const host of hosts) {
    if (!isSchedulable(host)) continue;
    schedulableHosts += 1;
    const perModel = new Map<string, number>();
    for (const g of host.gpus) if (g.healthy && !g.allocated) perModel.set(g.model, (perModel.get(g.model) ?? 0) + 1);
    let freeGpus = 0;
    for (const [model, n] of perModel) {
      const entry = models.get(model) ?? { free: 0, maxPerHost: 0 };
      models.set(model, { free: entry.free + n, maxPerHost: Math.max(entry.maxPerHost, n) });
      freeGpus += n;
    }
    largest.gpu = Math.max(largest.gpu, freeGpus);
    largest.cpuCores = Math.max(largest.cpuCores, host.cpuCores - host.allocatedCpuCores);
    largest.memoryBytes = Math.max(largest.memoryBytes, host.memoryBytes - host.allocatedMemoryBytes);
    largest.storageBytes = Math.max(largest.storageBytes, host.storageBytes - host.allocatedStorageBytes);
  }
  const gpuModels = [...models].map(([model, m]) => ({ model, ...m })).sort((a, b) => b.free - a.free || (a.model < b.model ? -1 : 1));
  return { schedulableHosts, gpuModels, largest };
}
