import type { ApiDeps } from './api/deps.js';
import { buildApi } from './api/routes.js';
import { consoleRoutes } from './console/console.routes.js';

/** Everything the controller serves over HTTP: the REST API under /api/v1 and the web console at `/`. */
export function buildApp(deps: ApiDeps) {
  const app = buildApi(deps);
  app.route('/', consoleRoutes(deps));
  return app;
}
