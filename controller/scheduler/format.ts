import { formatBytes, trimNumber } from '../../common/format.js';
import type { FreeSlot, PlacementRequest, Rejection } from './types.js';

export { formatBytes, trimNumber };

/** "1 GPU", "4 GPUs", "1 H100 GPU": a count with its noun, singular only for exactly one. */
export function plural(count: number, noun: string): string {
  return `${trimNumber(count)} ${noun}${count === 1 ? '' : 's'}`;
}

/**
 * "4 H100 GPUs" / "4 GPUs" / "4 free H100 GPUs" for a GPU count, an optional model and an
 * optional adjective placed after the count.
 */
export function describeGpus(count: number, model?: string, adjective?: string): string {
  return plural(count, adjective === undefined ? gpuNoun(model) : `${adjective} ${gpuNoun(model)}`);
}

/** "H100 GPU" for a model, "GPU" without one (undefined or blank). */
export function gpuNoun(model?: string): string {
  const name = typeof model === 'string' ? model.trim() : '';
  return name === '' ? 'GPU' : `${name} GPU`;
}

/**
 * Counts rejections by reason, most frequent first (ties by reason name):
 * "3 hosts: 2 insufficient_gpus, 1 offline". An empty list gives "0 hosts".
 */
export function summarizeRejections(rejections: readonly Rejection[]): string {
  const counts = new Map<string, number>();
  for (const r of rejections) counts.set(r.reason, (counts.get(r.reason) ?? 0) + 1);
  const head = plural(rejections.length, 'host');
  if (counts.size === 0) return head;
  const parts = [...counts.entries()]
    .sort(([ra, a], [rb, b]) => (a !== b ? b - a : ra < rb ? -1 : ra > rb ? 1 : 0))
    .map(([reason, n]) => `${n} ${reason}`);
  return `${head}: ${parts.join(', ')}`;
}

/** "8 H100 GPUs, 64 CPU cores, 512 GiB memory and 1 TiB storage": the non-zero parts of a request. */
export function describeRequest(request: PlacementRequest, gpus: number): string {
  const parts: string[] = [];
  if (gpus > 0) parts.push(describeGpus(gpus, request.gpuModel));
  if (request.cpuCores > 0) parts.push(plural(request.cpuCores, 'CPU core'));
  if (request.memoryBytes > 0) parts.push(`${formatBytes(request.memoryBytes)} memory`);
  if (request.storageBytes > 0) parts.push(`${formatBytes(request.storageBytes)} storage`);
  if (parts.length === 0) return 'an empty request';
  if (parts.length === 1) return parts[0]!;
  return `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]!}`;
}

/**
 * "the largest free slot is 4 GPUs on host-7f3a (32 CPU cores, 256 GiB memory, 2 TiB storage free)".
 * The GPU part is left out when the slot has none and the request asks for none.
 */
export function describeSlot(slot: FreeSlot, request: PlacementRequest, gpus: number): string {
  const resources =
    `${plural(slot.cpuCores, 'CPU core')}, ${formatBytes(slot.memoryBytes)} memory, ` +
    `${formatBytes(slot.storageBytes)} storage free`;
  const what = gpus > 0 || slot.gpuCount > 0 ? `${describeGpus(slot.gpuCount, gpus > 0 ? request.gpuModel : undefined)} ` : '';
  return `the largest free slot is ${what}on ${slot.hostname} (${resources})`;
}
