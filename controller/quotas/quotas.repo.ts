import { sql } from 'kysely';
import type { Db, Trx } from '../db/database.js';
import { QUOTA_KEYS, UNLIMITED, type QuotaLimits, type QuotaUsage } from './quota-rules.js';

// Reads and writes of quota limits, and the usage they are compared with.

type Kind = 'user' | 'workspace';

function limitsOf(row: Partial<Record<string, unknown>> | undefined): QuotaLimits {
  if (!row) return UNLIMITED;
  const out = { ...UNLIMITED };
  for (const key of QUOTA_KEYS) {
    const v = row[key];
    out[key] = v === null || v === undefined ? null : Number(v);
  }
  return out;
}

/** The limits of a user or workspace (unlimited when none were set). */
export async function readLimits(db: Db, kind: Kind, id: number): Promise<QuotaLimits> {
  if (kind === 'user') return limitsOf(await db.selectFrom('user_quotas').selectAll().where('user_id', '=', id).executeTakeFirst());
  return limitsOf(await db.selectFrom('workspace_quotas').selectAll().where('workspace_id', '=', id).executeTakeFirst());
}

/**
 * The limits of a user or workspace, with its quota row locked until the transaction ends, so two
 * reservations against the same limits are checked one after the other (the second sees what the
 * first committed). Undefined when no limits were set: nothing to lock, nothing to check.
 */
export async function lockLimits(trx: Trx, kind: Kind, id: number): Promise<QuotaLimits | undefined> {
  const row =
    kind === 'user'
      ? await trx.selectFrom('user_quotas').selectAll().where('user_id', '=', id).forUpdate().executeTakeFirst()
      : await trx.selectFrom('workspace_quotas').selectAll().where('workspace_id', '=', id).forUpdate().executeTakeFirst();
  if (!row) return undefined;
  const limits = limitsOf(row);
  return QUOTA_KEYS.some((k) => limits[k] !== null) ? limits : undefined;
}

/** Sets every limit of a user or workspace at once (null: unlimited). */
export async function writeLimits(db: Db, kind: Kind, id: number, limits: QuotaLimits): Promise<void> {
  const values = { ...limits, updated_at: new Date() };
  if (kind === 'user') {
    await db
      .insertInto('user_quotas')
      .values({ user_id: id, ...values })
      .onConflict((oc) => oc.column('user_id').doUpdateSet(values))
      .execute();
  } else {
    await db
      .insertInto('workspace_quotas')
      .values({ workspace_id: id, ...values })
      .onConflict((oc) => oc.column('workspace_id').doUpdateSet(values))
      .execute();
  }
}

/**
 * What a user (every environment they own, their workspace ones included) or a workspace holds,
 * counting environments that are not deleted: `environments` all of them, `pending_environments`
 * the queued ones, `storage` the volume size of each (queued ones included: they will need it),
 * and `gpus`, `cpu`, `memory` what is reserved on hosts now (running, starting, stopping, ...;
 * a stopped or queued environment holds none). One statement.
 */
export async function usageOf(db: Db, kind: Kind, id: number): Promise<QuotaUsage> {
  const column = kind === 'user' ? sql.ref('e.owner_id') : sql.ref('e.workspace_id');
  const result = await sql<Record<keyof QuotaUsage, number | string | null>>`
    select count(*) as environments,
      count(*) filter (where e.status = 'pending') as pending_environments,
      coalesce(sum(e.reserved_cpu), 0) as cpu,
      coalesce(sum(e.reserved_memory_bytes), 0) as memory,
      coalesce(sum(e.storage_bytes), 0) as storage,
      (select count(*) from gpu_reservations r join environments g on g.id = r.env_id
        where ${kind === 'user' ? sql.ref('g.owner_id') : sql.ref('g.workspace_id')} = ${id} and g.desired_state <> 'deleted') as gpus
    from environments e
    where ${column} = ${id} and e.desired_state <> 'deleted'`.execute(db);
  const row = result.rows[0]!;
  const usage = {} as QuotaUsage;
  for (const key of QUOTA_KEYS) usage[key] = Number(row[key] ?? 0);
  return usage;
}

/** The name of a user or workspace, for messages ("#id" when it vanished). */
export async function scopeName(db: Db, kind: Kind, id: number): Promise<string> {
  const row =
    kind === 'user'
      ? await db.selectFrom('users').select('name').where('id', '=', id).executeTakeFirst()
      : await db.selectFrom('workspaces').select('name').where('id', '=', id).executeTakeFirst();
  return row?.name ?? `#${id}`;
}
