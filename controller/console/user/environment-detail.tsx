import type { DatasetRow } from '../../db/schema.js';
import type { AccessInfo, SshHostKey } from '../../environments/access-info.js';
import type { EventLine } from '../../environments/events.repo.js';
import type { EnvWithHost } from '../../environments/environments.repo.js';
import { ALLOWED, type EnvAction } from '../../environments/state-machine.js';
import { formatBytes, translator, type Lang } from '../i18n.js';
import { Page, type PageContext } from '../layout.js';
import { StatusBadge, gpuText, statusLabelsJson, when } from './env-common.js';
import { Datasets, Logs, Terminal, Timeline, type MountView } from './environment-detail-parts.js';
import { DETAIL_TEXT } from './environment-detail-texts.js';

/** What the detail page is rendered from (read with the caller's principal, as the API reads it). */
export interface EnvironmentDetailData {
  readonly env: EnvWithHost;
  readonly access: AccessInfo | null;
  readonly events: readonly EventLine[];
  readonly mounts: readonly MountView[];
  readonly datasets: readonly DatasetRow[];
}

/**
 * GET /environments/{id}: access info, status (live), actions with confirmation, resources,
 * status timeline, live logs, the terminal and dataset mounts. environment-detail.js polls the
 * environment and follows its logs; terminal.js runs the terminal.
 */
export function EnvironmentDetail(props: { ctx: PageContext; data: EnvironmentDetailData }) {
  const { ctx, data } = props;
  const { env } = data;
  const t = translator(DETAIL_TEXT, ctx.lang);
  return (
    <Page ctx={ctx} title={env.name}>
      <div id="environment" data-env-id={env.id} data-status-labels={statusLabelsJson(ctx.lang)} data-status-now={t('statusNow')} data-allowed={JSON.stringify(ALLOWED)}>
        <p><a href="/environments">← {t('back')}</a></p>
        <p>
          {t('status')}: <StatusBadge id="env-status" status={env.status} lang={ctx.lang} />{' '}
          <span id="env-reason" class="hint">{env.status_reason}</span>
        </p>
        <Actions env={env} lang={ctx.lang} />
        <div class="columns">
          <Access access={data.access} lang={ctx.lang} />
          <Resources env={env} lang={ctx.lang} />
        </div>
        <Terminal envId={env.id} lang={ctx.lang} />
        <Logs envId={env.id} lang={ctx.lang} />
        <Timeline events={data.events} lang={ctx.lang} />
        <Datasets envId={env.id} mounts={data.mounts} datasets={data.datasets} lang={ctx.lang} />
      </div>
      <script src="/assets/xterm/lib/xterm.js"></script>
      <script src="/assets/xterm-fit/lib/addon-fit.js"></script>
      <link rel="stylesheet" href="/assets/xterm/css/xterm.css" />
      <script type="module" src="/assets/console/environment-detail.js"></script>
      <script type="module" src="/assets/console/terminal.js"></script>
    </Page>
  );
}

/** Start, stop, restart and delete, each confirmed; the buttons a status does not allow are disabled by the script. */
function Actions(props: { env: EnvWithHost; lang: Lang }) {
  const t = translator(DETAIL_TEXT, props.lang);
  const base = `/api/v1/environments/${props.env.id}`;
  const action = (name: 'start' | 'stop' | 'restart', confirm: string) => (
    <form data-api-method="POST" data-api-path={`${base}/${name}`} data-confirm={confirm} data-stay="" data-action={name}>
      <button type="submit" class={name === 'start' ? '' : 'secondary'} id={`action-${name}`} disabled={!allowed(name, props.env.status)}>{t(name)}</button>
      <span role="alert" hidden></span>
    </form>
  );
  return (
    <section aria-label={t('actions')} class="actions-bar">
      {action('start', t('confirmStart'))}
      {action('stop', t('confirmStop'))}
      {action('restart', t('confirmRestart'))}
      <form data-api-method="DELETE" data-api-path={base} data-confirm={t('confirmDelete')} data-next="/environments" data-action="delete">
        <button type="submit" class="danger" id="action-delete" disabled={!allowed('delete', props.env.status)}>{t('delete')}</button>
        <span role="alert" hidden></span>
      </form>
    </section>
  );
}

const allowed = (action: EnvAction, status: string) => (ALLOWED[action] as readonly string[]).includes(status);

function Access(props: { access: EnvironmentDetailData['access']; lang: Lang }) {
  const t = translator(DETAIL_TEXT, props.lang);
  const { access } = props;
  return (
    <section class="card" aria-labelledby="access-h">
      <h2 id="access-h">{t('access')}</h2>
      <p class="ssh">
        <strong>{t('ssh')}: </strong>
        <code id="ssh-command" class="ssh-command">{access?.ssh ?? ''}</code>{' '}
        <button type="button" class="secondary small" data-copy="#ssh-command" hidden={!access} aria-label={`${t('copy')}: ${t('ssh')}`}>{t('copy')}</button>
        <span class="hint ssh-pending" hidden={Boolean(access)}>{t('pendingAccess')}</span>
      </p>
      <HostKeys keys={access?.ssh_host_keys ?? []} lang={props.lang} />
      <p id="jupyter" hidden={!access?.jupyter}>
        <strong>{t('jupyter')}: </strong>
        <a id="jupyter-url" href={access?.jupyter ?? '#'} target="_blank" rel="noopener noreferrer">{access?.jupyter ?? ''}</a>
      </p>
    </section>
  );
}

/** The fingerprints of the SSH host keys (environment-detail.js keeps them current): what `ssh` asks the user to confirm. */
function HostKeys(props: { keys: readonly SshHostKey[]; lang: Lang }) {
  const t = translator(DETAIL_TEXT, props.lang);
  return (
    <div class="host-keys">
      <strong>{t('hostKeys')}: </strong>
      <span id="host-keys-pending" class="hint" hidden={props.keys.length > 0}>{t('hostKeysPending')}</span>
      <ul id="host-keys">
        {props.keys.map((k) => <li><code>{`${k.type} ${k.fingerprint}`}</code></li>)}
      </ul>
    </div>
  );
}

function Resources(props: { env: EnvWithHost; lang: Lang }) {
  const t = translator(DETAIL_TEXT, props.lang);
  const { env } = props;
  const used = env.storage_used_bytes !== null ? ` (${t('storageUsed', { used: formatBytes(env.storage_used_bytes) })})` : '';
  const row = (label: string, value: string) => (
    <tr><th scope="row">{label}</th><td>{value}</td></tr>
  );
  return (
    <section class="card" aria-labelledby="resources-h">
      <h2 id="resources-h">{t('resources')}</h2>
      <table class="facts">
        <tbody>
          {row(t('image'), env.image)}
          {row(t('gpus'), gpuText(env, props.lang))}
          {row(t('cpu'), String(env.cpu))}
          {row(t('memory'), formatBytes(env.memory_bytes))}
          {row(t('storage'), `${formatBytes(env.storage_bytes)}${used}`)}
          {row(t('created'), when(env.created_at))}
          {row(t('started'), when(env.started_at))}
        </tbody>
      </table>
    </section>
  );
}
