import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { authenticated, principalOf } from './auth.js';
import { Dataset, DatasetParams, datasetJson } from './datasets.schemas.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { PaginationQuery, envelope, errors, jsonResponse, pageEnvelope, pageRequest, paginated, reply } from './schemas.js';

const tags = ['datasets'];

const routes = {
  list: createRoute({
    method: 'get',
    path: '/datasets',
    tags,
    operationId: 'listDatasets',
    summary: 'List the datasets you may mount',
    description: 'Public datasets, your own, and those of your workspaces.',
    request: { query: PaginationQuery },
    responses: { 200: jsonResponse(pageEnvelope(Dataset), 'one page of datasets'), ...errors(400, 401) },
  }),
  get: createRoute({
    method: 'get',
    path: '/datasets/{dataset_id}',
    tags,
    operationId: 'getDataset',
    summary: 'Get a dataset you may mount',
    request: { params: DatasetParams },
    responses: { 200: jsonResponse(envelope(Dataset), 'the dataset'), ...errors(400, 401, 404) },
  }),
};

/** `/datasets`: the datasets the caller may mount into environments. */
export function datasetsRoutes({ services }: ApiDeps) {
  const { datasets } = services;
  const middleware = authenticated(services.users);
  const app = new OpenAPIHono<AppEnv>();
  app.openapi({ ...routes.list, middleware }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await datasets.list(principalOf(c), request), request, datasetJson));
  });
  app.openapi({ ...routes.get, middleware }, async (c) => reply(c, datasetJson(await datasets.get(principalOf(c), c.req.valid('param').dataset_id))));
  return app;
}
