import pg from 'pg';
import { pgCtl, startPostgresIn } from '../../helpers/postgres-server.js';

// The fault suite's own PostgreSQL server: a private data directory under /tmp and its own port, so
// that restarting it never disturbs the server other tests (or a developer) use.

export const SUITE_PG = {
  dir: process.env.REMOTEGPU_FAULTS_PG_DIR ?? '/tmp/remotegpu-faults-pg',
  port: Number(process.env.REMOTEGPU_FAULTS_PG_PORT ?? 54351),
} as const;

export const suiteServerUrl = (database = 'postgres') => `postgres://postgres@127.0.0.1:${SUITE_PG.port}/${database}`;

/** Starts the suite's server (initdb on first use) the way scripts/start-postgres.sh does; idempotent. */
export const startSuitePostgres = (): Promise<string> => startPostgresIn(SUITE_PG.dir, SUITE_PG.port);

/** pg_ctl stop -m fast: every connection is terminated (57P01), as in a real restart. */
export async function stopSuitePostgres(): Promise<void> {
  await pgCtl(SUITE_PG.dir, '-m', 'fast', 'stop').catch(() => undefined);
}

/**
 * `pg_ctl restart -m fast` in its two halves, so a scenario knows when the server is back:
 * returns the time (Date.now()) at which it accepted connections again.
 */
export async function restartSuitePostgres(downMs = 0): Promise<number> {
  await pgCtl(SUITE_PG.dir, '-m', 'fast', 'stop');
  if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
  await startSuitePostgres();
  return Date.now();
}

/** A fresh database for one scenario on the suite's server (dropped first if a former run left it). */
export async function freshDatabase(name: string): Promise<string> {
  await withClient(suiteServerUrl(), async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  });
  return suiteServerUrl(name);
}

export async function dropDatabase(name: string): Promise<void> {
  await withClient(suiteServerUrl(), (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(() => undefined);
}

/** Runs `fn` with one connection to `url`, closed afterwards. */
export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
