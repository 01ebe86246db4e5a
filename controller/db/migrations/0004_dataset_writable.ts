import type { Kysely } from 'kysely';

// Read-only shared datasets (issue 10): a dataset is mounted read-only unless an admin marked it
// writable. Existing datasets become read-only; their mounts follow at the next apply (the agent
// spec computes readonly = mount.readonly OR NOT dataset.writable).

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('datasets')
    .addColumn('writable', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('datasets').dropColumn('writable').execute();
}
