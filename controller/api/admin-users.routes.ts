import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { UserRow } from '../db/schema.js';
import * as users from '../users/users.service.js';
import { principalOf } from './auth.js';
import type { ApiDeps } from './routes.js';
import {
  NoContent,
  PaginationQuery,
  adminOnly,
  errors,
  iso,
  jsonBody,
  jsonResponse,
  noContent,
  pageEnvelope,
  pageRequest,
  paginated,
  pathId,
  envelope,
  reply,
  replyCreated,
} from './schemas.js';

const UserName = z
  .string()
  .regex(/^[a-zA-Z0-9._-]{1,64}$/, 'must be 1 to 64 characters: letters, digits, ".", "_" or "-"')
  .openapi({ example: 'alice' });

const CreateUserBody = z.object({
  name: UserName,
  email: z.email('must be an email address').max(254).nullable().optional(),
  role: z.enum(['user', 'admin']).default('user'),
});

const CreateTokenBody = z.object({
  name: z.string().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters').openapi({ example: 'laptop' }),
  expires_in_days: z.number().int().min(1).max(3650).optional().openapi({ description: 'omit for a token that never expires' }),
});

const User = z
  .object({
    id: z.number().int(),
    name: z.string(),
    email: z.string().nullable(),
    role: z.enum(['user', 'admin']),
    created_at: z.string(),
    disabled_at: z.string().nullable(),
  })
  .openapi('User');

const Token = z
  .object({
    id: z.number().int(),
    name: z.string(),
    prefix: z.string().openapi({ description: 'first characters of the token, to tell tokens apart' }),
    created_at: z.string(),
    last_used_at: z.string().nullable(),
    expires_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .openapi('ApiToken');

const CreatedToken = Token.extend({ token: z.string().openapi({ description: 'the token; shown only in this response' }) }).openapi('CreatedApiToken');

const UserParams = z.object({ user_id: pathId('user_id') });
const TokenParams = z.object({ user_id: pathId('user_id'), token_id: pathId('token_id') });
const tags = ['admin: users'];

function userJson(u: UserRow) {
  return { id: u.id, name: u.name, email: u.email, role: u.role, created_at: iso(u.created_at), disabled_at: iso(u.disabled_at) };
}

function tokenJson(t: users.TokenInfo) {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    created_at: iso(t.created_at),
    last_used_at: iso(t.last_used_at),
    expires_at: iso(t.expires_at),
    revoked_at: iso(t.revoked_at),
  };
}

/** `/admin/users`: users and their API tokens (admin only). */
export function adminUsersRoutes(deps: ApiDeps) {
  const { db } = deps.services;
  const middleware = adminOnly(db);
  const app = new OpenAPIHono();

  app.openapi(
    createRoute({
      method: 'post',
      path: '/admin/users',
      tags,
      summary: 'Create a user',
      middleware,
      request: { body: jsonBody(CreateUserBody) },
      responses: { 201: jsonResponse(envelope(User), 'the user'), ...errors(400, 401, 403, 409) },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const user = await users.createUser(db, { name: body.name, email: body.email ?? null, role: body.role });
      return replyCreated(c, userJson(user), 'user_created');
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/users',
      tags,
      summary: 'List users',
      middleware,
      request: { query: PaginationQuery },
      responses: { 200: jsonResponse(pageEnvelope(User), 'one page of users, disabled ones included'), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const request = pageRequest(c.req.valid('query'));
      return reply(c, paginated(await users.listUsers(db, request), request, userJson));
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/users/{user_id}',
      tags,
      summary: 'Get a user',
      middleware,
      request: { params: UserParams },
      responses: { 200: jsonResponse(envelope(User), 'the user'), ...errors(400, 401, 403, 404) },
    }),
    async (c) => reply(c, userJson(await users.getUser(db, c.req.valid('param').user_id))),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/admin/users/{user_id}',
      tags,
      summary: 'Disable a user and revoke their tokens',
      description: 'The user is kept (disabled_at set) so history keeps its owner. You cannot disable yourself or the last admin (409).',
      middleware,
      request: { params: UserParams },
      responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      await users.disableUser(db, c.req.valid('param').user_id, principalOf(c).userId);
      return noContent(c);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/admin/users/{user_id}/tokens',
      tags,
      summary: 'Create an API token for a user',
      description: 'The token is in data.token of this response only; it is stored hashed.',
      middleware,
      request: { params: UserParams, body: jsonBody(CreateTokenBody) },
      responses: { 201: jsonResponse(envelope(CreatedToken), 'the token, shown once'), ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const token = await users.createUserToken(db, c.req.valid('param').user_id, body.name, body.expires_in_days);
      return replyCreated(c, { ...tokenJson(token), token: token.token }, 'token_created');
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/users/{user_id}/tokens',
      tags,
      summary: "List a user's API tokens (never the tokens themselves)",
      middleware,
      request: { params: UserParams, query: PaginationQuery },
      responses: { 200: jsonResponse(pageEnvelope(Token), 'one page of tokens, newest first'), ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const request = pageRequest(c.req.valid('query'));
      return reply(c, paginated(await users.listUserTokens(db, c.req.valid('param').user_id, request), request, tokenJson));
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/admin/users/{user_id}/tokens/{token_id}',
      tags,
      summary: 'Revoke an API token',
      middleware,
      request: { params: TokenParams },
      responses: { 204: NoContent, ...errors(400, 401, 403, 404) },
    }),
    async (c) => {
      const { user_id, token_id } = c.req.valid('param');
      await users.revokeUserToken(db, user_id, token_id);
      return noContent(c);
    },
  );

  return app;
}
