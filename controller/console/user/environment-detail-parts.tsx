import type { DatasetRow } from '../../db/schema.js';
import type { EventLine } from '../../environments/events.repo.js';
import { translator, type Lang } from '../i18n.js';
import { when } from './env-common.js';
import { DETAIL_TEXT } from './environment-detail-texts.js';

// The sections of an environment's page below its header: timeline, logs, terminal, datasets.

export interface MountView {
  readonly dataset_id: number;
  readonly name: string;
  readonly mount_path: string;
  readonly readonly: boolean;
}

/** The status timeline: the environment's events (oldest first); the page script appends live status changes. */
export function Timeline(props: { events: readonly EventLine[]; lang: Lang }) {
  const t = translator(DETAIL_TEXT, props.lang);
  return (
    <section class="card" aria-labelledby="timeline-h">
      <h2 id="timeline-h">{t('timeline')}</h2>
      {props.events.length === 0 ? <p class="hint" id="no-events">{t('noEvents')}</p> : null}
      <ol id="timeline" class="timeline">
        {props.events.map((e) => (
          <li>
            <time datetime={e.at.toISOString()}>{when(e.at)}</time> {e.message}
          </li>
        ))}
      </ol>
    </section>
  );
}

/** Live logs: environment-detail.js opens an EventSource on GET /api/v1/environments/{id}/logs?follow=true. */
export function Logs(props: { envId: string; lang: Lang }) {
  const t = translator(DETAIL_TEXT, props.lang);
  return (
    <section class="card" aria-labelledby="logs-h">
      <h2 id="logs-h">{t('logs')}</h2>
      <p class="hint">{t('logsHint')}</p>
      <pre id="logs" class="logs" tabindex={0} aria-label={t('logs')} data-ended={t('logsEnded')}></pre>
    </section>
  );
}

/** The terminal: terminal.js asks for a ticket, opens the WebSocket and runs xterm.js in #terminal. */
export function Terminal(props: { envId: string; lang: Lang }) {
  const t = translator(DETAIL_TEXT, props.lang);
  return (
    <section class="card" aria-labelledby="terminal-h">
      <h2 id="terminal-h">{t('terminal')}</h2>
      <p class="hint">{t('terminalHint')}</p>
      <p class="actions">
        <button type="button" id="terminal-open">{t('openTerminal')}</button>{' '}
        <button type="button" id="terminal-close" class="secondary" hidden>{t('closeTerminal')}</button>
      </p>
      <p id="terminal-status" role="status" data-closed={t('terminalClosed')} data-open={t('terminalOpen')} data-exit={t('terminalExit')} data-connecting={t('terminalConnecting')}></p>
      <p role="alert" id="terminal-error" hidden></p>
      <div id="terminal" class="terminal" data-env-id={props.envId} data-state="closed"></div>
    </section>
  );
}

/** Mounted datasets (unmount buttons) and the mount form (the datasets the caller may see). */
export function Datasets(props: { envId: string; mounts: readonly MountView[]; datasets: readonly DatasetRow[]; lang: Lang }) {
  const t = translator(DETAIL_TEXT, props.lang);
  const base = `/api/v1/environments/${props.envId}/datasets`;
  return (
    <section class="card" aria-labelledby="datasets-h">
      <h2 id="datasets-h">{t('datasets')}</h2>
      {props.mounts.length === 0 ? (
        <p class="hint">{t('noMounts')}</p>
      ) : (
        <div class="table-wrap">
          <table id="mounts">
            <thead>
              <tr><th scope="col">{t('dataset')}</th><th scope="col">{t('mountPath')}</th><th scope="col">{t('readonly')}</th><th scope="col"><span class="sr-only">{t('unmount')}</span></th></tr>
            </thead>
            <tbody>
              {props.mounts.map((m) => (
                <tr>
                  <td>{m.name}</td>
                  <td><code>{m.mount_path}</code></td>
                  <td>{m.readonly ? t('yes') : t('no')}</td>
                  <td>
                    <form data-api-method="DELETE" data-api-path={`${base}/${m.dataset_id}`} data-confirm={t('confirmUnmount')}>
                      <button type="submit" class="secondary" aria-label={`${t('unmount')}: ${m.name}`}>{t('unmount')}</button>
                      <span role="alert" hidden></span>
                    </form>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {props.datasets.length === 0 ? (
        <p class="hint">{t('noDatasets')}</p>
      ) : (
        <form id="mount-form" data-api-method="POST" data-api-path={base}>
          <label for="mount-dataset">{t('dataset')}</label>
          <select id="mount-dataset" name="dataset_id" data-type="number" required>
            {props.datasets.map((d) => <option value={String(d.id)}>{d.name}</option>)}
          </select>
          <label for="mount-path">{t('mountPath')}</label>
          <input id="mount-path" name="mount_path" required placeholder="/data/NAME" autocomplete="off" />
          <label class="inline" for="mount-readonly">
            <input id="mount-readonly" name="readonly" type="checkbox" data-type="boolean" checked /> {t('readonly')}
          </label>
          <p class="hint">{t('mountHint')}</p>
          <p role="alert" hidden></p>
          <button type="submit">{t('mount')}</button>
        </form>
      )}
    </section>
  );
}
