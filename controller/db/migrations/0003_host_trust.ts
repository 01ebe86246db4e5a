import { sql, type Kysely } from 'kysely';

// Host trust (issue 9): the cluster CA (its key encrypted), join tokens an admin manages (hashes
// only), the certificates issued to hosts (fingerprints only), host approval. Host credentials are
// no longer stored: under mutual TLS a host proves itself with its certificate; in the explicit
// plaintext mode its bearer credential is derived from the controller's secret key, never stored.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('cluster_ca')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('cert_pem', 'text', (c) => c.notNull())
    .addColumn('key_ciphertext', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('join_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('requires_approval', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('max_uses', 'integer')
    .addColumn('uses', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('expires_at', 'timestamptz')
    .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('host_certificates')
    .addColumn('serial', 'text', (c) => c.primaryKey())
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
    .addColumn('key_sha256', 'text', (c) => c.notNull().unique())
    .addColumn('cert_sha256', 'text', (c) => c.notNull().unique())
    .addColumn('not_after', 'timestamptz', (c) => c.notNull())
    .addColumn('issued_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('host_certificates_host').on('host_certificates').column('host_id').execute();

  await db.schema.alterTable('hosts').dropColumn('credential').execute();
  await db.schema.alterTable('hosts').addColumn('approved', 'boolean', (c) => c.notNull().defaultTo(true)).execute();
  await db.schema.alterTable('hosts').addColumn('approved_at', 'timestamptz').execute();
  await db.schema.alterTable('hosts').addColumn('join_token_id', 'text').execute();
  // The generated join token of the first wave is gone: join tokens are hashes in join_tokens now.
  await db.deleteFrom('settings').where('key', '=', 'join_token').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('join_token_id').execute();
  await db.schema.alterTable('hosts').dropColumn('approved_at').execute();
  await db.schema.alterTable('hosts').dropColumn('approved').execute();
  await db.schema.alterTable('hosts').addColumn('credential', 'text', (c) => c.notNull().defaultTo('')).execute();
  await db.schema.dropTable('host_certificates').ifExists().execute();
  await db.schema.dropTable('join_tokens').ifExists().execute();
  await db.schema.dropTable('cluster_ca').ifExists().execute();
}
