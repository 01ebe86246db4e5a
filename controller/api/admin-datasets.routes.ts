import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { DatasetRow } from '../db/schema.js';
import * as datasets from '../catalog/datasets.service.js';
import { datasetHostPathProblem } from '../catalog/paths.js';
import { principalOf } from './auth.js';
import type { ApiDeps } from './routes.js';
import {
  NoContent,
  PaginationQuery,
  adminOnly,
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

const RowId = z.number().int().positive('must be a positive integer').max(2_147_483_647, 'must be a positive integer below 2^31');

const CreateDatasetBody = z.object({
  name: z.string().trim().min(1, 'must not be empty').max(128, 'must be at most 128 characters').openapi({ example: 'imagenet' }),
  host_path: z
    .string()
    .max(1024, 'must be at most 1024 characters')
    .superRefine((path, ctx) => {
      const problem = datasetHostPathProblem(path);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .openapi({ example: '/mnt/datasets/imagenet', description: 'directory holding the data, the same path on every GPU host' }),
  description: z.string().max(1024, 'must be at most 1024 characters').default(''),
  owner_id: RowId.nullable().default(null).openapi({ description: 'only this user (and admins) may see and mount it' }),
  workspace_id: RowId.nullable().default(null).openapi({ description: "only this workspace's members (and admins) may see and mount it" }),
});

/** What admins see of a dataset. */
export const AdminDataset = z
  .object({
    id: z.number().int(),
    name: z.string(),
    description: z.string(),
    host_path: z.string(),
    owner_id: z.number().int().nullable(),
    workspace_id: z.number().int().nullable(),
    created_at: z.string(),
  })
  .openapi('AdminDataset');

const DatasetParams = z.object({ dataset_id: pathId('dataset_id') });
const tags = ['admin: datasets'];

/** The admin view of a dataset row. */
export function adminDatasetJson(d: DatasetRow) {
  return {
    id: d.id,
    name: d.name,
    description: d.description,
    host_path: d.host_path,
    owner_id: d.owner_id,
    workspace_id: d.workspace_id,
    created_at: iso(d.created_at),
  };
}

/** `/admin/datasets`: directories on the GPU hosts that users may mount (admin only). */
export function adminDatasetsRoutes(deps: ApiDeps) {
  const { db } = deps.services;
  const middleware = adminOnly(db);
  const app = new OpenAPIHono();

  app.openapi(
    createRoute({
      method: 'post',
      path: '/admin/datasets',
      tags,
      summary: 'Register a dataset',
      description: 'With neither owner_id nor workspace_id the dataset is visible to every user.',
      middleware,
      request: { body: jsonBody(CreateDatasetBody) },
      responses: { 201: jsonResponse(envelope(AdminDataset), 'the dataset'), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const dataset = await datasets.createDataset(db, {
        name: b.name,
        description: b.description,
        hostPath: b.host_path,
        ownerId: b.owner_id,
        workspaceId: b.workspace_id,
      });
      return replyCreated(c, adminDatasetJson(dataset), 'dataset_created');
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/datasets',
      tags,
      summary: 'List all datasets',
      middleware,
      request: { query: PaginationQuery },
      responses: { 200: jsonResponse(pageEnvelope(AdminDataset), 'one page of datasets'), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const request = pageRequest(c.req.valid('query'));
      return reply(c, paginated(await datasets.listDatasets(db, principalOf(c), request), request, adminDatasetJson));
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/datasets/{dataset_id}',
      tags,
      summary: 'Get a dataset',
      middleware,
      request: { params: DatasetParams },
      responses: { 200: jsonResponse(envelope(AdminDataset), 'the dataset'), ...errors(400, 401, 403, 404) },
    }),
    async (c) => reply(c, adminDatasetJson(await datasets.getDataset(db, principalOf(c), c.req.valid('param').dataset_id))),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/admin/datasets/{dataset_id}',
      tags,
      summary: 'Delete a dataset registration (the data stays on the hosts)',
      description: 'Refused (409, 40901) while an environment mounts it.',
      middleware,
      request: { params: DatasetParams },
      responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      await datasets.deleteDataset(db, c.req.valid('param').dataset_id);
      return noContent(c);
    },
  );

  return app;
}
