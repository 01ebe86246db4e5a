import { Hono } from 'hono';
import { sql } from 'kysely';
import { ERROR_TABLE } from '../../common/errors.js';
import type { ApiDeps } from './routes.js';

/** `GET /healthz`: 200 when the database answers, 503 otherwise. No authentication. */
export function healthRoutes(deps: ApiDeps) {
  const app = new Hono();
  app.get('/healthz', async (c) => {
    try {
      await sql`select 1`.execute(deps.services.db);
      return c.json({ code: 0, message: 'ok', data: { database: 'ok' } });
    } catch {
      const mapping = ERROR_TABLE.service_unavailable;
      return c.json({ code: mapping.api, message: 'database unavailable', data: { database: 'unavailable' } }, mapping.http as 503);
    }
  });
  return app;
}
