// Domain types of the hosts component. The gRPC edge (convert.ts) turns proto messages into these;
// the registry, repository and admin service never see a proto message.

import type { HostStatus } from '../scheduler/types.js';

export type GpuHealth = 'healthy' | 'unhealthy';

/** One GPU as an agent reported it. Sizes in bytes; -1 means "not available" for usage values. */
export interface GpuFacts {
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
  readonly memoryBytes: number;
  readonly memoryUsedBytes: number;
  readonly utilizationPercent: number;
  readonly temperatureC: number;
  readonly pciBusId: string;
  readonly health: GpuHealth;
  readonly healthReason: string;
  readonly migEnabled: boolean;
}

/** What an agent reports about its host on Register and on every ReportStatus. */
export interface HostFacts {
  readonly hostname: string;
  readonly publicAddress: string;
  /** host:port where the controller reaches the agent's AgentService. */
  readonly agentAddress: string;
  readonly agentVersion: string;
  readonly os: string;
  readonly kernel: string;
  readonly cpuModel: string;
  readonly cpuCores: number;
  readonly memoryBytes: number;
  readonly diskTotalBytes: number;
  readonly diskFreeBytes: number;
  /** Bytes of the data disk the agent keeps free (REMOTEGPU_DISK_RESERVE); 0 from agents that do not say. */
  readonly diskReserveBytes: number;
  /** Free space is below the reserve: the host takes no new environments. */
  readonly diskPressure: boolean;
  readonly gpus: readonly GpuFacts[];
  /** Why the host reports no or fewer GPUs than expected ('' when discovery succeeded). */
  readonly gpuCondition: string;
  readonly driverVersion: string;
  readonly cudaVersion: string;
  readonly gpuMode: string;
  /** The OS machine id ('' when the agent does not say): links a re-registered machine to its former host. */
  readonly machineId: string;
  /** The address the agent publishes ports on ('' when it does not say: an older agent, publishing on 0.0.0.0 or its loopback public address). */
  readonly publishAddress: string;
  /** TCP ports busy on the host for that address (listeners), sorted; never handed out. */
  readonly busyPorts: readonly number[];
  /** The host's ephemeral port range; null when unknown. */
  readonly ephemeralPorts: { readonly from: number; readonly to: number } | null;
}

/** Reason stored on a GPU the agent stopped reporting. */
export const GPU_NOT_REPORTED = 'not reported by the agent';


/** One row of the admin host listing. CPU in cores, sizes in bytes. */
export interface HostSummary {
  readonly id: string;
  readonly hostname: string;
  readonly publicAddress: string;
  readonly status: HostStatus;
  /** The model of every GPU, or "mixed: A, B" (most common first); null without GPUs. */
  readonly gpuModel: string | null;
  /** Every GPU the host ever reported; those it stopped reporting count as unhealthy too. */
  readonly gpuCount: number;
  /** GPUs held by a reservation. */
  readonly gpusAllocated: number;
  readonly gpusUnhealthy: number;
  readonly cpuTotal: number;
  readonly cpuAllocated: number;
  readonly memoryTotalBytes: number;
  readonly memoryAllocatedBytes: number;
  readonly storageTotalBytes: number;
  readonly storageAllocatedBytes: number;
  /** Bytes of the data disk kept free (REMOTEGPU_DISK_RESERVE): not schedulable. */
  readonly diskReserveBytes: number;
  /** The data disk's free space is below the reserve: no new environments. */
  readonly diskPressure: boolean;
  /** Environments placed on the host that are not deleted. */
  readonly environmentCount: number;
  readonly agentVersion: string;
  readonly driverVersion: string;
  readonly cudaVersion: string;
  readonly gpuCondition: string;
  /** Why the container runtime (Docker) does not answer, as the agent reports; '' while it does. */
  readonly runtimeError: string;
  /** Since when the agent reports its runtime unavailable; null while it answers. */
  readonly runtimeDownSince: Date | null;
  readonly lastReportAt: Date | null;
  readonly registeredAt: Date;
  /** The host registered earlier from the same machine (same machine id), which this one replaces; null when none. */
  readonly replacesHostId: string | null;
  /** The newest host registered later from the same machine; null when none. */
  readonly replacedByHostId: string | null;
}

/** One GPU of a host in the admin detail, with the environment holding it. */
export interface HostGpuView {
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
  readonly memoryBytes: number;
  readonly memoryUsedBytes: number;
  readonly utilizationPercent: number;
  readonly temperatureC: number;
  readonly health: GpuHealth;
  readonly healthReason: string;
  readonly migEnabled: boolean;
  /** False once the agent stopped reporting it. */
  readonly present: boolean;
  readonly envId: string | null;
}

/** The admin detail of one host. */
export interface HostDetail extends HostSummary {
  readonly agentAddress: string;
  readonly os: string;
  readonly kernel: string;
  readonly cpuModel: string;
  readonly gpuMode: string;
  readonly diskFreeBytes: number;
  /** False while the host waits for an admin's approval (status pending_approval unless offline). */
  readonly approved: boolean;
  /** When an admin approved it; null for hosts that never needed approval. */
  readonly approvedAt: Date | null;
  /** The admin join token it registered with; null for the bootstrap token. */
  readonly joinTokenId: string | null;
  /** The OS machine id its agent reports; '' when unknown. */
  readonly machineId: string;
  readonly gpus: readonly HostGpuView[];
}

/** Filters of the admin listing. */
export interface HostFilter {
  readonly status?: HostStatus | undefined;
  /** Case-insensitive substring of any GPU model on the host. */
  readonly gpuModel?: string | undefined;
}
