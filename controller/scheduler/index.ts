// The scheduler's public surface. Pure: no I/O, no database, no HTTP, no proto.
export { schedule } from './schedule.js';
export { summarizeRejections, formatBytes } from './format.js';
export {
  FILTERS,
  checkStatus,
  checkDiskPressure,
  checkRuntime,
  checkGpuModel,
  checkGpus,
  checkCpu,
  checkMemory,
  checkStorage,
  firstRejection,
  isSchedulable,
  type HostFilter,
} from './filters.js';
export { gpuView, gpusNeeded, pickGpus, wantedModel, modelMatches, type GpuView } from './gpus.js';
export { scoreHost, compareCandidates } from './score.js';
export { largestFreeSlot, freeSlotOf } from './slot.js';
export { neverFits, afterPlacement, emptied } from './capacity.js';
export type * from './types.js';
