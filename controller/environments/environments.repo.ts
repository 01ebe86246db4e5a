import { sql } from 'kysely';
import { AppError } from '../../common/errors.js';
import type { Db, Trx } from '../db/database.js';
import type { Principal } from '../access/principal.js';
import { visibleEnvironments } from '../access/visibility.js';
import type { RedactionContext } from './redact.js';

// Reads of environment rows. Every write goes through environment-writes.ts.

/** One environment that is not deleted, with its host's public address (the API's view). */
function oneWithHost(db: Db, envId: string) {
  return db
    .selectFrom('environments')
    .leftJoin('hosts', 'hosts.id', 'environments.host_id')
    .selectAll('environments')
    .select('hosts.public_address')
    .where('environments.id', '=', envId)
    .where('environments.desired_state', '!=', 'deleted');
}

/** An environment the principal may see (not deleted), with its host's public address. */
export async function findVisible(db: Db, p: Principal, envId: string) {
  return oneWithHost(db, envId).where(visibleEnvironments(p)).executeTakeFirst();
}

export type EnvWithHost = NonNullable<Awaited<ReturnType<typeof findVisible>>>;

/** Any environment that is not deleted, whoever owns it (after the caller was authorised). */
export async function findById(db: Db, envId: string): Promise<EnvWithHost | undefined> {
  return oneWithHost(db, envId).executeTakeFirst();
}

/** The environment a user created with `key` (Idempotency-Key), deleted or not. */
export async function findByIdempotencyKey(db: Db, ownerId: number, key: string) {
  return db
    .selectFrom('environments')
    .select(['id', 'desired_state'])
    .where('owner_id', '=', ownerId)
    .where('idempotency_key', '=', key)
    .executeTakeFirst();
}

/** Locks an environment's row for the rest of the transaction; its lifecycle columns. */
export async function lockEnvironment(trx: Trx, envId: string) {
  return trx
    .selectFrom('environments')
    .select(['status', 'desired_state', 'host_id'])
    .where('id', '=', envId)
    .forUpdate()
    .executeTakeFirstOrThrow();
}

/**
 * Throws wrong_state when the environment's owner is disabled (nothing of theirs may run until an
 * admin enables them). Locks the owner's row against a concurrent disable until the transaction ends.
 */
export async function assertOwnerEnabled(trx: Trx, envId: string, action: string): Promise<void> {
  const owner = await lockOwner(trx, envId);
  if (owner.disabled_at) {
    throw new AppError('wrong_state', `cannot ${action} environment ${envId}: its owner ${owner.name} (user ${owner.id}) is disabled; an admin must enable the user first`);
  }
}

/**
 * The environment's owner, its row locked FOR SHARE until the transaction ends (a disable, which
 * locks the user's row and then their environments', waits or is waited for). Take it before the
 * environment's own lock: users row, then environment row, then quota rows.
 */
export async function lockOwner(trx: Trx, envId: string) {
  return trx
    .selectFrom('environments as e')
    .innerJoin('users as u', 'u.id', 'e.owner_id')
    .select(['u.id', 'u.name', 'u.disabled_at'])
    .where('e.id', '=', envId)
    .forShare('u')
    .executeTakeFirstOrThrow();
}

/**
 * Queued environments that still want to run, of owners not disabled, in the queue's fair order:
 * round-robin across owners (every owner's oldest first, then every owner's second oldest, ...),
 * each round oldest first; at most `limit`, with what placing them needs. One owner's many entries
 * thus never keep another owner's oldest entry out of the list.
 */
export async function listQueued(db: Db, limit: number) {
  return db
    .selectFrom((eb) =>
      eb
        .selectFrom('environments as e')
        .innerJoin('users as u', 'u.id', 'e.owner_id')
        .select([
          'e.id',
          'e.owner_id',
          'e.workspace_id',
          'e.cpu',
          'e.memory_bytes',
          'e.gpu',
          'e.storage_bytes',
          'e.gpu_model',
          'e.created_at',
          'e.status_reason',
          'e.image_jupyter_port as jupyter_port',
          sql<number>`row_number() over (partition by e.owner_id order by e.created_at, e.id)`.as('turn'),
        ])
        .where('e.status', '=', 'pending')
        .where('e.desired_state', '=', 'running')
        .where('u.disabled_at', 'is', null)
        .as('q'),
    )
    .selectAll('q')
    .orderBy('q.turn')
    .orderBy('q.created_at')
    .orderBy('q.id')
    .limit(limit)
    .execute();
}

/**
 * Environments whose agent is behind their spec (`applied_generation < spec_generation`), that can
 * be reached now (not placed yet, or on an online host) and are due: not put off by the reconciler's
 * backoff for this generation (`next_attempt_at` counts only while `attempt_generation` is the spec
 * generation, so a user's new request is tried at once). Taken round-robin across hosts (every
 * host's most overdue first, then every host's second...), so that one host with many environments
 * cannot fill the list; within a host, never tried before first, then by when they are due.
 */
export async function listBehind(db: Db, limit: number) {
  const due = sql<Date | null>`case when e.attempt_generation = e.spec_generation then e.next_attempt_at end`;
  const ranked = db
    .selectFrom('environments as e')
    .leftJoin('hosts as h', 'h.id', 'e.host_id')
    .select(['e.id', 'e.host_id', 'e.desired_state', 'e.status', 'e.spec_generation', 'e.updated_at', 'e.created_at'])
    .select(due.as('due'))
    .select(sql<number>`row_number() over (partition by e.host_id order by ${due} asc nulls first, e.updated_at, e.id)`.as('turn'))
    .where('e.applied_generation', '<', sql<number>`e.spec_generation`)
    // Hosts offline or whose container runtime does not answer get no calls (the backoff of their
    // environments is reset when the runtime answers again: resetAttempts).
    .where((eb) => eb.or([eb('e.host_id', 'is', null), eb.and([eb('h.liveness', '=', 'online'), eb('h.runtime_down_since', 'is', null)])]))
    .where((eb) => eb.or([eb(due, 'is', null), eb(due, '<=', sql<Date>`now()`)]));
  return db
    .selectFrom(ranked.as('w'))
    .select(['w.id', 'w.host_id', 'w.desired_state', 'w.status', 'w.spec_generation', 'w.created_at'])
    .orderBy('w.turn')
    .orderBy(sql`w.due asc nulls first`)
    .orderBy('w.updated_at')
    .orderBy('w.id')
    .limit(limit)
    .execute();
}

/** Environments on a host that a report speaks about: not deleted, or deleted but not removed yet. */
export async function listOnHost(db: Db, hostId: string) {
  return db
    .selectFrom('environments')
    .select([
      'id',
      'status',
      'status_reason',
      'desired_state',
      'applied_generation',
      'spec_generation',
      'observed_state',
      'observed_at',
      'started_at',
      'updated_at',
      'storage_used_bytes',
      'rootfs_used_bytes',
      'usage_measured_at',
      'ssh_host_keys',
      'ssh_host_keys_container',
    ])
    .where('host_id', '=', hostId)
    .where((eb) => eb.or([eb('desired_state', '!=', 'deleted'), eb('applied_generation', '<', sql<number>`spec_generation`)]))
    .execute();
}

/** Which of `ids` are environments that are not deleted. */
export async function existingIds(db: Db, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.selectFrom('environments').select('id').where('id', 'in', [...ids]).where('desired_state', '!=', 'deleted').execute();
  return new Set(rows.map((r) => r.id));
}

/**
 * Datasets mounted in an environment, oldest mount first. `readonly` is what the agent spec mounts
 * (spec.ts): true when the mount or its dataset (not writable) is read-only.
 */
export async function listMounts(db: Db, envId: string) {
  return db
    .selectFrom('environment_mounts as m')
    .innerJoin('datasets as d', 'd.id', 'm.dataset_id')
    .select(['m.dataset_id', 'd.name', 'm.mount_path', 'm.created_at'])
    .select((eb) => eb.or([eb.ref('m.readonly'), eb.not(eb.ref('d.writable'))]).$castTo<boolean>().as('readonly'))
    .where('m.env_id', '=', envId)
    .orderBy('m.created_at')
    .execute();
}

/**
 * What an agent's error text about an environment may show its users (see redact.ts): the host
 * paths of its mounted datasets with their names, and its container paths (mount paths, data path).
 */
export async function redactionContext(db: Db, envId: string): Promise<RedactionContext> {
  const [mounts, env] = await Promise.all([
    db
      .selectFrom('environment_mounts as m')
      .innerJoin('datasets as d', 'd.id', 'm.dataset_id')
      .select(['d.name', 'd.host_path', 'm.mount_path'])
      .where('m.env_id', '=', envId)
      .execute(),
    db.selectFrom('environments').select('image_data_path').where('id', '=', envId).executeTakeFirst(),
  ]);
  return {
    datasets: mounts.map((m) => ({ name: m.name, hostPath: m.host_path })),
    containerPaths: [...mounts.map((m) => m.mount_path), ...(env ? [env.image_data_path] : [])],
  };
}
