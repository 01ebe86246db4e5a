import type { EnvWithHost } from '../../environments/environments.repo.js';
import type { Lang, Texts } from '../i18n.js';
import { translator } from '../i18n.js';

// What the environment pages share: status labels (the page scripts get them as JSON, to
// update status cells in place) and the GPU text.

const STATUS: Texts<'pending' | 'creating' | 'starting' | 'running' | 'stopping' | 'stopped' | 'restarting' | 'deleting' | 'error' | 'lost' | 'deleted'> = {
  en: {
    pending: 'pending', creating: 'creating', starting: 'starting', running: 'running', stopping: 'stopping', stopped: 'stopped',
    restarting: 'restarting', deleting: 'deleting', error: 'error', lost: 'lost', deleted: 'deleted',
  },
  zh: {
    pending: '排队中', creating: '创建中', starting: '启动中', running: '运行中', stopping: '停止中', stopped: '已停止',
    restarting: '重启中', deleting: '删除中', error: '出错', lost: '失联', deleted: '已删除',
  },
};

/** The status labels of `lang`, as JSON for a page script's data-status-labels attribute. */
export function statusLabelsJson(lang: Lang): string {
  return JSON.stringify(STATUS[lang]);
}

export function statusLabel(status: string, lang: Lang): string {
  return (STATUS[lang] as Record<string, string>)[status] ?? status;
}

/** A status with its colour (.status-<status>); `data-status` is what the page scripts update. */
export function StatusBadge(props: { status: string; lang: Lang; id?: string }) {
  return (
    <span id={props.id} class={`status status-${props.status}`} data-status={props.status}>
      {statusLabel(props.status, props.lang)}
    </span>
  );
}

const GPU: Texts<'none' | 'any'> = { en: { none: 'none', any: 'any model' }, zh: { none: '无', any: '任意型号' } };

/** "2 × NVIDIA A40", "2 (any model)" or "none". */
export function gpuText(env: Pick<EnvWithHost, 'gpu' | 'gpu_model'>, lang: Lang): string {
  const t = translator(GPU, lang);
  if (env.gpu === 0) return t('none');
  return env.gpu_model ? `${env.gpu} × ${env.gpu_model}` : `${env.gpu} (${t('any')})`;
}

/** A date as the console shows it: UTC, to the second ("2026-11-28 20:01:02 UTC"). */
export function when(date: Date | null | undefined): string {
  return date ? `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC` : '';
}
