import type { Kysely } from 'kysely';

// The state of a host's container runtime (Docker) as its agent reports it: runtime_error is the
// agent's reason while the runtime does not answer ('' while it does), runtime_down_since when the
// first report saying so arrived (null while it answers). While it is set the reconciler sends the
// host no calls and reports from it leave environments as they were.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('hosts')
    .addColumn('runtime_error', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema.alterTable('hosts').addColumn('runtime_down_since', 'timestamptz').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('runtime_down_since').execute();
  await db.schema.alterTable('hosts').dropColumn('runtime_error').execute();
}
