import type { Kysely } from 'kysely';

// Cheap reports (issue 12): a report that changes nothing is one statement. The host row keeps a
// hash of the facts last written (host columns and the GPUs' steady fields) and of the usage figures
// (free disk, GPU utilization, memory used, temperature) with when those were last written; a report
// writes facts and GPUs only when their hash changed, usage only when it changed and is old enough.
// Null (rows from before): the next report writes everything and sets them.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('hosts')
    .addColumn('facts_hash', 'text')
    .addColumn('telemetry_hash', 'text')
    .addColumn('telemetry_at', 'timestamptz')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('telemetry_at').dropColumn('telemetry_hash').dropColumn('facts_hash').execute();
}
