import { CompiledQuery, sql, type KyselyPlugin } from 'kysely';
import pg from 'pg';
import { openDatabase } from '../controller/db/database.js';
import { migrateToLatest } from '../controller/db/migrate.js';
import { listVisible } from '../controller/environments/environment-list.js';
import { bulkEnvironments } from './seed-environments.js';

// EXPLAIN ANALYZE of the statements one list request runs, on a seeded copy (like list-reads.ts).
// Run: BENCH_DATABASE_URL=postgres://… npx tsx bench/explain-list.ts [rows] [page]

const SERVER = process.env.BENCH_DATABASE_URL ?? process.env.REMOTEGPU_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:54329/postgres';
const ROWS = Number(process.argv[2] ?? 100_000);
const PAGES = (process.argv[3] ?? '1,100,4000').split(',').map(Number);
const name = `rgreads_explain_${process.pid}`;
const admin = async (text: string) => {
  const c = new pg.Client({ connectionString: SERVER });
  await c.connect();
  await c.query(text).finally(() => c.end());
};
await admin(`CREATE DATABASE ${name}`);
const url = new URL(SERVER);
url.pathname = `/${name}`;
const { db, close } = await openDatabase({ databaseUrl: url.toString(), dataDir: 'unused' });
try {
  await migrateToLatest(db);
  const users = await sql<{ id: number }>`insert into users (name, role) select 'user' || i, 'user' from generate_series(1, 1000) i returning id`.execute(db);
  const userIds = users.rows.map((r) => r.id);
  const ws = await sql<{ id: number }>`insert into workspaces (name, owner_id) select 'ws' || i, ${userIds[0]!} from generate_series(1, 50) i returning id`.execute(db);
  const wsIds = ws.rows.map((r) => r.id);
  await db.insertInto('workspace_members').values(wsIds.flatMap((w, i) => [0, 1, 2, 3, 4, 5].map((k) => ({ workspace_id: w, user_id: userIds[(i * 6 + k) % 1000]! })))).onConflict((oc) => oc.doNothing()).execute();
  const image = await db.insertInto('images').values({ name: 'bench', docker_ref: 'x', jupyter_port: 8888 }).returning('id').executeTakeFirstOrThrow();
  await bulkEnvironments(db, { count: ROWS, ownerIds: userIds, workspaceIds: wsIds, workspaceEvery: 5, imageId: image.id, tieEvery: 2, prefix: 'env-b' });
  await sql`vacuum analyze`.execute(db);
  const statements: CompiledQuery[] = [];
  const plugin: KyselyPlugin = {
    transformQuery: (args) => (statements.push(db.getExecutor().compileQuery(args.node, args.queryId)), args.node),
    transformResult: async (args) => args.result,
  };
  const who = { admin: { userId: 1, name: 'admin', role: 'admin' as const }, member: { userId: userIds[0]!, name: 'user1', role: 'user' as const } };
  await listVisible(db, who.admin, { limit: 20, offset: 0 }); // the first fold
  await new Promise((r) => setTimeout(r, 2000));
  for (const page of PAGES) {
    for (const [label, p] of Object.entries(who)) {
      statements.length = 0;
      await listVisible(db.withPlugin(plugin), p, { limit: 20, offset: (page - 1) * 20 });
      for (const s of statements) {
        const plan = await db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain (analyze, buffers) ${s.sql}`, [...s.parameters]));
        console.log(`--- ${label} page ${page}\n${s.sql}\n${plan.rows.map((r) => r['QUERY PLAN']).join('\n')}\n`);
      }
    }
  }
} finally {
  await close();
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
