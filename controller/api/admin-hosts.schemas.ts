import { z } from '@hono/zod-openapi';
import type { HostDetail, HostGpuView, HostSummary } from '../hosts/model.js';
import { HOST_STATUSES } from '../scheduler/types.js';
import { PaginationQuery, dateTime, iso, singleLine } from './schemas.js';

// Schemas and JSON views of hosts and their GPUs, for `/admin/hosts`.

const HostStatusSchema = z.enum(HOST_STATUSES).openapi({
  description: 'offline when the agent stopped reporting; else pending_approval until an admin approves the host; else the admin state (active shown as online)',
});

export const Host = z
  .object({
    host_id: z.string().openapi({ example: 'host-7f3a9k2m1x' }),
    hostname: z.string(),
    public_address: z.string(),
    status: HostStatusSchema,
    gpu_model: z.string().nullable().openapi({ description: 'the model of every GPU, or "mixed: A, B" (most common first); null without GPUs' }),
    gpu_count: z.number().int(),
    gpus_allocated: z.number().int(),
    gpus_unhealthy: z.number().int(),
    cpu_total: z.number().int(),
    cpu_allocated: z.number().int(),
    memory_total: z.number().int().openapi({ description: 'bytes' }),
    memory_allocated: z.number().int().openapi({ description: 'bytes' }),
    storage_total: z.number().int().openapi({ description: 'bytes of the agent data filesystem' }),
    storage_allocated: z.number().int().openapi({ description: 'bytes: the storage size of every environment on the host that is not deleted' }),
    disk_reserve: z.number().int().openapi({
      description: 'bytes of the data filesystem the agent keeps free (REMOTEGPU_DISK_RESERVE); the scheduler places volumes in storage_total minus this',
    }),
    disk_pressure: z.boolean().openapi({ description: 'the data filesystem has less free space than disk_reserve: the host takes no new environments (existing ones still start)' }),
    environment_count: z.number().int().openapi({ description: 'environments on the host that are not deleted' }),
    agent_version: z.string(),
    driver_version: z.string(),
    cuda_version: z.string(),
    gpu_condition: z.string().openapi({ description: 'why the host reports no or fewer GPUs than expected; empty when discovery succeeded' }),
    runtime_error: z.string().openapi({
      description:
        "why the host's container runtime (Docker) does not answer, as its agent reports it; empty while it answers. Meanwhile the host stays online, its environments keep their last known status and the controller sends it no calls",
    }),
    runtime_unavailable_since: dateTime().nullable().openapi({ description: 'when the agent first reported its container runtime unavailable; null while it answers' }),
    last_report_at: dateTime().nullable(),
    registered_at: dateTime(),
    replaces_host_id: z.string().nullable().openapi({
      description: 'the host registered earlier from the same machine (same machine id: its agent lost its identity and registered again); its environments stay there and its GPUs reserved there stay taken here',
    }),
    replaced_by_host_id: z.string().nullable().openapi({ description: 'the newest host registered later from the same machine; null when none' }),
  })
  .openapi('Host');

const HostGpu = z
  .object({
    index: z.number().int(),
    uuid: z.string(),
    model: z.string(),
    memory_bytes: z.number().int(),
    memory_used_bytes: z.number().int(),
    utilization_percent: z.number().int().openapi({ description: '-1 when not available (MIG)' }),
    temperature_c: z.number().int().openapi({ description: '-1 when not available' }),
    health: z.enum(['healthy', 'unhealthy']),
    health_reason: z.string(),
    mig_enabled: z.boolean(),
    present: z.boolean().openapi({ description: 'false once the agent stopped reporting this GPU' }),
    env_id: z.string().nullable().openapi({ description: 'the environment holding the GPU' }),
  })
  .openapi('HostGpu');

export const HostDetailSchema = Host.extend({
  agent_address: z.string(),
  os: z.string(),
  kernel: z.string(),
  cpu_model: z.string(),
  gpu_mode: z.string(),
  disk_free_bytes: z.number().int(),
  approved: z.boolean().openapi({ description: 'false while the host waits for POST /api/v1/admin/hosts/{host_id}/approve' }),
  approved_at: dateTime().nullable().openapi({ description: 'when an admin approved it; null when it never needed approval' }),
  join_token_id: z.string().nullable().openapi({ description: 'the join token it registered with; null for the bootstrap token' }),
  machine_id: z.string().openapi({ description: "the OS machine id its agent reports (/etc/machine-id or REMOTEGPU_MACHINE_ID); '' when unknown" }),
  gpus: z.array(HostGpu),
}).openapi('HostDetail');

export const ListQuery = PaginationQuery.extend({
  status: HostStatusSchema.optional().openapi({ param: { name: 'status', in: 'query' } }),
  gpu_model: singleLine(z.string().max(200, 'must be at most 200 characters'))
    .optional()
    .openapi({ param: { name: 'gpu_model', in: 'query' }, description: 'case-insensitive substring of a GPU model, e.g. "H100"' }),
});

export const HostParams = z.object({
  host_id: singleLine(z.string().min(1).max(200)).openapi({ param: { name: 'host_id', in: 'path' }, example: 'host-7f3a9k2m1x' }),
});

export const RemoveHostQuery = z.object({
  force: z
    .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .openapi({ param: { name: 'force', in: 'query' }, type: 'boolean', description: 'give up on removals the host’s agent never confirmed (a host gone for good)' }),
});

/** The API view of a host in the listing. */
export function hostJson(h: HostSummary) {
  return {
    host_id: h.id,
    hostname: h.hostname,
    public_address: h.publicAddress,
    status: h.status,
    gpu_model: h.gpuModel,
    gpu_count: h.gpuCount,
    gpus_allocated: h.gpusAllocated,
    gpus_unhealthy: h.gpusUnhealthy,
    cpu_total: h.cpuTotal,
    cpu_allocated: h.cpuAllocated,
    memory_total: h.memoryTotalBytes,
    memory_allocated: h.memoryAllocatedBytes,
    storage_total: h.storageTotalBytes,
    storage_allocated: h.storageAllocatedBytes,
    disk_reserve: h.diskReserveBytes,
    disk_pressure: h.diskPressure,
    environment_count: h.environmentCount,
    agent_version: h.agentVersion,
    driver_version: h.driverVersion,
    cuda_version: h.cudaVersion,
    gpu_condition: h.gpuCondition,
    runtime_error: h.runtimeError,
    runtime_unavailable_since: iso(h.runtimeDownSince),
    last_report_at: iso(h.lastReportAt),
    registered_at: iso(h.registeredAt),
    replaces_host_id: h.replacesHostId,
    replaced_by_host_id: h.replacedByHostId,
  };
}

/** The API view of one GPU of a host. */
function gpuJson(g: HostGpuView) {
  return {
    index: g.index,
    uuid: g.uuid,
    model: g.model,
    memory_bytes: g.memoryBytes,
    memory_used_bytes: g.memoryUsedBytes,
    utilization_percent: g.utilizationPercent,
    temperature_c: g.temperatureC,
    health: g.health,
    health_reason: g.healthReason,
    mig_enabled: g.migEnabled,
    present: g.present,
    env_id: g.envId,
  };
}

/** The API view of a host with its GPUs. */
export function hostDetailJson(h: HostDetail) {
  return {
    ...hostJson(h),
    agent_address: h.agentAddress,
    os: h.os,
    kernel: h.kernel,
    cpu_model: h.cpuModel,
    gpu_mode: h.gpuMode,
    disk_free_bytes: h.diskFreeBytes,
    approved: h.approved,
    approved_at: iso(h.approvedAt),
    join_token_id: h.joinTokenId,
    machine_id: h.machineId,
    gpus: h.gpus.map(gpuJson),
  };
}

/** What the cordon, uncordon and drain actions answer. */
export const ActionResult = z.object({ code: z.number().int().openapi({ example: 0 }), message: z.string() });
