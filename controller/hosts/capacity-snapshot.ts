import type { Db } from '../db/database.js';
import type { GpuSnapshot, HostSnapshot } from '../scheduler/types.js';

/**
 * Every approved host (revoked and unapproved ones excluded) with its whole capacity: totals and
 * every GPU it reported, whatever its liveness, admin state or current use. An offline, cordoned
 * or draining host may take environments again, so it counts; what "could ever fit" is judged on
 * these (scheduler `neverFits`). Two statements, whatever the number of hosts.
 */
export async function capacityOfHosts(db: Db): Promise<HostSnapshot[]> {
  const [hosts, gpus] = await Promise.all([
    db
      .selectFrom('hosts')
      .select(['id', 'hostname', 'cpu_cores', 'memory_bytes', 'disk_total_bytes', 'disk_reserve_bytes'])
      .where('approved', '=', true)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('host_gpus as g')
      .innerJoin('hosts as h', 'h.id', 'g.host_id')
      .select(['g.host_id', 'g.uuid', 'g.index', 'g.model', 'g.memory_bytes'])
      .where('h.approved', '=', true)
      .orderBy('g.host_id')
      .orderBy('g.index')
      .execute(),
  ]);
  const byHost = new Map<string, GpuSnapshot[]>();
  for (const g of gpus) {
    let list = byHost.get(g.host_id);
    if (!list) byHost.set(g.host_id, (list = []));
    list.push({ uuid: g.uuid, index: g.index, model: g.model, memoryBytes: g.memory_bytes, healthy: true, allocated: false });
  }
  return hosts.map((h) => ({
    id: h.id,
    hostname: h.hostname,
    status: 'online',
    cpuCores: h.cpu_cores,
    memoryBytes: h.memory_bytes,
    storageBytes: Math.max(0, h.disk_total_bytes - h.disk_reserve_bytes),
    allocatedCpuCores: 0,
    allocatedMemoryBytes: 0,
    allocatedStorageBytes: 0,
    gpus: byHost.get(h.id) ?? [],
  }));
}
