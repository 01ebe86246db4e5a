import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { adminOnly, principalOf } from './auth.js';
import { AdminDataset, CreateDatasetBody, DatasetParams, UpdateDatasetBody, adminDatasetJson } from './datasets.schemas.js';
import type { ApiDeps, AppEnv } from './deps.js';
import {
  NoContent,
  PaginationQuery,
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
} from './schemas.js';

const tags = ['admin: datasets'];

const routes = {
  create: createRoute({
    method: 'post',
    path: '/admin/datasets',
    tags,
    operationId: 'adminCreateDataset',
    summary: 'Register a dataset',
    description:
      'With neither owner_id nor workspace_id the dataset is visible to every user. It is read-only (every mount of it is read-only) unless writable is true. ' +
      'A writable dataset must not nest with another one: a host_path that contains, is inside or is the host_path of another dataset is a 400 naming host_path when either of them is writable.',
    request: { body: jsonBody(CreateDatasetBody) },
    responses: { 201: jsonResponse(envelope(AdminDataset), 'the dataset'), ...errors(400, 401, 403) },
  }),
  list: createRoute({
    method: 'get',
    path: '/admin/datasets',
    tags,
    operationId: 'adminListDatasets',
    summary: 'List all datasets',
    request: { query: PaginationQuery },
    responses: { 200: jsonResponse(pageEnvelope(AdminDataset), 'one page of datasets'), ...errors(400, 401, 403) },
  }),
  get: createRoute({
    method: 'get',
    path: '/admin/datasets/{dataset_id}',
    tags,
    operationId: 'adminGetDataset',
    summary: 'Get a dataset',
    request: { params: DatasetParams },
    responses: { 200: jsonResponse(envelope(AdminDataset), 'the dataset'), ...errors(400, 401, 403, 404) },
  }),
  update: createRoute({
    method: 'patch',
    path: '/admin/datasets/{dataset_id}',
    tags,
    operationId: 'adminUpdateDataset',
    summary: 'Change a dataset',
    description:
      'Only the fields sent change. Setting writable to false remounts it read-only now: every environment that mounts it read-write is recreated (its data kept) with the mount read-only, with an event in its logs. ' +
      'Setting writable to true is a 400 naming writable when its host_path contains, is inside or is the host_path of another dataset.',
    request: { params: DatasetParams, body: jsonBody(UpdateDatasetBody) },
    responses: { 200: jsonResponse(envelope(AdminDataset), 'the dataset after the change'), ...errors(400, 401, 403, 404) },
  }),
  delete: createRoute({
    method: 'delete',
    path: '/admin/datasets/{dataset_id}',
    tags,
    operationId: 'adminDeleteDataset',
    summary: 'Delete a dataset registration (the data stays on the hosts)',
    description: 'Refused (409, 40901) while an environment mounts it.',
    request: { params: DatasetParams },
    responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
  }),
};

/** `/admin/datasets`: directories on the GPU hosts that users may mount (admin only). */
export function adminDatasetsRoutes({ services }: ApiDeps) {
  const { datasets } = services;
  const middleware = adminOnly(services.users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.create, middleware }, async (c) => {
    const b = c.req.valid('json');
    const dataset = await datasets.create({
      name: b.name,
      description: b.description,
      hostPath: b.host_path,
      ownerId: b.owner_id,
      workspaceId: b.workspace_id,
      writable: b.writable,
    });
    return replyCreated(c, adminDatasetJson(dataset), 'dataset_created');
  });
  app.openapi({ ...routes.list, middleware }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await datasets.list(principalOf(c), request), request, adminDatasetJson));
  });
  app.openapi({ ...routes.get, middleware }, async (c) => reply(c, adminDatasetJson(await datasets.get(principalOf(c), c.req.valid('param').dataset_id))));
  app.openapi({ ...routes.update, middleware }, async (c) => {
    const b = c.req.valid('json');
    const dataset = await datasets.update(c.req.valid('param').dataset_id, { name: b.name, description: b.description, writable: b.writable });
    return reply(c, adminDatasetJson(dataset), 'dataset_updated');
  });
  app.openapi({ ...routes.delete, middleware }, async (c) => {
    await datasets.delete(c.req.valid('param').dataset_id);
    return noContent(c);
  });

  return app;
}
