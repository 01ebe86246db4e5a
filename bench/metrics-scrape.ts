import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { openDatabase } from '../controller/db/database.js';
import { migrateToLatest } from '../controller/db/migrate.js';
import { gpusByModel, hostsByStatus } from '../controller/hosts/fleet-counts.repo.js';
import { environmentWork } from '../controller/environments/work-counts.repo.js';
import { ControllerMetrics } from '../controller/metrics/controller-metrics.js';
import { median, writeFigures } from './bench-util.js';

// What one GET /metrics costs the controller at fleet scale: the scrape-time reads (hosts by
// status, GPUs by model, queue depth and backlog) and the whole exposition, on a PostgreSQL
// database filled with N hosts × 8 GPUs and M environments (a fresh database, dropped after).
// Run: REMOTEGPU_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:54329/postgres npx tsx bench/metrics-scrape.ts [hosts] [environments]

const SERVER = process.env.REMOTEGPU_TEST_DATABASE_URL;
if (!SERVER) throw new Error('set REMOTEGPU_TEST_DATABASE_URL to a PostgreSQL server URL whose user may CREATE DATABASE');
const HOSTS = Number(process.argv[2] ?? 5000);
const ENVS = Number(process.argv[3] ?? 100_000);
const RUNS = 15;

const name = `rgbench_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: SERVER });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(SERVER);
url.pathname = `/${name}`;
const handle = await openDatabase({ databaseUrl: url.toString(), dataDir: 'unused' });
try {
  await migrateToLatest(handle.db);
  const fill = new pg.Client({ connectionString: url.toString() });
  await fill.connect();
  await fill.query(`insert into users (name, role) values ('bench', 'admin')`);
  await fill.query(`insert into images (name, docker_ref) values ('img:1', 'img:1')`);
  await fill.query(`insert into hosts (id, hostname, public_address, agent_address, approved, liveness, registered_at)
    select 'host-' || i, 'h' || i, '10.0.0.1', '10.0.0.1:9091', true, case when i % 50 = 0 then 'offline' else 'online' end, now() from generate_series(1, $1) i`, [HOSTS]);
  await fill.query(`insert into host_gpus (host_id, uuid, index, model, memory_bytes, updated_at)
    select 'host-' || h, 'GPU-' || h || '-' || g, g, case when h % 2 = 0 then 'NVIDIA H100 80GB HBM3' else 'NVIDIA A100-SXM4-80GB' end, 85899345920, now()
    from generate_series(1, $1) h, generate_series(0, 7) g`, [HOSTS]);
  await fill.query(`insert into environments (id, owner_id, name, image_id, image, image_ref, image_ssh_port, image_jupyter_port, image_data_path, cpu, memory_bytes, gpu, storage_bytes,
      desired_state, status, host_id, jupyter_token, spec_generation, applied_generation, created_at, updated_at)
    select 'env-' || i, (select id from users limit 1), 'e' || i, (select id from images limit 1), 'img:1', 'img:1', 22, null, '/root', 1, 1073741824, 1, 1073741824,
      'running', case when i % 100 = 0 then 'pending' else 'running' end, case when i % 100 = 0 then null else 'host-' || (1 + i % $2) end, 't', 1,
      case when i % 200 = 0 then 0 else 1 end, now(), now()
    from generate_series(1, $1) i`, [ENVS, HOSTS]);
  await fill.query(`insert into gpu_reservations (host_id, gpu_uuid, env_id)
    select 'host-' || (1 + i % $2), 'GPU-' || (1 + i % $2) || '-' || ((i / $2) % 8), 'env-' || i from generate_series(1, least($1, $2 * 8)) i where i % 100 <> 0`, [ENVS, HOSTS]);
  await fill.query('analyze');
  await fill.end();

  const metrics = new ControllerMetrics({
    fleet: { hostsByStatus: () => hostsByStatus(handle.db), gpusByModel: () => gpusByModel(handle.db), environmentWork: () => environmentWork(handle.db) },
    pools: [{ name: 'main', pool: handle.pool }],
    logger: pino({ level: 'silent' }),
  });
  const time = async (fn: () => Promise<unknown>) => {
    const samples: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      await fn();
      samples.push(performance.now() - started);
    }
    return Math.round(median(samples) * 10) / 10;
  };
  const figures = {
    hosts: HOSTS,
    gpus: HOSTS * 8,
    environments: ENVS,
    hostsByStatusMs: await time(() => hostsByStatus(handle.db)),
    gpusByModelMs: await time(() => gpusByModel(handle.db)),
    environmentWorkMs: await time(() => environmentWork(handle.db)),
    wholeScrapeMs: await time(() => metrics.scrape()),
    selectOneMs: await time(() => handle.pool!.query('select 1')),
    scrapeBytes: (await metrics.scrape()).body.length,
  };
  console.table(figures);
  console.log(`written to ${writeFigures('metrics-scrape', figures)}`);
} finally {
  await handle.close();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
