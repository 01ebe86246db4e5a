import { mkdirSync } from 'node:fs';
import { Kysely, PostgresDialect, type Transaction } from 'kysely';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { PGliteDialect } from 'kysely-pglite-dialect';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;
/** A transaction: functions that must run inside one take this type first. */
export type Trx = Transaction<Database>;

export interface DatabaseHandle {
  readonly db: Db;
  /** Which engine backs `db`. */
  readonly kind: 'pglite' | 'postgres';
  /** The pg pool behind `db` (its connection counts are metrics); undefined for PGlite. */
  readonly pool?: pg.Pool | undefined;
  /** Closes the pool or the embedded database. Idempotent. */
  close(): Promise<void>;
}

/** Default of REMOTEGPU_DB_POOL_SIZE and REMOTEGPU_RECONCILER_DB_POOL_SIZE. */
export const DEFAULT_POOL_SIZE = 10;

/** Default of REMOTEGPU_DB_CONNECT_TIMEOUT_MS. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/**
 * bigint and numeric values (byte sizes, counts, sums) come back as JavaScript numbers on both
 * engines. Values stay below 2^53 (9 PB), so nothing is lost.
 */
const toNumber = (value: string) => Number(value);

/**
 * Opens the database: a `pg` pool when `databaseUrl` is set, otherwise embedded PGlite with its
 * files under `dataDir` (`memory://` keeps it in memory, for tests).
 */
export async function openDatabase(options: {
  databaseUrl?: string | undefined;
  dataDir: string;
  /** Connections of the `pg` pool (REMOTEGPU_DB_POOL_SIZE); embedded PGlite has one session whatever this says. */
  poolSize?: number;
  /** How long a query waits for a connection (a new one, or a free one of the pool) before it fails as unavailable. */
  connectTimeoutMs?: number;
}): Promise<DatabaseHandle> {
  if (options.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? DEFAULT_POOL_SIZE,
      connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID || oid === NUMERIC_OID ? toNumber : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
      },
    });
    // A connection lost (the server restarted, shut down or was killed) must never crash the process.
    // The pool listens on idle clients only (its 'error'); a client that is checked out (a query in
    // flight, or the reconciler's lock session waiting on agents) emits 'error' on itself, and with
    // no listener there Node throws it. Every client gets one for its whole life: its queries fail
    // with the error (answered 503, see isDatabaseUnavailable), and the pool drops it when released.
    pool.on('error', () => {});
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return onceClose('postgres', db, async () => {
      await db.destroy();
    }, pool);
  }
  const location = options.dataDir === 'memory://' ? 'memory://' : pgliteDir(options.dataDir);
  const pglite = await PGlite.create(location, {
    parsers: { [INT8_OID]: toNumber, [NUMERIC_OID]: toNumber },
  });
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return onceClose('pglite', db, async () => {
    await db.destroy();
    if (!pglite.closed) await pglite.close();
  });
}

/**
 * The reconciler's own handle: on PostgreSQL a second pool of `poolSize` connections to the same
 * database (so API requests waiting for connections never starve the reconciler, nor the other
 * way round); embedded PGlite has one session, so there the reconciler shares `main`'s handle and
 * closing the returned handle does nothing.
 */
export async function openReconcilerDatabase(
  main: DatabaseHandle,
  options: { databaseUrl?: string | undefined; poolSize: number; connectTimeoutMs?: number },
): Promise<DatabaseHandle> {
  if (main.kind === 'pglite' || !options.databaseUrl) return { db: main.db, kind: main.kind, close: async () => {} };
  return openDatabase({ databaseUrl: options.databaseUrl, dataDir: 'unused', poolSize: options.poolSize, ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }) });
}

function pgliteDir(dataDir: string): string {
  const dir = `${dataDir.replace(/\/+$/, '')}/pglite`;
  mkdirSync(dir, { recursive: true });
  return dir;
}

function onceClose(kind: DatabaseHandle['kind'], db: Db, close: () => Promise<void>, pool?: pg.Pool): DatabaseHandle {
  let closing: Promise<void> | undefined;
  return {
    db,
    kind,
    pool,
    close: () => (closing ??= close()),
  };
}
