import type { GpuSnapshot, HostSnapshot, PlacementRequest } from './types.js';

/**
 * How a host's GPUs look to one request. Only GPUs of the requested model count ("matching");
 * of those, only healthy and unallocated ones are free.
 */
export interface GpuView {
  /** GPUs on the host, any model. */
  readonly total: number;
  /** GPUs whose model matches the request (all of them when no model is asked). */
  readonly matching: number;
  /** Matching GPUs that are healthy and unallocated, lowest index first (ties by UUID). */
  readonly free: readonly GpuSnapshot[];
  /** Matching, unallocated GPUs that are unhealthy: free but for their health. */
  readonly unhealthy: number;
  /** Matching GPUs reserved by environments (healthy or not). */
  readonly allocated: number;
}

/**
 * Whole GPUs a request needs: fractions round up, zero, negative and NaN mean none. Never throws.
 */
export function gpusNeeded(request: PlacementRequest): number {
  return request.gpuCount > 0 ? Math.ceil(request.gpuCount) : 0;
}

/**
 * The normalised model filter of a request: lower-case, trimmed, or `null` for "any model".
 * A request without GPUs has no model filter. Never throws.
 */
export function wantedModel(request: PlacementRequest): string | null {
  if (gpusNeeded(request) === 0) return null;
  const model = typeof request.gpuModel === 'string' ? request.gpuModel.trim().toLowerCase() : '';
  return model === '' ? null : model;
}

/** True when `model` contains `wanted` (already lower-cased by `wantedModel`), or when `wanted` is null. */
export function modelMatches(model: string, wanted: string | null): boolean {
  return wanted === null || model.toLowerCase().includes(wanted);
}

function byIndexThenUuid(a: GpuSnapshot, b: GpuSnapshot): number {
  if (a.index !== b.index) return a.index < b.index ? -1 : 1;
  return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}

/** Counts a host's GPUs for a model filter (see `wantedModel`) in one pass. Pure; never throws. */
export function gpuView(host: HostSnapshot, wanted: string | null): GpuView {
  const free: GpuSnapshot[] = [];
  let matching = 0;
  let unhealthy = 0;
  let allocated = 0;
  for (const gpu of host.gpus) {
    if (!modelMatches(gpu.model, wanted)) continue;
    matching++;
    if (gpu.allocated) allocated++;
    else if (!gpu.healthy) unhealthy++;
    else free.push(gpu);
  }
  free.sort(byIndexThenUuid);
  return { total: host.gpus.length, matching, free, unhealthy, allocated };
}

/**
 * The GPUs a placement takes from a host's free list: the `count` lowest indexes. Kept simple on
 * purpose: no NVLink or PCIe topology is known here, and lowest-first keeps the choice
 * predictable for operators reading `nvidia-smi`. `count` is whole (see `gpusNeeded`); returns
 * [] for zero or less, and fewer UUIDs than asked when the list is shorter.
 */
export function pickGpus(free: readonly GpuSnapshot[], count: number): string[] {
  if (!(count > 0)) return [];
  return free.slice(0, count).map((gpu) => gpu.uuid);
}
