import { sql, type Kysely } from 'kysely';

// Issue 11, items 11 and 12.
//
// An environment keeps the image it was created with: the Docker reference, sshd's and Jupyter's
// ports inside the container and the data path are copied onto the row at create time (existing
// rows get their image's current values), so editing a catalog image changes only environments
// created afterwards.
//
// The reconciler backs off per environment: an agent call that could not be made (host
// unreachable) or that failed on a removal sets `next_attempt_at` (exponential, capped) and counts
// `attempt_count` for the spec generation in `attempt_generation`; a newer generation starts over.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('environments')
    .addColumn('image_ref', 'text')
    .addColumn('image_ssh_port', 'integer')
    .addColumn('image_jupyter_port', 'integer')
    .addColumn('image_data_path', 'text')
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('attempt_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('attempt_generation', 'integer')
    .execute();
  await sql`
    update environments e
    set image_ref = i.docker_ref, image_ssh_port = i.ssh_port, image_jupyter_port = i.jupyter_port, image_data_path = i.data_path
    from images i
    where i.id = e.image_id`.execute(db);
  await db.schema
    .alterTable('environments')
    .alterColumn('image_ref', (c) => c.setNotNull())
    .alterColumn('image_ssh_port', (c) => c.setNotNull())
    .alterColumn('image_data_path', (c) => c.setNotNull())
    .execute();
  // The reconciler's work list: environments behind their spec, by when they are due.
  await db.schema
    .createIndex('environments_behind_idx')
    .on('environments')
    .columns(['next_attempt_at', 'updated_at'])
    .where(sql.ref('applied_generation'), '<', sql.ref('spec_generation'))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('environments_behind_idx').execute();
  await db.schema
    .alterTable('environments')
    .dropColumn('attempt_generation')
    .dropColumn('attempt_count')
    .dropColumn('next_attempt_at')
    .dropColumn('image_data_path')
    .dropColumn('image_jupyter_port')
    .dropColumn('image_ssh_port')
    .dropColumn('image_ref')
    .execute();
}
