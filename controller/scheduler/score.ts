import type { GpuView } from './gpus.js';
import type { Candidate, CandidateScore, HostSnapshot, PlacementRequest } from './types.js';

/** used/total, with an empty total counting as full when anything is used; NaN becomes +Infinity. */
function utilisation(used: number, total: number): number {
  const ratio = total > 0 ? used / total : used > 0 ? Infinity : 0;
  return Number.isNaN(ratio) ? Infinity : ratio;
}

/** A request's demand for ranking: nothing below zero, NaN as zero. */
function demand(n: number): number {
  return n > 0 ? n : 0;
}

/**
 * Ranking keys of a feasible host for a request that takes `gpus` whole GPUs:
 * free matching GPUs left after placement (best fit: keep whole GPU hosts free for big requests;
 * a request without GPUs thus prefers hosts with fewer free GPUs), then the load after placement,
 * the larger of CPU and memory utilisation. Pure; never throws.
 */
export function scoreHost(request: PlacementRequest, host: HostSnapshot, view: GpuView, gpus: number): CandidateScore {
  const cpu = utilisation(host.allocatedCpuCores + demand(request.cpuCores), host.cpuCores);
  const memory = utilisation(host.allocatedMemoryBytes + demand(request.memoryBytes), host.memoryBytes);
  return { freeGpusAfter: view.free.length - gpus, loadAfter: Math.max(cpu, memory) };
}

/**
 * Total order on candidates, best first: fewer free GPUs left, then lower load, then host id
 * (plain code-unit comparison, so the order never depends on the locale).
 */
export function compareCandidates(a: Candidate, b: Candidate): number {
  if (a.score.freeGpusAfter !== b.score.freeGpusAfter) return a.score.freeGpusAfter - b.score.freeGpusAfter;
  if (a.score.loadAfter !== b.score.loadAfter) return a.score.loadAfter < b.score.loadAfter ? -1 : 1;
  return a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0;
}
