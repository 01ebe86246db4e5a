import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { Context } from 'hono';
import { AppError, fieldError } from '../../common/errors.js';
import type { EnvWithHost } from '../environments/environments.repo.js';
import { formatLogLine } from '../environments/logs.js';
import type { ControllerConfig } from '../config.js';
import { ENV_STATUSES, type EnvStatus } from '../db/schema.js';
import { principalOf } from './auth.js';
import { validationError } from './app.js';
import { okMessage } from './envelope.js';
import type { ApiDeps } from './routes.js';
import {
  NoContent,
  PaginationQuery,
  authenticated,
  envelope,
  errors,
  iso,
  jsonBody,
  jsonResponse,
  noContent,
  pageEnvelope,
  pageRequest,
  paginated,
  pathId,
  reply,
  replyCreated,
} from './schemas.js';

const GiB = 2 ** 30;
const MAX_BYTES = 2 ** 50; // 1 PiB: anything larger is a typo

const intIn = (min: number, max: number, what: string) =>
  z.number({ error: `must be an integer (${what})` }).int(`must be an integer (${what})`).min(min, `must be at least ${min} (${what})`).max(max, `must be at most ${max} (${what})`);

const CreateBody = z
  .object({
    name: z.string().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters').openapi({ example: 'PyTorch Training' }),
    description: z.string().max(1024, 'must be at most 1024 characters').nullable().optional(),
    workspace_id: z.number().int('must be an integer').min(1, 'must be a positive integer').max(2_147_483_647).nullable().optional(),
    image: z.string().trim().min(1, 'must not be empty').max(128, 'must be at most 128 characters').openapi({ example: 'ubuntu20-pytorch:2.0' }),
    cpu: intIn(1, 1024, 'CPU cores'),
    memory: intIn(64 * 2 ** 20, MAX_BYTES, 'bytes, at least 64 MiB'),
    gpu: intIn(0, 64, 'GPUs').optional(),
    storage: intIn(GiB, MAX_BYTES, 'bytes, at least 1 GiB; default 50 GiB').optional(),
    gpu_model: z.string().trim().min(1).max(64).optional().openapi({ example: 'H100', description: 'only hosts whose GPU model contains this text' }),
    queue: z.boolean().optional().openapi({ description: 'when nothing fits, accept as pending and place when room frees' }),
  })
  .openapi('CreateEnvironment');

const StartBody = z.object({ gpu: intIn(0, 64, 'GPUs for this run').optional() }).openapi('StartEnvironment');

const MountBody = z
  .object({
    dataset_id: z.number().int('must be an integer').min(1, 'must be a positive integer').max(2_147_483_647),
    mount_path: z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters').openapi({ example: '/data/imagenet' }),
    readonly: z.boolean().default(true),
  })
  .openapi('MountDataset');

const ListQuery = PaginationQuery.extend({
  status: z
    .string()
    .refine((s) => (ENV_STATUSES as readonly string[]).includes(s), `must be one of ${ENV_STATUSES.join(', ')}`)
    .optional()
    .openapi({ param: { name: 'status', in: 'query' }, enum: [...ENV_STATUSES] }),
  workspace_id: z
    .string()
    .regex(/^[1-9][0-9]{0,9}$/, 'must be a positive integer')
    .transform(Number)
    .optional()
    .openapi({ param: { name: 'workspace_id', in: 'query' }, type: 'integer' }),
});

const LogsQuery = z.object({
  lines: z
    .string()
    .regex(/^[0-9]{1,6}$/, 'must be an integer from 1 to 10000')
    .transform(Number)
    .pipe(z.number().int().min(1, 'must be an integer from 1 to 10000').max(10_000, 'must be an integer from 1 to 10000'))
    .optional()
    .default(100)
    .openapi({ param: { name: 'lines', in: 'query' }, type: 'integer', default: 100 }),
  follow: z
    .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .openapi({ param: { name: 'follow', in: 'query' }, type: 'boolean' }),
});

const EnvParams = z.object({ env_id: z.string().max(64).openapi({ param: { name: 'env_id', in: 'path' }, example: 'env-abc123' }) });
const MountParams = EnvParams.extend({ dataset_id: pathId('dataset_id') });

const Environment = z
  .object({
    env_id: z.string(),
    name: z.string(),
    description: z.string(),
    workspace_id: z.number().nullable(),
    status: z.string(),
    status_reason: z.string(),
    image: z.string(),
    cpu: z.number(),
    memory: z.number(),
    gpu: z.number(),
    gpu_model: z.string().nullable(),
    storage: z.number(),
    host_id: z.string().nullable(),
    ssh_port: z.number().nullable(),
    jupyter_port: z.number().nullable(),
    access_info: z.object({ ssh: z.string(), jupyter: z.string().nullable() }).nullable(),
    created_at: z.string(),
    started_at: z.string().nullable(),
    stopped_at: z.string().nullable(),
  })
  .openapi('Environment');

const Mount = z.object({ dataset_id: z.number(), name: z.string(), mount_path: z.string(), readonly: z.boolean(), created_at: z.string() }).openapi('Mount');
const MessageOnly = z.object({ code: z.literal(0), message: z.string() });
const tags = ['environments'];

/** The API view of an environment (the seed's fields and the contract's additions). */
export function environmentJson(env: EnvWithHost, config: ControllerConfig) {
  const address = env.public_address;
  const placed = address && env.ssh_port !== null;
  return {
    env_id: env.id,
    name: env.name,
    description: env.description,
    workspace_id: env.workspace_id,
    status: env.status,
    status_reason: env.status_reason,
    image: env.image,
    cpu: env.cpu,
    memory: env.memory_bytes,
    gpu: env.gpu,
    gpu_model: env.gpu_model,
    storage: env.storage_bytes,
    host_id: env.host_id,
    ssh_port: env.ssh_port,
    jupyter_port: env.jupyter_port,
    access_info: placed
      ? {
          ssh: `ssh root@${address} -p ${env.ssh_port}`,
          jupyter:
            env.jupyter_port !== null
              ? config.jupyterUrlTemplate
                  .replaceAll('{address}', address)
                  .replaceAll('{port}', String(env.jupyter_port))
                  .replaceAll('{token}', env.jupyter_token)
              : null,
        }
      : null,
    created_at: iso(env.created_at),
    started_at: iso(env.started_at),
    stopped_at: iso(env.stopped_at),
  };
}

/** `/environments`: the seed's environment API plus dataset listing/unmount. */
export function environmentsRoutes(deps: ApiDeps) {
  const { db, config, environments, environmentLogs } = deps.services;
  const middleware = authenticated(db);
  const app = new OpenAPIHono();
  const json = (env: EnvWithHost) => environmentJson(env, config);

  app.openapi(
    createRoute({
      method: 'post',
      path: '/environments',
      tags,
      summary: 'Create an environment',
      description: 'Places it at once (201, status creating). Nothing fits: 409 (40902) naming the largest free slot, or pending with "queue": true. Optional Idempotency-Key header.',
      middleware,
      request: { body: jsonBody(CreateBody) },
      responses: { 201: jsonResponse(envelope(Environment), 'created'), 200: jsonResponse(envelope(Environment), 'replayed (same Idempotency-Key)'), ...errors(400, 401, 404, 409) },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const key = c.req.header('idempotency-key');
      if (key !== undefined && (key.length < 1 || key.length > 128)) {
        throw fieldError('Idempotency-Key', 'must be 1 to 128 characters');
      }
      const { env, replayed } = await environments.create(
        principalOf(c),
        {
          name: body.name,
          description: body.description ?? undefined,
          workspaceId: body.workspace_id ?? undefined,
          image: body.image,
          cpu: body.cpu,
          memory: body.memory,
          gpu: body.gpu,
          storage: body.storage,
          gpuModel: body.gpu_model,
          queue: body.queue,
        },
        key,
      );
      const key2 = env.status === 'pending' ? 'env_queued' : 'env_created';
      return replayed ? reply(c, json(env), key2) : replyCreated(c, json(env), key2);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/environments',
      tags,
      summary: 'List environments (newest first)',
      middleware,
      request: { query: ListQuery },
      responses: { 200: jsonResponse(pageEnvelope(Environment), 'one page'), ...errors(400, 401) },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const page = pageRequest(q);
      const { rows, total } = await environments.list(principalOf(c), {
        page: page.page,
        pageSize: page.pageSize,
        status: q.status as EnvStatus | undefined,
        workspaceId: q.workspace_id,
      });
      return reply(c, paginated({ items: rows, total }, page, json));
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/environments/{env_id}',
      tags,
      summary: 'Get an environment',
      middleware,
      request: { params: EnvParams },
      responses: { 200: jsonResponse(envelope(Environment), 'the environment'), ...errors(401, 404) },
    }),
    async (c) => reply(c, json(await environments.get(principalOf(c), c.req.valid('param').env_id))),
  );

  const action = (name: 'start' | 'stop' | 'restart', summary: string, message: 'env_starting' | 'env_stopping' | 'env_restarting') =>
    createRoute({
      method: 'post',
      path: `/environments/{env_id}/${name}`,
      tags,
      summary,
      middleware,
      // start's body ({"gpu": N}) is optional, even with a JSON Content-Type and nothing in it, so it
      // is parsed by the handler (optionalJson) rather than by the route validator.
      ...(name === 'start' ? { description: 'Optional JSON body {"gpu": N}: GPUs for this run (default: the environment\'s count; 0 starts it without GPUs to reach the data).' } : {}),
      request: { params: EnvParams },
      responses: { 200: jsonResponse(MessageOnly, message), ...errors(400, 401, 404, 409) },
    });

  app.openapi(action('start', 'Start a stopped environment (body {"gpu": 0} starts it without GPUs)', 'env_starting'), async (c) => {
    const body = await optionalJson(c, StartBody);
    await environments.start(principalOf(c), c.req.valid('param').env_id, { gpu: body?.gpu });
    return okMessage(c, 'env_starting') as never;
  });
  app.openapi(action('stop', 'Stop a running environment (GPUs released, data kept)', 'env_stopping'), async (c) => {
    await environments.stop(principalOf(c), c.req.valid('param').env_id);
    return okMessage(c, 'env_stopping') as never;
  });
  app.openapi(action('restart', 'Restart an environment (same GPUs and ports)', 'env_restarting'), async (c) => {
    await environments.restart(principalOf(c), c.req.valid('param').env_id);
    return okMessage(c, 'env_restarting') as never;
  });

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/environments/{env_id}',
      tags,
      summary: 'Delete an environment (container and data removed by the agent)',
      middleware,
      request: { params: EnvParams },
      responses: { 204: NoContent, ...errors(401, 404, 409) },
    }),
    async (c) => {
      await environments.delete(principalOf(c), c.req.valid('param').env_id);
      return noContent(c);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/environments/{env_id}/datasets',
      tags,
      summary: 'Mount a dataset',
      middleware,
      request: { params: EnvParams, body: jsonBody(MountBody) },
      responses: { 200: jsonResponse(MessageOnly, 'dataset mounted'), ...errors(400, 401, 404, 409) },
    }),
    async (c) => {
      const body = c.req.valid('json');
      await environments.mount(principalOf(c), c.req.valid('param').env_id, { datasetId: body.dataset_id, mountPath: body.mount_path, readonly: body.readonly });
      return okMessage(c, 'dataset_mounted') as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/environments/{env_id}/datasets',
      tags,
      summary: 'List mounted datasets',
      middleware,
      request: { params: EnvParams },
      responses: { 200: jsonResponse(envelope(z.object({ items: z.array(Mount) })), 'mounts'), ...errors(401, 404) },
    }),
    async (c) => {
      const mounts = await environments.listMounts(principalOf(c), c.req.valid('param').env_id);
      return reply(c, { items: mounts.map((m) => ({ dataset_id: m.dataset_id, name: m.name, mount_path: m.mount_path, readonly: m.readonly, created_at: iso(m.created_at) })) });
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/environments/{env_id}/datasets/{dataset_id}',
      tags,
      summary: 'Unmount a dataset',
      middleware,
      request: { params: MountParams },
      responses: { 204: NoContent, ...errors(400, 401, 404, 409) },
    }),
    async (c) => {
      const { env_id, dataset_id } = c.req.valid('param');
      await environments.unmount(principalOf(c), env_id, dataset_id);
      return noContent(c);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/environments/{env_id}/logs',
      tags,
      summary: 'Platform events and container output; follow=true streams text/event-stream',
      middleware,
      request: { params: EnvParams, query: LogsQuery },
      responses: {
        200: {
          description: 'logs (JSON), or an event stream with one event per line when follow=true',
          content: { 'application/json': { schema: envelope(z.object({ logs: z.array(z.string()) })) }, 'text/event-stream': { schema: z.string() } },
        },
        ...errors(400, 401, 404),
      },
    }),
    async (c) => {
      const p = principalOf(c);
      const { env_id } = c.req.valid('param');
      const { lines, follow } = c.req.valid('query');
      const env = await environments.get(p, env_id);
      if (!follow) {
        const entries = await environmentLogs.tail(env, lines);
        return reply(c, { logs: entries.map(formatLogLine) }) as never;
      }
      return streamSSE(c, async (stream) => {
        const abort = new AbortController();
        stream.onAbort(() => abort.abort());
        const keepAlive = setInterval(() => void stream.write(': keep-alive\n\n').catch(() => abort.abort()), 15_000);
        const stillVisible = async () => environments.get(p, env_id).then(() => true, () => false);
        try {
          for await (const entry of environmentLogs.follow(env, lines, abort.signal, stillVisible)) {
            await stream.writeSSE({ data: formatLogLine(entry) });
          }
          if (!abort.signal.aborted) await stream.writeSSE({ event: 'end', data: 'environment deleted' });
        } finally {
          clearInterval(keepAlive);
        }
      }) as never;
    },
  );

  return app;
}

/** Parses an optional JSON body: absent or empty is undefined; anything else must match. */
async function optionalJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T> | undefined> {
  const text = await c.req.text();
  if (text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AppError('malformed_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(parsed.error.issues);
  return parsed.data;
}
