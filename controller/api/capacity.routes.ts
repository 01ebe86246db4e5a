import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { freeCapacity } from '../environments/free-capacity.js';
import { authenticated } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { envelope, errors, jsonResponse, reply } from './schemas.js';

const Capacity = z
  .object({
    schedulable_hosts: z.number().int().openapi({ description: 'hosts that take new environments now (online, runtime answering, no disk pressure)' }),
    gpu_models: z
      .array(
        z.object({
          model: z.string().openapi({ example: 'NVIDIA A40' }),
          free: z.number().int().openapi({ description: 'healthy, unallocated GPUs of this model on all schedulable hosts' }),
          max_per_host: z.number().int().openapi({ description: 'the most of them free on one host: the largest GPU count of this model one environment can get now' }),
        }),
      )
      .openapi({ description: 'most free first' }),
    largest: z
      .object({
        gpu: z.number().int().openapi({ description: 'free GPUs (any model) on the host with the most' }),
        cpu: z.number().openapi({ description: 'free CPU cores on the host with the most' }),
        memory: z.number().int().openapi({ description: 'free memory in bytes on the host with the most' }),
        storage: z.number().int().openapi({ description: 'free storage in bytes on the host with the most' }),
      })
      .openapi({ description: 'each the maximum over hosts on its own: a request within all of them may still not fit one host (40902 then names the largest free slot)' }),
  })
  .openapi('Capacity');

const capacityRoute = createRoute({
  method: 'get',
  path: '/capacity',
  tags: ['environments'],
  operationId: 'getCapacity',
  summary: 'Free capacity now: free GPUs per model and the largest free CPU, memory and storage on one host',
  description:
    "For any signed-in user (the console's create form shows it as a hint). From the controller's view of host capacity, at most REMOTEGPU_PLACEMENT_INDEX_MAX_AGE_MS old for other replicas' changes; hosts are not named.",
  responses: { 200: jsonResponse(envelope(Capacity), 'free capacity'), ...errors(401) },
});

/** `GET /capacity`: what a create may ask for now (a hint: placement decides). */
export function capacityRoutes({ services }: ApiDeps) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi({ ...capacityRoute, middleware: authenticated(services.users) }, async (c) => {
    const free = freeCapacity(await services.capacityIndex.snapshot());
    return reply(c, {
      schedulable_hosts: free.schedulableHosts,
      gpu_models: free.gpuModels.map((m) => ({ model: m.model, free: m.free, max_per_host: m.maxPerHost })),
      largest: { gpu: free.largest.gpu, cpu: free.largest.cpuCores, memory: free.largest.memoryBytes, storage: free.largest.storageBytes },
    });
  });
  return app;
}
