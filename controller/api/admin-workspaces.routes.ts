import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { adminOnly } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import {
  AddMemberBody,
  CreateWorkspaceBody,
  Member,
  MemberParams,
  Workspace,
  WorkspaceDetail,
  WorkspaceParams,
  detailJson,
  memberJson,
  workspaceJson,
} from './admin-workspaces.schemas.js';
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

const tags = ['admin: workspaces'];

const routes = {
  create: createRoute({
    method: 'post',
    path: '/admin/workspaces',
    tags,
    operationId: 'adminCreateWorkspace',
    summary: 'Create a workspace',
    request: { body: jsonBody(CreateWorkspaceBody) },
    responses: { 201: jsonResponse(envelope(WorkspaceDetail), 'the workspace with its owner as member'), ...errors(400, 401, 403) },
  }),
  list: createRoute({
    method: 'get',
    path: '/admin/workspaces',
    tags,
    operationId: 'adminListWorkspaces',
    summary: 'List workspaces',
    request: { query: PaginationQuery },
    responses: { 200: jsonResponse(pageEnvelope(Workspace), 'one page of workspaces'), ...errors(400, 401, 403) },
  }),
  get: createRoute({
    method: 'get',
    path: '/admin/workspaces/{workspace_id}',
    tags,
    operationId: 'adminGetWorkspace',
    summary: 'Get a workspace with its members',
    request: { params: WorkspaceParams },
    responses: { 200: jsonResponse(envelope(WorkspaceDetail), 'the workspace'), ...errors(400, 401, 403, 404) },
  }),
  delete: createRoute({
    method: 'delete',
    path: '/admin/workspaces/{workspace_id}',
    tags,
    operationId: 'adminDeleteWorkspace',
    summary: 'Delete a workspace',
    description: 'Refused (409, 40901) while it has environments or its datasets are mounted. Its datasets are deleted with it.',
    request: { params: WorkspaceParams },
    responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
  }),
  addMember: createRoute({
    method: 'post',
    path: '/admin/workspaces/{workspace_id}/members',
    tags,
    operationId: 'adminAddWorkspaceMember',
    summary: 'Add a member',
    request: { params: WorkspaceParams, body: jsonBody(AddMemberBody) },
    responses: { 201: jsonResponse(envelope(Member), 'the new member'), ...errors(400, 401, 403, 404, 409) },
  }),
  removeMember: createRoute({
    method: 'delete',
    path: '/admin/workspaces/{workspace_id}/members/{user_id}',
    tags,
    operationId: 'adminRemoveWorkspaceMember',
    summary: 'Remove a member',
    description: 'The owner cannot be removed (409, 40901).',
    request: { params: MemberParams },
    responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
  }),
};

/** `/admin/workspaces`: workspaces and their members (admin only). */
export function adminWorkspacesRoutes({ services }: ApiDeps) {
  const { workspaces } = services;
  const middleware = adminOnly(services.users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.create, middleware }, async (c) => {
    const body = c.req.valid('json');
    const ws = await workspaces.create({ name: body.name, ownerId: body.owner_id });
    return replyCreated(c, detailJson(ws), 'workspace_created');
  });
  app.openapi({ ...routes.list, middleware }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await workspaces.list(request), request, workspaceJson));
  });
  app.openapi({ ...routes.get, middleware }, async (c) => reply(c, detailJson(await workspaces.get(c.req.valid('param').workspace_id))));
  app.openapi({ ...routes.delete, middleware }, async (c) => {
    await workspaces.delete(c.req.valid('param').workspace_id);
    return noContent(c);
  });
  app.openapi({ ...routes.addMember, middleware }, async (c) => {
    const member = await workspaces.addMember(c.req.valid('param').workspace_id, c.req.valid('json').user_id);
    return replyCreated(c, memberJson(member), 'member_added');
  });
  app.openapi({ ...routes.removeMember, middleware }, async (c) => {
    const { workspace_id, user_id } = c.req.valid('param');
    await workspaces.removeMember(workspace_id, user_id);
    return noContent(c);
  });

  return app;
}
