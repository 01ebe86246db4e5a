import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { hashSecret } from '../../common/secrets.js';
import type { Db } from '../db/database.js';

// Terminal tickets (table terminal_tickets, migration 0017). The ticket itself is returned once and
// never stored or logged: rows hold its hash. Times are the database's, so replicas agree.

/** What a redeemed ticket was made for. */
export interface TicketGrant {
  readonly envId: string;
  readonly userId: number;
  /** Hash of the API token that asked for the ticket: its revocation applies to the terminal. */
  readonly tokenHash: string;
}

/** A new ticket for `grant`, valid `ttlMs`; deletes expired tickets on the way. */
export async function issueTicket(db: Db, grant: TicketGrant, ttlMs: number): Promise<{ ticket: string; expiresAt: Date }> {
  const ticket = `rgt_${randomBytes(32).toString('base64url')}`;
  await db.deleteFrom('terminal_tickets').where('expires_at', '<', sql<Date>`now()`).execute();
  const row = await db
    .insertInto('terminal_tickets')
    .values({
      ticket_hash: hashSecret(ticket),
      env_id: grant.envId,
      user_id: grant.userId,
      token_hash: grant.tokenHash,
      expires_at: sql<Date>`now() + ${`${Math.max(1, Math.round(ttlMs))} milliseconds`}::interval`,
    })
    .returning('expires_at')
    .executeTakeFirstOrThrow();
  return { ticket, expiresAt: row.expires_at };
}

/**
 * Redeems a ticket: one statement marks it used if it is unused and unexpired and returns what it
 * was made for; undefined otherwise (unknown, used, expired). A ticket is redeemed at most once,
 * whichever replica sees it first.
 */
export async function redeemTicket(db: Db, ticket: string): Promise<TicketGrant | undefined> {
  const row = await db
    .updateTable('terminal_tickets')
    .set({ used_at: sql<Date>`now()` })
    .where('ticket_hash', '=', hashSecret(ticket))
    .where('used_at', 'is', null)
    .where('expires_at', '>', sql<Date>`now()`)
    .returning(['env_id', 'user_id', 'token_hash'])
    .executeTakeFirst();
  return row ? { envId: row.env_id, userId: row.user_id, tokenHash: row.token_hash } : undefined;
}
