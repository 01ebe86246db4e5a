import type { Kysely } from 'kysely';

// Storage usage and disk pressure (issue 10): what each environment uses of its storage volume and
// of its container's writable layer, as the agent last reported (null: unknown), and when that
// report came; each host's data-disk reserve (REMOTEGPU_DISK_RESERVE, not schedulable) and whether
// its free space is below it (then it takes no new environments).

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('environments')
    .addColumn('storage_used_bytes', 'bigint')
    .addColumn('rootfs_used_bytes', 'bigint')
    .addColumn('usage_measured_at', 'timestamptz')
    .execute();
  await db.schema
    .alterTable('hosts')
    .addColumn('disk_reserve_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('disk_pressure', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('disk_pressure').dropColumn('disk_reserve_bytes').execute();
  await db.schema.alterTable('environments').dropColumn('usage_measured_at').dropColumn('rootfs_used_bytes').dropColumn('storage_used_bytes').execute();
}
