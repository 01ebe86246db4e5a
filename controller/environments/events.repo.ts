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

/** Events with an id above `afterId`, oldest first (for following). */
export async function eventsAfter(db: Db, envId: string, afterId: number): Promise<EventLine[]> {
  return db
    .selectFrom('environment_events')
    .select(['id', 'at', 'message'])
    .where('env_id', '=', envId)
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(1000)
    .execute();
}
