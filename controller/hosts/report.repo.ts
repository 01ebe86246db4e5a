import { CompiledQuery, sql } from 'kysely';
import type { Db, Trx } from '../db/database.js';
import type { DesiredState, EnvStatus } from '../db/schema.js';
import { factColumns } from './hosts.repo.js';
import type { HostFacts } from './model.js';
import type { ReportHashes } from './report-hash.js';
import type { KnownEnvironment } from './types.js';
import type { SshHostKey } from '../../common/ssh-host-keys.js';

// The statements of a report (issue 12: cheap reports). The common report, which changes nothing,
// is acceptReport alone: one statement that checks the host's certificate, records the host's
// liveness and sequence and reads back what the rest of the report is judged against (the stored hashes, the runtime mark, the
// environments on the host for the observer). Facts, GPUs and usage figures are written after it
// only when they changed (writeFacts, writeTelemetry), each guarded by the sequence it accepted.

/** The host row as a report found it, and the environments the controller knows on the host. */
export interface AcceptedReport {
  readonly factsHash: string | null;
  readonly telemetryHash: string | null;
  /** The stored usage figures were written less than the refresh period ago. */
  readonly telemetryFresh: boolean;
  readonly busyPorts: readonly number[] | null;
  readonly runtimeDownSince: Date | null;
  readonly runtimeError: string;
  readonly known: readonly KnownEnvironment[];
}

// One constant text (no query builder per report). $1 host id, $2 sequence, $3 usage refresh in ms,
// $4 the fingerprint of the certificate the host presented (null in plaintext mode): it must be
// issued to the host and not expired, so a revocation or removal on any replica refuses the next
// report. seq 1 (or 0) is always accepted: an agent restart starts over at 1. The environments are those
// not deleted and deleted ones whose removal the agent has not confirmed (environments.repo's listOnHost).
const ACCEPT_SQL = `with h as (
  update hosts set liveness = 'online', last_report_at = now(), last_seq = $2::bigint
  where id = $1 and ($2::bigint <= 1 or last_seq < $2::bigint)
    and ($4::text is null or exists (select 1 from host_certificates c where c.host_id = $1 and c.cert_sha256 = $4::text and c.not_after > now()))
  returning id, facts_hash, telemetry_hash, coalesce(telemetry_at > now() - $3::float8 * interval '1 millisecond', false) as telemetry_fresh,
    busy_ports, runtime_down_since, runtime_error
)
select h.facts_hash, h.telemetry_hash, h.telemetry_fresh, h.busy_ports, h.runtime_down_since, h.runtime_error,
  e.id as env_id, e.status, e.status_reason, e.desired_state, e.applied_generation, e.spec_generation, e.observed_state,
  e.observed_at, e.started_at, e.updated_at, e.storage_used_bytes, e.rootfs_used_bytes, e.usage_measured_at,
  e.ssh_host_keys, e.ssh_host_keys_container
from h left join environments e on e.host_id = h.id and (e.desired_state <> 'deleted' or e.applied_generation < e.spec_generation)`;

interface AcceptRow {
  facts_hash: string | null;
  telemetry_hash: string | null;
  telemetry_fresh: boolean;
  busy_ports: number[] | null;
  runtime_down_since: Date | null;
  runtime_error: string;
  env_id: string | null;
  status: EnvStatus;
  status_reason: string;
  desired_state: DesiredState;
  applied_generation: number;
  spec_generation: number;
  observed_state: string;
  observed_at: Date | null;
  started_at: Date | null;
  updated_at: Date;
  storage_used_bytes: number | null;
  rootfs_used_bytes: number | null;
  usage_measured_at: Date | null;
  ssh_host_keys: SshHostKey[] | null;
  ssh_host_keys_container: string;
}

/**
 * Accepts a report in one statement: the host online, heard from now, at sequence `seq`; returns
 * the row as it was and the environments on the host. Undefined, and nothing changed, for a stale
 * report (`seq` not newer than the last accepted), a host that is gone, or a certificate
 * (`fingerprint`; null in plaintext mode) not issued to it or expired: the caller tells which.
 */
export async function acceptReport(db: Db, hostId: string, seq: number, telemetryRefreshMs: number, fingerprint: string | null): Promise<AcceptedReport | undefined> {
  const { rows } = await db.executeQuery<AcceptRow>(CompiledQuery.raw(ACCEPT_SQL, [hostId, seq, telemetryRefreshMs, fingerprint]));
  const first = rows[0];
  if (!first) return undefined;
  const known: KnownEnvironment[] = [];
  for (const r of rows) {
    if (r.env_id === null) continue;
    known.push({
      id: r.env_id,
      status: r.status,
      status_reason: r.status_reason,
      desired_state: r.desired_state,
      applied_generation: Number(r.applied_generation),
      spec_generation: Number(r.spec_generation),
      observed_state: r.observed_state,
      observed_at: r.observed_at,
      started_at: r.started_at,
      updated_at: r.updated_at,
      storage_used_bytes: r.storage_used_bytes === null ? null : Number(r.storage_used_bytes),
      rootfs_used_bytes: r.rootfs_used_bytes === null ? null : Number(r.rootfs_used_bytes),
      usage_measured_at: r.usage_measured_at,
      ssh_host_keys: r.ssh_host_keys ?? [],
      ssh_host_keys_container: r.ssh_host_keys_container,
    });
  }
  return {
    factsHash: first.facts_hash,
    telemetryHash: first.telemetry_hash,
    telemetryFresh: first.telemetry_fresh,
    busyPorts: first.busy_ports,
    runtimeDownSince: first.runtime_down_since,
    runtimeError: first.runtime_error,
    known,
  };
}

/**
 * Writes the host's fact columns (usage figures included) and both hashes, unless a newer report
 * was accepted meanwhile (its own write wins). True when written: the caller then saves the GPUs.
 */
export async function writeFacts(trx: Trx, hostId: string, seq: number, facts: HostFacts, hashes: ReportHashes): Promise<boolean> {
  const row = await trx
    .updateTable('hosts')
    .set({ ...factColumns(facts), facts_hash: hashes.facts, telemetry_hash: hashes.telemetry, telemetry_at: sql<Date>`now()` })
    .where('id', '=', hostId)
    .where('last_seq', '=', seq)
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Writes only the usage figures (free disk; utilization, memory used and temperature of the GPUs
 * still present), unless a newer report was accepted meanwhile. The GPUs are those stored: the
 * facts hash matched, so they are the reported ones.
 */
export async function writeTelemetry(trx: Trx, hostId: string, seq: number, facts: HostFacts, telemetryHash: string): Promise<void> {
  const row = await trx
    .updateTable('hosts')
    .set({ disk_free_bytes: facts.diskFreeBytes, telemetry_hash: telemetryHash, telemetry_at: sql<Date>`now()` })
    .where('id', '=', hostId)
    .where('last_seq', '=', seq)
    .returning('id')
    .executeTakeFirst();
  if (!row || facts.gpus.length === 0) return;
  const values = sql.join(facts.gpus.map((g) => sql`(${g.uuid}::text, ${g.memoryUsedBytes}::bigint, ${g.utilizationPercent}::integer, ${g.temperatureC}::integer)`));
  await sql`
    update host_gpus g
    set memory_used_bytes = v.m, utilization_percent = v.u, temperature_c = v.t, updated_at = now()
    from (values ${values}) as v(uuid, m, u, t)
    where g.host_id = ${hostId} and g.uuid = v.uuid and g.present`.execute(trx);
}
