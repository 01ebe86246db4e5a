import { sql, type ExpressionBuilder, type SelectQueryBuilder } from 'kysely';
import type { Principal } from '../access/principal.js';
import type { Db } from '../db/database.js';
import type { Page } from '../db/pagination.js';
import type { Database, EnvStatus } from '../db/schema.js';
import type { EnvWithHost } from './environments.repo.js';

// The environment list (GET /environments): newest first (created_at desc, id desc), the rows the
// caller may see (visibility.ts: admins all, a user their own and their workspaces'), one page and
// the exact total. Built so that no page sorts or counts the table:
//
// - The visibility rule is a UNION ALL of disjoint branches, each walking an index of migration
//   0016 in the list's order: the caller's own rows (environments_list_owner_idx), and for each
//   workspace they belong to its rows owned by others (environments_list_workspace_idx, one
//   LATERAL walk per membership). An admin's list is one branch (environments_list_idx, or the
//   status or workspace one for a filter).
// - Keyset inside, offset outside: a branch stops after `offset + limit` keys (created_at, id),
//   read from the index alone; the merged keys skip `offset`, and only the page's rows are read
//   from the table. A deep page of an admin is one index walk, never a sort of the table.
// - The total is the sum of environment_tallies over the caller's scope (a handful of rows per
//   owner, workspace and status, kept exact by a trigger in every writing transaction) instead of
//   a count(*) per page.

export interface ListFilter {
  readonly status?: EnvStatus | undefined;
  readonly workspaceId?: number | undefined;
  readonly limit: number;
  readonly offset: number;
}

type EnvQuery = SelectQueryBuilder<Database, 'environments', { id: string; created_at: Date }>;

/**
 * A page of the environments `p` may see, newest first, and the exact total: one statement (the
 * page's rows, each carrying the scope's tally sums), a second one only when the page is empty.
 */
export async function listVisible(db: Db, p: Principal, filter: ListFilter): Promise<Page<EnvWithHost>> {
  const tally = tallies(db, p, filter);
  const rows = await db
    .selectFrom(pageKeys(db, p, filter).as('k'))
    .innerJoin('environments', 'environments.id', 'k.id')
    .leftJoin('hosts', 'hosts.id', 'environments.host_id')
    .innerJoin(tally.as('t'), (join) => join.onTrue())
    .selectAll('environments')
    .select(['hosts.public_address', 't.total as tally_total', 't.rows as tally_rows', 't.stale as tally_stale'])
    .orderBy('k.created_at', 'desc')
    .orderBy('k.id', 'desc')
    .execute();
  const sums = rows[0] ? { total: rows[0].tally_total, rows: rows[0].tally_rows, stale: rows[0].tally_stale } : await tally.executeTakeFirstOrThrow();
  maybeFold(db, p, filter, Number(sums.rows), Number(sums.stale));
  const items = rows.map(({ tally_total, tally_rows, tally_stale, ...env }) => env);
  return { items, total: Number(sums.total) };
}

/** The keys (id, created_at) of the page, in list order. */
function pageKeys(db: Db, p: Principal, filter: ListFilter) {
  const { limit, offset } = filter;
  const filtered = <Q extends EnvQuery>(q: Q): Q => {
    let out = q.where('environments.desired_state', '<>', 'deleted') as Q;
    if (filter.status) out = out.where('environments.status', '=', filter.status) as Q;
    if (filter.workspaceId !== undefined) out = out.where('environments.workspace_id', '=', filter.workspaceId) as Q;
    return out.orderBy('environments.created_at', 'desc').orderBy('environments.id', 'desc') as Q;
  };
  const base = db.selectFrom('environments').select(['environments.id', 'environments.created_at']);
  if (p.role === 'admin') return filtered(base).limit(limit).offset(offset);

  // Each branch needs at most offset + limit keys: the page cannot reach further into any of them.
  const reach = offset + limit;
  const owned = filtered(base.where('environments.owner_id', '=', p.userId)).limit(reach);
  let memberships = db.selectFrom('workspace_members as m').where('m.user_id', '=', p.userId);
  if (filter.workspaceId !== undefined) memberships = memberships.where('m.workspace_id', '=', filter.workspaceId);
  const shared = memberships
    .innerJoinLateral(
      (eb) =>
        filtered(eb.selectFrom('environments').select(['environments.id', 'environments.created_at']).whereRef('environments.workspace_id', '=', 'm.workspace_id').where('environments.owner_id', '<>', p.userId))
          .limit(reach)
          .as('w'),
      (join) => join.onTrue(),
    )
    .select(['w.id', 'w.created_at']);
  const merged = db.selectFrom(owned.as('o')).select(['o.id', 'o.created_at']).unionAll(shared);
  return db.selectFrom(merged.as('u')).select(['u.id', 'u.created_at']).orderBy('u.created_at', 'desc').orderBy('u.id', 'desc').limit(limit).offset(offset);
}

/** The tally rows of what `p` may see: every key of an owner they are, or of a workspace they belong to. */
function inScope(p: Principal) {
  return (eb: ExpressionBuilder<Database, 'environment_tallies'>) =>
    p.role === 'admin'
      ? sql<boolean>`true`
      : eb.or([
          eb('environment_tallies.owner_id', '=', p.userId),
          eb('environment_tallies.workspace_id', 'in', eb.selectFrom('workspace_members').select('workspace_members.workspace_id').where('workspace_members.user_id', '=', p.userId)),
        ]);
}

/** Per database: tally rows of a scope (admin, or a user id) after its last fold, and the folds running. */
const folds = new WeakMap<Db, { size: Map<string, number>; running: Set<string> }>();
function foldState(db: Db) {
  let state = folds.get(db);
  if (!state) folds.set(db, (state = { size: new Map(), running: new Set() }));
  return state;
}
/** Below this many rows a scope is never folded (summing them costs nothing). */
const FOLD_MIN_ROWS = 256;

/**
 * The exact number of environments `p` may see with the filter (`total`, the sum of
 * environment_tallies over the scope), and how many tally rows it read (`rows`, `stale`: those of
 * -1) to decide when to fold them. Always one row.
 */
function tallies(db: Db, p: Principal, filter: ListFilter) {
  let q = db
    .selectFrom('environment_tallies')
    .select((eb) => [
      eb.fn.coalesce(eb.fn.sum<number>('environment_tallies.n'), sql<number>`0`).as('total'),
      eb.fn.countAll<number>().as('rows'),
      sql<number>`count(*) filter (where environment_tallies.n < 0)`.as('stale'),
    ])
    .where(inScope(p));
  if (filter.status) q = q.where('environment_tallies.status', '=', filter.status);
  if (filter.workspaceId !== undefined) q = q.where('environment_tallies.workspace_id', '=', filter.workspaceId);
  return q;
}

/**
 * Folds the scope's tallies in the background when stale rows make up a quarter of what an
 * unfiltered list read, or the scope doubled since its last fold: the rows a sum reads stay within
 * a small multiple of the keys, and a fold is paid for by many writes.
 */
function maybeFold(db: Db, p: Principal, filter: ListFilter, rows: number, stale: number): void {
  if (filter.status !== undefined || filter.workspaceId !== undefined || rows <= FOLD_MIN_ROWS) return;
  const scope = p.role === 'admin' ? 'admin' : `user:${p.userId}`;
  if (stale * 4 > rows || rows > 2 * (foldState(db).size.get(scope) ?? 0) + FOLD_MIN_ROWS) void compactTallies(db, p, scope);
}

/**
 * Folds a scope's tally rows into one per key (none for a key whose sum is 0), in one statement:
 * the rows it deletes and the sums it inserts commit together, and rows appended meanwhile by
 * other transactions are not touched, so every sum stays exact. Runs in the background after the
 * read that asked for it; a failure (the database away, a deadlock with another replica's fold)
 * leaves the rows as they were, which is just as exact.
 */
export async function compactTallies(db: Db, p: Principal, scope = p.role === 'admin' ? 'admin' : `user:${p.userId}`): Promise<void> {
  const { size, running } = foldState(db);
  if (running.has(scope)) return;
  running.add(scope);
  try {
    const r = await db
      .with('gone', (qc) => qc.deleteFrom('environment_tallies').where(inScope(p)).returning(['owner_id', 'workspace_id', 'status', 'n']))
      .insertInto('environment_tallies')
      .columns(['owner_id', 'workspace_id', 'status', 'n'])
      .expression((eb) =>
        eb
          .selectFrom('gone')
          .select(['gone.owner_id', 'gone.workspace_id', 'gone.status', sql<number>`sum(gone.n)`.as('n')])
          .groupBy(['gone.owner_id', 'gone.workspace_id', 'gone.status'])
          .having(sql`sum(gone.n)`, '<>', 0),
      )
      .executeTakeFirst();
    size.set(scope, Number(r.numInsertedOrUpdatedRows ?? 0));
  } catch {
    // Best effort: the tallies are exact without it.
  } finally {
    running.delete(scope);
  }
}
