import { sql, type SqlBool } from 'kysely';
import type { Db } from '../db/database.js';
import type { HostAdminState } from '../db/schema.js';
import { GPU_NOT_REPORTED, type GpuFacts, type HostFacts } from './model.js';
import { reportHashes } from './report-hash.js';

// Repository functions of the hosts component. Each takes the database or a transaction first.

/** The hosts columns that mirror reported facts. */
export function factColumns(f: HostFacts) {
  return {
    hostname: f.hostname,
    public_address: f.publicAddress,
    agent_address: f.agentAddress,
    agent_version: f.agentVersion,
    os: f.os,
    kernel: f.kernel,
    cpu_model: f.cpuModel,
    cpu_cores: f.cpuCores,
    memory_bytes: f.memoryBytes,
    disk_total_bytes: f.diskTotalBytes,
    disk_free_bytes: f.diskFreeBytes,
    disk_reserve_bytes: f.diskReserveBytes,
    disk_pressure: f.diskPressure,
    driver_version: f.driverVersion,
    cuda_version: f.cudaVersion,
    gpu_mode: f.gpuMode,
    gpu_condition: f.gpuCondition,
    // Kept when the agent does not say (an older agent), so a link made at registration stays true.
    ...(f.machineId ? { machine_id: f.machineId } : {}),
    publish_address: f.publishAddress,
    busy_ports: [...f.busyPorts],
  };
}

/**
 * Inserts a new host, online and just heard from; `approved` false keeps it out of placement until
 * an admin approves it. False when the id is taken (caller picks another).
 */
export async function insertHost(db: Db, id: string, facts: HostFacts, admission: { approved: boolean; joinTokenId: string | null }): Promise<boolean> {
  const hashes = reportHashes(facts);
  const row = await db
    .insertInto('hosts')
    .values({
      id,
      ...factColumns(facts),
      facts_hash: hashes.facts,
      telemetry_hash: hashes.telemetry,
      telemetry_at: sql<Date>`now()`,
      liveness: 'online',
      last_report_at: sql<Date>`now()`,
      last_seq: 0,
      approved: admission.approved,
      approved_at: admission.approved ? sql<Date>`now()` : null,
      join_token_id: admission.joinTokenId,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Links the new host `id` to the newest other host registered from the same machine (`machineId`,
 * not ''): sets its replaces_host_id. Environments stay where they are. Returns the former host's
 * id, or undefined when the machine is new.
 */
export async function linkToFormerHost(db: Db, id: string, machineId: string): Promise<string | undefined> {
  if (!machineId) return undefined;
  const former = await db
    .selectFrom('hosts')
    .select('id')
    .where('machine_id', '=', machineId)
    .where('id', '!=', id)
    .orderBy('registered_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!former) return undefined;
  await db.updateTable('hosts').set({ replaces_host_id: former.id }).where('id', '=', id).execute();
  return former.id;
}

/**
 * Where the controller reaches a host's agent and the fingerprints of the certificates the agent
 * may serve (issued to it and not expired; none once it was revoked), or undefined when the host
 * does not exist.
 */
export async function findAgentEndpoint(db: Db, id: string): Promise<{ agentAddress: string; fingerprints: string[] } | undefined> {
  // One query: this runs before every call to an agent.
  return db
    .selectFrom('hosts as h')
    .select([
      'h.agent_address as agentAddress',
      sql<string[]>`array(select c.cert_sha256 from host_certificates c where c.host_id = h.id and c.not_after > now() order by c.cert_sha256)`.as('fingerprints'),
    ])
    .where('h.id', '=', id)
    .executeTakeFirst();
}

/**
 * A known agent registered again (it restarted): new facts, online, and its report sequence starts
 * over. False when the host vanished meanwhile.
 */
export async function updateHostOnRegister(db: Db, id: string, facts: HostFacts): Promise<boolean> {
  const res = await db
    .updateTable('hosts')
    .set({ ...factColumns(facts), facts_hash: null, telemetry_hash: null, liveness: 'online', last_report_at: sql<Date>`now()`, last_seq: 0 })
    .where('id', '=', id)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

/** The host's container-runtime mark. */
export interface RuntimeMark {
  readonly runtime_down_since: Date | null;
  readonly runtime_error: string;
}

type RuntimeChange = { change: 'down' | 'same' } | { change: 'up'; downSince: Date };

/** Whether a report's runtime state (`error` undefined: it answers) is the one the host's mark already records: nothing to write. */
export function sameRuntimeState(before: RuntimeMark, error: string | undefined): boolean {
  return error === undefined ? before.runtime_down_since === null : before.runtime_down_since !== null && before.runtime_error === error;
}

/**
 * Records whether the host's runtime answers (`error` undefined), from the mark the report's
 * acceptReport read back: `down` (stopped answering now), `up` (answers again; the host's environments' retry
 * backoff is forgotten) or `same` (no statement). The mark stays until clearRuntimeDown, after the
 * observer handled the report: if that failed, the next report is `up` again.
 */
export async function recordRuntimeState(trx: Db, id: string, before: RuntimeMark, error: string | undefined): Promise<RuntimeChange> {
  const since = before.runtime_down_since;
  if (error === undefined) {
    if (since === null) return { change: 'same' };
    await trx.updateTable('environments').set({ attempt_count: 0, next_attempt_at: null }).where('host_id', '=', id).where('next_attempt_at', 'is not', null).execute();
    return { change: 'up', downSince: since };
  }
  if (since !== null && before.runtime_error === error) return { change: 'same' };
  await trx
    .updateTable('hosts')
    .set({ runtime_down_since: sql<Date>`coalesce(runtime_down_since, now())`, runtime_error: error })
    .where('id', '=', id)
    .execute();
  return { change: since === null ? 'down' : 'same' };
}

/** The host's container runtime answers again, and the report that said so was handled (recordRuntimeState). */
export const clearRuntimeDown = (db: Db, id: string) => db.updateTable('hosts').set({ runtime_down_since: null, runtime_error: '' }).where('id', '=', id).where('runtime_down_since', 'is not', null).execute();

/** Inserts or updates every reported GPU of a host in one statement; they are present again. */
export async function upsertGpus(db: Db, hostId: string, gpus: readonly GpuFacts[]): Promise<void> {
  if (gpus.length === 0) return;
  await db
    .insertInto('host_gpus')
    .values(
      gpus.map((g) => ({
        host_id: hostId,
        uuid: g.uuid,
        index: g.index,
        model: g.model,
        memory_bytes: g.memoryBytes,
        memory_used_bytes: g.memoryUsedBytes,
        utilization_percent: g.utilizationPercent,
        temperature_c: g.temperatureC,
        pci_bus_id: g.pciBusId,
        health: g.health,
        health_reason: g.healthReason,
        mig_enabled: g.migEnabled,
        present: true,
        updated_at: sql<Date>`now()`,
      })),
    )
    .onConflict((oc) =>
      oc.columns(['host_id', 'uuid']).doUpdateSet((eb) => ({
        index: eb.ref('excluded.index'),
        model: eb.ref('excluded.model'),
        memory_bytes: eb.ref('excluded.memory_bytes'),
        memory_used_bytes: eb.ref('excluded.memory_used_bytes'),
        utilization_percent: eb.ref('excluded.utilization_percent'),
        temperature_c: eb.ref('excluded.temperature_c'),
        pci_bus_id: eb.ref('excluded.pci_bus_id'),
        health: eb.ref('excluded.health'),
        health_reason: eb.ref('excluded.health_reason'),
        mig_enabled: eb.ref('excluded.mig_enabled'),
        present: true,
        updated_at: eb.ref('excluded.updated_at'),
      })),
    )
    .execute();
}

/**
 * GPUs of a host that the latest report left out: kept (reservations and history stay valid) but
 * no longer present and unhealthy, so nothing is scheduled onto them. Returns their uuids.
 */
export async function markMissingGpus(db: Db, hostId: string, reportedUuids: readonly string[]): Promise<string[]> {
  const rows = await db
    .updateTable('host_gpus')
    .set({ present: false, health: 'unhealthy', health_reason: GPU_NOT_REPORTED, memory_used_bytes: 0, utilization_percent: -1, updated_at: sql<Date>`now()` })
    .where('host_id', '=', hostId)
    .where('present', '=', true)
    .$if(reportedUuids.length > 0, (qb) => qb.where('uuid', 'not in', reportedUuids))
    .returning('uuid')
    .execute();
  return rows.map((r) => r.uuid);
}

/**
 * Flips to offline every online host not heard from for `timeoutMs` (by the database clock, so
 * replicas agree). Returns the ids it flipped.
 */
export async function markSilentHostsOffline(db: Db, timeoutMs: number, heardSince?: Date): Promise<string[]> {
  const rows = await db
    .updateTable('hosts')
    .set({ liveness: 'offline' })
    .where('liveness', '=', 'online')
    .where(sql<SqlBool>`${lastHeard(heardSince)} < now() - make_interval(secs => ${timeoutMs / 1000})`)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

/**
 * Milliseconds from now() until the first online host falls silent for `timeoutMs` (negative when
 * one is past it already), or undefined when no host is online.
 */
export async function msUntilNextSilence(db: Db, timeoutMs: number, heardSince?: Date): Promise<number | undefined> {
  const row = await db
    .selectFrom('hosts')
    .select(sql<number | null>`extract(epoch from (min(${lastHeard(heardSince)}) - now())) * 1000 + ${timeoutMs}::float8`.as('ms'))
    .where('liveness', '=', 'online')
    .executeTakeFirst();
  return row?.ms == null ? undefined : Number(row.ms);
}

/** When a host was last heard from: its last report (its registration before one), or `heardSince` when later. */
function lastHeard(heardSince: Date | undefined) {
  const heard = sql`coalesce(last_report_at, registered_at)`;
  return heardSince ? sql`greatest(${heard}, ${heardSince}::timestamptz)` : heard;
}

/** Sets a host's admin state; false when the host does not exist. */
export async function setAdminState(db: Db, id: string, state: HostAdminState): Promise<boolean> {
  const res = await db.updateTable('hosts').set({ admin_state: state }).where('id', '=', id).executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

/** Locks a host's row for the rest of the transaction; false when it does not exist. */
export async function lockHost(db: Db, id: string): Promise<boolean> {
  const row = await db.selectFrom('hosts').select('id').where('id', '=', id).forUpdate().executeTakeFirst();
  return row !== undefined;
}

/**
 * Environments a host still holds, at most `limit` of them (oldest first), and their count: those
 * not deleted, and deleted ones whose removal its agent has not confirmed yet (their container and
 * data are still on the host).
 */
export async function environmentsOnHost(
  db: Db,
  hostId: string,
  limit: number,
): Promise<{ count: number; pending: number; items: { id: string; status: string; removalPending: boolean }[] }> {
  const rows = await db
    .selectFrom('environments')
    .select(['id', 'status', 'desired_state', sql<number>`count(*) over ()`.as('total')])
    .select(sql<number>`count(*) filter (where desired_state = 'deleted') over ()`.as('pending'))
    .where('host_id', '=', hostId)
    .where((eb) => eb.or([eb('desired_state', '<>', 'deleted'), eb('applied_generation', '<', sql<number>`spec_generation`)]))
    .orderBy('created_at')
    .orderBy('id')
    .limit(limit)
    .execute();
  return {
    count: Number(rows[0]?.total ?? 0),
    /** Of them, deleted ones awaiting removal. */
    pending: Number(rows[0]?.pending ?? 0),
    items: rows.map((r) => ({ id: r.id, status: r.status, removalPending: r.desired_state === 'deleted' })),
  };
}

/**
 * Deletes a host with its GPUs and reservations and detaches the (deleted and removed) environments
 * that still point at it. The caller checked, under the row lock, that the host holds no environment
 * (environmentsOnHost).
 */
export async function deleteHostRows(db: Db, id: string): Promise<boolean> {
  await db.deleteFrom('gpu_reservations').where('host_id', '=', id).execute();
  await db.deleteFrom('port_reservations').where('host_id', '=', id).execute();
  await db.updateTable('environments').set({ host_id: null }).where('host_id', '=', id).execute();
  const res = await db.deleteFrom('hosts').where('id', '=', id).executeTakeFirst();
  return res.numDeletedRows > 0n;
}
