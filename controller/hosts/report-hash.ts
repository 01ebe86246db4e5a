import { createHash } from 'node:crypto';
import type { HostFacts } from './model.js';

// What a report's facts hash over (pure). A report writes the host's fact columns and GPU rows only
// when `facts` differs from the hash stored on the host row, and its usage figures only when
// `telemetry` differs and the stored ones are old enough (report.repo.ts). Busy ports are left out:
// the placement also writes them (a port found taken), so the stored array itself is compared.

export interface ReportHashes {
  /** Everything stored from the facts but the usage figures and the busy ports: host columns and each GPU's steady fields. */
  readonly facts: string;
  /** The usage figures: free disk, and each GPU's utilization, memory used and temperature. */
  readonly telemetry: string;
}

const hash = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('base64url');

export function reportHashes(f: HostFacts): ReportHashes {
  const steady = [
    f.hostname,
    f.publicAddress,
    f.agentAddress,
    f.agentVersion,
    f.os,
    f.kernel,
    f.cpuModel,
    f.cpuCores,
    f.memoryBytes,
    f.diskTotalBytes,
    f.diskReserveBytes,
    f.diskPressure,
    f.gpuCondition,
    f.driverVersion,
    f.cudaVersion,
    f.gpuMode,
    f.machineId,
    f.publishAddress,
    f.gpus.map((g) => [g.uuid, g.index, g.model, g.memoryBytes, g.pciBusId, g.health, g.healthReason, g.migEnabled]),
  ];
  const usage = [f.diskFreeBytes, f.gpus.map((g) => [g.uuid, g.memoryUsedBytes, g.utilizationPercent, g.temperatureC])];
  return { facts: hash(steady), telemetry: hash(usage) };
}

/** Whether two port lists hold the same ports in the same order (the stored busy_ports against a report's). */
export function samePorts(a: readonly number[] | null, b: readonly number[]): boolean {
  const stored = a ?? [];
  return stored.length === b.length && stored.every((p, i) => Number(p) === b[i]);
}
