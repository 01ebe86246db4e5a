import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { GpuSnapshot, HostSnapshot } from '../scheduler/types.js';
import { hostStatusSql, reservedOnHost } from './host-listing.repo.js';

/**
 * Every host (or only `hostIds`) as the scheduler sees it: status, totals, what environments have
 * reserved, and each GPU with its health and whether a reservation holds it. Two queries, whatever
 * the number of hosts. Pass a transaction to read inside a placement transaction. GPUs the agent
 * stopped reporting are included as unhealthy, so "needs 4 GPUs, 3 free (1 unhealthy)" stays true.
 */
export async function snapshotForScheduling(db: Db, options: { hostIds?: readonly string[] } = {}): Promise<HostSnapshot[]> {
  const ids = options.hostIds;
  if (ids && ids.length === 0) return [];
  const [hosts, gpus] = await Promise.all([hostRows(db, ids), gpuRows(db, ids)]);
  const byHost = new Map<string, GpuSnapshot[]>();
  for (const g of gpus) {
    let list = byHost.get(g.host_id);
    if (!list) byHost.set(g.host_id, (list = []));
    list.push({
      uuid: g.uuid,
      index: g.index,
      model: g.model,
      memoryBytes: g.memory_bytes,
      healthy: g.present && g.health === 'healthy',
      allocated: Boolean(g.allocated),
    });
  }
  return hosts.map((h) => ({
    id: h.id,
    hostname: h.hostname,
    status: h.status,
    cpuCores: h.cpu_cores,
    memoryBytes: h.memory_bytes,
    // Volumes are sparse files of exactly their size on the data disk: what may be promised is the
    // disk minus the reserve the agent keeps free, and every volume there counts in full.
    storageBytes: Math.max(0, h.disk_total_bytes - h.disk_reserve_bytes),
    allocatedCpuCores: h.cpu,
    allocatedMemoryBytes: h.memory,
    allocatedStorageBytes: h.storage,
    diskPressure: h.disk_pressure,
    runtimeUnavailable: h.runtime_down_since !== null,
    gpus: byHost.get(h.id) ?? [],
  }));
}

/** Each host with what its environments have reserved, in one statement. */
function hostRows(db: Db, ids: readonly string[] | undefined) {
  return db
    .selectFrom('hosts as h')
    .innerJoinLateral(reservedOnHost, (join) => join.onTrue())
    .select([
      'h.id',
      'h.hostname',
      hostStatusSql.as('status'),
      'h.cpu_cores',
      'h.memory_bytes',
      'h.disk_total_bytes',
      'h.disk_reserve_bytes',
      'h.disk_pressure',
      'h.runtime_down_since',
      'ea.cpu',
      'ea.memory',
      'ea.storage',
    ])
    .$if(ids !== undefined, (qb) => qb.where('h.id', 'in', ids!))
    .orderBy('h.id')
    .execute();
}

/** Each GPU with whether a reservation holds its UUID (under any host), in one statement. */
function gpuRows(db: Db, ids: readonly string[] | undefined) {
  return db
    .selectFrom('host_gpus as g')
    .select((eb) => [
      'g.host_id',
      'g.uuid',
      'g.index',
      'g.model',
      'g.memory_bytes',
      'g.health',
      'g.present',
      eb
        .exists(
          eb
            .selectFrom('gpu_reservations as r')
            .select(sql`1`.as('one'))
            // Any host's reservation: a machine registered again under a new host id reports the
            // same GPUs, which environments of its former host may still hold.
            .whereRef('r.gpu_uuid', '=', 'g.uuid'),
        )
        .as('allocated'),
    ])
    .$if(ids !== undefined, (qb) => qb.where('g.host_id', 'in', ids!))
    .orderBy('g.host_id')
    .orderBy('g.index')
    .execute();
}
