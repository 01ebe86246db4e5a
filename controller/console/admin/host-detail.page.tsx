import type { GpuTile, HostEnvironment, HostEvent } from '../../hosts/gpu-tiles.repo.js';
import type { HostDetail, HostGpuView } from '../../hosts/model.js';
import { formatBytes, translator } from '../i18n.js';
import type { PageContext } from '../layout.js';
import { AdminPage, DataTable, Facts, when } from './components.js';
import { HostActions, HostUsage, HostWarnings, Holder, gpuState } from './host-card.js';
import { HOST_TEXT, type HostT } from './host-texts.js';

function HostFacts(props: { host: HostDetail; t: HostT }) {
  const { host, t } = props;
  return (
    <Facts
      items={[
        [t('status'), <span class={`status status-${host.status}`} data-host-status={host.status}>{t(host.status)}</span>],
        ['ID', <code>{host.id}</code>],
        [t('address'), <code>{host.publicAddress}</code>],
        [t('agentAddress'), <code>{host.agentAddress}</code>],
        [t('agent'), <code>{host.agentVersion || '—'}</code>],
        [t('os'), `${host.os} (${t('kernel')} ${host.kernel})`],
        [t('cpuModel'), `${host.cpuModel} · ${host.cpuTotal} ${t('cores')}`],
        [t('memory'), formatBytes(host.memoryTotalBytes)],
        [t('diskFree'), `${formatBytes(host.diskFreeBytes)} / ${formatBytes(host.storageTotalBytes)}`],
        [t('driver'), `${host.driverVersion || '—'} · ${t('cuda')} ${host.cudaVersion || '—'} · ${t('gpuMode')} ${host.gpuMode || '—'}`],
        [t('approved'), host.approved ? `${t('yes')} ${host.approvedAt ? when(host.approvedAt) : ''}` : t('no')],
        [t('registered'), when(host.registeredAt)],
        [t('lastReport'), when(host.lastReportAt)],
        [t('machineId'), <code>{host.machineId || '—'}</code>],
      ]}
    />
  );
}

type GpuRow = HostGpuView & Pick<GpuTile, 'envName' | 'ownerName'>;

function GpuTable(props: { gpus: readonly GpuRow[]; t: HostT; lang: PageContext['lang'] }) {
  const { t } = props;
  const measured = (n: number, unit: string) => (n < 0 ? '—' : `${n}${unit}`);
  return (
    <DataTable
      caption={t('gpus')}
      lang={props.lang}
      id="gpu-table"
      rows={props.gpus}
      columns={[
        { label: t('index'), cell: (g) => g.index },
        { label: t('model'), cell: (g) => g.model },
        { label: t('memory'), cell: (g) => formatBytes(g.memoryBytes) },
        { label: t('memoryUsed'), cell: (g) => (g.memoryUsedBytes < 0 ? '—' : formatBytes(g.memoryUsedBytes)) },
        { label: t('utilization'), cell: (g) => measured(g.utilizationPercent, ' %') },
        { label: t('temperature'), cell: (g) => measured(g.temperatureC, ' °C') },
        {
          label: t('health'),
          cell: (g) => {
            const state = gpuState(g);
            const reason = g.present ? g.healthReason : t('notReported');
            return <span data-state={state}>{t(state === 'unhealthy' ? 'unhealthy' : 'healthy')}{state === 'unhealthy' && reason ? `: ${reason}` : ''}</span>;
          },
        },
        { label: t('holder'), cell: (g) => <Holder g={g} t={t} /> },
      ]}
    />
  );
}

function EnvironmentTable(props: { rows: readonly HostEnvironment[]; t: HostT; lang: PageContext['lang'] }) {
  const { t } = props;
  return (
    <DataTable
      caption={t('environments')}
      lang={props.lang}
      rows={props.rows}
      columns={[
        { label: t('name'), cell: (e) => <a href={`/environments/${e.id}`}>{e.name}</a> },
        { label: t('ownerCol'), cell: (e) => e.ownerName },
        { label: t('envStatus'), cell: (e) => <span class={`status status-${e.status}`}>{e.status}</span> },
        { label: t('resources'), cell: (e) => `${e.gpu} GPU · ${e.cpu} ${t('cores')} · ${formatBytes(e.memoryBytes)} · ${formatBytes(e.storageBytes)}` },
        { label: t('created'), cell: (e) => when(e.createdAt) },
      ]}
    />
  );
}

function EventTable(props: { rows: readonly HostEvent[]; t: HostT; lang: PageContext['lang'] }) {
  const { t } = props;
  return (
    <DataTable
      caption={t('events')}
      lang={props.lang}
      rows={props.rows}
      columns={[
        { label: t('at'), cell: (e) => when(e.at) },
        { label: t('environment'), cell: (e) => <a href={`/environments/${e.envId}`}>{e.envId}</a> },
        { label: t('kind'), cell: (e) => e.kind },
        { label: t('message'), cell: (e) => e.message },
      ]}
    />
  );
}

/** /admin/hosts/{id}: a host's facts, meters and actions, its GPUs, the environments on it and their latest events. */
export function HostDetailPage(props: {
  ctx: PageContext;
  host: HostDetail;
  tiles: readonly GpuTile[];
  activity: { environments: readonly HostEnvironment[]; events: readonly HostEvent[] };
}) {
  const { ctx, host } = props;
  const t = translator(HOST_TEXT, ctx.lang);
  const holders = new Map(props.tiles.map((g) => [g.uuid, g]));
  const gpus: GpuRow[] = host.gpus.map((g) => ({ ...g, envName: holders.get(g.uuid)?.envName ?? null, ownerName: holders.get(g.uuid)?.ownerName ?? null }));
  return (
    <AdminPage ctx={ctx} title={t('detailTitle', { name: host.hostname })}>
      <p><a href="/admin/hosts">← {t('back')}</a></p>
      <section class="card host-card" data-host-id={host.id} data-status={host.status}>
        <h2>{t('facts')}</h2>
        <HostWarnings host={host} t={t} />
        <HostFacts host={host} t={t} />
        <HostUsage host={host} t={t} />
        <HostActions host={host} t={t} />
      </section>
      <section class="card">
        <h2>{t('gpus')}: {t('gpuSummary', { count: host.gpuCount, allocated: host.gpusAllocated, unhealthy: host.gpusUnhealthy })}</h2>
        <GpuTable gpus={gpus} t={t} lang={ctx.lang} />
      </section>
      <section class="card">
        <h2>{t('environments')}</h2>
        <EnvironmentTable rows={props.activity.environments} t={t} lang={ctx.lang} />
      </section>
      <section class="card">
        <h2>{t('events')}</h2>
        <EventTable rows={props.activity.events} t={t} lang={ctx.lang} />
      </section>
    </AdminPage>
  );
}
