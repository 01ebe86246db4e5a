import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Trx } from '../db/database.js';
import { ACTIVE_ENV_STATUSES, type DesiredState, type EnvStatus, type NewEnvironment } from '../db/schema.js';
import { hostKeysOf } from './host-keys.js';
import { USAGE_REFRESH_S, type UsageReport } from './usage-report.js';

// The one writer of environment rows and their platform events. Every function takes the
// transaction first, so a row change and the event that explains it commit together. Two counters
// drive the lifecycle: `spec_generation` moves when the desired spec changes (only `requestChange`
// and `recordObservation` with `reapply` move it), and `applied_generation` records what an agent
// carried out (only `recordOutcome` and `recordRemoval` write it, and only for the generation they
// were started for, so a newer request is never overwritten).

/** A line in an environment's logs. */
export interface EventInput {
  readonly kind: string;
  readonly message: string;
  readonly source?: 'platform' | 'agent';
  readonly at?: Date;
}

/** What a user action (or the queue) changes in the desired state. */
export interface DesiredChange {
  readonly desired_state?: DesiredState;
  readonly status: EnvStatus;
  readonly status_reason?: string;
  readonly gpu?: number;
  /** A larger volume (start may grow it; it never shrinks). */
  readonly storage_bytes?: number;
  readonly deleted_at?: Date;
  /** A published port moved off a port taken on the host (placement.ts, movePortOff). */
  readonly ssh_port?: number;
  readonly jupyter_port?: number;
}

/** What an agent call found: the status it settles on, what the agent observed, the container it answered with ('' for none: host-keys.ts hostKeysOf). */
export interface Outcome {
  readonly status?: EnvStatus;
  readonly status_reason?: string;
  /** The full text behind a status_reason with host paths replaced (see `agentReason`); '' or absent: the same. */
  readonly status_detail?: string;
  readonly started_at?: Date;
  readonly stopped_at?: Date;
  readonly observed_state?: string;
  readonly container?: string;
}

/**
 * `fields` with status_detail cleared when they set a status_reason without one, so the admin's
 * full text never outlives the reason it explained.
 */
export function withDetail<T extends { status_reason?: string; status_detail?: string }>(fields: T): T {
  return fields.status_reason !== undefined && fields.status_detail === undefined ? { ...fields, status_detail: '' } : fields;
}

/** Records a platform event of an environment (a line in its logs). */
export async function addEvent(trx: Trx, envId: string, event: EventInput): Promise<void> {
  await addEvents(trx, [{ envId, ...event }]);
}

/** Records several events at once (an agent's report). */
export async function addEvents(trx: Trx, events: readonly (EventInput & { envId: string })[]): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((e) => ({ env_id: e.envId, kind: e.kind, message: e.message, source: e.source ?? 'platform', at: e.at ?? new Date() }));
  await trx.insertInto('environment_events').values(rows).execute();
}

/** Inserts a new environment, with the event that explains its first status when given. */
export async function insertEnvironment(trx: Trx, row: NewEnvironment, event?: EventInput): Promise<void> {
  await trx.insertInto('environments').values(row).execute();
  if (event) await addEvent(trx, row.id, event);
}

/**
 * A change of the desired state (start, stop, restart, delete, mount, a queued environment
 * placed): writes it, moves `spec_generation` on so the reconciler acts, and records the event.
 */
export async function requestChange(trx: Trx, envId: string, change: DesiredChange | null, event: EventInput): Promise<void> {
  await trx
    .updateTable('environments')
    .set({ ...withDetail(change ?? {}), spec_generation: sql`spec_generation + 1`, updated_at: new Date() })
    .where('id', '=', envId)
    .execute();
  await addEvent(trx, envId, event);
}

/**
 * Asks the agents to apply the environments of `envIds` again although their owners changed
 * nothing (an admin's change they must carry out, e.g. a dataset made read-only): moves
 * `spec_generation` on for those that are not deleted and records `event` for each of them.
 * Returns their ids.
 */
export async function requestReapply(trx: Trx, envIds: readonly string[], event: EventInput): Promise<string[]> {
  if (envIds.length === 0) return [];
  const moved = await trx
    .updateTable('environments')
    .set({ spec_generation: sql`spec_generation + 1`, updated_at: new Date() })
    .where('id', 'in', [...envIds])
    .where('desired_state', '!=', 'deleted')
    .returning('id')
    .execute();
  const ids = moved.map((r) => r.id).sort();
  await addEvents(trx, ids.map((envId) => ({ envId, ...event })));
  return ids;
}

/**
 * Hands an environment to another owner (its previous owner left the workspace it belongs to) and
 * records `event`. The idempotency key goes: it named a request of the previous owner; so does the
 * Jupyter token they knew (a new one, in the spec from the next apply or start).
 */
export async function changeOwner(trx: Trx, envId: string, ownerId: number, event: EventInput): Promise<void> {
  const set = { owner_id: ownerId, idempotency_key: null, jupyter_token: newJupyterToken(), updated_at: new Date() };
  await trx.updateTable('environments').set(set).where('id', '=', envId).execute();
  await addEvent(trx, envId, event);
}

/** A fresh Jupyter token (every environment has one; the agent's spec hash includes it). */
export function newJupyterToken(): string {
  return randomBytes(24).toString('base64url');
}

/** A new Jupyter token (someone who could read the old one lost access) and `event`; `reapply`: a running container is recreated with it. */
export async function rotateJupyterToken(trx: Trx, envId: string, reapply: boolean, event: EventInput): Promise<void> {
  const set = { jupyter_token: newJupyterToken(), updated_at: new Date(), ...(reapply ? { spec_generation: sql<number>`spec_generation + 1` } : {}) };
  await trx.updateTable('environments').set(set).where('id', '=', envId).execute();
  await addEvent(trx, envId, event);
}

/**
 * Records the outcome of an agent call made for `generation`. Writes nothing and returns false when
 * the user changed the environment meanwhile (the next pass handles the newer generation).
 */
export async function recordOutcome(trx: Trx, envId: string, generation: number, { container, ...outcome }: Outcome, event?: EventInput): Promise<boolean> {
  const now = new Date();
  const changed = await trx
    .updateTable('environments')
    .set({ ...withDetail(outcome), ...hostKeysOf(container), applied_generation: generation, observed_at: now, updated_at: now })
    .where('id', '=', envId).where('spec_generation', '=', generation)
    .executeTakeFirst();
  if (Number(changed.numUpdatedRows) === 0) return false;
  if (event) await addEvent(trx, envId, event);
  return true;
}

/** Records that the agent removed the environment (generation `generation`); false when it moved on. */
export async function recordRemoval(trx: Trx, envId: string, generation: number, event: EventInput): Promise<boolean> {
  const changed = await trx
    .updateTable('environments')
    .set({ applied_generation: generation, observed_state: 'absent', updated_at: new Date() })
    .where('id', '=', envId).where('spec_generation', '=', generation)
    .executeTakeFirst();
  if (Number(changed.numUpdatedRows) === 0) return false;
  await addEvent(trx, envId, event);
  return true;
}

/** The reconciler's backoff between attempts at one spec generation: `baseMs` doubled per failed attempt, at most `capMs`. */
export interface Backoff {
  readonly baseMs: number;
  readonly capMs: number;
}

/**
 * Puts off the reconciler's next attempt at each environment, for the generation it tried (an agent
 * it could not reach, a removal that failed): counts the attempt and sets `next_attempt_at` to now
 * plus `baseMs` × 2^(attempts before this one), at most `capMs`. The count starts over at a newer
 * generation, and a row whose generation moved on meanwhile is left alone (it is due at once).
 */
export async function deferAttempts(trx: Trx, items: readonly { id: string; generation: number }[], backoff: Backoff): Promise<void> {
  if (items.length === 0) return;
  const pairs = sql.join(items.map((i) => sql`(${i.id}::text, ${i.generation}::integer)`));
  const previous = sql<number>`(case when attempt_generation = spec_generation then least(attempt_count, 30) else 0 end)`;
  await sql`
    update environments
    set attempt_count = case when attempt_generation = spec_generation then attempt_count + 1 else 1 end,
        attempt_generation = spec_generation,
        next_attempt_at = now() + make_interval(secs => least(${backoff.capMs}::float8, ${backoff.baseMs}::float8 * power(2, ${previous})) / 1000)
    where (id, spec_generation) in (${pairs})`.execute(trx);
}

/**
 * Gives up on the removals a host's agent never confirmed (an admin removes a host that is gone for
 * good): each deleted environment on `hostId` still awaiting removal is recorded as settled, with
 * `event` saying that its container and data may remain on that server. Returns their ids.
 */
export async function abandonRemovals(trx: Trx, hostId: string, event: EventInput): Promise<string[]> {
  const rows = await trx
    .updateTable('environments')
    .set({ applied_generation: sql`spec_generation`, observed_state: 'unknown', status_reason: event.message, status_detail: '', updated_at: new Date() })
    .where('host_id', '=', hostId)
    .where('desired_state', '=', 'deleted')
    .where('applied_generation', '<', sql<number>`spec_generation`)
    .returning('id')
    .execute();
  const ids = rows.map((r) => r.id).sort();
  await addEvents(trx, ids.map((envId) => ({ envId, ...event })));
  return ids;
}

/**
 * Why the environment is not converging yet (shown as its status_reason; `detail`: the full text
 * admins see when the reason has host paths replaced); the status stays.
 */
export async function noteReason(trx: Trx, envId: string, reason: string, detail = ''): Promise<void> {
  await trx.updateTable('environments').set({ status_reason: reason, status_detail: detail }).where('id', '=', envId).execute();
}

/**
 * Records what a host report showed for an environment seen at `generation`, and the status that
 * follows from it when there is one (`reapply` also asks the reconciler to converge again).
 */
export async function recordObservation(
  trx: Trx,
  envId: string,
  generation: number,
  observedState: string,
  next?: { status: EnvStatus; reason: string; reapply?: boolean | undefined; event?: string | undefined },
  observedAt?: Date, // when the report was taken; now when not given
): Promise<void> {
  const now = new Date();
  const changed = await trx
    .updateTable('environments')
    .set({
      observed_state: observedState,
      observed_at: observedAt ?? now,
      ...(next ? { status: next.status, status_reason: next.reason, status_detail: '', updated_at: now } : {}),
      ...(next?.reapply ? { spec_generation: sql`spec_generation + 1` } : {}),
    })
    .where('id', '=', envId).where('spec_generation', '=', generation)
    .executeTakeFirst();
  if (next?.event && Number(changed.numUpdatedRows) > 0) await addEvent(trx, envId, { kind: next.status, message: next.event });
}

/**
 * Records the disk usage a host reported for its environments, in one statement. A figure the
 * agent could not tell keeps the stored one; rows of other hosts are left alone; a row whose
 * figures did not change is written again only once its usage_measured_at is a minute old.
 */
export async function recordUsage(trx: Trx, hostId: string, usage: readonly UsageReport[]): Promise<void> {
  const known = usage.filter((u) => u.storageUsedBytes !== null || u.rootfsUsedBytes !== null);
  if (known.length === 0) return;
  const rows = sql.join(known.map((u) => sql`(${u.envId}::text, ${u.storageUsedBytes}::bigint, ${u.rootfsUsedBytes}::bigint)`));
  await sql`
    update environments e
    set storage_used_bytes = coalesce(v.s, e.storage_used_bytes),
        rootfs_used_bytes = coalesce(v.r, e.rootfs_used_bytes),
        usage_measured_at = now()
    from (values ${rows}) as v(id, s, r)
    where e.id = v.id and e.host_id = ${hostId}
      and (e.usage_measured_at is null
        or e.usage_measured_at < now() - make_interval(secs => ${USAGE_REFRESH_S})
        or (v.s is not null and v.s is distinct from e.storage_used_bytes)
        or (v.r is not null and v.r is distinct from e.rootfs_used_bytes))`.execute(trx);
}

/** Marks the active environments of a silent host `lost`; returns their ids. */
export async function markLostOnHost(trx: Trx, hostId: string, reason: string, event: EventInput): Promise<string[]> {
  const lost = await trx
    .updateTable('environments')
    .set({ status: 'lost', status_reason: reason, status_detail: '', updated_at: new Date() })
    .where('host_id', '=', hostId)
    .where('desired_state', '!=', 'deleted')
    .where('status', 'in', [...ACTIVE_ENV_STATUSES])
    .returning('id')
    .execute();
  await addEvents(trx, lost.map(({ id }) => ({ envId: id, ...event })));
  return lost.map((r) => r.id);
}

/** Where an environment now runs and what it holds there (written with its reservations). */
export async function setPlacement(
  trx: Trx,
  envId: string,
  placement: { hostId: string; cpu: number; memoryBytes: number; storageBytes?: number | undefined; sshPort: number; jupyterPort: number | null },
): Promise<void> {
  await trx
    .updateTable('environments')
    .set({
      host_id: placement.hostId,
      reserved_cpu: placement.cpu,
      reserved_memory_bytes: placement.memoryBytes,
      ...(placement.storageBytes !== undefined ? { reserved_storage_bytes: placement.storageBytes } : {}),
      ssh_port: placement.sshPort,
      jupyter_port: placement.jupyterPort,
    })
    .where('id', '=', envId)
    .execute();
}

/** Clears what an environment holds on its host: CPU and memory (`compute`), or storage too (`all`). */
export async function clearReserved(trx: Trx, envId: string, what: 'compute' | 'all'): Promise<void> {
  await trx
    .updateTable('environments')
    .set({ reserved_cpu: 0, reserved_memory_bytes: 0, ...(what === 'all' ? { reserved_storage_bytes: 0 } : {}) })
    .where('id', '=', envId)
    .execute();
}
