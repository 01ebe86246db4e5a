import { sql, type ExpressionBuilder, type RawBuilder, type SqlBool } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database, HostsTable } from '../db/schema.js';
import type { HostStatus } from '../scheduler/types.js';
import type { HostFilter, HostGpuView, HostSummary } from './model.js';

// The admin listing of hosts: every column computed in SQL, one statement per page.

/**
 * A host's status over the alias `h`: offline, else pending_approval while not approved, else its
 * admin state with active shown as online. The scheduler places only on `online` hosts, so this is
 * also what keeps unapproved hosts out of placement.
 */
export const hostStatusSql = sql<HostStatus>`case when h.liveness = 'offline' then 'offline' when not h.approved then 'pending_approval'
  when h.admin_state = 'active' then 'online' else h.admin_state end`;
const statusExpr = hostStatusSql;

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** The listing's rows with every column computed in one statement (no query per host). */
function summaryQuery(db: Db) {
  return db
    .selectFrom('hosts as h')
    .innerJoinLateral(reservedOnHost, (join) => join.onTrue())
    .innerJoinLateral(gpuAggregates, (join) => join.onTrue())
    .select((eb) => [
      'h.id',
      'h.hostname',
      'h.public_address as publicAddress',
      statusExpr.as('status'),
      'ga.gpuModel',
      'ga.gpuCount',
      // Its GPUs that a reservation holds, under this host id or another one of the same machine.
      eb
        .selectFrom('host_gpus as hg')
        .whereRef('hg.host_id', '=', 'h.id')
        .where((w) => w.exists(w.selectFrom('gpu_reservations as r').select(sql`1`.as('one')).whereRef('r.gpu_uuid', '=', 'hg.uuid')))
        .select(sql<number>`count(*)`.as('n'))
        .$asScalar()
        .$notNull()
        .as('gpusAllocated'),
      'ga.gpusUnhealthy',
      'h.cpu_cores as cpuTotal',
      'ea.cpu as cpuAllocated',
      'h.memory_bytes as memoryTotalBytes',
      'ea.memory as memoryAllocatedBytes',
      'h.disk_total_bytes as storageTotalBytes',
      'ea.storage as storageAllocatedBytes',
      'h.disk_reserve_bytes as diskReserveBytes',
      'h.disk_pressure as diskPressure',
      'ea.environments as environmentCount',
      'h.agent_version as agentVersion',
      'h.driver_version as driverVersion',
      'h.cuda_version as cudaVersion',
      'h.gpu_condition as gpuCondition',
      'h.runtime_error as runtimeError',
      'h.runtime_down_since as runtimeDownSince',
      'h.last_report_at as lastReportAt',
      'h.registered_at as registeredAt',
      'h.replaces_host_id as replacesHostId',
      eb
        .selectFrom('hosts as later')
        .whereRef('later.replaces_host_id', '=', 'h.id')
        .select('later.id')
        .orderBy('later.registered_at', 'desc')
        .orderBy('later.id', 'desc')
        .limit(1)
        .$asScalar()
        .as('replacedByHostId'),
    ]);
}

/**
 * Per host `h`: what its environments have reserved (CPU cores, memory and storage bytes) and how
 * many are not deleted, as `ea`. The scheduling snapshot joins the same numbers.
 */
export function reservedOnHost(eb: ExpressionBuilder<Database & { h: HostsTable }, 'h'>) {
  return eb
    .selectFrom('environments as e')
    .whereRef('e.host_id', '=', 'h.id')
    .select([
      sql<number>`coalesce(sum(e.reserved_cpu), 0)`.as('cpu'),
      sql<number>`coalesce(sum(e.reserved_memory_bytes), 0)`.as('memory'),
      sql<number>`coalesce(sum(e.reserved_storage_bytes), 0)`.as('storage'),
      sql<number>`count(*) filter (where e.desired_state <> 'deleted')`.as('environments'),
    ])
    .as('ea');
}

/** Per host `h`: its GPU count, unhealthy count and model ("mixed: ..." when several), as `ga`. */
function gpuAggregates(eb: ExpressionBuilder<Database & { h: HostsTable }, 'h'>) {
  return eb
    .selectFrom(
      eb
        .selectFrom('host_gpus as g')
        .whereRef('g.host_id', '=', 'h.id')
        .groupBy('g.model')
        .select(['g.model', sql<number>`count(*)`.as('n'), sql<number>`count(*) filter (where g.health = 'unhealthy')`.as('u')])
        .as('m'),
    )
    .select([
      sql<number>`coalesce(sum(m.n), 0)`.as('gpuCount'),
      sql<number>`coalesce(sum(m.u), 0)`.as('gpusUnhealthy'),
      sql<string | null>`case count(*) when 0 then null when 1 then min(m.model)
        else 'mixed: ' || string_agg(m.model, ', ' order by m.n desc, m.model) end`.as('gpuModel'),
    ])
    .as('ga');
}

/** The listing's filters as one condition on the `h` (hosts) alias. */
function filterCondition(filter: HostFilter): RawBuilder<SqlBool> {
  const conds: RawBuilder<unknown>[] = [sql`true`];
  if (filter.status) conds.push(sql`${statusExpr} = ${filter.status}`);
  const model = filter.gpuModel?.trim();
  if (model) {
    conds.push(sql`exists (select 1 from host_gpus fg where fg.host_id = h.id and fg.model ilike ${`%${escapeLike(model)}%`})`);
  }
  return sql<SqlBool>`${sql.join(conds, sql` and `)}`;
}

/** One page of the admin listing (ordered by hostname, then id) and the total matching the filter. */
export async function listHostSummaries(
  db: Db,
  filter: HostFilter,
  page: { limit: number; offset: number },
): Promise<{ items: HostSummary[]; total: number }> {
  const where = filterCondition(filter);
  const [items, count] = await Promise.all([
    summaryQuery(db).where(where).orderBy('h.hostname').orderBy('h.id').limit(page.limit).offset(page.offset).execute(),
    db.selectFrom('hosts as h').select(sql<number>`count(*)`.as('n')).where(where).executeTakeFirstOrThrow(),
  ]);
  return { items, total: count.n };
}

/** The listing row of one host, or undefined. */
export async function findHostSummary(db: Db, id: string): Promise<HostSummary | undefined> {
  return summaryQuery(db).where('h.id', '=', id).executeTakeFirst();
}

/** The facts the detail adds to the listing row. */
export async function findHostExtras(db: Db, id: string) {
  return db
    .selectFrom('hosts')
    .select([
      'agent_address as agentAddress',
      'os',
      'kernel',
      'cpu_model as cpuModel',
      'gpu_mode as gpuMode',
      'disk_free_bytes as diskFreeBytes',
      'approved',
      'approved_at as approvedAt',
      'join_token_id as joinTokenId',
      'machine_id as machineId',
    ])
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Every GPU of a host by index, with the environment that holds it (if any, under any host id). */
export async function listHostGpus(db: Db, hostId: string): Promise<HostGpuView[]> {
  return db
    .selectFrom('host_gpus as g')
    .leftJoin('gpu_reservations as r', 'r.gpu_uuid', 'g.uuid')
    .select([
      'g.index',
      'g.uuid',
      'g.model',
      'g.memory_bytes as memoryBytes',
      'g.memory_used_bytes as memoryUsedBytes',
      'g.utilization_percent as utilizationPercent',
      'g.temperature_c as temperatureC',
      'g.health',
      'g.health_reason as healthReason',
      'g.mig_enabled as migEnabled',
      'g.present',
      'r.env_id as envId',
    ])
    .where('g.host_id', '=', hostId)
    .orderBy('g.present', 'desc')
    .orderBy('g.index')
    .orderBy('g.uuid')
    .execute();
}
