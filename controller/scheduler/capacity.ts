import { checkCpu, checkGpuModel, checkGpus, checkMemory, checkStorage, firstRejection, type HostFilter } from './filters.js';
import { describeGpus, describeRequest, formatBytes, plural } from './format.js';
import { gpuView, gpusNeeded, wantedModel } from './gpus.js';
import { compareSlots, freeSlotOf } from './slot.js';
import type { HostSnapshot, PlacementRequest } from './types.js';

/** The size filters: what a host could hold at all, whatever its status or current use. */
const SIZE_FILTERS: readonly HostFilter[] = [checkGpuModel, checkGpus, checkCpu, checkMemory, checkStorage];

/** A host as it would be with nothing placed on it and every GPU healthy: its whole capacity. */
export function emptied(host: HostSnapshot): HostSnapshot {
  return {
    ...host,
    status: 'online',
    diskPressure: false,
    runtimeUnavailable: false,
    allocatedCpuCores: 0,
    allocatedMemoryBytes: 0,
    allocatedStorageBytes: 0,
    gpus: host.gpus.map((g) => ({ ...g, healthy: true, allocated: false })),
  };
}

/**
 * Whether any of `hosts` could ever hold `request`: null when one could (if it were empty, every
 * GPU healthy, whatever its status now), else the user-facing reason naming the largest host,
 * e.g. "no host could ever fit 64 GPUs: the largest host is gpu-1 (8 H100 GPUs, 128 CPU cores,
 * 1 TiB memory, 16 TiB storage)". With no hosts at all it answers null: nothing to compare
 * against (a cluster being set up), so the caller keeps its usual behaviour. Pure; never throws.
 */
export function neverFits(request: PlacementRequest, hosts: readonly HostSnapshot[]): string | null {
  if (hosts.length === 0) return null;
  const wanted = wantedModel(request);
  const gpus = gpusNeeded(request);
  let largest: { host: HostSnapshot; slot: ReturnType<typeof freeSlotOf> } | null = null;
  for (const host of hosts) {
    const whole = emptied(host);
    const view = gpuView(whole, wanted);
    if (firstRejection(request, whole, view, SIZE_FILTERS) === null) return null;
    const slot = freeSlotOf(whole, view);
    if (largest === null || compareSlots(slot, largest.slot, gpus > 0) < 0) largest = { host: whole, slot };
  }
  const { host, slot } = largest!;
  const what = describeRequest(request, gpus);
  const models = [...new Set(hosts.flatMap((h) => h.gpus.map((g) => g.model)))].sort();
  const noSuchModel = gpus > 0 && wanted !== null && !hosts.some((h) => gpuView(h, wanted).matching > 0);
  const modelNote = noSuchModel ? `; no host has ${request.gpuModel!.trim()} GPUs (models here: ${models.length > 0 ? models.join(', ') : 'none'})` : '';
  // The host's GPUs of the asked model, or all of them when nobody has that model.
  const hostGpus = noSuchModel ? describeGpus(host.gpus.length) : describeGpus(slot.gpuCount, gpus > 0 ? request.gpuModel : undefined);
  const size =
    `${gpus > 0 || slot.gpuCount > 0 ? `${hostGpus}, ` : ''}` +
    `${plural(slot.cpuCores, 'CPU core')}, ${formatBytes(slot.memoryBytes)} memory, ${formatBytes(slot.storageBytes)} storage`;
  return `no host could ever fit ${what}${modelNote}; the largest host is ${host.hostname} (${size} in all); ask for less`;
}

/**
 * `hosts` as they are once a placement of `request` took `gpuUuids` on `hostId`: what the queue
 * schedules its next entries against, so one snapshot serves a whole pass. Pure; `hosts` is not
 * modified.
 */
export function afterPlacement(hosts: readonly HostSnapshot[], hostId: string, request: PlacementRequest, gpuUuids: readonly string[]): HostSnapshot[] {
  const taken = new Set(gpuUuids);
  const add = (n: number) => (n > 0 ? n : 0);
  return hosts.map((h) =>
    h.id !== hostId
      ? h
      : {
          ...h,
          allocatedCpuCores: h.allocatedCpuCores + add(request.cpuCores),
          allocatedMemoryBytes: h.allocatedMemoryBytes + add(request.memoryBytes),
          allocatedStorageBytes: h.allocatedStorageBytes + add(request.storageBytes),
          gpus: h.gpus.map((g) => (taken.has(g.uuid) ? { ...g, allocated: true } : g)),
        },
  );
}
