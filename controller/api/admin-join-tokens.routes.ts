import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { adminOnly, principalOf } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import {
  CreateJoinTokenBody,
  CreatedJoinTokenSchema,
  JoinToken,
  JoinTokenParams,
  createdJoinTokenJson,
  expiryOf,
  joinTokenJson,
} from './admin-join-tokens.schemas.js';
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

const tags = ['admin: join tokens'];

const routes = {
  create: createRoute({
    method: 'post',
    path: '/admin/join-tokens',
    tags,
    operationId: 'adminCreateJoinToken',
    summary: 'Create a join token for registering hosts',
    description:
      'The token is in data.token of this response only (the controller keeps a hash of it). Hosts registered with a token that requires approval ' +
      '(the default) are pending_approval until POST /api/v1/admin/hosts/{host_id}/approve.',
    request: { body: jsonBody(CreateJoinTokenBody) },
    responses: { 201: jsonResponse(envelope(CreatedJoinTokenSchema), 'the join token, shown once'), ...errors(400, 401, 403) },
  }),
  list: createRoute({
    method: 'get',
    path: '/admin/join-tokens',
    tags,
    operationId: 'adminListJoinTokens',
    summary: 'List join tokens (never the tokens themselves)',
    request: { query: PaginationQuery },
    responses: { 200: jsonResponse(pageEnvelope(JoinToken), 'one page of join tokens, newest first, expired and used-up ones included'), ...errors(400, 401, 403) },
  }),
  get: createRoute({
    method: 'get',
    path: '/admin/join-tokens/{id}',
    tags,
    operationId: 'adminGetJoinToken',
    summary: 'Get a join token (never the token itself)',
    request: { params: JoinTokenParams },
    responses: { 200: jsonResponse(envelope(JoinToken), 'the join token'), ...errors(400, 401, 403, 404) },
  }),
  remove: createRoute({
    method: 'delete',
    path: '/admin/join-tokens/{id}',
    tags,
    operationId: 'adminDeleteJoinToken',
    summary: 'Delete a join token',
    description: 'No host can register with it anymore; hosts already registered with it stay.',
    request: { params: JoinTokenParams },
    responses: { 204: NoContent, ...errors(400, 401, 403, 404) },
  }),
};

/** `/admin/join-tokens`: the join tokens hosts register with (admin only). */
export function adminJoinTokensRoutes({ services }: ApiDeps) {
  const { joinTokens } = services;
  const middleware = adminOnly(services.users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.create, middleware }, async (c) => {
    const body = c.req.valid('json');
    const created = await joinTokens.create({
      description: body.description ?? '',
      expiresAt: expiryOf(body),
      maxUses: body.max_uses ?? null,
      requiresApproval: body.requires_approval,
      createdBy: principalOf(c).userId,
    });
    return replyCreated(c, createdJoinTokenJson(created), 'join_token_created');
  });
  app.openapi({ ...routes.list, middleware }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await joinTokens.list(request), request, joinTokenJson));
  });
  app.openapi({ ...routes.get, middleware }, async (c) => reply(c, joinTokenJson(await joinTokens.get(c.req.valid('param').id))));
  app.openapi({ ...routes.remove, middleware }, async (c) => {
    await joinTokens.delete(c.req.valid('param').id);
    return noContent(c);
  });

  return app;
}
