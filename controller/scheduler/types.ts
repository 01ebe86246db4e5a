// Domain types of the scheduler. Plain data only: the service layer builds `HostSnapshot`s from
// its repositories, and the scheduler never sees a database row, a proto message or a request.

/** What one environment needs on a single host. Sizes in bytes, CPU in (possibly fractional) cores. */
export interface PlacementRequest {
  readonly cpuCores: number;
  readonly memoryBytes: number;
  readonly gpuCount: number;
  readonly storageBytes: number;
  /**
   * Case-insensitive substring of the GPU model, e.g. "H100" matches "NVIDIA H100 80GB HBM3".
   * Ignored when `gpuCount` is zero or less; empty or blank means any model.
   */
  readonly gpuModel?: string;
}

/**
 * Liveness, approval and admin state folded into one (the admin listing shows it): only `online`
 * hosts take new placements. Precedence: `offline` (the agent stopped reporting) over
 * `pending_approval` (registered with a join token that requires approval, not yet approved) over
 * the admin state (`cordoned`, `draining`, else `online`).
 */
export const HOST_STATUSES = ['online', 'offline', 'cordoned', 'draining', 'pending_approval'] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];

/** One GPU of a host as the scheduler sees it. */
export interface GpuSnapshot {
  readonly uuid: string;
  readonly index: number;
  readonly model: string;
  readonly memoryBytes: number;
  readonly healthy: boolean;
  /** Reserved by an environment that holds resources. */
  readonly allocated: boolean;
}

/**
 * A host's totals and what is already reserved on it, taken at one moment. The scheduler trusts
 * these numbers; the database's unique keys catch any race with a concurrent placement.
 */
export interface HostSnapshot {
  readonly id: string;
  readonly hostname: string;
  readonly status: HostStatus;
  readonly cpuCores: number;
  readonly memoryBytes: number;
  /** Storage volumes may use this much: the data disk's size minus the reserve the agent keeps free. */
  readonly storageBytes: number;
  readonly allocatedCpuCores: number;
  readonly allocatedMemoryBytes: number;
  /** The storage size of every environment on the host that is not deleted (their volumes exist). */
  readonly allocatedStorageBytes: number;
  /** The data disk has less free space than its reserve: no new environment (absent: false). */
  readonly diskPressure?: boolean;
  /** Its agent reports that its container runtime (Docker) does not answer: no new environment (absent: false). */
  readonly runtimeUnavailable?: boolean;
  readonly gpus: readonly GpuSnapshot[];
}

/** Why a host cannot take a request. Stable names: they appear in logs and summaries. */
export type RejectReason =
  | 'offline'
  | 'cordoned'
  | 'draining'
  | 'pending_approval'
  | 'disk_pressure'
  | 'runtime_unavailable'
  | 'insufficient_cpu'
  | 'insufficient_memory'
  | 'insufficient_storage'
  | 'insufficient_gpus'
  | 'gpu_model_mismatch'
  | 'unhealthy_gpus';

/** The first filter that refused a host, with a human-readable detail ("needs 4 GPUs, 2 free (1 unhealthy)"). */
export interface Rejection {
  readonly hostId: string;
  readonly reason: RejectReason;
  readonly detail: string;
}

/** A host and the concrete GPUs an environment would take there. */
export interface Placement {
  readonly hostId: string;
  readonly gpuUuids: readonly string[];
}

/** The ranking keys of a candidate; lower is better on each, compared in this order, then host id. */
export interface CandidateScore {
  /** Free GPUs (of the requested model) left on the host after this placement. */
  readonly freeGpusAfter: number;
  /** max(CPU utilisation, memory utilisation) after this placement, 0..1 on a sane host. */
  readonly loadAfter: number;
}

/** A feasible placement with the scores it was ranked by. */
export interface Candidate extends Placement {
  readonly hostname: string;
  readonly score: CandidateScore;
}

/** Free capacity of one schedulable host, used to tell a user what could fit instead. */
export interface FreeSlot {
  readonly hostId: string;
  readonly hostname: string;
  /** Free GPUs of the requested model (any model for a request without GPUs or model). */
  readonly gpuCount: number;
  readonly cpuCores: number;
  readonly memoryBytes: number;
  readonly storageBytes: number;
}

/**
 * The outcome of `schedule`. On success, candidates are ranked best first and the caller tries
 * them in order, moving to the next when the database refuses a reservation. On failure, the
 * message is fit for the user and `largestFreeSlot` says what could fit today.
 */
export type ScheduleResult =
  | { readonly ok: true; readonly candidates: readonly Candidate[]; readonly rejections: readonly Rejection[] }
  | {
      readonly ok: false;
      readonly rejections: readonly Rejection[];
      readonly largestFreeSlot: FreeSlot | null;
      readonly message: string;
    };
