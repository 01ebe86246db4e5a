import type { Logger } from '../../common/logger.js';
import type { ControllerServices } from '../services.js';
import { createBaseApp } from './app.js';
import { healthRoutes } from './health.routes.js';
import { adminUsersRoutes } from './admin-users.routes.js';
import { adminWorkspacesRoutes } from './admin-workspaces.routes.js';
import { adminImagesRoutes } from './admin-images.routes.js';
import { imagesRoutes } from './images.routes.js';
import { adminDatasetsRoutes } from './admin-datasets.routes.js';
import { datasetsRoutes } from './datasets.routes.js';
import { sshKeysRoutes } from './ssh-keys.routes.js';
import { adminHostsRoutes } from './admin-hosts.routes.js';
import { environmentsRoutes } from './environments.routes.js';

export interface ApiDeps {
  readonly services: ControllerServices;
  readonly logger: Logger;
}

/** The whole REST API: one route module per resource, mounted under its prefix. */
export function buildApi(deps: ApiDeps) {
  const app = createBaseApp(deps.logger);
  app.route('/', healthRoutes(deps));
  for (const routes of [adminUsersRoutes, adminWorkspacesRoutes, adminImagesRoutes, adminDatasetsRoutes, datasetsRoutes, sshKeysRoutes, imagesRoutes]) {
    app.route('/api/v1', routes(deps));
  }
  app.route('/api/v1', adminHostsRoutes(deps));
  app.route('/api/v1', environmentsRoutes(deps));
  app.doc31('/api/v1/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'remotegpu API', version: '1.0.0', description: 'GPU development environments' },
  });
  return app;
}
