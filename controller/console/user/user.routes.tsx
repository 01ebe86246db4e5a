import { Hono } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import { Page } from '../layout.js';
import { requireSession, type ConsoleEnv } from '../session.js';

/** The user's pages: environments (list, create, detail with terminal and logs) and SSH keys. */
export function userPages(deps: ApiDeps): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>();
  app.use('/environments', requireSession(deps));
  app.use('/environments/*', requireSession(deps));
  app.get('/environments', (c) => c.html(<Page ctx={c.get('page')} title="Environments"><p>TODO</p></Page>));
  return app;
}
