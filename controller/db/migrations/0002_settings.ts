import type { Kysely } from 'kysely';

// Cluster-wide settings the controller generates once and keeps (e.g. the agents' join token when
// REMOTEGPU_JOIN_TOKEN is not set), so that every replica and every restart agrees on them.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('settings').ifExists().execute();
}
