import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { DatasetRow } from '../db/schema.js';
import * as datasets from '../catalog/datasets.service.js';
import { principalOf } from './auth.js';
import type { ApiDeps } from './routes.js';
import { PaginationQuery, authenticated, envelope, errors, iso, jsonResponse, pageEnvelope, pageRequest, paginated, pathId, reply } from './schemas.js';

/** What users see of a dataset: everything but where it lives on the hosts. */
const Dataset = z
  .object({
    id: z.number().int(),
    name: z.string(),
    description: z.string(),
    scope: z.enum(['public', 'user', 'workspace']).openapi({ description: 'public: every user; user: only its owner; workspace: the members' }),
    owner_id: z.number().int().nullable(),
    workspace_id: z.number().int().nullable(),
    created_at: z.string(),
  })
  .openapi('Dataset');

const DatasetParams = z.object({ dataset_id: pathId('dataset_id') });
const tags = ['datasets'];

function datasetJson(d: DatasetRow) {
  return {
    id: d.id,
    name: d.name,
    description: d.description,
    scope: d.workspace_id !== null ? ('workspace' as const) : d.owner_id !== null ? ('user' as const) : ('public' as const),
    owner_id: d.owner_id,
    workspace_id: d.workspace_id,
    created_at: iso(d.created_at),
  };
}

/** `/datasets`: the datasets the caller may mount into environments. */
export function datasetsRoutes(deps: ApiDeps) {
  const { db } = deps.services;
  const middleware = authenticated(db);
  const app = new OpenAPIHono();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/datasets',
      tags,
      summary: 'List the datasets you may mount',
      description: 'Public datasets, your own, and those of your workspaces.',
      middleware,
      request: { query: PaginationQuery },
      responses: { 200: jsonResponse(pageEnvelope(Dataset), 'one page of datasets'), ...errors(400, 401) },
    }),
    async (c) => {
      const request = pageRequest(c.req.valid('query'));
      return reply(c, paginated(await datasets.listDatasets(db, principalOf(c), request), request, datasetJson));
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/datasets/{dataset_id}',
      tags,
      summary: 'Get a dataset you may mount',
      middleware,
      request: { params: DatasetParams },
      responses: { 200: jsonResponse(envelope(Dataset), 'the dataset'), ...errors(400, 401, 404) },
    }),
    async (c) => reply(c, datasetJson(await datasets.getDataset(db, principalOf(c), c.req.valid('param').dataset_id))),
  );

  return app;
}
