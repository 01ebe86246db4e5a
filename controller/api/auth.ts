import type { Context, MiddlewareHandler } from 'hono';
import { AppError } from '../../common/errors.js';
import type { Db } from '../db/database.js';
import type { Principal } from '../access/principal.js';
import { findPrincipalByToken } from '../users/users.repo.js';

export type { Principal };

/**
 * Requires `Authorization: Bearer <token>` and stores the caller as `principal`. A missing,
 * malformed, unknown, revoked or expired token is 401 (40101).
 */
export function requireAuth(db: Db): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new AppError('unauthenticated', 'missing API token: send "Authorization: Bearer <token>"');
    }
    const principal = await findPrincipalByToken(db, match[1]);
    if (!principal) throw new AppError('unauthenticated', 'invalid, revoked or expired API token');
    c.set('principal', principal);
    await next();
  };
}

/** Requires the admin role (403, 40301 otherwise). Use after requireAuth. */
export function requireAdmin(): MiddlewareHandler {
  return async (c, next) => {
    if (principalOf(c).role !== 'admin') throw new AppError('permission_denied', 'this route needs the admin role');
    await next();
  };
}

/** The authenticated caller of a request that passed requireAuth. */
export function principalOf(c: Context): Principal {
  const p = c.get('principal') as Principal | undefined;
  if (!p) throw new AppError('internal', 'route is missing the auth middleware');
  return p;
}
