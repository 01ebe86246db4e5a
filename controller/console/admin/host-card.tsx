import type { GpuTile } from '../../hosts/gpu-tiles.repo.js';
import type { HostSummary } from '../../hosts/model.js';
import { formatBytes, translator, type Lang } from '../i18n.js';
import { Action, when } from './components.js';
import { HOST_TEXT, type HostT as T } from './host-texts.js';

/** A GPU's state on a tile: unhealthy (or no longer reported) first, then held by an environment, else free. */
export function gpuState(g: Pick<GpuTile, 'health' | 'present' | 'envId'>): 'free' | 'allocated' | 'unhealthy' {
  if (g.health === 'unhealthy' || !g.present) return 'unhealthy';
  return g.envId ? 'allocated' : 'free';
}

/** The environment holding a GPU, linked, with its owner. */
export function Holder(props: { g: Pick<GpuTile, 'envId' | 'envName' | 'ownerName'>; t: T }) {
  if (!props.g.envId) return null;
  return (
    <span class="gpu-holder">
      <a href={`/environments/${props.g.envId}`}>{props.g.envName ?? props.g.envId}</a>
      {props.g.ownerName ? <> · <span class="gpu-owner" title={props.t('owner')}>{props.g.ownerName}</span></> : null}
    </span>
  );
}

function Tile(props: { g: GpuTile; t: T }) {
  const { g, t } = props;
  const state = gpuState(g);
  const reason = !g.present ? t('notReported') : g.healthReason;
  return (
    <li class="gpu-tile" data-state={state} data-index={g.index}>
      <span class="gpu-index">GPU {g.index}</span>
      <span class="gpu-model">{g.model}</span>
      <span class="gpu-mem">{formatBytes(g.memoryBytes)}</span>
      <span class="gpu-state">{t(state)}</span>
      {state === 'unhealthy' && reason ? <span class="gpu-reason">{reason}</span> : null}
      <Holder g={g} t={t} />
    </li>
  );
}

/** One resource as "allocated / total" with a meter. */
function Usage(props: { id: string; label: string; used: number; total: number; show: (n: number) => string; unit?: string }) {
  const figures = `${props.show(props.used)} / ${props.show(props.total)}${props.unit ? ` ${props.unit}` : ''}`;
  return (
    <div class="usage">
      <label for={props.id}>{props.label}</label>
      <meter id={props.id} min={0} max={Math.max(props.total, 1)} value={Math.min(props.used, Math.max(props.total, 1))} high={Math.max(props.total, 1) * 0.9}>
        {figures}
      </meter>
      <span class="usage-figures">{figures}</span>
    </div>
  );
}

/** Cordon / uncordon / drain / approve, as fits the host's status (an offline host gets all three). */
export function HostActions(props: { host: HostSummary; t: T }) {
  const { host, t } = props;
  const base = `/api/v1/admin/hosts/${encodeURIComponent(host.id)}`;
  const s = host.status;
  return (
    <div class="host-actions">
      {s === 'pending_approval' ? <Action method="POST" path={`${base}/approve`} label={t('approve')} id={`approve-${host.id}`} stay /> : null}
      {s !== 'cordoned' ? <Action method="POST" path={`${base}/cordon`} label={t('cordon')} id={`cordon-${host.id}`} stay title={t('cordonHint')} /> : null}
      {s === 'cordoned' || s === 'draining' || s === 'offline' ? <Action method="POST" path={`${base}/uncordon`} label={t('uncordon')} id={`uncordon-${host.id}`} stay /> : null}
      {s !== 'draining' ? (
        <Action method="POST" path={`${base}/drain`} label={t('drain')} id={`drain-${host.id}`} stay danger confirm={t('drainConfirm', { name: host.hostname })} />
      ) : null}
    </div>
  );
}

/** The warnings a host reports: disk pressure, container runtime down, GPU discovery trouble. */
export function HostWarnings(props: { host: HostSummary; t: T }) {
  const { host, t } = props;
  return (
    <>
      {host.diskPressure ? <p class="warning">{t('diskPressure')}</p> : null}
      {host.runtimeError ? <p class="warning">{t('runtimeError')}: {host.runtimeError}</p> : null}
      {host.gpuCondition ? <p class="warning">{t('gpuCondition')}: {host.gpuCondition}</p> : null}
    </>
  );
}

/** The resource meters of a host: CPU, memory and storage, allocated against total. */
export function HostUsage(props: { host: HostSummary; t: T }) {
  const { host, t } = props;
  const id = (what: string) => `${what}-${host.id}`;
  return (
    <div class="usages">
      <Usage id={id('cpu')} label={t('cpu')} used={host.cpuAllocated} total={host.cpuTotal} show={String} unit={t('cores')} />
      <Usage id={id('mem')} label={t('memory')} used={host.memoryAllocatedBytes} total={host.memoryTotalBytes} show={formatBytes} />
      <Usage id={id('disk')} label={t('storage')} used={host.storageAllocatedBytes} total={host.storageTotalBytes} show={formatBytes} />
    </div>
  );
}

/** A host as a card: name, status, agent, its GPUs as tiles, resource meters, actions. */
export function HostCard(props: { host: HostSummary; tiles: readonly GpuTile[]; lang: Lang }) {
  const { host } = props;
  const t = translator(HOST_TEXT, props.lang);
  const headingId = `host-${host.id}`;
  return (
    <article class="card host-card" data-host-id={host.id} data-status={host.status} aria-labelledby={headingId}>
      <header class="host-head">
        <h2 id={headingId}><a href={`/admin/hosts/${encodeURIComponent(host.id)}`}>{host.hostname}</a></h2>
        <span class={`status status-${host.status}`} data-host-status={host.status}>{t(host.status)}</span>
      </header>
      <p class="host-meta">
        <span>{t('address')}: <code>{host.publicAddress}</code></span>
        <span>{t('agent')}: <code>{host.agentVersion || '—'}</code></span>
        <span>{t('lastReport')}: {when(host.lastReportAt)}</span>
      </p>
      <HostWarnings host={host} t={t} />
      <h3 class="gpu-summary">
        {t('gpus')}: {t('gpuSummary', { count: host.gpuCount, allocated: host.gpusAllocated, unhealthy: host.gpusUnhealthy })}
      </h3>
      <ul class="gpu-grid" aria-label={`${t('gpus')} ${host.hostname}`}>
        {props.tiles.map((g) => <Tile g={g} t={t} />)}
      </ul>
      <HostUsage host={host} t={t} />
      <HostActions host={host} t={t} />
    </article>
  );
}
