import { Hono } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import { Page } from '../layout.js';
import { requireAdminPage, requireSession, type ConsoleEnv } from '../session.js';

/** The admin's pages, under /admin: hosts (GPU tiles, cordon/drain), users and tokens, workspaces, images, datasets. */
export function adminPages(deps: ApiDeps): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>();
  app.use('*', requireSession(deps), requireAdminPage());
  app.get('/hosts', (c) => c.html(<Page ctx={c.get('page')} title="Hosts"><p>TODO</p></Page>));
  return app;
}
