import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { adminOnly, principalOf } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { CreateTokenBody, CreateUserBody, CreatedToken, Token, TokenParams, User, UserParams, tokenJson, userJson } from './admin-users.schemas.js';
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

const tags = ['admin: users'];

const routes = {
  create: createRoute({
    method: 'post',
    path: '/admin/users',
    tags,
    operationId: 'adminCreateUser',
    summary: 'Create a user',
    request: { body: jsonBody(CreateUserBody) },
    responses: { 201: jsonResponse(envelope(User), 'the user'), ...errors(400, 401, 403, 409) },
  }),
  list: createRoute({
    method: 'get',
    path: '/admin/users',
    tags,
    operationId: 'adminListUsers',
    summary: 'List users',
    request: { query: PaginationQuery },
    responses: { 200: jsonResponse(pageEnvelope(User), 'one page of users, disabled ones included'), ...errors(400, 401, 403) },
  }),
  get: createRoute({
    method: 'get',
    path: '/admin/users/{user_id}',
    tags,
    operationId: 'adminGetUser',
    summary: 'Get a user',
    request: { params: UserParams },
    responses: { 200: jsonResponse(envelope(User), 'the user'), ...errors(400, 401, 403, 404) },
  }),
  disable: createRoute({
    method: 'delete',
    path: '/admin/users/{user_id}',
    tags,
    operationId: 'adminDisableUser',
    summary: 'Disable a user and revoke their tokens',
    description:
      'The user is kept (disabled_at set) so history keeps its owner. Every environment they own is stopped (data kept) and carries no SSH key until they are enabled and it is started again. You cannot disable yourself or the last admin (409).',
    request: { params: UserParams },
    responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
  }),
  enable: createRoute({
    method: 'post',
    path: '/admin/users/{user_id}/enable',
    tags,
    operationId: 'adminEnableUser',
    summary: 'Enable a disabled user',
    description: 'Idempotent. Their tokens stay revoked (create a new one) and nothing is started: their environments stay stopped until someone starts them.',
    request: { params: UserParams },
    responses: { 200: jsonResponse(envelope(User), 'the user'), ...errors(400, 401, 403, 404) },
  }),
  createToken: createRoute({
    method: 'post',
    path: '/admin/users/{user_id}/tokens',
    tags,
    operationId: 'adminCreateUserToken',
    summary: 'Create an API token for a user',
    description: 'The token is in data.token of this response only; it is stored hashed.',
    request: { params: UserParams, body: jsonBody(CreateTokenBody) },
    responses: { 201: jsonResponse(envelope(CreatedToken), 'the token, shown once'), ...errors(400, 401, 403, 404, 409) },
  }),
  listTokens: createRoute({
    method: 'get',
    path: '/admin/users/{user_id}/tokens',
    tags,
    operationId: 'adminListUserTokens',
    summary: "List a user's API tokens (never the tokens themselves)",
    request: { params: UserParams, query: PaginationQuery },
    responses: { 200: jsonResponse(pageEnvelope(Token), 'one page of tokens, newest first'), ...errors(400, 401, 403, 404) },
  }),
  revokeToken: createRoute({
    method: 'delete',
    path: '/admin/users/{user_id}/tokens/{token_id}',
    tags,
    operationId: 'adminRevokeUserToken',
    summary: 'Revoke an API token',
    request: { params: TokenParams },
    responses: { 204: NoContent, ...errors(400, 401, 403, 404) },
  }),
};

/** `/admin/users`: users and their API tokens (admin only). */
export function adminUsersRoutes({ services }: ApiDeps) {
  const { users } = services;
  const middleware = adminOnly(users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.create, middleware }, async (c) => {
    const body = c.req.valid('json');
    const user = await users.create({ name: body.name, email: body.email ?? null, role: body.role });
    return replyCreated(c, userJson(user), 'user_created');
  });
  app.openapi({ ...routes.list, middleware }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await users.list(request), request, userJson));
  });
  app.openapi({ ...routes.get, middleware }, async (c) => reply(c, userJson(await users.get(c.req.valid('param').user_id))));
  app.openapi({ ...routes.disable, middleware }, async (c) => {
    await users.disable(c.req.valid('param').user_id, principalOf(c).userId);
    return noContent(c);
  });
  app.openapi({ ...routes.enable, middleware }, async (c) => reply(c, userJson(await users.enable(c.req.valid('param').user_id))));

  app.openapi({ ...routes.createToken, middleware }, async (c) => {
    const body = c.req.valid('json');
    const token = await users.createToken(c.req.valid('param').user_id, body.name, body.expires_in_days);
    return replyCreated(c, { ...tokenJson(token), token: token.token }, 'token_created');
  });
  app.openapi({ ...routes.listTokens, middleware }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await users.listTokens(c.req.valid('param').user_id, request), request, tokenJson));
  });
  app.openapi({ ...routes.revokeToken, middleware }, async (c) => {
    const { user_id, token_id } = c.req.valid('param');
    await users.revokeToken(user_id, token_id);
    return noContent(c);
  });

  return app;
}
