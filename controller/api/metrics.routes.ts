import { Hono } from 'hono';
import { AppError } from '../../common/errors.js';
import { sameSecret } from '../../common/secrets.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { errorResponse } from './envelope.js';

/**
 * `GET /metrics`: the controller's Prometheus metrics (text exposition format). Open, like the
 * probes, unless REMOTEGPU_METRICS_TOKEN is set: then only `Authorization: Bearer <that token>`
 * (Prometheus' `authorization` scrape setting) is answered; anything else is 401. API tokens are
 * not accepted: a scraper holds a token that can read metrics and nothing else.
 */
export function metricsRoutes({ services }: ApiDeps) {
  const app = new Hono<AppEnv>();
  const token = services.metricsToken;
  app.get('/metrics', async (c) => {
    if (token !== undefined) {
      const presented = /^Bearer\s+(.+)$/i.exec(c.req.header('Authorization') ?? '')?.[1]?.trim();
      if (!presented || !sameSecret(presented, token)) {
        c.header('WWW-Authenticate', 'Bearer realm="remotegpu metrics"');
        return errorResponse(c, new AppError('unauthenticated', 'GET /metrics needs "Authorization: Bearer <REMOTEGPU_METRICS_TOKEN>"'));
      }
    }
    const { body, contentType } = await services.metrics.scrape();
    return c.body(body, 200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
  });
  return app;
}
