import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import * as workspaces from '../users/workspaces.service.js';
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

const UserId = z.number().int().positive('must be a positive integer').max(2_147_483_647);

const CreateWorkspaceBody = z.object({
  name: z.string().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters').openapi({ example: 'vision-team' }),
  owner_id: UserId.openapi({ description: 'becomes a member with role owner' }),
});

const AddMemberBody = z.object({ user_id: UserId });

const Workspace = z
  .object({
    id: z.number().int(),
    name: z.string(),
    owner_id: z.number().int(),
    member_count: z.number().int(),
    created_at: z.string(),
  })
  .openapi('Workspace');

const Member = z
  .object({
    user_id: z.number().int(),
    name: z.string(),
    role: z.enum(['owner', 'member']),
    created_at: z.string(),
  })
  .openapi('WorkspaceMember');

const WorkspaceDetail = Workspace.extend({ members: z.array(Member) }).openapi('WorkspaceDetail');

const WorkspaceParams = z.object({ workspace_id: pathId('workspace_id') });
const MemberParams = z.object({ workspace_id: pathId('workspace_id'), user_id: pathId('user_id') });
const tags = ['admin: workspaces'];

function workspaceJson(w: workspaces.Workspace) {
  return { id: w.id, name: w.name, owner_id: w.owner_id, member_count: w.member_count, created_at: iso(w.created_at) };
}

function memberJson(m: workspaces.WorkspaceMember) {
  return { user_id: m.user_id, name: m.name, role: m.role, created_at: iso(m.created_at) };
}

function detailJson(w: workspaces.WorkspaceDetail) {
  return { ...workspaceJson(w), members: w.members.map(memberJson) };
}

/** `/admin/workspaces`: workspaces and their members (admin only). */
export function adminWorkspacesRoutes(deps: ApiDeps) {
  const { db } = deps.services;
  const middleware = adminOnly(db);
  const app = new OpenAPIHono();

  app.openapi(
    createRoute({
      method: 'post',
      path: '/admin/workspaces',
      tags,
      summary: 'Create a workspace',
      middleware,
      request: { body: jsonBody(CreateWorkspaceBody) },
      responses: { 201: jsonResponse(envelope(WorkspaceDetail), 'the workspace with its owner as member'), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const ws = await workspaces.createWorkspace(db, { name: body.name, ownerId: body.owner_id });
      return replyCreated(c, detailJson(ws), 'workspace_created');
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/workspaces',
      tags,
      summary: 'List workspaces',
      middleware,
      request: { query: PaginationQuery },
      responses: { 200: jsonResponse(pageEnvelope(Workspace), 'one page of workspaces'), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const request = pageRequest(c.req.valid('query'));
      return reply(c, paginated(await workspaces.listWorkspaces(db, request), request, workspaceJson));
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/workspaces/{workspace_id}',
      tags,
      summary: 'Get a workspace with its members',
      middleware,
      request: { params: WorkspaceParams },
      responses: { 200: jsonResponse(envelope(WorkspaceDetail), 'the workspace'), ...errors(400, 401, 403, 404) },
    }),
    async (c) => reply(c, detailJson(await workspaces.getWorkspace(db, c.req.valid('param').workspace_id))),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/admin/workspaces/{workspace_id}',
      tags,
      summary: 'Delete a workspace',
      description: 'Refused (409, 40901) while it has environments or its datasets are mounted. Its datasets are deleted with it.',
      middleware,
      request: { params: WorkspaceParams },
      responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      await workspaces.deleteWorkspace(db, c.req.valid('param').workspace_id);
      return noContent(c);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/admin/workspaces/{workspace_id}/members',
      tags,
      summary: 'Add a member',
      middleware,
      request: { params: WorkspaceParams, body: jsonBody(AddMemberBody) },
      responses: { 201: jsonResponse(envelope(Member), 'the new member'), ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const member = await workspaces.addWorkspaceMember(db, c.req.valid('param').workspace_id, c.req.valid('json').user_id);
      return replyCreated(c, memberJson(member), 'member_added');
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/admin/workspaces/{workspace_id}/members/{user_id}',
      tags,
      summary: 'Remove a member',
      description: 'The owner cannot be removed (409, 40901).',
      middleware,
      request: { params: MemberParams },
      responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { workspace_id, user_id } = c.req.valid('param');
      await workspaces.removeWorkspaceMember(db, workspace_id, user_id);
      return noContent(c);
    },
  );

  return app;
}
