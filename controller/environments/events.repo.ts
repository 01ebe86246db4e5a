import type { Db } from '../db/database.js';

/** Records a platform event of an environment (a line in its logs). */
export async function addEvent(
  db: Db,
  envId: string,
  kind: string,
  message: string,
  source: 'platform' | 'agent' = 'platform',
  at: Date = new Date(),
): Promise<void> {
  await db.insertInto('environment_events').values({ env_id: envId, kind, message, source, at }).execute();
}

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
