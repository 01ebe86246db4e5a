import { fieldError } from '../../common/errors.js';
import type { Db } from '../db/database.js';
import type { Principal } from '../access/principal.js';
import { hashToken, tokenPrefix } from './tokens.js';


/** The user owning a valid (unrevoked, unexpired) token, or undefined. Records the last use. */
export async function findPrincipalByToken(db: Db, token: string): Promise<Principal | undefined> {
  const row = await db
    .selectFrom('api_tokens as t')
    .innerJoin('users as u', 'u.id', 't.user_id')
    .select(['t.id as tokenId', 'u.id as userId', 'u.name', 'u.role', 't.last_used_at'])
    .where('t.token_hash', '=', hashToken(token))
    .where('t.revoked_at', 'is', null)
    .where('u.disabled_at', 'is', null)
    .where((eb) => eb.or([eb('t.expires_at', 'is', null), eb('t.expires_at', '>', new Date())]))
    .executeTakeFirst();
  if (!row) return undefined;
  // Writing on every request would serialise all requests of a user; once a minute is enough.
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > 60_000) {
    await db.updateTable('api_tokens').set({ last_used_at: new Date() }).where('id', '=', row.tokenId).execute();
  }
  return { userId: row.userId, name: row.name, role: row.role };
}

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
