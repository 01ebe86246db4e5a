import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from '../controller/db/schema.js';
import { migrateToLatest } from '../controller/db/migrate.js';
import { listBehind } from '../controller/environments/environments.repo.js';

// The reconciler's work list (listBehind) on PostgreSQL with a fleet's worth of rows: prints its
// plan (EXPLAIN ANALYZE) and time, to check that it reads the pending work through its partial
// index, not every environment. Run: REMOTEGPU_BENCH_DATABASE_URL=postgres://USER@HOST:PORT/postgres
// npx tsx bench/pending-work-plan.ts [environments] [hosts] [behind]

const SERVER = process.env.REMOTEGPU_BENCH_DATABASE_URL ?? process.env.REMOTEGPU_TEST_DATABASE_URL ?? '';
if (!SERVER) throw new Error('set REMOTEGPU_BENCH_DATABASE_URL (a PostgreSQL server whose user may CREATE DATABASE)');
const ENVS = Number(process.argv[2] ?? 100_000);
const HOSTS = Number(process.argv[3] ?? 5_000);
const BEHIND = Number(process.argv[4] ?? 200);

const name = `rgbench_${randomBytes(4).toString('hex')}`;
const admin = async (text: string) => {
  const c = new pg.Client({ connectionString: SERVER });
  await c.connect();
  await c.query(text).finally(() => c.end());
};
await admin(`create database ${name}`);
const url = new URL(SERVER);
url.pathname = `/${name}`;
const queries: { sql: string; parameters: readonly unknown[] }[] = [];
const db = new Kysely<Database>({
  dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url.toString(), max: 2 }) }),
  log: (e) => void queries.push({ sql: e.query.sql, parameters: e.query.parameters }),
});
try {
  await migrateToLatest(db);
  await sql`insert into users (name, role) values ('bench', 'user')`.execute(db);
  await sql`insert into images (name, docker_ref) values ('img', 'img')`.execute(db);
  await sql`
    insert into hosts (id, hostname, public_address, agent_address, cpu_cores, memory_bytes, disk_total_bytes, disk_free_bytes, last_report_at)
    select 'host-' || lpad(i::text, 6, '0'), 'h' || i, '127.0.0.1', '127.0.0.1:1', 128, 2^40, 2^44, 2^44, now()
    from generate_series(1, ${HOSTS}) i`.execute(db);
  // Every environment converged but BEHIND of them (spread over the hosts).
  await sql`
    insert into environments (id, owner_id, name, image_id, image, image_ref, image_ssh_port, image_data_path, cpu, memory_bytes, storage_bytes,
      desired_state, status, host_id, jupyter_token, spec_generation, applied_generation)
    select 'env-' || lpad(i::text, 8, '0'), (select id from users limit 1), 'e' || i, (select id from images limit 1), 'img', 'img', 22, '/data', 1, 2^30, 2^30,
      'running', case when i <= ${BEHIND} then 'creating' else 'running' end, 'host-' || lpad((1 + i % ${HOSTS})::text, 6, '0'), 't',
      1, case when i <= ${BEHIND} then 0 else 1 end
    from generate_series(1, ${ENVS}) i`.execute(db);
  await sql`analyze`.execute(db);
  queries.length = 0;
  const t0 = performance.now();
  const rows = await listBehind(db, 200);
  const ms = performance.now() - t0;
  const q = queries.at(-1)!;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  const plan = await client.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers) ${q.sql}`, q.parameters as unknown[]);
  await client.end();
  console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
  console.log(`listBehind: ${rows.length} rows of ${ENVS} environments (${BEHIND} behind) on ${HOSTS} hosts in ${ms.toFixed(1)} ms (first call)`);
} finally {
  await db.destroy();
  await admin(`drop database if exists ${name} with (force)`);
}
