import { sql } from 'kysely';
import type { Db } from '../db/database.js';

/**
 * For the metrics scrape (controller/metrics/): queued environments (the placement queue's depth)
 * and environments whose spec is ahead of what their agent applied (the reconciler's backlog), in
 * one statement.
 */
export async function environmentWork(db: Db): Promise<{ pending: number; behind: number }> {
  const row = await db
    .selectFrom('environments')
    .where((eb) => eb.or([eb('status', '=', 'pending'), eb('applied_generation', '<', sql<number>`spec_generation`)]))
    .select([
      sql<number>`count(*) filter (where status = 'pending')`.as('pending'),
      sql<number>`count(*) filter (where applied_generation < spec_generation)`.as('behind'),
    ])
    .executeTakeFirstOrThrow();
  return { pending: Number(row.pending), behind: Number(row.behind) };
}
