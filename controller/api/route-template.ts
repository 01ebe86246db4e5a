import type { Context } from 'hono';
import { matchedRoutes } from 'hono/route';

/**
 * The route template that answered the request (`/api/v1/environments/:id`), for the request
 * metrics: never the raw path, so no id reaches a label. `unmatched` when no route handler answered
 * (an unknown path, a wrong method: answered by notFound), so scanners cannot grow the label set.
 * Call it after `next()`: Hono's routeIndex then points at the handler that ran last.
 */
export function routeTemplate(c: Context): string {
  const route = matchedRoutes(c)[c.req.routeIndex];
  if (!route || route.method === 'ALL') return 'unmatched';
  return route.path;
}
