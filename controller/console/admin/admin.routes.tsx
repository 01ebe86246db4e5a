import { Hono } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import { requireAdminPage, requireSession, type ConsoleEnv } from '../session.js';
import { datasetPages } from './datasets.page.js';
import { hostPages } from './hosts.page.js';
import { imagePages } from './images.page.js';
import { userPages } from './users.page.js';
import { workspacePages } from './workspaces.page.js';

/**
 * The admin's pages, under /admin: hosts (GPU tiles, cordon/drain), users and tokens, workspaces,
 * images, datasets. They read through the services the admin REST routes use; every change is made
 * by the page calling the REST API (app.js), so the API's validation and messages apply.
 */
export function adminPages(deps: ApiDeps): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>();
  app.use('*', requireSession(deps), requireAdminPage());
  app.get('/', (c) => c.redirect('/admin/hosts', 303));
  hostPages(app, deps);
  userPages(app, deps);
  workspacePages(app, deps);
  imagePages(app, deps);
  datasetPages(app, deps);
  return app;
}
