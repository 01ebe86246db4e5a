import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { hostStatusSql } from './host-listing.repo.js';

// Fleet-wide counts for the metrics scrape (controller/metrics/): one aggregate query each, run at
// scrape time only, never per request.

/** Host count per status, as the admin listing computes it (hostStatusSql). */
export async function hostsByStatus(db: Db): Promise<{ status: string; count: number }[]> {
  const rows = await db
    .selectFrom('hosts as h')
    .select([hostStatusSql.as('status'), sql<number>`count(*)`.as('count')])
    .groupBy(sql`1`)
    .execute();
  return rows.map((r) => ({ status: r.status, count: Number(r.count) }));
}

/**
 * Present GPUs per model: how many, how many an environment holds (a reservation of its UUID, under
 * any host id: the scheduler's rule), how many the agent reports unhealthy.
 */
export async function gpusByModel(db: Db): Promise<{ model: string; total: number; allocated: number; unhealthy: number }[]> {
  // One hash join, not a lookup per GPU: a UUID has at most one reservation (unique key).
  const rows = await db
    .selectFrom('host_gpus as g')
    .leftJoin('gpu_reservations as r', 'r.gpu_uuid', 'g.uuid')
    .where('g.present', '=', true)
    .select([
      'g.model',
      sql<number>`count(*)`.as('total'),
      sql<number>`count(r.gpu_uuid)`.as('allocated'),
      sql<number>`count(*) filter (where g.health = 'unhealthy')`.as('unhealthy'),
    ])
    .groupBy('g.model')
    .execute();
  return rows.map((r) => ({ model: r.model, total: Number(r.total), allocated: Number(r.allocated), unhealthy: Number(r.unhealthy) }));
}
