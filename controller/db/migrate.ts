import { Migrator, type Migration, type MigrationProvider } from 'kysely';
import type { Db } from './database.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_settings.js';
import * as m0003 from './migrations/0003_host_trust.js';
import * as m0004 from './migrations/0004_dataset_writable.js';
import * as m0005 from './migrations/0005_storage_usage.js';
import * as m0006 from './migrations/0006_isolation_recreate.js';
import * as m0007 from './migrations/0007_quotas.js';
import * as m0008 from './migrations/0008_env_image_copy_and_backoff.js';
import * as m0010 from './migrations/0010_status_detail_machine_id.js';
import * as m0011 from './migrations/0011_host_ports.js';
import * as m0013 from './migrations/0013_host_runtime.js';
import * as m0015 from './migrations/0015_report_hashes.js';
import * as m0016 from './migrations/0016_list_reads.js';
import * as m0017 from './migrations/0017_terminal_tickets.js';
import * as m0018 from './migrations/0018_ssh_host_keys.js';

/** Every migration, in order. Adding one = a new file in migrations/ and a line here. */
const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_settings': m0002,
  '0003_host_trust': m0003,
  '0004_dataset_writable': m0004,
  '0005_storage_usage': m0005,
  '0006_isolation_recreate': m0006,
  '0007_quotas': m0007,
  '0008_env_image_copy_and_backoff': m0008,
  '0010_status_detail_machine_id': m0010,
  '0011_host_ports': m0011,
  '0013_host_runtime': m0013,
  '0015_report_hashes': m0015,
  '0016_list_reads': m0016,
  '0017_terminal_tickets': m0017,
  '0018_ssh_host_keys': m0018,
};

class StaticProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return MIGRATIONS;
  }
}

/** A migrator over every migration (tests use it to go back to an earlier version). */
export function migrator(db: Db): Migrator {
  return new Migrator({ db, provider: new StaticProvider() });
}

/**
 * Brings the schema to the latest version. Safe to call from several controller replicas at once
 * (Kysely's migrator takes a lock). Throws with the failing migration's name and cause.
 */
export async function migrateToLatest(db: Db): Promise<string[]> {
  const { error, results } = await migrator(db).migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    const where = failed ? ` (migration ${failed.migrationName})` : '';
    throw new Error(`database migration failed${where}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
