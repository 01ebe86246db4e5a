import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from '../../common/logger.js';
import { AppError, invalidFields } from '../../common/errors.js';
import { isDatabaseUnavailable, isTransactionConflict, isUnstorableText } from '../db/errors.js';
import type { AppEnv } from './deps.js';
import { errorResponse, serviceUnavailableResponse } from './envelope.js';
import { routeTemplate } from './route-template.js';

/** Largest request body accepted (1 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Creates the Hono app with the contract's error handling: every error, unknown route and wrong
 * method is answered with an envelope; internal faults are logged with their stack and answered
 * without it.
 */
export function createBaseApp(logger: Logger, metrics?: { httpRequest(method: string, route: string, status: number, seconds: number): void }): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        return errorResponse(c, validationError(result.error.issues));
      }
      return undefined;
    },
  });

  app.onError((err, c) => {
    if (err instanceof AppError) return errorResponse(c, err);
    if (err instanceof HTTPException) {
      // Hono raises these for bodies it cannot parse (malformed JSON) and similar client faults.
      const status = err.status;
      if (status === 400) return errorResponse(c, new AppError('malformed_json', `request body is not valid JSON: ${err.message}`));
      if (status === 413) return tooLarge(c, 'request body is too large');
      if (status === 415) return errorResponse(c, new AppError('invalid_argument', 'send the request body as JSON with "Content-Type: application/json"'));
      if (status === 401) return errorResponse(c, new AppError('unauthenticated', err.message));
    }
    if (err instanceof SyntaxError && /JSON/i.test(err.message)) {
      return errorResponse(c, new AppError('malformed_json', `request body is not valid JSON: ${err.message}`));
    }
    if (isUnstorableText(err)) {
      // The schemas refuse control characters in every text field; this catches any text that
      // still reached a query with a NUL in it (a path or query parameter).
      return errorResponse(c, new AppError('invalid_argument', 'the request holds a NUL (U+0000) or another character that cannot be stored; remove it'));
    }
    // An outage, or a transaction PostgreSQL rolled back for a deadlock or a serialization failure
    // (nothing changed): not a bug. One line without a stack, and a 503 the client may retry.
    const conflict = isTransactionConflict(err);
    if (conflict || isDatabaseUnavailable(err)) {
      logger.warn({ method: c.req.method, path: c.req.path, reason: err instanceof Error ? err.message : String(err) }, conflict ? 'request rolled back by a conflicting transaction' : 'database unavailable while handling a request');
      return serviceUnavailableResponse(c, conflict ? 'the request conflicted with a concurrent change and was not applied; retry it' : undefined);
    }
    logger.error({ err, method: c.req.method, path: c.req.path }, 'internal error while handling a request');
    return errorResponse(c, new AppError('internal', 'internal error; it has been logged, please retry or report it'));
  });

  // One access-log line per request: method, path (no query, no headers: tokens stay out), status, time.
  const http = logger.child({ component: 'http' });
  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    http.info({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) }, 'request');
    metrics?.httpRequest(c.req.method, routeTemplate(c), c.res.status, (performance.now() - started) / 1000);
  });

  // No route takes more than a few KiB; a larger body is refused before it is read whole.
  app.use(
    '*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => tooLarge(c, `request body is larger than ${MAX_BODY_BYTES} bytes`),
    }),
  );
  app.notFound((c) => notFoundOrWrongMethod(app, c));
  return app;
}

/**
 * The 413 (41301) for a body over the limit. The rest of the body is not read, so the connection
 * cannot carry another request: the answer says `Connection: close`, and the server closes it once
 * the answer is sent (http-server.ts: after a lingering read, so the client reads the answer
 * before the close).
 */
function tooLarge(c: Context, message: string) {
  c.header('Connection', 'close');
  return errorResponse(c, new AppError('payload_too_large', message));
}

/** The 400 (40001) for failed zod validation: each offending field named in the message and in `data.fields`. */
export function validationError(issues: readonly { path: readonly PropertyKey[]; message: string }[]): AppError {
  return invalidFields(issues.map((i) => ({ field: i.path.map(String).join('.') || '(body)', message: i.message })));
}

function notFoundOrWrongMethod(app: OpenAPIHono<AppEnv>, c: Context) {
  const path = c.req.path;
  const allowed = new Set<string>();
  for (const route of app.routes) {
    if (route.method === 'ALL') continue;
    if (patternToRegex(route.path).test(path)) allowed.add(route.method);
  }
  if (allowed.size > 0 && !allowed.has(c.req.method)) {
    c.header('Allow', [...allowed].sort().join(', '));
    return errorResponse(c, new AppError('method_not_allowed', `method ${c.req.method} is not allowed on ${path}; allowed: ${[...allowed].sort().join(', ')}`));
  }
  return errorResponse(c, new AppError('not_found', `no route ${c.req.method} ${path}; see /api/v1/openapi.json`));
}

const regexCache = new Map<string, RegExp>();
function patternToRegex(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) {
    const body = pattern
      .split('/')
      .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    re = new RegExp(`^${body}/?$`);
    regexCache.set(pattern, re);
  }
  return re;
}
