import { sql, type Kysely } from 'kysely';

// Terminal tickets (issue 13): a browser cannot set an Authorization header on a WebSocket, so it
// first asks for a short-lived, single-use ticket. Tickets live in the database, so a ticket made on
// one controller replica opens the terminal on another. Only the ticket's hash is stored, with the
// hash of the API token that asked for it (a revoked token's tickets no longer open anything).

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('terminal_tickets')
    .addColumn('ticket_hash', 'text', (c) => c.primaryKey())
    .addColumn('env_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  // Expired tickets are deleted when new ones are made.
  await db.schema.createIndex('terminal_tickets_expires_idx').on('terminal_tickets').column('expires_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('terminal_tickets').execute();
}
