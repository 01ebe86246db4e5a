import type { Logger } from '../../common/logger.js';
import type { ControllerServices } from '../services.js';
import { createBaseApp } from './app.js';
import { healthRoutes } from './health.routes.js';

export interface ApiDeps {
  readonly services: ControllerServices;
  readonly logger: Logger;
}

/** The whole REST API: one route module per resource, mounted under its prefix. */
export function buildApi(deps: ApiDeps) {
  const app = createBaseApp(deps.logger);
  app.route('/', healthRoutes(deps));
  app.doc31('/api/v1/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'remotegpu API', version: '1.0.0', description: 'GPU development environments' },
  });
  return app;
}
