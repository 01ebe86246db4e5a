import { AppError } from '../../common/errors.js';
import type { Db } from '../db/database.js';

/** An invalid_argument error about one request field, listed in the envelope's `data.fields`. */
export function fieldError(field: string, message: string): AppError {
  return new AppError('invalid_argument', `invalid request: ${field}: ${message}`, { fields: [{ field, message }] });
}

/** The user with `userId`; invalid_argument naming `field` when it does not exist or is disabled. */
export async function requireEnabledUser(db: Db, userId: number, field: string): Promise<{ id: number; name: string }> {
  const user = await db.selectFrom('users').select(['id', 'name', 'disabled_at']).where('id', '=', userId).executeTakeFirst();
  if (!user) throw fieldError(field, `no user has id ${userId}`);
  if (user.disabled_at) throw fieldError(field, `user ${userId} is disabled`);
  return { id: user.id, name: user.name };
}
