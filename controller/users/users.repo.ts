import { fieldError } from '../../common/errors.js';
import type { Db } from '../db/database.js';
import { hashToken, tokenPrefix } from './tokens.js';

// Queries shared by the users, workspaces, datasets services and the admin bootstrap.

/** Stores a token (hashed) for a user. */
export async function insertToken(db: Db, userId: number, name: string, token: string, expiresAt: Date | null = null) {
  return db
    .insertInto('api_tokens')
    .values({ user_id: userId, name, token_hash: hashToken(token), prefix: tokenPrefix(token), expires_at: expiresAt })
    .returning(['id', 'name', 'prefix', 'created_at', 'expires_at'])
    .executeTakeFirstOrThrow();
}

/** The user with `userId`; invalid_argument naming `field` when it does not exist or is disabled. */
export async function requireEnabledUser(db: Db, userId: number, field: string): Promise<{ id: number; name: string }> {
  const user = await db.selectFrom('users').select(['id', 'name', 'disabled_at']).where('id', '=', userId).executeTakeFirst();
  if (!user) throw fieldError(field, `no user has id ${userId}`);
  if (user.disabled_at) throw fieldError(field, `user ${userId} is disabled`);
  return { id: user.id, name: user.name };
}
