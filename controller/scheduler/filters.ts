import { describeGpus, formatBytes, plural, trimNumber } from './format.js';
import { gpusNeeded, type GpuView } from './gpus.js';
import type { HostSnapshot, PlacementRequest, RejectReason, Rejection } from './types.js';

/**
 * One feasibility check: `null` when the host passes, else the reason it cannot take the request.
 * Filters are pure, never throw, and see the host's GPUs through the request's `GpuView`.
 */
export type HostFilter = (request: PlacementRequest, host: HostSnapshot, gpus: GpuView) => Rejection | null;

function reject(host: HostSnapshot, reason: RejectReason, detail: string): Rejection {
  return { hostId: host.id, reason, detail };
}

/** Free amount of a resource; may be negative on an over-committed host. */
export function freeOf(total: number, allocated: number): number {
  return total - allocated;
}

/** A request that needs nothing of a resource (zero, negative, NaN) always fits it. */
function fits(need: number, free: number): boolean {
  return !(need > 0) || need <= free;
}

/** Only `online` hosts take placements; anything else (including an unknown status) is refused. */
export const checkStatus: HostFilter = (_request, host) => {
  switch (host.status) {
    case 'online':
      return null;
    case 'cordoned':
      return reject(host, 'cordoned', 'host is cordoned: it takes no new environments');
    case 'draining':
      return reject(host, 'draining', 'host is draining: it takes no new environments');
    case 'offline':
      return reject(host, 'offline', 'host is offline');
    case 'pending_approval':
      return reject(host, 'pending_approval', `host awaits an admin's approval (POST /api/v1/admin/hosts/${host.id}/approve)`);
    default:
      return reject(host, 'offline', `host status is ${JSON.stringify(host.status)}, not online`);
  }
};

/**
 * A host whose data disk has less free space than the reserve its agent keeps (REMOTEGPU_DISK_RESERVE)
 * takes no new environment. A start of one already there asks for no storage and still fits.
 */
export const checkDiskPressure: HostFilter = (request, host) => {
  if (!host.diskPressure || !(request.storageBytes > 0)) return null;
  return reject(host, 'disk_pressure', 'host is under disk pressure (its data disk has less free space than the reserve, REMOTEGPU_DISK_RESERVE): it takes no new environments');
};

/**
 * A host whose container runtime (Docker) does not answer, as its agent reports, takes no new
 * environment (it would wait there until Docker is back). A start of one already there (no
 * storage asked) still fits: it runs once the runtime answers again.
 */
export const checkRuntime: HostFilter = (request, host) => {
  if (!host.runtimeUnavailable || !(request.storageBytes > 0)) return null;
  return reject(host, 'runtime_unavailable', "host's container runtime (Docker) does not answer: it takes no new environments until it does");
};

/** A request for a GPU model refuses hosts that have GPUs, none of that model. */
export const checkGpuModel: HostFilter = (request, host, gpus) => {
  if (gpusNeeded(request) === 0 || gpus.total === 0 || gpus.matching > 0) return null;
  const models = [...new Set(host.gpus.map((g) => g.model))].sort().join(', ');
  return reject(host, 'gpu_model_mismatch', `needs ${request.gpuModel?.trim()} GPUs, host has ${models}`);
};

/**
 * Enough free GPUs (healthy, unallocated, of the model). When unhealthy GPUs are what makes the
 * difference the reason is `unhealthy_gpus`, so an operator knows a repair would help.
 */
export const checkGpus: HostFilter = (request, host, gpus) => {
  const need = gpusNeeded(request);
  if (need <= gpus.free.length) return null;
  const wanted = describeGpus(need, request.gpuModel);
  if (gpus.matching === 0) return reject(host, 'insufficient_gpus', `needs ${wanted}, host has none`);
  const notes: string[] = [];
  if (gpus.unhealthy > 0) notes.push(`${gpus.unhealthy} unhealthy`);
  if (gpus.allocated > 0) notes.push(`${gpus.allocated} in use`);
  const detail = `needs ${wanted}, ${gpus.free.length} free${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
  const reason = gpus.free.length + gpus.unhealthy >= need ? 'unhealthy_gpus' : 'insufficient_gpus';
  return reject(host, reason, detail);
};

/** Enough unreserved CPU cores. */
export const checkCpu: HostFilter = (request, host) => {
  const free = freeOf(host.cpuCores, host.allocatedCpuCores);
  if (fits(request.cpuCores, free)) return null;
  return reject(
    host,
    'insufficient_cpu',
    `needs ${plural(request.cpuCores, 'CPU core')}, ${trimNumber(Math.max(0, free))} free of ${trimNumber(host.cpuCores)}`,
  );
};

/** Enough unreserved memory. */
export const checkMemory: HostFilter = (request, host) => {
  const free = freeOf(host.memoryBytes, host.allocatedMemoryBytes);
  if (fits(request.memoryBytes, free)) return null;
  return reject(
    host,
    'insufficient_memory',
    `needs ${formatBytes(request.memoryBytes)} memory, ${formatBytes(Math.max(0, free))} free of ${formatBytes(host.memoryBytes)}`,
  );
};

/** Enough unreserved storage for the environment's volume (the disk's size minus its reserve, minus every volume there). */
export const checkStorage: HostFilter = (request, host) => {
  const free = freeOf(host.storageBytes, host.allocatedStorageBytes);
  if (fits(request.storageBytes, free)) return null;
  return reject(
    host,
    'insufficient_storage',
    `needs ${formatBytes(request.storageBytes)} storage, ${formatBytes(Math.max(0, free))} free of ${formatBytes(host.storageBytes)}`,
  );
};

/**
 * The filters in the order they run; a host's rejection is the first that refuses it. Status and
 * disk pressure come first (no point in sizing a host that takes nothing), then GPUs, the scarce
 * resource users ask about, then CPU, memory and storage.
 */
export const FILTERS: readonly HostFilter[] = [checkStatus, checkDiskPressure, checkRuntime, checkGpuModel, checkGpus, checkCpu, checkMemory, checkStorage];

/** Runs `filters` in order and returns the first rejection, or `null` when the host is feasible. */
export function firstRejection(
  request: PlacementRequest,
  host: HostSnapshot,
  gpus: GpuView,
  filters: readonly HostFilter[] = FILTERS,
): Rejection | null {
  for (const filter of filters) {
    const rejection = filter(request, host, gpus);
    if (rejection !== null) return rejection;
  }
  return null;
}

/**
 * True when the host takes new environments at all (status online, no disk pressure, its runtime answers), regardless
 * of the request's sizes: the hosts whose free capacity is worth showing in a "largest free slot".
 */
export function isSchedulable(host: HostSnapshot): boolean {
  return host.status === 'online' && !host.diskPressure && !host.runtimeUnavailable;
}
