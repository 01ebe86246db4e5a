import type { EnvironmentAccess } from '../../environments/access-info.js';
import type { EnvWithHost } from '../../environments/environments.repo.js';
import { translator, type Texts } from '../i18n.js';
import { Page, type PageContext } from '../layout.js';
import { StatusBadge, gpuText, statusLabelsJson, when } from './env-common.js';

const TEXT: Texts<
  'title' | 'new' | 'name' | 'status' | 'gpus' | 'image' | 'ssh' | 'created' | 'copy' | 'empty' | 'more' | 'caption' | 'live' | 'pending'
> = {
  en: {
    title: 'Environments', new: 'New environment', name: 'Name', status: 'Status', gpus: 'GPUs', image: 'Image', ssh: 'SSH command',
    created: 'Created', copy: 'Copy', empty: 'No environments yet.', more: 'Showing the newest {shown} of {total}.',
    caption: 'Your environments (newest first)', live: 'Statuses update live.', pending: 'available once running',
  },
  zh: {
    title: '环境', new: '新建环境', name: '名称', status: '状态', gpus: 'GPU', image: '镜像', ssh: 'SSH 命令',
    created: '创建时间', copy: '复制', empty: '还没有环境。', more: '显示最新的 {shown} 个，共 {total} 个。',
    caption: '你的环境（最新在前）', live: '状态实时更新。', pending: '运行后可用',
  },
};

/** One page of environments read for the list (the same service call as GET /api/v1/environments). */
export interface EnvironmentListData {
  readonly items: readonly EnvWithHost[];
  readonly total: number;
}

/**
 * GET /environments: the caller's environments, with status (coloured), GPUs, image, SSH command
 * (copy button) and creation time. environments.js polls the API and updates statuses and SSH
 * commands in place.
 */
export function EnvironmentsList(props: { ctx: PageContext; data: EnvironmentListData; access: EnvironmentAccess }) {
  const { ctx, data } = props;
  const t = translator(TEXT, ctx.lang);
  return (
    <Page ctx={ctx} title={t('title')}>
      <p>
        <a class="button" href="/environments/new">{t('new')}</a>
      </p>
      {data.items.length === 0 ? (
        <p id="no-environments">{t('empty')}</p>
      ) : (
        <div class="table-wrap">
          <table id="environments" data-status-labels={statusLabelsJson(ctx.lang)} data-pending={t('pending')}>
            <caption class="hint">{`${t('caption')} · ${t('live')}`}</caption>
            <thead>
              <tr>
                <th scope="col">{t('name')}</th>
                <th scope="col">{t('status')}</th>
                <th scope="col">{t('gpus')}</th>
                <th scope="col">{t('image')}</th>
                <th scope="col">{t('ssh')}</th>
                <th scope="col">{t('created')}</th>
              </tr>
            </thead>
            <tbody>
              {data.items.map((env) => <Row env={env} ssh={props.access.of(env)?.ssh ?? null} ctx={ctx} copy={t('copy')} pending={t('pending')} />)}
            </tbody>
          </table>
        </div>
      )}
      {data.total > data.items.length ? <p class="hint">{t('more', { shown: data.items.length, total: data.total })}</p> : null}
      <script type="module" src="/assets/console/environments.js"></script>
    </Page>
  );
}

function Row(props: { env: EnvWithHost; ssh: string | null; ctx: PageContext; copy: string; pending: string }) {
  const { env, ctx } = props;
  const sshId = `ssh-${env.id}`;
  return (
    <tr data-env-id={env.id}>
      <td><a href={`/environments/${env.id}`}>{env.name}</a></td>
      <td><StatusBadge status={env.status} lang={ctx.lang} /></td>
      <td>{gpuText(env, ctx.lang)}</td>
      <td><code>{env.image}</code></td>
      <td class="ssh">
        <code id={sshId} class="ssh-command">{props.ssh ?? ''}</code>
        <span class="hint ssh-pending" hidden={props.ssh !== null}>{props.pending}</span>{' '}
        <button type="button" class="secondary small" data-copy={`#${sshId}`} hidden={props.ssh === null} aria-label={`${props.copy}: ${env.name}`}>{props.copy}</button>
      </td>
      <td>{when(env.created_at)}</td>
    </tr>
  );
}
