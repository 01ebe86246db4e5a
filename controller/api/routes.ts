import { createBaseApp } from './app.js';
import type { ApiDeps } from './deps.js';
import { healthRoutes } from './health.routes.js';
import { metricsRoutes } from './metrics.routes.js';
import { adminUsersRoutes } from './admin-users.routes.js';
import { adminWorkspacesRoutes } from './admin-workspaces.routes.js';
import { adminImagesRoutes } from './admin-images.routes.js';
import { imagesRoutes } from './images.routes.js';
import { adminDatasetsRoutes } from './admin-datasets.routes.js';
import { datasetsRoutes } from './datasets.routes.js';
import { sshKeysRoutes } from './ssh-keys.routes.js';
import { adminHostsRoutes } from './admin-hosts.routes.js';
import { adminJoinTokensRoutes } from './admin-join-tokens.routes.js';
import { environmentsRoutes } from './environments.routes.js';
import { environmentMountsRoutes } from './environment-mounts.routes.js';
import { environmentLogsRoutes } from './environment-logs.routes.js';
import { environmentTerminalRoutes } from './environment-terminal.routes.js';
import { quotasRoutes } from './quotas.routes.js';
import { capacityRoutes } from './capacity.routes.js';
import { serveOpenApiDocument } from './openapi-document.js';

/** The whole REST API: one route module per resource, mounted under its prefix. */
export function buildApi(deps: ApiDeps) {
  const app = createBaseApp(deps.logger, deps.services.metrics);
  app.route('/', healthRoutes(deps));
  app.route('/', metricsRoutes(deps));
  const resources = [
    adminUsersRoutes,
    adminWorkspacesRoutes,
    adminImagesRoutes,
    adminDatasetsRoutes,
    datasetsRoutes,
    sshKeysRoutes,
    imagesRoutes,
    adminHostsRoutes,
    adminJoinTokensRoutes,
    environmentsRoutes,
    environmentMountsRoutes,
    environmentLogsRoutes,
    environmentTerminalRoutes,
    quotasRoutes,
    capacityRoutes,
  ];
  for (const routes of resources) app.route('/api/v1', routes(deps));
  serveOpenApiDocument(app);
  return app;
}
