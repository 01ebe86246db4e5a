import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { TypedResponse } from 'hono';
import type { HostDetail, HostGpuView, HostSummary } from '../hosts/model.js';
import { HOST_STATUSES } from '../scheduler/types.js';
import { okMessage } from './envelope.js';
import type { ApiDeps } from './routes.js';
import {
  NoContent,
  PaginationQuery,
  adminOnly,
  envelope,
  errors,
  iso,
  jsonResponse,
  noContent,
  pageEnvelope,
  reply,
} from './schemas.js';

const HostStatusSchema = z.enum(HOST_STATUSES).openapi({ description: 'offline when the agent stopped reporting, else the admin state' });

const Host = z
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
    storage_allocated: z.number().int().openapi({ description: 'bytes' }),
    environment_count: z.number().int().openapi({ description: 'environments on the host that are not deleted' }),
    agent_version: z.string(),
    driver_version: z.string(),
    cuda_version: z.string(),
    gpu_condition: z.string().openapi({ description: 'why the host reports no or fewer GPUs than expected; empty when discovery succeeded' }),
    last_report_at: z.string().nullable(),
    registered_at: z.string(),
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

const HostDetailSchema = Host.extend({
  agent_address: z.string(),
  os: z.string(),
  kernel: z.string(),
  cpu_model: z.string(),
  gpu_mode: z.string(),
  disk_free_bytes: z.number().int(),
  gpus: z.array(HostGpu),
}).openapi('HostDetail');

const ListQuery = PaginationQuery.extend({
  status: HostStatusSchema.optional().openapi({ param: { name: 'status', in: 'query' } }),
  gpu_model: z
    .string()
    .max(200, 'must be at most 200 characters')
    .optional()
    .openapi({ param: { name: 'gpu_model', in: 'query' }, description: 'case-insensitive substring of a GPU model, e.g. "H100"' }),
});

const HostParams = z.object({
  host_id: z.string().min(1).max(200).openapi({ param: { name: 'host_id', in: 'path' }, example: 'host-7f3a9k2m1x' }),
});

const tags = ['admin: hosts'];

function hostJson(h: HostSummary) {
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
    environment_count: h.environmentCount,
    agent_version: h.agentVersion,
    driver_version: h.driverVersion,
    cuda_version: h.cudaVersion,
    gpu_condition: h.gpuCondition,
    last_report_at: iso(h.lastReportAt),
    registered_at: iso(h.registeredAt),
  };
}

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

function hostDetailJson(h: HostDetail) {
  return {
    ...hostJson(h),
    agent_address: h.agentAddress,
    os: h.os,
    kernel: h.kernel,
    cpu_model: h.cpuModel,
    gpu_mode: h.gpuMode,
    disk_free_bytes: h.diskFreeBytes,
    gpus: h.gpus.map(gpuJson),
  };
}

const ActionResult = z.object({ code: z.number().int().openapi({ example: 0 }), message: z.string() });

/** `/admin/hosts`: the host listing, detail, cordon, uncordon, drain and remove (admin only). */
export function adminHostsRoutes(deps: ApiDeps) {
  const { db, hosts } = deps.services;
  const middleware = adminOnly(db);
  const app = new OpenAPIHono();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/hosts',
      tags,
      summary: 'List hosts with capacity, allocation and health',
      middleware,
      request: { query: ListQuery },
      responses: { 200: jsonResponse(pageEnvelope(Host), 'one page of hosts, by hostname'), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const page = await hosts.list({ status: q.status, gpuModel: q.gpu_model }, { page: q.page, pageSize: q.page_size });
      return reply(c, {
        items: page.items.map(hostJson),
        pagination: { page: page.page, page_size: page.pageSize, total: page.total, total_pages: page.totalPages },
      });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/hosts/{host_id}',
      tags,
      summary: 'Get a host with its GPUs and the environment holding each',
      middleware,
      request: { params: HostParams },
      responses: { 200: jsonResponse(envelope(HostDetailSchema), 'the host'), ...errors(401, 403, 404) },
    }),
    async (c) => reply(c, hostDetailJson(await hosts.get(c.req.valid('param').host_id))),
  );

  const actions = [
    { verb: 'cordon', summary: 'Stop placing new environments on a host', message: 'host_cordoned', run: (id: string) => hosts.cordon(id) },
    { verb: 'uncordon', summary: 'Place environments on a host again', message: 'host_uncordoned', run: (id: string) => hosts.uncordon(id) },
    {
      verb: 'drain',
      summary: 'Drain a host: no new placements; its environments keep running until stopped or deleted',
      message: 'host_draining',
      run: (id: string) => hosts.drain(id),
    },
  ] as const;
  for (const action of actions) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/admin/hosts/{host_id}/${action.verb}`,
        tags,
        summary: action.summary,
        middleware,
        request: { params: HostParams },
        responses: { 200: jsonResponse(ActionResult, 'done (idempotent)'), ...errors(401, 403, 404) },
      }),
      async (c) => {
        await action.run(c.req.valid('param').host_id);
        return okMessage(c, action.message, 200) as unknown as TypedResponse<{ code: number; message: string }, 200, 'json'>;
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/admin/hosts/{host_id}',
      tags,
      summary: 'Remove a host',
      description: 'Refused (409, 40901) while environments that are not deleted are on the host. An agent still running there registers as a new host.',
      middleware,
      request: { params: HostParams },
      responses: { 204: NoContent, ...errors(401, 403, 404, 409) },
    }),
    async (c) => {
      await hosts.remove(c.req.valid('param').host_id);
      return noContent(c);
    },
  );

  return app;
}
