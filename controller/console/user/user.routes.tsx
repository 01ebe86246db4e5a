import { Hono, type Context } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import { freeCapacity } from '../../environments/free-capacity.js';
import { translator, type Texts } from '../i18n.js';
import { Page } from '../layout.js';
import { unlessNotFound } from '../reads.js';
import { requireSession, type ConsoleEnv } from '../session.js';
import { EnvironmentDetail } from './environment-detail.js';
import { NewEnvironment } from './environment-new.js';
import { EnvironmentsList } from './environments-list.js';
import { SshKeys } from './ssh-keys.js';

const NOT_FOUND: Texts<'title' | 'text' | 'back'> = {
  en: { title: 'Not found', text: 'There is no such environment, or it is not yours.', back: 'All environments' },
  zh: { title: '未找到', text: '没有这个环境，或者它不属于你。', back: '全部环境' },
};

/** How many rows a console list shows (the API's largest page). */
const LIST_SIZE = 100;
/** How many events the status timeline shows. */
const TIMELINE_EVENTS = 50;

/**
 * The user's pages: environments (list, create, detail with terminal and logs) and SSH keys. Data
 * is read through the same service calls the REST routes make, with the caller's principal, so
 * tenancy is the API's; changes go through the REST API from the page scripts.
 */
export function userPages(deps: ApiDeps): Hono<ConsoleEnv> {
  const { services } = deps;
  const app = new Hono<ConsoleEnv>();
  for (const path of ['/environments', '/environments/*', '/ssh-keys', '/ssh-keys/*']) app.use(path, requireSession(deps));

  app.get('/environments', async (c) => {
    const ctx = c.get('page');
    const data = await services.environments.list(ctx.principal, { page: 1, pageSize: LIST_SIZE });
    return c.html(<EnvironmentsList ctx={ctx} data={data} access={services.access} />);
  });
  app.get('/environments/new', async (c) => {
    const [images, hosts] = await Promise.all([services.images.list({ page: 1, pageSize: LIST_SIZE }), services.capacityIndex.snapshot()]);
    return c.html(<NewEnvironment ctx={c.get('page')} images={images.items} capacity={freeCapacity(hosts)} />);
  });
  app.get('/environments/:id', async (c) => {
    const ctx = c.get('page');
    const env = await unlessNotFound(services.environments.get(ctx.principal, c.req.param('id')));
    if (!env) return notFoundPage(c);
    const [events, mounts, datasets] = await Promise.all([
      services.environmentLogs.events(env.id, TIMELINE_EVENTS),
      services.environments.listMounts(ctx.principal, env.id),
      services.datasets.list(ctx.principal, { page: 1, pageSize: LIST_SIZE }),
    ]);
    const data = { env, access: services.access.of(env), events, mounts, datasets: datasets.items };
    return c.html(<EnvironmentDetail ctx={ctx} data={data} />);
  });
  app.get('/ssh-keys', async (c) => {
    const ctx = c.get('page');
    const keys = await services.sshKeys.list(ctx.principal.userId, { page: 1, pageSize: LIST_SIZE });
    return c.html(<SshKeys ctx={ctx} keys={keys.items} total={keys.total} />);
  });
  return app;
}

function notFoundPage(c: Context<ConsoleEnv>) {
  const ctx = c.get('page');
  const t = translator(NOT_FOUND, ctx.lang);
  return c.html(
    <Page ctx={ctx} title={t('title')}>
      <p>{t('text')}</p>
      <p><a href="/environments">{t('back')}</a></p>
    </Page>,
    404,
  );
}
