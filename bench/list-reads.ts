import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import pg from 'pg';
import { sql } from 'kysely';
import { openDatabase } from '../controller/db/database.js';
import { insertToken } from '../controller/users/users.repo.js';
import { median, sleep, writeFigures } from './bench-util.js';
import { bulkEnvironments } from './seed-environments.js';

// Environment reads at fleet scale (issue 12, item 5): seeds ~100,000 environments (one bulk
// INSERT, 1,000 users, 50 workspaces of 6 members) into a fresh database on a PostgreSQL server,
// starts the controller (`controller/main.ts`, in a child process) on it, and measures through
// the real HTTP API at CONCURRENCY requests in flight: the admin's list page 1, 100 and 4,000
// (page_size 20), a workspace member's page 1, and detail by id; plus a bare Hono GET in the same
// run. Prints req/s, p50 and p99 (the median of ROUNDS rounds) and writes bench/out/list-reads.json.
// Run: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:54329/postgres npx tsx bench/list-reads.ts [rows]
// (the URL's user must be able to CREATE DATABASE; defaults to REMOTEGPU_TEST_DATABASE_URL).

const SERVER = process.env.BENCH_DATABASE_URL ?? process.env.REMOTEGPU_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:54329/postgres';
const ROWS = Number(process.argv[2] ?? 100_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const HTTP_PORT = Number(process.env.BENCH_HTTP_PORT ?? 31461);
const HONO_PORT = HTTP_PORT + 1;
const ADMIN = 'bench-admin-token-0123456789abcdef';
const LABEL = process.env.BENCH_LABEL ?? 'current';

const dbName = `rgreads_${process.pid}`;
const admin = async (text: string) => {
  const c = new pg.Client({ connectionString: SERVER });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
};
await admin(`CREATE DATABASE ${dbName}`);
const url = new URL(SERVER);
url.pathname = `/${dbName}`;
const children: ChildProcess[] = [];
const stopAll = async () => {
  for (const c of children) c.kill('SIGTERM');
  await sleep(500);
  await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
};

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stopAll().finally(() => process.exit(1)));

try {
  const controller = spawn(process.execPath, ['--import', 'tsx', 'controller/main.ts'], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: url.toString(),
      REMOTEGPU_HTTP_PORT: String(HTTP_PORT),
      REMOTEGPU_HTTP_HOST: '127.0.0.1',
      REMOTEGPU_GRPC_PORT: '0',
      REMOTEGPU_GRPC_INSECURE: '1',
      REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
      REMOTEGPU_SECRET_KEY: 'bench-secret-key-0123456789abcdefghijklmnop',
      REMOTEGPU_LOG_LEVEL: 'warn',
      REMOTEGPU_DATA_DIR: '/tmp',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(controller, spawn(process.execPath, ['--import', 'tsx', 'bench/bare-hono.ts', String(HONO_PORT)], { stdio: 'inherit' }));
  console.log('waiting for the controller and the bare Hono server');
  await waitFor(`http://127.0.0.1:${HTTP_PORT}/healthz`);
  await waitFor(`http://127.0.0.1:${HONO_PORT}/ping`);

  // The controller migrated the database; seed it.
  const { db, close } = await openDatabase({ databaseUrl: url.toString(), dataDir: 'unused' });
  const started = Date.now();
  const users = await sql<{ id: number }>`insert into users (name, role) select 'user' || i, 'user' from generate_series(1, 1000) i returning id`.execute(db);
  const userIds = users.rows.map((r) => r.id);
  const workspaces = await sql<{ id: number }>`insert into workspaces (name, owner_id) select 'ws' || i, ${userIds[0]!} from generate_series(1, 50) i returning id`.execute(db);
  const wsIds = workspaces.rows.map((r) => r.id);
  const members = wsIds.flatMap((w, i) => [0, 1, 2, 3, 4, 5].map((k) => ({ workspace_id: w, user_id: userIds[(i * 6 + k) % userIds.length]! })));
  await db.insertInto('workspace_members').values(members).onConflict((oc) => oc.doNothing()).execute();
  const image = await db.insertInto('images').values({ name: 'bench', docker_ref: 'remotegpu/devbox:1', jupyter_port: 8888 }).returning('id').executeTakeFirstOrThrow();
  await bulkEnvironments(db, { count: ROWS, ownerIds: userIds, workspaceIds: wsIds, workspaceEvery: 5, imageId: image.id, tieEvery: 2, prefix: 'env-b' });
  await sql`vacuum analyze`.execute(db);
  const memberToken = 'rgpu_bench-member-token-0123456789abcdef';
  await insertToken(db, userIds[0]!, 'bench', memberToken);
  const ids = (await db.selectFrom('environments').select('id').where('desired_state', '<>', 'deleted').orderBy(sql`random()`).limit(2000).execute()).map((r) => r.id);
  const live = ids.length;
  await close();
  console.log(`seeded ${ROWS} environments (${live} sampled for detail) over ${userIds.length} users and ${wsIds.length} workspaces in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const base = `http://127.0.0.1:${HTTP_PORT}/api/v1`;
  // One list each, then a pause: the steady state, where the bulk load's tally rows are folded.
  const warm = new http.Agent({ keepAlive: false });
  await get(warm, `${base}/environments`, ADMIN);
  await get(warm, `${base}/environments`, memberToken);
  await sleep(5000);
  const scenarios: { name: string; url: () => string; token?: string }[] = [
    { name: 'bare Hono GET', url: () => `http://127.0.0.1:${HONO_PORT}/ping` },
    { name: 'list page 1 (admin)', url: () => `${base}/environments?page=1&page_size=20`, token: ADMIN },
    { name: 'list page 100 (admin)', url: () => `${base}/environments?page=100&page_size=20`, token: ADMIN },
    { name: 'list page 4000 (admin)', url: () => `${base}/environments?page=4000&page_size=20`, token: ADMIN },
    { name: 'list page 1 status=stopped (admin)', url: () => `${base}/environments?page=1&page_size=20&status=stopped`, token: ADMIN },
    { name: 'list page 1 (workspace member)', url: () => `${base}/environments?page=1&page_size=20`, token: memberToken },
    { name: 'list page 1 (admin), again last', url: () => `${base}/environments?page=1&page_size=20`, token: ADMIN },
    { name: 'detail by id (admin)', url: () => `${base}/environments/${ids[Math.floor(Math.random() * ids.length)]}`, token: ADMIN },
  ];
  const figures: Record<string, { rps: number; p50Ms: number; p99Ms: number; errors: number }> = {};
  for (const s of scenarios) {
    await load(s.url, s.token, 1); // warm-up (JIT, connections, the first fold of the tallies)
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) rounds.push(await load(s.url, s.token));
    figures[s.name] = {
      rps: Math.round(median(rounds.map((x) => x.rps))),
      p50Ms: +median(rounds.map((x) => x.p50)).toFixed(2),
      p99Ms: +median(rounds.map((x) => x.p99)).toFixed(2),
      errors: rounds.reduce((a, x) => a + x.errors, 0),
    };
    const f = figures[s.name]!;
    console.log(`${s.name.padEnd(38)} ${String(f.rps).padStart(7)} req/s  p50 ${f.p50Ms.toFixed(1).padStart(7)} ms  p99 ${f.p99Ms.toFixed(1).padStart(7)} ms${f.errors ? `  ${f.errors} errors` : ''}`);
  }
  const hono = figures['bare Hono GET']!.rps;
  for (const [name, f] of Object.entries(figures)) if (name !== 'bare Hono GET') console.log(`${name.padEnd(38)} ${((100 * f.rps) / hono).toFixed(1)}% of the bare Hono GET`);
  console.log(`wrote ${writeFigures(`list-reads-${LABEL}`, { label: LABEL, rows: ROWS, concurrency: CONCURRENCY, seconds: SECONDS, rounds: ROUNDS, figures })}`);
} finally {
  await stopAll();
}

/** CONCURRENCY loops of GETs for SECONDS: requests per second and latency percentiles (ms). */
async function load(next: () => string, token: string | undefined, seconds = SECONDS) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        const status = await get(agent, next(), token);
        latencies.push(performance.now() - t);
        if (status !== 200) errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { rps: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), errors };
}

function get(agent: http.Agent, target: string, token: string | undefined): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(target, { agent, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
  });
}

async function waitFor(target: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((resolve) => http.get(target, (res) => (res.resume(), resolve(res.statusCode === 200))).on('error', () => resolve(false)));
    if (ok) return;
    await sleep(200);
  }
  throw new Error(`${target} did not answer`);
}
