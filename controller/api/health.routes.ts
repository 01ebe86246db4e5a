import { Hono } from 'hono';
import { ERROR_TABLE } from '../../common/errors.js';
import type { ApiDeps, AppEnv } from './deps.js';

/** `GET /healthz`: 200 when the database answers, 503 otherwise. No authentication. */
export function healthRoutes({ services }: ApiDeps) {
  const app = new Hono<AppEnv>();
  app.get('/healthz', async (c) => {
    if (await services.health.ping()) return c.json({ code: 0, message: 'ok', data: { database: 'ok' } });
    const mapping = ERROR_TABLE.service_unavailable;
    return c.json({ code: mapping.api, message: 'database unavailable', data: { database: 'unavailable' } }, mapping.http as 503);
  });
  return app;
}
