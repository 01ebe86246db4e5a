import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, type DatabaseHandle } from '../../controller/db/database.js';
import { migrateToLatest } from '../../controller/db/migrate.js';

/**
 * Integration tests run on every database target: embedded PGlite always, and a real PostgreSQL
 * server when REMOTEGPU_TEST_DATABASE_URL points at one (a URL whose user may CREATE DATABASE,
 * e.g. postgres://postgres@127.0.0.1:5432/postgres). Each test database is created fresh and
 * dropped afterwards.
 */
export const SERVER_URL = process.env.REMOTEGPU_TEST_DATABASE_URL ?? '';

export interface DbTarget {
  readonly name: 'pglite' | 'postgres';
  /** Why the target is skipped, or '' when it runs. */
  readonly skipReason: string;
}

export const DB_TARGETS: readonly DbTarget[] = [
  { name: 'pglite', skipReason: '' },
  {
    name: 'postgres',
    skipReason: SERVER_URL
      ? ''
      : 'PostgreSQL server tests skipped: set REMOTEGPU_TEST_DATABASE_URL=postgres://USER@HOST:PORT/postgres to run them (CI does)',
  },
];

for (const target of DB_TARGETS) {
  if (target.skipReason) console.warn(target.skipReason);
}

export interface TestDatabase extends DatabaseHandle {
  /** A URL for the fresh database (postgres only), e.g. for a second pool or a controller. */
  readonly url: string | undefined;
}

/** Creates a fresh, migrated database on the target. `close()` drops it. */
export async function createTestDatabase(target: DbTarget, options: { poolSize?: number } = {}): Promise<TestDatabase> {
  if (target.name === 'pglite') {
    const handle = await openDatabase({ dataDir: 'memory://' });
    await migrateToLatest(handle.db);
    return { ...handle, url: undefined };
  }
  const name = `rgtest_${randomBytes(6).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name}`);
  const url = withDatabase(SERVER_URL, name);
  const handle = await openDatabase({ databaseUrl: url, dataDir: 'unused', poolSize: options.poolSize ?? 10 });
  await migrateToLatest(handle.db);
  let closing: Promise<void> | undefined;
  return {
    ...handle,
    url,
    close: () =>
      (closing ??= (async () => {
        await handle.close();
        await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      })()),
  };
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
