import { sql } from 'kysely';
import type { Db, Trx } from '../db/database.js';

// Queries of the join tokens an admin manages. Only the hash of a token's secret part is stored.

/** Whether a join token still registers hosts: `expired` is checked before `used_up`. */
export type JoinTokenState = 'active' | 'expired' | 'used_up';

/** What the API shows of a join token: never the token or its hash. */
export interface JoinTokenInfo {
  readonly id: string;
  readonly description: string;
  readonly requires_approval: boolean;
  /** null: unlimited. */
  readonly max_uses: number | null;
  readonly uses: number;
  /** null: never expires. */
  readonly expires_at: Date | null;
  readonly created_at: Date;
  /** The admin who created it; null once that user row is gone. */
  readonly created_by: number | null;
  readonly last_used_at: Date | null;
  readonly state: JoinTokenState;
}

/** The state, by the database clock (replicas agree), of the `join_tokens` row. */
const stateSql = sql<JoinTokenState>`case
  when expires_at is not null and expires_at <= now() then 'expired'
  when max_uses is not null and uses >= max_uses then 'used_up'
  else 'active' end`;

const INFO_COLUMNS = ['id', 'description', 'requires_approval', 'max_uses', 'uses', 'expires_at', 'created_at', 'created_by', 'last_used_at'] as const;

export interface NewJoinTokenRow {
  readonly id: string;
  readonly secretHash: string;
  readonly description: string;
  readonly requiresApproval: boolean;
  readonly maxUses: number | null;
  readonly expiresAt: Date | null;
  readonly createdBy: number | null;
}

/** Stores a join token; undefined when the id is taken (the caller draws another). */
export async function insertJoinToken(db: Db, row: NewJoinTokenRow): Promise<JoinTokenInfo | undefined> {
  return db
    .insertInto('join_tokens')
    .values({
      id: row.id,
      secret_hash: row.secretHash,
      description: row.description,
      requires_approval: row.requiresApproval,
      max_uses: row.maxUses,
      expires_at: row.expiresAt,
      created_by: row.createdBy,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .returning([...INFO_COLUMNS, stateSql.as('state')])
    .executeTakeFirst();
}

/** One page of join tokens, newest first, and how many there are. */
export async function listJoinTokens(db: Db, page: { limit: number; offset: number }): Promise<{ items: JoinTokenInfo[]; total: number }> {
  const [items, count] = await Promise.all([
    db
      .selectFrom('join_tokens')
      .select([...INFO_COLUMNS, stateSql.as('state')])
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    db.selectFrom('join_tokens').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

/** One join token, or undefined. */
export async function findJoinToken(db: Db, id: string): Promise<JoinTokenInfo | undefined> {
  return db
    .selectFrom('join_tokens')
    .select([...INFO_COLUMNS, stateSql.as('state')])
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Deletes a join token; false when there was none. Hosts registered with it keep its id. */
export async function deleteJoinToken(db: Db, id: string): Promise<boolean> {
  const res = await db.deleteFrom('join_tokens').where('id', '=', id).executeTakeFirst();
  return res.numDeletedRows > 0n;
}

/**
 * A join token locked for the rest of the transaction (concurrent registrations with it wait
 * here), with its hash and whether it expired by the database clock; undefined when unknown.
 */
export async function lockJoinToken(trx: Trx, id: string) {
  return trx
    .selectFrom('join_tokens')
    .select([
      'id',
      'secret_hash',
      'requires_approval',
      'max_uses',
      'uses',
      'expires_at',
      sql<boolean>`expires_at is not null and expires_at <= now()`.as('expired'),
    ])
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

/** Counts one registration with a (locked) join token. */
export async function recordJoinTokenUse(trx: Trx, id: string): Promise<void> {
  await trx
    .updateTable('join_tokens')
    .set((eb) => ({ uses: eb('uses', '+', 1), last_used_at: sql<Date>`now()` }))
    .where('id', '=', id)
    .execute();
}
