import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { adminOnly, authenticated, principalOf } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { Me, Quota, QuotaBody, UserQuotaParams, WorkspaceQuotaParams, limitsOf, meJson, quotaJson } from './quotas.schemas.js';
import { envelope, errors, jsonBody, jsonResponse, reply } from './schemas.js';

const adminTags = ['admin: quotas'];
const QUOTA_NOTE =
  'Limits are checked in the transaction that reserves (create, start, a queued environment placed), against the environments that are not deleted. ' +
  'Exceeding one is 409 (40904) naming it. A workspace environment counts against the workspace and against its owner.';

const routes = {
  me: createRoute({
    method: 'get',
    path: '/me',
    tags: ['me'],
    operationId: 'getMe',
    summary: 'The caller, their quota and their workspaces’ quotas (limits and usage)',
    responses: { 200: jsonResponse(envelope(Me), 'the caller'), ...errors(401) },
  }),
  getUser: createRoute({
    method: 'get',
    path: '/admin/users/{user_id}/quota',
    tags: adminTags,
    operationId: 'adminGetUserQuota',
    summary: "A user's limits and usage",
    request: { params: UserQuotaParams },
    responses: { 200: jsonResponse(envelope(Quota), 'limits (null: unlimited) and usage'), ...errors(400, 401, 403, 404) },
  }),
  putUser: createRoute({
    method: 'put',
    path: '/admin/users/{user_id}/quota',
    tags: adminTags,
    operationId: 'adminSetUserQuota',
    summary: "Set a user's limits",
    description: `Replaces every limit: an omitted or null limit is unlimited. ${QUOTA_NOTE}`,
    request: { params: UserQuotaParams, body: jsonBody(QuotaBody) },
    responses: { 200: jsonResponse(envelope(Quota), 'limits and usage'), ...errors(400, 401, 403, 404) },
  }),
  getWorkspace: createRoute({
    method: 'get',
    path: '/admin/workspaces/{workspace_id}/quota',
    tags: adminTags,
    operationId: 'adminGetWorkspaceQuota',
    summary: "A workspace's limits and usage",
    request: { params: WorkspaceQuotaParams },
    responses: { 200: jsonResponse(envelope(Quota), 'limits (null: unlimited) and usage'), ...errors(400, 401, 403, 404) },
  }),
  putWorkspace: createRoute({
    method: 'put',
    path: '/admin/workspaces/{workspace_id}/quota',
    tags: adminTags,
    operationId: 'adminSetWorkspaceQuota',
    summary: "Set a workspace's limits",
    description: `Replaces every limit: an omitted or null limit is unlimited. ${QUOTA_NOTE}`,
    request: { params: WorkspaceQuotaParams, body: jsonBody(QuotaBody) },
    responses: { 200: jsonResponse(envelope(Quota), 'limits and usage'), ...errors(400, 401, 403, 404) },
  }),
};

/** `/me` (any user) and `/admin/{users,workspaces}/{id}/quota` (admin only). */
export function quotasRoutes({ services }: ApiDeps) {
  const { quotas } = services;
  const admin = adminOnly(services.users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.me, middleware: authenticated(services.users) }, async (c) => reply(c, meJson(await quotas.me(principalOf(c)))));
  app.openapi({ ...routes.getUser, middleware: admin }, async (c) => reply(c, quotaJson(await quotas.get('user', c.req.valid('param').user_id))));
  app.openapi({ ...routes.putUser, middleware: admin }, async (c) =>
    reply(c, quotaJson(await quotas.set('user', c.req.valid('param').user_id, limitsOf(c.req.valid('json'))))),
  );
  app.openapi({ ...routes.getWorkspace, middleware: admin }, async (c) => reply(c, quotaJson(await quotas.get('workspace', c.req.valid('param').workspace_id))));
  app.openapi({ ...routes.putWorkspace, middleware: admin }, async (c) =>
    reply(c, quotaJson(await quotas.set('workspace', c.req.valid('param').workspace_id, limitsOf(c.req.valid('json'))))),
  );
  return app;
}
