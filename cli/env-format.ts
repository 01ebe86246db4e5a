import { hostForPort } from '../common/format.js';
import type { Environment } from './cli.js';
import { age, renderFields, type Column } from './output.js';
import { formatBytes } from './units.js';

/** `2×A40`, `1`, or `0`: the GPU count, with the requested model when one was asked for. */
export function gpuText(env: Pick<Environment, 'gpu' | 'gpu_model'>): string {
  return env.gpu > 0 && env.gpu_model ? `${env.gpu}×${env.gpu_model}` : String(env.gpu);
}

/** `203.0.113.7:20001` (`[2001:db8::7]:20001` for IPv6), or undefined before the environment is placed. */
export function sshAddress(env: Environment): string | undefined {
  if (!env.access_info || env.ssh_port === null) return undefined;
  return `${hostForPort(env.access_info.ssh_host)}:${env.ssh_port}`;
}

/** The columns of `env ls` (AGE counts from `now`). */
export function environmentColumns(now = Date.now()): Column<Environment>[] {
  return [
    { header: 'name', cell: (e) => e.name },
    { header: 'id', cell: (e) => e.env_id },
    { header: 'status', cell: (e) => e.status },
    { header: 'gpu', cell: gpuText },
    { header: 'cpu', cell: (e) => e.cpu, right: true },
    { header: 'memory', cell: (e) => formatBytes(e.memory), right: true },
    { header: 'storage', cell: (e) => formatBytes(e.storage), right: true },
    { header: 'ssh', cell: sshAddress },
    { header: 'age', cell: (e) => age(e.created_at, now) },
  ];
}

/** `env get` for people: what it is, where it runs, and how to reach it. */
export function environmentFields(env: Environment, now = Date.now()): string {
  const used = env.storage_used === null ? '' : ` (${formatBytes(env.storage_used)} used)`;
  const keys = env.access_info?.ssh_host_keys ?? [];
  return renderFields([
    ['name', env.name],
    ['id', env.env_id],
    ['status', env.status],
    ...(env.status_reason ? [['reason', env.status_reason] as const] : []),
    ...(env.description ? [['description', env.description] as const] : []),
    ['image', env.image],
    ['gpu', gpuText(env)],
    ['cpu', env.cpu],
    ['memory', formatBytes(env.memory)],
    ['storage', `${formatBytes(env.storage)}${used}`],
    ['workspace', env.workspace_id],
    ['host', env.host_id],
    ['ssh', env.access_info?.ssh],
    ['ssh address', sshAddress(env)],
    ...keys.map((k) => ['host key', `${k.fingerprint} (${k.type})`] as const),
    ['jupyter', env.access_info?.jupyter],
    ['created', `${env.created_at} (${age(env.created_at, now)} ago)`],
    ['started', env.started_at],
    ['stopped', env.stopped_at],
  ]);
}
