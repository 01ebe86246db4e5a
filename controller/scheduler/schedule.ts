import { FILTERS, firstRejection, type HostFilter } from './filters.js';
import { describeGpus, describeRequest, describeSlot, gpuNoun, summarizeRejections } from './format.js';
import { gpuView, gpusNeeded, pickGpus, wantedModel } from './gpus.js';
import { compareCandidates, scoreHost } from './score.js';
import { largestFreeSlot } from './slot.js';
import type { Candidate, FreeSlot, HostSnapshot, PlacementRequest, Rejection, ScheduleResult } from './types.js';

/**
 * Places one request on a snapshot of hosts: filter (status, GPU model, GPUs, CPU, memory,
 * storage), score each feasible host, rank. Pure and deterministic: the ranked candidates and
 * the largest free slot do not depend on the order of `hosts` (host ids are assumed unique);
 * inputs are not modified; never throws.
 *
 * On success `candidates` holds every feasible host, best first, each with the GPU UUIDs it would
 * take (lowest free indexes). The caller reserves them in a transaction and, when the database
 * refuses (a concurrent placement won), tries the next candidate. `rejections` lists the hosts
 * that were filtered out, one reason each, in input order.
 *
 * On failure the result carries a user-facing `message` and the largest free slot among online
 * hosts, so the user can see what would fit today.
 *
 * `filters` defaults to `FILTERS`; a caller may pass another list (e.g. with an extra policy check).
 */
export function schedule(
  request: PlacementRequest,
  hosts: readonly HostSnapshot[],
  filters: readonly HostFilter[] = FILTERS,
): ScheduleResult {
  const gpus = gpusNeeded(request);
  const wanted = wantedModel(request);
  const candidates: Candidate[] = [];
  const rejections: Rejection[] = [];
  for (const host of hosts) {
    const view = gpuView(host, wanted);
    const rejection = firstRejection(request, host, view, filters);
    if (rejection !== null) {
      rejections.push(rejection);
      continue;
    }
    candidates.push({
      hostId: host.id,
      hostname: host.hostname,
      gpuUuids: pickGpus(view.free, gpus),
      score: scoreHost(request, host, view, gpus),
    });
  }
  if (candidates.length > 0) {
    candidates.sort(compareCandidates);
    return { ok: true, candidates, rejections };
  }
  const slot = largestFreeSlot(hosts, wanted, gpus > 0);
  return { ok: false, rejections, largestFreeSlot: slot, message: noCapacityMessage(request, hosts.length, rejections, slot) };
}

/**
 * The user-facing reason nothing fits, e.g. "no host has 8 free H100 GPUs; the largest free slot
 * is 4 H100 GPUs on host-7f3a (32 CPU cores, 256 GiB memory, 2 TiB storage free)". `slot` is the
 * largest free slot, ranked GPUs first for a GPU request, so its GPU count is the most any online
 * host has free.
 */
function noCapacityMessage(
  request: PlacementRequest,
  hostCount: number,
  rejections: readonly Rejection[],
  slot: FreeSlot | null,
): string {
  if (hostCount === 0) return 'no hosts are registered; an operator must add a GPU server first';
  if (slot === null) {
    return `no host is taking new environments (${summarizeRejections(rejections)}); try again later or ask an operator`;
  }
  const gpus = gpusNeeded(request);
  if (gpus > slot.gpuCount) {
    const head = `no host has ${describeGpus(gpus, request.gpuModel, 'free')}`;
    if (slot.gpuCount === 0) return `${head}; no online host has a free ${gpuNoun(request.gpuModel)}`;
    return `${head}; ${describeSlot(slot, request, gpus)}`;
  }
  return `no host has room for ${describeRequest(request, gpus)}; ${describeSlot(slot, request, gpus)}`;
}
