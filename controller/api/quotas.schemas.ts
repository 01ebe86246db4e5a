import { z } from '@hono/zod-openapi';
import type { QuotaLimits } from '../quotas/quota-rules.js';
import type { MeView, QuotaView } from '../quotas/quotas.service.js';
import { userJson, User } from './admin-users.schemas.js';
import { pathId } from './schemas.js';

// Schemas and JSON views of quotas, for `/admin/users/{id}/quota`, `/admin/workspaces/{id}/quota` and `/me`.

const MAX_COUNT = 2_147_483_647;

function limit(max: number, description: string) {
  return z
    .number()
    .int('must be a whole number')
    .min(0, 'must be at least 0')
    .max(max, `must be at most ${max}`)
    .nullable()
    .optional()
    .openapi({ description: `${description}; null or omitted: unlimited` });
}

export const QuotaBody = z
  .object({
    gpus: limit(MAX_COUNT, 'GPUs held at once (by environments that run)'),
    cpu: limit(MAX_COUNT, 'CPU cores held at once'),
    memory: limit(Number.MAX_SAFE_INTEGER, 'bytes of memory held at once'),
    storage: limit(Number.MAX_SAFE_INTEGER, 'bytes of storage of every environment that is not deleted (queued ones included)'),
    environments: limit(MAX_COUNT, 'environments that are not deleted, whatever their status'),
    pending_environments: limit(MAX_COUNT, 'queued (pending) environments'),
  })
  .strict()
  .openapi('QuotaLimitsInput');

const LimitsSchema = z
  .object({
    gpus: z.number().int().nullable(),
    cpu: z.number().int().nullable(),
    memory: z.number().int().nullable(),
    storage: z.number().int().nullable(),
    environments: z.number().int().nullable(),
    pending_environments: z.number().int().nullable(),
  })
  .openapi('QuotaLimits');

const UsageSchema = z
  .object({
    gpus: z.number().int(),
    cpu: z.number().int(),
    memory: z.number().int(),
    storage: z.number().int(),
    environments: z.number().int(),
    pending_environments: z.number().int(),
  })
  .openapi('QuotaUsage');

export const Quota = z.object({ limits: LimitsSchema, usage: UsageSchema }).openapi('Quota');

export const Me = z
  .object({
    user: User,
    quota: Quota,
    workspaces: z.array(z.object({ id: z.number().int(), name: z.string(), role: z.enum(['owner', 'member']), quota: Quota })),
  })
  .openapi('Me');

export const UserQuotaParams = z.object({ user_id: pathId('user_id') });
export const WorkspaceQuotaParams = z.object({ workspace_id: pathId('workspace_id') });

/** The service's limits for a validated body: every omitted limit is unlimited. */
export function limitsOf(body: z.infer<typeof QuotaBody>): QuotaLimits {
  return {
    gpus: body.gpus ?? null,
    cpu: body.cpu ?? null,
    memory: body.memory ?? null,
    storage: body.storage ?? null,
    environments: body.environments ?? null,
    pending_environments: body.pending_environments ?? null,
  };
}

/** The API view of a quota. */
export function quotaJson(q: QuotaView) {
  return { limits: { ...q.limits }, usage: { ...q.usage } };
}

/** The API view of `/me`. */
export function meJson(m: MeView) {
  return { user: userJson(m.user), quota: quotaJson(m.quota), workspaces: m.workspaces.map((w) => ({ id: w.id, name: w.name, role: w.role, quota: quotaJson(w.quota) })) };
}
