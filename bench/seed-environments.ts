import { sql } from 'kysely';
import type { Db } from '../controller/db/database.js';

// Bulk environment rows for list benches and tests: one INSERT ... SELECT generate_series, spread
// over users and workspaces like a real cluster. Created times repeat (`tieEvery` rows share one),
// so the list order's tie-break on id is exercised; a few rows are deleted (hidden from lists).

export interface BulkSpec {
  /** How many rows. */
  readonly count: number;
  /** Owners, in turn (row i belongs to ownerIds[i % n]). */
  readonly ownerIds: readonly number[];
  /** Workspaces, taken by every `workspaceEvery`-th row (row i: workspaceIds[i % m]); none when empty. */
  readonly workspaceIds: readonly number[];
  readonly workspaceEvery: number;
  readonly imageId: number;
  /** Rows created in the same millisecond (ties in created_at). */
  readonly tieEvery: number;
  /** Prefix of ids and names (unique per call). */
  readonly prefix: string;
}

// Settled rows (applied_generation = spec_generation), as most of a fleet is: the reconciler has
// nothing to do for them, and the queue nothing to place.
const STATUSES = ['running', 'running', 'running', 'stopped', 'running', 'error', 'running', 'stopped'];

/** Inserts `spec.count` environments in one statement (the tallies trigger counts them). */
export async function bulkEnvironments(db: Db, spec: BulkSpec): Promise<void> {
  const owners = sql.val([...spec.ownerIds]);
  const workspaces = sql.val(spec.workspaceIds.length ? [...spec.workspaceIds] : [0]);
  const statuses = sql.val(STATUSES);
  await sql`
    insert into environments (id, owner_id, workspace_id, name, image_id, image, image_ref, image_ssh_port, image_jupyter_port, image_data_path,
      cpu, memory_bytes, storage_bytes, desired_state, status, jupyter_token, created_at, deleted_at, spec_generation, applied_generation)
    select ${spec.prefix} || lpad(to_hex(i), 8, '0'),
      (${owners}::int[])[1 + (i * 7919) % cardinality(${owners}::int[])],
      case when ${spec.workspaceIds.length} > 0 and i % ${spec.workspaceEvery} = 0
        then (${workspaces}::int[])[1 + (i / ${spec.workspaceEvery}) % cardinality(${workspaces}::int[])] end,
      'bulk ' || i, ${spec.imageId}, 'bulk', 'remotegpu/devbox:1', 22, 8888, '/root/data',
      1, 1073741824, 1073741824,
      case when i % 41 = 0 then 'deleted' when i % 8 in (3, 7) then 'stopped' else 'running' end,
      case when i % 41 = 0 then 'deleting' else (${statuses}::text[])[1 + i % 8] end,
      'bulk',
      timestamptz '2026-01-01' + make_interval(secs => (i / ${spec.tieEvery}) * 0.001),
      case when i % 41 = 0 then now() end,
      1, 1
    from generate_series(0, ${spec.count - 1}) as i`.execute(db);
}
