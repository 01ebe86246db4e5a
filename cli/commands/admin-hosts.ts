import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { call, type ApiClient, type Schemas } from '../client.js';
import { command } from '../command.js';
import { resolve } from '../pick.js';
import { age, renderFields, renderTable } from '../output.js';
import { allPages, PAGE_SIZE } from '../pages.js';
import { formatBytes } from '../units.js';

type Host = Schemas['Host'];
type HostDetail = Schemas['HostDetail'];
type HostGpu = HostDetail['gpus'][number];

/** `admin hosts` and `admin host get|cordon|uncordon|drain HOST`. */
export function registerAdminHosts(admin: Command, cli: Cli): void {
  command(admin, 'hosts', 'list the GPU hosts: status, GPUs used/total per model, CPU, memory, environments')
    .addHelpText(
      'after',
      `
GPUS shows used/total per model (\`3/8 A40\`; a host with several models lists each). STATUS is
online, offline, cordoned, draining or pending approval (waiting for \`POST …/approve\`), with
notes such as "runtime down" (its Docker does not answer) or "disk pressure".

Examples:
  remotegpu admin hosts
  remotegpu admin hosts --json | jq '.[] | {hostname, gpus_allocated, gpu_count}'`,
    )
    .action(async () => {
      const client = cli.client();
      const hosts = await allHosts(client);
      if (cli.json) return cli.list(hosts, []);
      // The listing names one model per host; a host with several needs its GPUs to count each.
      const mixedHosts = hosts.filter((h) => h.gpu_model?.startsWith('mixed:'));
      const details = await Promise.all(mixedHosts.map((h) => hostDetail(client, h.host_id)));
      const mixed = new Map<string, HostGpu[]>(details.map((d) => [d.host_id, d.gpus]));
      await cli.out(
        renderTable(hosts, [
          { header: 'name', cell: (h) => h.hostname },
          { header: 'id', cell: (h) => h.host_id },
          { header: 'status', cell: statusCell },
          { header: 'gpus', cell: (h) => gpuCell(h, mixed.get(h.host_id)) },
          { header: 'cpu', cell: (h) => `${h.cpu_allocated}/${h.cpu_total}` },
          { header: 'memory', cell: (h) => `${formatBytes(h.memory_allocated)}/${formatBytes(h.memory_total)}` },
          { header: 'envs', cell: (h) => h.environment_count, right: true },
          { header: 'agent', cell: (h) => h.agent_version },
        ]),
      );
    });

  const host = command(admin, 'host', 'show one host, or cordon, uncordon or drain it (HOST: its id or hostname)').addHelpText('after', '\nExamples:\n  remotegpu admin host get gpu-node-1\n  remotegpu admin host cordon gpu-node-1\n  remotegpu admin host drain host-12ipdemt7n');
  command(host, 'get <host>', 'show a host with its GPUs and the environment holding each')
    .addHelpText('after', '\nExamples:\n  remotegpu admin host get gpu-01\n  remotegpu admin host get host-7f3a9k2m1x --json')
    .action(async (ref: string) => {
      const client = cli.client();
      const h = await resolveHost(client, ref);
      await cli.show(isDetail(h) ? h : await hostDetail(client, h.host_id), renderHost);
    });
  registerHostActions(host, cli);
}

/** `admin host cordon|uncordon|drain HOST`. */
function registerHostActions(host: Command, cli: Cli): void {
  const actions = [
    { verb: 'cordon', what: 'stop placing new environments on a host (those on it keep running)', done: 'takes no new environments' },
    { verb: 'uncordon', what: 'place new environments on a cordoned or draining host again', done: 'takes new environments again' },
    { verb: 'drain', what: 'drain a host: no new placements; its environments run until stopped or deleted', done: 'is draining' },
  ] as const;
  for (const action of actions) {
    command(host, `${action.verb} <host>`, action.what)
      .addHelpText('after', `\nIdempotent.\n\nExamples:\n  remotegpu admin host ${action.verb} gpu-01\n  remotegpu admin host ${action.verb} host-7f3a9k2m1x`)
      .action(async (ref: string) => {
        const client = cli.client();
        const h = await resolveHost(client, ref);
        const params = { params: { path: { host_id: h.host_id } } };
        const post = {
          cordon: () => client.POST('/api/v1/admin/hosts/{host_id}/cordon', params),
          uncordon: () => client.POST('/api/v1/admin/hosts/{host_id}/uncordon', params),
          drain: () => client.POST('/api/v1/admin/hosts/{host_id}/drain', params),
        }[action.verb];
        const answer = await call(post());
        await cli.note(`${answer.message}: ${h.hostname} (${h.host_id}) ${action.done}.`);
      });
  }
}

/** Every host, all pages, by hostname (the API's order). */
export function allHosts(client: ApiClient): Promise<Host[]> {
  return allPages((page) => client.GET('/api/v1/admin/hosts', { params: { query: { page, page_size: PAGE_SIZE } } }));
}

async function hostDetail(client: ApiClient, hostId: string): Promise<HostDetail> {
  return (await call(client.GET('/api/v1/admin/hosts/{host_id}', { params: { path: { host_id: hostId } } }))).data;
}

/** A host id as the controller makes them (controller/ids.ts): `host-` and 10 of [a-z0-9]. */
const HOST_ID = /^host-[a-z0-9]{10}$/;

/**
 * The host an argument names: its id (its detail, one request), or its hostname when exactly one
 * host has it (a machine that registered again keeps its hostname under a new id: then the ids
 * are listed).
 */
function resolveHost(client: ApiClient, ref: string): Promise<Host | HostDetail> {
  return resolve(ref, {
    isId: (r) => HOST_ID.test(r),
    byId: (id) => hostDetail(client, id),
    list: () => allHosts(client),
    naming: { what: 'host', plural: 'hosts', id: (h) => h.host_id, names: (h) => [h.hostname], hint: '(see `remotegpu admin hosts`)' },
  });
}

/** Whether resolveHost already read the host's detail (it was named by its id). */
function isDetail(h: Host | HostDetail): h is HostDetail {
  return 'gpus' in h;
}

/** "NVIDIA A40" → "A40": the vendor prefix says nothing in a table (--json keeps the full name). */
function shortModel(model: string): string {
  return model.replace(/^NVIDIA\s+/i, '');
}

/**
 * GPUs used/total per model: `3/8 A40`, or `2/4 A40, 0/4 L40S` for a host with several models
 * (counted from its GPUs, `gpus`), with `(1 unhealthy)` when some are.
 */
export function gpuCell(host: Host, gpus?: readonly HostGpu[]): string {
  if (host.gpu_count === 0) return '0';
  const unhealthy = host.gpus_unhealthy > 0 ? ` (${host.gpus_unhealthy} unhealthy)` : '';
  if (!gpus || gpus.length === 0) return `${host.gpus_allocated}/${host.gpu_count} ${shortModel(host.gpu_model ?? '?')}${unhealthy}`;
  const byModel = new Map<string, { used: number; total: number }>();
  for (const g of gpus) {
    const m = byModel.get(g.model) ?? { used: 0, total: 0 };
    m.total++;
    if (g.env_id !== null) m.used++;
    byModel.set(g.model, m);
  }
  const parts = [...byModel].sort((a, b) => b[1].total - a[1].total || a[0].localeCompare(b[0]));
  return parts.map(([model, m]) => `${m.used}/${m.total} ${shortModel(model)}`).join(', ') + unhealthy;
}

/** The status and what else keeps the host from taking work: its runtime, its disk, a newer registration. */
function statusCell(h: Host): string {
  const notes: string[] = [h.status.replace('_', ' ')];
  if (h.runtime_error) notes.push('runtime down');
  if (h.disk_pressure) notes.push('disk pressure');
  if (h.replaced_by_host_id) notes.push(`replaced by ${h.replaced_by_host_id}`);
  return notes.join(', ');
}

function renderHost(h: HostDetail): string {
  const fields = renderFields([
    ['host', h.hostname],
    ['id', h.host_id],
    ['status', statusCell(h)],
    ['approved', h.approved ? `yes${h.approved_at ? ` (${h.approved_at})` : ''}` : 'no: waiting for an admin'],
    ['address', h.public_address],
    ['agent', `${h.agent_version} at ${h.agent_address}`],
    ['os', `${h.os}, kernel ${h.kernel}`],
    ['gpus', gpuCell(h, h.gpus)],
    ['driver', `${h.driver_version || '-'} (CUDA ${h.cuda_version || '-'})${h.gpu_mode ? `, mode ${h.gpu_mode}` : ''}`],
    ['gpu condition', h.gpu_condition],
    ['cpu', `${h.cpu_allocated}/${h.cpu_total} cores allocated (${h.cpu_model || 'unknown model'})`],
    ['memory', `${formatBytes(h.memory_allocated)} of ${formatBytes(h.memory_total)} allocated`],
    ['storage', `${formatBytes(h.storage_allocated)} of ${formatBytes(h.storage_total)} allocated, ${formatBytes(h.disk_free_bytes)} free, ${formatBytes(h.disk_reserve)} kept free`],
    ['environments', h.environment_count],
    ['runtime error', h.runtime_error],
    ['last report', h.last_report_at ? `${age(h.last_report_at)} ago` : 'never'],
    ['registered', h.registered_at],
    ['replaces', h.replaces_host_id],
    ['replaced by', h.replaced_by_host_id],
  ]);
  if (h.gpus.length === 0) return fields;
  const gpus = renderTable(h.gpus, [
    { header: 'gpu', cell: (g) => g.index, right: true },
    { header: 'model', cell: (g) => g.model },
    { header: 'memory', cell: (g) => `${formatBytes(g.memory_used_bytes)}/${formatBytes(g.memory_bytes)}` },
    { header: 'util', cell: (g) => (g.utilization_percent < 0 ? '-' : `${g.utilization_percent}%`), right: true },
    { header: 'temp', cell: (g) => (g.temperature_c < 0 ? '-' : `${g.temperature_c}C`), right: true },
    { header: 'health', cell: (g) => (g.health === 'healthy' ? (g.present ? 'healthy' : 'gone') : `unhealthy: ${g.health_reason}`) },
    { header: 'environment', cell: (g) => g.env_id },
  ]);
  return `${fields}\n${gpus}`;
}
