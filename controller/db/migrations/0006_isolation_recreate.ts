import { sql, type Kysely } from 'kysely';

// Tenant isolation (capabilities, one network per environment, read-only dataset views): the
// reconciler only applies environments whose spec_generation is ahead of applied_generation, so
// containers created before isolation would keep Docker's default capabilities, the default bridge
// and read-write dataset mounts until their owner changed something. Every environment that is not
// deleted and has a host is asked to apply again (its container is recreated at the next
// reconcile, its data kept), with an event in its logs saying why. Nothing to undo on the way down.

export const ISOLATION_MESSAGE = 'Recreated at the next reconcile to apply tenant isolation (capabilities, own network, read-only datasets)';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    with bumped as (
      update environments
      set spec_generation = spec_generation + 1, updated_at = now()
      where desired_state <> 'deleted' and host_id is not null
      returning id
    )
    insert into environment_events (env_id, at, source, kind, message)
    select id, now(), 'platform', 'isolation_recreate', ${ISOLATION_MESSAGE} from bumped`.execute(db);
}

export async function down(): Promise<void> {
  // The generations moved on are harmless; the events stay as history.
}
