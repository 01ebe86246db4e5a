import { sql } from 'kysely';
import type { Db } from '../db/database.js';

// Approval of hosts registered with a join token that requires it, and revocation of a host's trust (issue 9).

/**
 * Approves a host registered with a join token that requires approval: approved, with the time.
 * An approved host is left as it is (idempotent). False when the host does not exist.
 */
/**
 * Revokes a host's trust at once: every certificate issued to it is forgotten (its reports and
 * renewals are refused, and the controller no longer dials it), it is no longer approved, and its
 * last report is moved to the epoch so that the liveness loop marks it offline on its next pass
 * (its environments become lost, as for any silent host). False when the host does not exist.
 */
export async function revokeHost(db: Db, id: string): Promise<boolean> {
  await db.deleteFrom('host_certificates').where('host_id', '=', id).execute();
  const res = await db
    .updateTable('hosts')
    .set({ approved: false, approved_at: null, last_report_at: new Date(0) })
    .where('id', '=', id)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

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
