import { sql } from 'kysely';
import type { Trx } from '../db/database.js';
import { keepHostKeysWhen } from './host-keys.js';
import { addEvents, withDetail, type EventInput, type Outcome } from './environment-writes.js';

// The reconciler's outcomes of many agent calls written at once (environment-writes.ts holds every
// other write of environment rows and events; `recordOutcome` there is the one-row form of this).

/** One agent call's outcome for the generation it was made for, and the event that explains it. */
export interface OutcomeEntry {
  readonly envId: string;
  readonly generation: number;
  readonly outcome: Outcome;
  readonly event?: EventInput | undefined;
}

/**
 * Records several outcomes in two statements (rows locked in id order, then one UPDATE) plus one
 * insert of their events: what `recordOutcome` does for each, with the same rule: a row whose spec
 * generation moved on meanwhile is left alone (and gets no event). Ids must be distinct. Returns
 * the ids recorded.
 */
export async function recordOutcomes(trx: Trx, entries: readonly OutcomeEntry[]): Promise<Set<string>> {
  if (entries.length === 0) return new Set();
  const ids = entries.map((e) => e.envId);
  // Locked in id order first, like every other multi-row lock of environments (no deadlock).
  await trx.selectFrom('environments').select('id').where('id', 'in', ids).orderBy('id').forUpdate().execute();
  const now = new Date();
  const rows = sql.join(
    entries.map(({ envId, generation, outcome }) => {
      const o = withDetail(outcome);
      return sql`(${envId}::text, ${generation}::integer, ${o.status ?? null}::text, ${o.status_reason ?? null}::text, ${o.status_detail ?? null}::text,
        ${o.started_at ?? null}::timestamptz, ${o.stopped_at ?? null}::timestamptz, ${o.observed_state ?? null}::text, ${o.container ?? null}::text)`;
    }),
  );
  const v = sql`(values ${rows})`.as<'v'>(sql`v(id, generation, status, reason, detail, started, stopped, observed, container)`);
  const col = (name: string, from: string) => sql<never>`coalesce(v.${sql.raw(from)}, environments.${sql.raw(name)})`;
  // An outcome sets the columns it names (never to null); the others keep their values.
  const done = await trx
    .updateTable('environments')
    .from(v)
    .set({
      status: col('status', 'status'),
      status_reason: col('status_reason', 'reason'),
      status_detail: col('status_detail', 'detail'),
      started_at: col('started_at', 'started'),
      stopped_at: col('stopped_at', 'stopped'),
      observed_state: col('observed_state', 'observed'),
      // The stored SSH host keys stay unless the outcome names another container (recordOutcome's hostKeysOf).
      ...keepHostKeysWhen(sql<boolean>`(v.container is null or v.container = environments.ssh_host_keys_container)`),
      applied_generation: sql<number>`v.generation`,
      observed_at: now,
      updated_at: now,
    })
    .where(sql<boolean>`environments.id = v.id and environments.spec_generation = v.generation`)
    .returning('environments.id')
    .execute();
  const recorded = new Set(done.map((r) => r.id));
  await addEvents(trx, entries.flatMap((e) => (e.event && recorded.has(e.envId) ? [{ envId: e.envId, ...e.event }] : [])));
  return recorded;
}
