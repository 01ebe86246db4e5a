import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { AppError, fieldError } from '../../common/errors.js';
import type { EnvWithHost } from '../environments/environments.repo.js';
import type { CreateEnvironmentInput } from '../environments/environments.service.js';
import { validationError } from './app.js';
import { authenticated, principalOf } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { CreateBody, CreateHeaders, EnvParams, Environment, ListQuery, StartBody, environmentJson } from './environments.schemas.js';
import {
  MessageOnly,
  NoContent,
  envelope,
  errors,
  jsonBody,
  jsonResponse,
  noContent,
  pageEnvelope,
  pageRequest,
  paginated,
  reply,
  replyCreated,
  replyMessage,
} from './schemas.js';

const tags = ['environments'];

const routes = {
  create: createRoute({
    method: 'post',
    path: '/environments',
    tags,
    operationId: 'createEnvironment',
    summary: 'Create an environment',
    description: 'Places it at once (201, status creating). Nothing fits: 409 (40902) naming the largest free slot, or pending with "queue": true. Optional Idempotency-Key header.',
    request: { headers: CreateHeaders, body: jsonBody(CreateBody) },
    responses: { 201: jsonResponse(envelope(Environment), 'created'), 200: jsonResponse(envelope(Environment), 'replayed (same Idempotency-Key)'), ...errors(400, 401, 404, 409) },
  }),
  list: createRoute({
    method: 'get',
    path: '/environments',
    tags,
    operationId: 'listEnvironments',
    summary: 'List environments (newest first)',
    request: { query: ListQuery },
    responses: { 200: jsonResponse(pageEnvelope(Environment), 'one page'), ...errors(400, 401) },
  }),
  get: createRoute({
    method: 'get',
    path: '/environments/{env_id}',
    tags,
    operationId: 'getEnvironment',
    summary: 'Get an environment',
    request: { params: EnvParams },
    responses: { 200: jsonResponse(envelope(Environment), 'the environment'), ...errors(400, 401, 404) },
  }),
  delete: createRoute({
    method: 'delete',
    path: '/environments/{env_id}',
    tags,
    operationId: 'deleteEnvironment',
    summary: 'Delete an environment (container and data removed by the agent)',
    request: { params: EnvParams },
    responses: { 204: NoContent, ...errors(400, 401, 404, 409) },
  }),
};

/** `POST /environments/{env_id}/<name>`: start, stop or restart, answered with a message only. */
function actionRoute(name: 'start' | 'stop' | 'restart', summary: string, message: 'env_starting' | 'env_stopping' | 'env_restarting') {
  return createRoute({
    method: 'post',
    path: `/environments/{env_id}/${name}`,
    tags,
    operationId: `${name}Environment`,
    summary,
    ...(name === 'start'
      ? {
          description:
            'Optional JSON body {"gpu": N, "storage": BYTES}: GPUs for this run (default: the environment\'s count; 0 starts it without GPUs to reach the data), and a larger volume (it grows, keeping the data; a smaller size is a 400).',
        }
      : {}),
    request: { params: EnvParams, ...(name === 'start' ? { body: START_BODY } : {}) },
    responses: { 200: jsonResponse(MessageOnly, message), ...errors(400, 401, 404, 409) },
  });
}

// start's body ({"gpu": N}) is optional, even with a JSON Content-Type and nothing in it, so it is
// parsed by the handler (optionalJson) rather than by the route validator: the document names the
// registered StartEnvironment schema by reference, which the validator leaves alone (it only
// validates zod schemas), so a client generated from the document can still send it.
const START_BODY = {
  required: false,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/StartEnvironment' } } },
} as const;

/** `/environments`: the seed's environment API (create, list, get, start, stop, restart, delete). */
export function environmentsRoutes({ services }: ApiDeps) {
  const { environments } = services;
  const middleware = authenticated(services.users);
  const app = new OpenAPIHono<AppEnv>();
  app.openAPIRegistry.register('StartEnvironment', StartBody);
  const json = (c: Context<AppEnv>) => (env: EnvWithHost) => environmentJson(env, services.access, principalOf(c));

  app.openapi({ ...routes.create, middleware }, async (c) => {
    const body = c.req.valid('json');
    const key = idempotencyKey(c.req.header('idempotency-key'));
    const { env, replayed } = await environments.create(principalOf(c), createInput(body), key);
    const message = env.status === 'pending' ? 'env_queued' : 'env_created';
    return replayed ? reply(c, json(c)(env), message) : replyCreated(c, json(c)(env), message);
  });
  app.openapi({ ...routes.list, middleware }, async (c) => {
    const q = c.req.valid('query');
    const page = pageRequest(q);
    return reply(c, paginated(await environments.list(principalOf(c), { ...page, status: q.status, workspaceId: q.workspace_id }), page, json(c)));
  });
  app.openapi({ ...routes.get, middleware }, async (c) => reply(c, json(c)(await environments.get(principalOf(c), c.req.valid('param').env_id))));

  const start = actionRoute('start', 'Start a stopped environment (body {"gpu": 0} starts it without GPUs)', 'env_starting');
  app.openapi({ ...start, middleware }, async (c) => {
    const body = await optionalJson(c, StartBody);
    await environments.start(principalOf(c), c.req.valid('param').env_id, { gpu: body?.gpu, storage: body?.storage });
    return replyMessage(c, 'env_starting');
  });
  app.openapi({ ...actionRoute('stop', 'Stop a running environment (GPUs released, data kept)', 'env_stopping'), middleware }, async (c) => {
    await environments.stop(principalOf(c), c.req.valid('param').env_id);
    return replyMessage(c, 'env_stopping');
  });
  app.openapi({ ...actionRoute('restart', 'Restart an environment (same GPUs and ports)', 'env_restarting'), middleware }, async (c) => {
    await environments.restart(principalOf(c), c.req.valid('param').env_id);
    return replyMessage(c, 'env_restarting');
  });

  app.openapi({ ...routes.delete, middleware }, async (c) => {
    await environments.delete(principalOf(c), c.req.valid('param').env_id);
    return noContent(c);
  });
  return app;
}

/** The service's input for a validated create body. */
function createInput(body: z.infer<typeof CreateBody>): CreateEnvironmentInput {
  return {
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
  };
}

/** The Idempotency-Key header when present; 1 to 128 characters (400 otherwise). */
function idempotencyKey(header: string | undefined): string | undefined {
  if (header !== undefined && (header.length < 1 || header.length > 128)) {
    throw fieldError('Idempotency-Key', 'must be 1 to 128 characters');
  }
  return header;
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
