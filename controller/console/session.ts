import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { CSRF_FIELD, LANG_COOKIE, SESSION_COOKIE, csrfMatches, csrfTokenFor } from '../access/console-session.js';
import type { ApiDeps } from '../api/deps.js';
import { langOf } from './i18n.js';
import type { PageContext } from './layout.js';

/** The console's Hono environment: `page` is set for every signed-in page (requireSession). */
export type ConsoleEnv = { Variables: { page: PageContext; sessionToken: string } };

const secure = (c: Context) => new URL(c.req.url).protocol === 'https:';

/** Keeps `token` as the session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS, for the browser session. */
export function startSession(c: Context, token: string): void {
  setCookie(c, SESSION_COOKIE, token, { path: '/', httpOnly: true, sameSite: 'Strict', secure: secure(c) });
}

export function endSession(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: '/', secure: secure(c) });
}

/** Remembers a `?lang=` choice in the language cookie (a year), so the switch sticks across pages. */
export function rememberLang(): MiddlewareHandler {
  return async (c, next) => {
    const asked = c.req.query('lang');
    if (asked === 'en' || asked === 'zh') setCookie(c, LANG_COOKIE, asked, { path: '/', sameSite: 'Lax', maxAge: 365 * 24 * 3600, secure: secure(c) });
    await next();
  };
}

/**
 * Requires a signed-in browser: the session cookie must hold a valid (unrevoked, unexpired) API
 * token. Otherwise the browser is sent to the sign-in page (and an invalid cookie is dropped).
 * Sets `page` (language, caller, CSRF token, path) for the page to render.
 */
export function requireSession(deps: ApiDeps): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    const token = getCookie(c, SESSION_COOKIE);
    const principal = token ? await deps.services.users.authenticate(token) : undefined;
    if (!token || !principal) {
      if (token) endSession(c);
      const back = c.req.method === 'GET' ? `?next=${encodeURIComponent(c.req.path)}` : '';
      return c.redirect(`/signin${back}`, 303);
    }
    c.set('sessionToken', token);
    c.set('page', { lang: langOf(c), principal, csrf: csrfTokenFor(token), path: c.req.path });
    await next();
  };
}

/** Requires the admin role on a signed-in page: others get a 403 page. */
export function requireAdminPage(): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    if (c.get('page').principal.role !== 'admin') return c.text('403 Forbidden: this page needs the admin role', 403);
    await next();
  };
}

/** Whether a console form post carries the session's CSRF token (the hidden `_csrf` field). */
export async function formCsrfOk(c: Context<ConsoleEnv>): Promise<boolean> {
  const form = await c.req.parseBody();
  const field = form[CSRF_FIELD];
  return csrfMatches(c.get('sessionToken'), typeof field === 'string' ? field : undefined);
}
