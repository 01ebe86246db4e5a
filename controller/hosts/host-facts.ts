import { invalidFields, type FieldIssue } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { GpuFacts, HostFacts } from './model.js';

// What the controller accepts of the facts an agent reports: required fields, GPUs keyed by uuid,
// and bounds on every number and string, so a broken or hostile agent cannot store absurd values.

const TIB = 2 ** 40;

/** The bounds of reported facts. Sizes in bytes. */
export const FACT_LIMITS = Object.freeze({
  gpus: 64,
  gpuMemoryBytes: TIB,
  memoryBytes: 64 * TIB,
  /** 8 PiB: 10 PiB would pass 2^53, where byte counts stop being exact JavaScript numbers. */
  diskBytes: 8 * 1024 * TIB,
  cpuCores: 4096,
  gpuIndex: 4095,
  temperatureC: 1000,
  /** Names, addresses, versions, models, uuids, bus ids. */
  stringLength: 256,
  /**
   * Diagnostic text (gpu_condition, health_reason): the agent joins one clause per failing GPU
   * there, and refusing the report of a host whose GPUs fail would also take it offline.
   */
  textLength: 4096,
  /** Busy ports a host may report (the agent sends at most this many). */
  busyPorts: 8192,
});

/** At most this many issues are named in one error. */
const MAX_ISSUES = 10;

/**
 * Facts the controller can use: hostname and agent address present; every bound of
 * `boundedFacts`; GPUs without a uuid dropped and duplicate uuids collapsed (the last wins), since
 * GPUs are keyed by uuid. Throws invalid_argument naming each offending field.
 */
export function validFacts(facts: HostFacts, log: Logger): HostFacts {
  const fields: FieldIssue[] = [];
  if (!facts.hostname) fields.push({ field: 'facts.hostname', message: 'required' });
  if (!facts.agentAddress) fields.push({ field: 'facts.agent_address', message: 'required: host:port where the controller reaches the agent' });
  if (fields.length > 0) throw invalidFields(fields, 'invalid host facts');
  const bounded = boundedFacts(facts);
  const byUuid = new Map<string, GpuFacts>();
  for (const g of bounded.gpus) if (g.uuid) byUuid.set(g.uuid, g);
  if (byUuid.size !== bounded.gpus.length) {
    log.warn({ hostname: bounded.hostname, reported: bounded.gpus.length, kept: byUuid.size }, 'GPUs without uuid or with a duplicate uuid ignored');
    return { ...bounded, gpus: [...byUuid.values()] };
  }
  return bounded;
}

/**
 * Refuses absurd facts with invalid_argument naming each field (e.g. "facts.gpus: 300 GPUs
 * reported, at most 64"): at most 64 GPUs, 1 TiB of memory per GPU, 64 TiB of host memory, 8 PiB
 * of disk, 4096 CPU cores; no negative number (except -1, "not available", where the model allows
 * it); strings at most 256 characters (diagnostic text 4096). Returns `facts` unchanged.
 */
export function boundedFacts(facts: HostFacts): HostFacts {
  const issues: FieldIssue[] = [];
  if (facts.gpus.length > FACT_LIMITS.gpus) {
    issues.push({ field: 'facts.gpus', message: `${facts.gpus.length} GPUs reported, at most ${FACT_LIMITS.gpus}` });
  }
  checkHost(facts, issues);
  facts.gpus.slice(0, FACT_LIMITS.gpus).forEach((g, i) => checkGpu(g, `facts.gpus[${i}]`, issues));
  if (issues.length > 0) {
    const shown = issues.slice(0, MAX_ISSUES);
    const more = issues.length - shown.length;
    throw invalidFields(shown, more > 0 ? `invalid host facts (${more} more problems not shown)` : 'invalid host facts');
  }
  return facts;
}

function checkHost(f: HostFacts, issues: FieldIssue[]): void {
  const strings: [string, string][] = [
    ['hostname', f.hostname],
    ['public_address', f.publicAddress],
    ['agent_address', f.agentAddress],
    ['agent_version', f.agentVersion],
    ['os', f.os],
    ['kernel', f.kernel],
    ['cpu_model', f.cpuModel],
    ['driver_version', f.driverVersion],
    ['cuda_version', f.cudaVersion],
    ['gpu_mode', f.gpuMode],
    ['machine_id', f.machineId],
    ['publish_address', f.publishAddress],
  ];
  for (const [name, value] of strings) checkString(`facts.${name}`, value, FACT_LIMITS.stringLength, issues);
  if (f.busyPorts.length > FACT_LIMITS.busyPorts) issues.push({ field: 'facts.busy_ports', message: `${f.busyPorts.length} ports reported, at most ${FACT_LIMITS.busyPorts}` });
  checkString('facts.gpu_condition', f.gpuCondition, FACT_LIMITS.textLength, issues);
  checkNumber('facts.cpu_cores', f.cpuCores, { max: FACT_LIMITS.cpuCores, unit: 'cores', maxText: `${FACT_LIMITS.cpuCores}` }, issues);
  checkNumber('facts.memory_bytes', f.memoryBytes, { max: FACT_LIMITS.memoryBytes, unit: 'bytes', maxText: '64 TiB' }, issues);
  checkNumber('facts.disk_total_bytes', f.diskTotalBytes, { max: FACT_LIMITS.diskBytes, unit: 'bytes', maxText: '8 PiB' }, issues);
  checkNumber('facts.disk_free_bytes', f.diskFreeBytes, { max: FACT_LIMITS.diskBytes, unit: 'bytes', maxText: '8 PiB' }, issues);
  checkNumber('facts.disk_reserve_bytes', f.diskReserveBytes, { max: FACT_LIMITS.diskBytes, unit: 'bytes', maxText: '8 PiB' }, issues);
}

function checkGpu(g: GpuFacts, at: string, issues: FieldIssue[]): void {
  checkString(`${at}.uuid`, g.uuid, FACT_LIMITS.stringLength, issues);
  checkString(`${at}.model`, g.model, FACT_LIMITS.stringLength, issues);
  checkString(`${at}.pci_bus_id`, g.pciBusId, FACT_LIMITS.stringLength, issues);
  checkString(`${at}.health_reason`, g.healthReason, FACT_LIMITS.textLength, issues);
  // -1 is "not known" for the index of a GPU the driver lost and for usage values.
  checkNumber(`${at}.index`, g.index, { min: -1, max: FACT_LIMITS.gpuIndex, maxText: `${FACT_LIMITS.gpuIndex}` }, issues);
  checkNumber(`${at}.memory_bytes`, g.memoryBytes, { max: FACT_LIMITS.gpuMemoryBytes, unit: 'bytes', maxText: '1 TiB' }, issues);
  checkNumber(`${at}.memory_used_bytes`, g.memoryUsedBytes, { min: -1, max: FACT_LIMITS.gpuMemoryBytes, unit: 'bytes', maxText: '1 TiB' }, issues);
  checkNumber(`${at}.utilization_percent`, g.utilizationPercent, { min: -1, max: 100, maxText: '100' }, issues);
  checkNumber(`${at}.temperature_c`, g.temperatureC, { min: -1, max: FACT_LIMITS.temperatureC, maxText: `${FACT_LIMITS.temperatureC}` }, issues);
}

function checkString(field: string, value: string, max: number, issues: FieldIssue[]): void {
  if (typeof value !== 'string') issues.push({ field, message: 'must be a string' });
  else if (value.length > max) issues.push({ field, message: `${value.length} characters, at most ${max}` });
}

function checkNumber(field: string, value: number, bound: { min?: number; max: number; unit?: string; maxText: string }, issues: FieldIssue[]): void {
  const min = bound.min ?? 0;
  const unit = bound.unit ? ` ${bound.unit}` : '';
  if (!Number.isSafeInteger(value)) {
    issues.push({ field, message: `${String(value)} reported, must be a whole number from ${min} to ${bound.maxText}` });
  } else if (value < min) {
    issues.push({ field, message: min === 0 ? `${value} reported, must not be negative` : `${value} reported, at least ${min}` });
  } else if (value > bound.max) {
    issues.push({ field, message: `${value}${unit} reported, at most ${bound.maxText}` });
  }
}
