import { z } from '@hono/zod-openapi';
import type { UserRow } from '../db/schema.js';
import type { TokenInfo } from '../users/users.service.js';
import { dateTime, iso, pathId, singleLine } from './schemas.js';

// Schemas and JSON views of users and their API tokens, for `/admin/users`.

const UserName = z
  .string()
  .regex(/^[a-zA-Z0-9._-]{1,64}$/, 'must be 1 to 64 characters: letters, digits, ".", "_" or "-"')
  .openapi({ example: 'alice' });

export const CreateUserBody = z.object({
  name: UserName,
  email: z.email('must be an email address').max(254).nullable().optional(),
  role: z.enum(['user', 'admin']).default('user'),
});

export const CreateTokenBody = z.object({
  name: singleLine(z.string().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters')).openapi({ example: 'laptop' }),
  expires_in_days: z.number().int().min(1).max(3650).optional().openapi({ description: 'omit for a token that never expires' }),
});

export const User = z
  .object({
    id: z.number().int(),
    name: z.string(),
    email: z.string().openapi({ format: 'email' }).nullable(),
    role: z.enum(['user', 'admin']),
    created_at: dateTime(),
    disabled_at: dateTime().nullable(),
  })
  .openapi('User');

export const Token = z
  .object({
    id: z.number().int(),
    name: z.string(),
    prefix: z.string().openapi({ description: 'first characters of the token, to tell tokens apart' }),
    created_at: dateTime(),
    last_used_at: dateTime().nullable(),
    expires_at: dateTime().nullable(),
    revoked_at: dateTime().nullable(),
  })
  .openapi('ApiToken');

export const CreatedToken = Token.extend({ token: z.string().openapi({ description: 'the token; shown only in this response' }) }).openapi('CreatedApiToken');

export const UserParams = z.object({ user_id: pathId('user_id') });
export const TokenParams = z.object({ user_id: pathId('user_id'), token_id: pathId('token_id') });

/** The API view of a user. */
export function userJson(u: UserRow) {
  return { id: u.id, name: u.name, email: u.email, role: u.role, created_at: iso(u.created_at), disabled_at: iso(u.disabled_at) };
}

/** The API view of a token (never the token itself). */
export function tokenJson(t: TokenInfo) {
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
