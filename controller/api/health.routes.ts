import { Hono } from 'hono';
import { ERROR_TABLE } from '../../common/errors.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { RETRY_AFTER_S } from './envelope.js';

/**
 * Probes, no authentication:
 * - `GET /healthz` (liveness): 200 while the process serves requests; never touches the database,
 *   so an outage of the database does not get a healthy controller restarted.
 * - `GET /readyz` (readiness): 200 when the database answers `select 1` within READY_TIMEOUT_MS,
 *   otherwise 503 service_unavailable with `Retry-After`.
 */
export function healthRoutes({ services }: ApiDeps) {
  const app = new Hono<AppEnv>();
  app.get('/healthz', (c) => c.json({ code: 0, message: 'ok', data: { status: 'ok' } }));
  app.get('/readyz', async (c) => {
    if (await services.health.ping()) return c.json({ code: 0, message: 'ok', data: { database: 'ok' } });
    const mapping = ERROR_TABLE.service_unavailable;
    c.header('Retry-After', String(RETRY_AFTER_S));
    return c.json({ code: mapping.api, message: 'the database is unavailable; retry shortly', data: { database: 'unavailable' } }, mapping.http as 503);
  });
  return app;
}
