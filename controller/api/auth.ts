import type { Context, MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { CSRF_HEADER, SESSION_COOKIE, csrfMatches } from '../access/console-session.js';
import { AppError } from '../../common/errors.js';
import type { Principal } from '../access/principal.js';
import type { AppEnv } from './deps.js';

/** Who a bearer token belongs to (UsersService.authenticate). */
export interface TokenAuthenticator {
  /** The user owning a valid (unrevoked, unexpired) token, or undefined. */
  authenticate(token: string): Promise<Principal | undefined>;
}

/**
 * Requires `Authorization: Bearer <token>` (or the console's session cookie, see requestToken) and
 * stores the caller as `principal`. A missing, malformed, unknown, revoked or expired token is 401
 * (40101).
 */
function requireAuth(users: TokenAuthenticator): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = requestToken(c);
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

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The API token of a request: the bearer token, else the console's session cookie. A request
 * authenticated by the cookie that changes something must also carry the session's CSRF token in
 * the X-CSRF-Token header (the console's pages send it): without it, it is 403 (40301), so another
 * site cannot make a signed-in browser act.
 */
export function requestToken(c: Context): string | undefined {
  const bearer = bearerToken(c);
  if (bearer) return bearer;
  const session = getCookie(c, SESSION_COOKIE);
  if (!session) return undefined;
  if (!SAFE_METHODS.has(c.req.method) && !csrfMatches(session, c.req.header(CSRF_HEADER))) {
    throw new AppError('permission_denied', 'a request authenticated by the console session must carry its CSRF token in the X-CSRF-Token header');
  }
  return session;
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
