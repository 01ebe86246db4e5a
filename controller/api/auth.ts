import type { Context, MiddlewareHandler } from 'hono';
import { AppError } from '../../common/errors.js';
import type { Principal } from '../access/principal.js';
import type { AppEnv } from './deps.js';

/** Who a bearer token belongs to (UsersService.authenticate). */
export interface TokenAuthenticator {
  /** The user owning a valid (unrevoked, unexpired) token, or undefined. */
  authenticate(token: string): Promise<Principal | undefined>;
}

/**
 * Requires `Authorization: Bearer <token>` and stores the caller as `principal`. A missing,
 * malformed, unknown, revoked or expired token is 401 (40101).
 */
function requireAuth(users: TokenAuthenticator): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearerToken(c);
    if (!token) {
      throw new AppError('unauthenticated', 'missing API token: send "Authorization: Bearer <token>"');
    }
    const principal = await users.authenticate(token);
    if (!principal) throw new AppError('unauthenticated', 'invalid, revoked or expired API token');
    c.set('principal', principal);
    await next();
  };
}

/** The token of `Authorization: Bearer <token>`, or undefined when the header is missing or malformed. */
export function bearerToken(c: Context): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
  return match?.[1] || undefined;
}

/** Requires the admin role (403, 40301 otherwise). Use after requireAuth. */
function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (principalOf(c).role !== 'admin') throw new AppError('permission_denied', 'this route needs the admin role');
    await next();
  };
}

/** Middleware of routes for any authenticated user: a valid token (401 otherwise). */
export function authenticated(users: TokenAuthenticator): MiddlewareHandler<AppEnv>[] {
  return [requireAuth(users)];
}

/** Middleware of `/api/v1/admin/*` routes: a valid token (401) of an admin (403). */
export function adminOnly(users: TokenAuthenticator): MiddlewareHandler<AppEnv>[] {
  return [requireAuth(users), requireAdmin()];
}

/** The authenticated caller of a request that passed requireAuth. */
export function principalOf(c: Context<AppEnv>): Principal {
  const p: Principal | undefined = c.get('principal');
  if (!p) throw new AppError('internal', 'route is missing the auth middleware');
  return p;
}
