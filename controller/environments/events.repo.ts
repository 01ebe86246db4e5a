import type { Db } from '../db/database.js';

// Reads of environment events (the platform side of an environment's logs). Events are written
// with the row change they explain, in environment-writes.ts.

export interface EventLine {
  readonly id: number;
  readonly at: Date;
  readonly message: string;
}

/** The last `limit` events of an environment, oldest first. */
export async function lastEvents(db: Db, envId: string, limit: number): Promise<EventLine[]> {
  const rows = await db
    .selectFrom('environment_events')
    .select(['id', 'at', 'message'])
    .where('env_id', '=', envId)
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.reverse();
}

/** The highest event id of an environment (0 when it has none): a follow gets the events after it. */
export async function lastEventId(db: Db, envId: string): Promise<number> {
  const row = await db.selectFrom('environment_events').select('id').where('env_id', '=', envId).orderBy('id', 'desc').limit(1).executeTakeFirst();
  return row?.id ?? 0;
}

/**
 * For following many environments with one query: the events of each environment in `after` with
 * an id above the one given for it, oldest first, at most `limit` (the rest come at the next call).
 */
export async function eventsAfter(db: Db, after: ReadonlyMap<string, number>, limit = 1000): Promise<(EventLine & { envId: string })[]> {
  if (after.size === 0) return [];
  return db
    .selectFrom('environment_events')
    .select(['id', 'env_id as envId', 'at', 'message'])
    .where((eb) => eb.or([...after].map(([envId, id]) => eb.and([eb('env_id', '=', envId), eb('id', '>', id)]))))
    .orderBy('id')
    .limit(limit)
    .execute();
}
