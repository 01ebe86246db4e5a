import { sql, type Kysely } from 'kysely';

// Quotas (issue 11): limits an admin sets per user and per workspace. A missing row, or a null
// column, means unlimited; every limit is a whole number, zero or more. Deleting the workspace
// (or user) deletes its limits.

const LIMITS = ['gpus', 'cpu', 'memory', 'storage', 'environments', 'pending_environments'] as const;

async function createQuotaTable(db: Kysely<any>, table: string, key: string, references: string): Promise<void> {
  let builder = db.schema.createTable(table).addColumn(key, 'integer', (c) => c.primaryKey().references(references).onDelete('cascade'));
  for (const limit of LIMITS) {
    builder = builder.addColumn(limit, limit === 'memory' || limit === 'storage' ? 'bigint' : 'integer', (c) => c.check(sql`${sql.ref(limit)} >= 0`));
  }
  await builder.addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`)).execute();
}

export async function up(db: Kysely<any>): Promise<void> {
  await createQuotaTable(db, 'user_quotas', 'user_id', 'users.id');
  await createQuotaTable(db, 'workspace_quotas', 'workspace_id', 'workspaces.id');
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('workspace_quotas').execute();
  await db.schema.dropTable('user_quotas').execute();
}
