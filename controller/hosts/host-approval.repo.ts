import { sql } from 'kysely';
import type { Db } from '../db/database.js';

// Approval of hosts registered with a join token that requires it (issue 9).

/**
 * Approves a host registered with a join token that requires approval: approved, with the time.
 * An approved host is left as it is (idempotent). False when the host does not exist.
 */
export async function approveHost(db: Db, id: string): Promise<boolean> {
  const res = await db
    .updateTable('hosts')
    .set({ approved: true, approved_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('approved', '=', false)
    .executeTakeFirst();
  if (res.numUpdatedRows > 0n) return true;
  return (await db.selectFrom('hosts').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
}
