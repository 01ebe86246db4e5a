import type { Hono } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import type { GpuTile } from '../../hosts/gpu-tiles.repo.js';
import type { HostSummary } from '../../hosts/model.js';
import { translator, type Lang } from '../i18n.js';
import type { ConsoleEnv } from '../session.js';
import { AdminPage, Pager, notFoundText, pageParam } from './components.js';
import { unlessNotFound } from '../reads.js';
import { HostCard } from './host-card.js';
import { HostDetailPage } from './host-detail.page.js';
import { HOST_TEXT } from './host-texts.js';

/** Hosts per page of the grid (the listing's own paging). */
export const HOSTS_PER_PAGE = 20;

interface GridData {
  readonly hosts: readonly HostSummary[];
  readonly tiles: ReadonlyMap<string, readonly GpuTile[]>;
  readonly total: number;
  readonly page: number;
}

/** One page of hosts (the admin listing) and the GPU tiles of all of them: two statements, whatever the GPU count. */
async function gridData(deps: ApiDeps, page: number): Promise<GridData> {
  const { hosts } = deps.services;
  const listing = await hosts.list({}, { page, pageSize: HOSTS_PER_PAGE });
  const tiles = await hosts.gpuTiles(listing.items.map((h) => h.id));
  return { hosts: listing.items, tiles, total: listing.total, page };
}

/** The grid of host cards: the part of the page the script refreshes. */
function HostGrid(props: { data: GridData; lang: Lang }) {
  const t = translator(HOST_TEXT, props.lang);
  const { data } = props;
  return (
    <div id="host-grid" class="host-grid" data-refresh={`/admin/hosts/grid?page=${data.page}`}>
      {data.hosts.length === 0 ? <p class="hint">{t('noHosts')}</p> : null}
      {data.hosts.map((h) => <HostCard host={h} tiles={data.tiles.get(h.id) ?? []} lang={props.lang} />)}
    </div>
  );
}

/** GET /admin/hosts (the page), /admin/hosts/grid (its grid alone, for the refresh) and /admin/hosts/{id}. */
export function hostPages(app: Hono<ConsoleEnv>, deps: ApiDeps): void {
  app.get('/hosts', async (c) => {
    const ctx = c.get('page');
    const t = translator(HOST_TEXT, ctx.lang);
    const data = await gridData(deps, pageParam(c.req.query('page')));
    return c.html(
      <AdminPage ctx={ctx} title={t('title')}>
            <p class="hint">{t('refreshHint')} {t('cordonHint')}</p>
        <HostGrid data={data} lang={ctx.lang} />
        <Pager base="/admin/hosts" page={data.page} pageSize={HOSTS_PER_PAGE} total={data.total} lang={ctx.lang} />
      </AdminPage>,
    );
  });
  app.get('/hosts/grid', async (c) => {
    const data = await gridData(deps, pageParam(c.req.query('page')));
    c.header('cache-control', 'no-store');
    return c.html(<HostGrid data={data} lang={c.get('page').lang} />);
  });
  app.get('/hosts/:id', async (c) => {
    const ctx = c.get('page');
    const id = c.req.param('id');
    const host = await unlessNotFound(deps.services.hosts.get(id));
    if (!host) return c.text(notFoundText(ctx.lang, `host ${id}`), 404);
    const activity = await deps.services.hosts.activity(id);
    const tiles = (await deps.services.hosts.gpuTiles([id])).get(id) ?? [];
    return c.html(<HostDetailPage ctx={ctx} host={host} tiles={tiles} activity={activity} />);
  });
}
