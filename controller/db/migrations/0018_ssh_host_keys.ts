import { sql, type Kysely } from 'kysely';

// SSH that survives port reuse (issue 14 item 1).
// - environments.ssh_host_keys: the SSH host public keys its agent read from its current container
//   ([{type, key}], the API adds fingerprints), and ssh_host_keys_container the id of the container
//   they were read from ('' when none): keys of a removed or recreated container are never offered.
// - port_releases: when each host port was last given back (an environment deleted, or moved off a
//   taken port). A new environment gets a port never used before, else the one freed longest ago,
//   so a deleted environment's address does not go straight to the next one.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('environments')
    .addColumn('ssh_host_keys', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('ssh_host_keys_container', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema
    .createTable('port_releases')
    // A deleted host's release times go with it.
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
    .addColumn('port', 'integer', (c) => c.notNull())
    .addColumn('released_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('port_releases_pk', ['host_id', 'port'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('port_releases').execute();
  await db.schema.alterTable('environments').dropColumn('ssh_host_keys_container').dropColumn('ssh_host_keys').execute();
}
