import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The web console's session: after sign-in the API token itself is kept in an HttpOnly,
 * SameSite=Strict cookie, so a revoked or expired token ends the session as it ends API access.
 * Nothing about a session is stored on the server (any controller replica serves it).
 */
export const SESSION_COOKIE = 'remotegpu_session';

/** The console's language cookie ("zh" or "en"), set by the language switch. */
export const LANG_COOKIE = 'remotegpu_lang';

/** Header a console page's script sends with every state-changing API call authenticated by the cookie. */
export const CSRF_HEADER = 'x-csrf-token';

/** Form field carrying the CSRF token in the console's own HTML forms. */
export const CSRF_FIELD = '_csrf';

/**
 * The CSRF token of a session: an HMAC of a fixed label keyed by the session's API token. Only a
 * page served to the holder of the cookie can know it (another site can neither read the cookie
 * nor the page), it needs no server state, and it changes with the token.
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update('remotegpu-console-csrf-v1').digest('base64url');
}

/** Whether `presented` is the CSRF token of the session (constant-time comparison). */
export function csrfMatches(sessionToken: string, presented: string | undefined): boolean {
  if (!presented) return false;
  const expected = Buffer.from(csrfTokenFor(sessionToken));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
