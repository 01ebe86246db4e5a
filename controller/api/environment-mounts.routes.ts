import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { authenticated, principalOf } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { EnvParams, Mount, MountBody, MountParams, mountJson } from './environments.schemas.js';
import { MessageOnly, NoContent, envelope, errors, jsonBody, jsonResponse, noContent, reply, replyMessage } from './schemas.js';

const tags = ['environments'];

const routes = {
  mount: createRoute({
    method: 'post',
    path: '/environments/{env_id}/datasets',
    tags,
    operationId: 'mountDataset',
    summary: 'Mount a dataset',
    request: { params: EnvParams, body: jsonBody(MountBody) },
    responses: { 200: jsonResponse(MessageOnly, 'dataset mounted'), ...errors(400, 401, 404, 409) },
  }),
  list: createRoute({
    method: 'get',
    path: '/environments/{env_id}/datasets',
    tags,
    operationId: 'listEnvironmentDatasets',
    summary: 'List mounted datasets',
    request: { params: EnvParams },
    responses: { 200: jsonResponse(envelope(z.object({ items: z.array(Mount) })), 'mounts'), ...errors(400, 401, 404) },
  }),
  unmount: createRoute({
    method: 'delete',
    path: '/environments/{env_id}/datasets/{dataset_id}',
    tags,
    operationId: 'unmountDataset',
    summary: 'Unmount a dataset',
    request: { params: MountParams },
    responses: { 204: NoContent, ...errors(400, 401, 404, 409) },
  }),
};

/** `/environments/{env_id}/datasets`: mount, list and unmount datasets in an environment. */
export function environmentMountsRoutes({ services }: ApiDeps) {
  const { environments } = services;
  const middleware = authenticated(services.users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.mount, middleware }, async (c) => {
    const body = c.req.valid('json');
    await environments.mount(principalOf(c), c.req.valid('param').env_id, { datasetId: body.dataset_id, mountPath: body.mount_path, readonly: body.readonly });
    return replyMessage(c, 'dataset_mounted');
  });
  app.openapi({ ...routes.list, middleware }, async (c) => {
    const mounts = await environments.listMounts(principalOf(c), c.req.valid('param').env_id);
    return reply(c, { items: mounts.map(mountJson) });
  });
  app.openapi({ ...routes.unmount, middleware }, async (c) => {
    const { env_id, dataset_id } = c.req.valid('param');
    await environments.unmount(principalOf(c), env_id, dataset_id);
    return noContent(c);
  });

  return app;
}
