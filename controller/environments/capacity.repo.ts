import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { HostSnapshot, HostStatus } from '../scheduler/index.js';

/**
 * Snapshots of hosts for the scheduler: totals, what is reserved, and each present GPU with
 * whether it is reserved. Three queries whatever the number of hosts. Pass `hostId` to load one
 * host (inside a placement transaction, after its row is locked).
 */
export async function loadHostSnapshots(db: Db, hostId?: string): Promise<HostSnapshot[]> {
  let hostsQ = db
    .selectFrom('hosts')
    .select(['id', 'hostname', 'liveness', 'admin_state', 'cpu_cores', 'memory_bytes', 'disk_total_bytes']);
  if (hostId) hostsQ = hostsQ.where('id', '=', hostId);
  const hosts = await hostsQ.execute();
  if (hosts.length === 0) return [];

  let usageQ = db
    .selectFrom('environments')
    .select([
      'host_id',
      sql<number>`coalesce(sum(reserved_cpu), 0)`.as('cpu'),
      sql<number>`coalesce(sum(reserved_memory_bytes), 0)`.as('memory'),
      sql<number>`coalesce(sum(reserved_storage_bytes), 0)`.as('storage'),
    ])
    .where('host_id', 'is not', null)
    .groupBy('host_id');
  if (hostId) usageQ = usageQ.where('host_id', '=', hostId);
  const usage = new Map((await usageQ.execute()).map((u) => [u.host_id, u]));

  let gpusQ = db
    .selectFrom('host_gpus as g')
    .leftJoin('gpu_reservations as r', (j) => j.onRef('r.host_id', '=', 'g.host_id').onRef('r.gpu_uuid', '=', 'g.uuid'))
    .select(['g.host_id', 'g.uuid', 'g.index', 'g.model', 'g.memory_bytes', 'g.health', 'r.env_id'])
    .where('g.present', '=', true)
    .orderBy('g.host_id')
    .orderBy('g.index');
  if (hostId) gpusQ = gpusQ.where('g.host_id', '=', hostId);
  const gpus = new Map<string, HostSnapshot['gpus'][number][]>();
  for (const g of await gpusQ.execute()) {
    const list = gpus.get(g.host_id) ?? [];
    list.push({ uuid: g.uuid, index: g.index, model: g.model, memoryBytes: g.memory_bytes, healthy: g.health === 'healthy', allocated: g.env_id !== null });
    gpus.set(g.host_id, list);
  }

  return hosts.map((h) => {
    const u = usage.get(h.id);
    return {
      id: h.id,
      hostname: h.hostname,
      status: hostStatus(h.liveness, h.admin_state),
      cpuCores: h.cpu_cores,
      memoryBytes: h.memory_bytes,
      storageBytes: h.disk_total_bytes,
      allocatedCpuCores: Number(u?.cpu ?? 0),
      allocatedMemoryBytes: Number(u?.memory ?? 0),
      allocatedStorageBytes: Number(u?.storage ?? 0),
      gpus: gpus.get(h.id) ?? [],
    };
  });
}

/** The host status shown to admins and used by the scheduler. */
export function hostStatus(liveness: 'online' | 'offline', adminState: 'active' | 'cordoned' | 'draining'): HostStatus {
  if (liveness === 'offline') return 'offline';
  return adminState === 'active' ? 'online' : adminState;
}
