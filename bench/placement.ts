import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { loadControllerConfig } from '../controller/config.js';
import { openDatabase } from '../controller/db/database.js';
import { migrateToLatest } from '../controller/db/migrate.js';
import { buildApi } from '../controller/api/routes.js';
import { ControllerServices } from '../controller/services.js';
import { ClusterTrust } from '../controller/trust/cluster-trust.js';
import { generateToken } from '../controller/users/tokens.js';
import { insertToken } from '../controller/users/users.repo.js';
import { median, writeFigures } from './bench-util.js';

// Placement micro bench: N hosts of 8 GPUs registered in a fresh PostgreSQL database, one
// controller's services (the REST app in process, no socket, the default pool of 10), 64
// concurrent one-GPU creates. Prints creates/s and create latency p50/p99 per host count.
// Run: REMOTEGPU_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:54329/postgres \
//      npx tsx bench/placement.ts [hosts,...] [creates] [concurrency]

const SERVER = process.env.REMOTEGPU_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
if (!SERVER) throw new Error('set REMOTEGPU_TEST_DATABASE_URL to a PostgreSQL server URL whose user may CREATE DATABASE');
const HOSTS = (process.argv[2] ?? '100,1000,5000').split(',').map(Number);
const CREATES = Number(process.argv[3] ?? 600);
const CONCURRENCY = Number(process.argv[4] ?? 64);
const GiB = 2 ** 30;

async function admin(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVER });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function seedHosts(db: Awaited<ReturnType<typeof openDatabase>>['db'], n: number): Promise<void> {
  for (let from = 0; from < n; from += 500) {
    const ids = Array.from({ length: Math.min(500, n - from) }, (_, i) => `host-${String(from + i).padStart(5, '0')}`);
    await db
      .insertInto('hosts')
      .values(ids.map((id) => ({ id, hostname: id, public_address: '10.0.0.1', agent_address: '10.0.0.1:1', cpu_cores: 128, memory_bytes: 2 ** 40, disk_total_bytes: 2 ** 44, disk_free_bytes: 2 ** 44, last_report_at: new Date() })))
      .execute();
    await db
      .insertInto('host_gpus')
      .values(ids.flatMap((id) => Array.from({ length: 8 }, (_, i) => ({ host_id: id, uuid: `GPU-${id}-${i}`, index: i, model: 'NVIDIA H100 80GB HBM3', memory_bytes: 85520809984 }))))
      .execute();
  }
}

async function runOnce(hosts: number): Promise<{ createsPerS: number; p50Ms: number; p99Ms: number; placed: number; refused: number }> {
  const name = `rgbench_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(SERVER!);
  url.pathname = `/${name}`;
  const handle = await openDatabase({ databaseUrl: url.toString(), dataDir: 'unused' });
  let services: ControllerServices | undefined;
  try {
    const db = handle.db;
    await migrateToLatest(db);
    await seedHosts(db, hosts);
    await db.insertInto('images').values({ name: 'img', docker_ref: 'img', jupyter_port: 8888 }).execute();
    const user = await db.insertInto('users').values({ name: 'bench' }).returning('id').executeTakeFirstOrThrow();
    const token = generateToken();
    await insertToken(db, user.id, 'bench', token);
    const logger = pino({ level: 'silent' });
    const config = loadControllerConfig({ REMOTEGPU_SECRET_KEY: 'bench-secret-key-0123456789abcdefghijklmnop' });
    const trust = await ClusterTrust.create({ db, config, logger });
    services = new ControllerServices({ db, config, logger, trust, dbKind: 'postgres' });
    const app = buildApi({ services, logger });
    const create = async (i: number) => {
      const res = await app.request('/api/v1/environments', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `b-${i}`, image: 'img', cpu: 1, memory: GiB, gpu: 1, storage: GiB }),
      });
      await res.text();
      return res.status;
    };
    // A few creates first: connections opened, code warm.
    for (let i = 0; i < 4; i++) await create(-1 - i);
    const latencies: number[] = [];
    let next = 0;
    let placed = 0;
    let refused = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < CREATES) {
          const i = next++;
          const t = performance.now();
          const status = await create(i);
          latencies.push(performance.now() - t);
          if (status === 201) placed++;
          else refused++;
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
    return { createsPerS: CREATES / seconds, p50Ms: at(0.5), p99Ms: at(0.99), placed, refused };
  } finally {
    await services?.stop();
    await handle.close();
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const figures: Record<string, unknown> = {};
console.log(`placement: ${CREATES} one-GPU creates, ${CONCURRENCY} concurrent, ${RUNS} runs per host count (medians)`);
console.log('hosts\tcreates/s\tp50 ms\tp99 ms\tplaced/refused');
for (const hosts of HOSTS) {
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await runOnce(hosts));
  const row = {
    createsPerS: median(runs.map((r) => r.createsPerS)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    runs,
  };
  figures[String(hosts)] = row;
  const last = runs.at(-1)!;
  console.log(`${hosts}\t${row.createsPerS.toFixed(1)}\t\t${row.p50Ms.toFixed(1)}\t${row.p99Ms.toFixed(1)}\t${last.placed}/${last.refused}`);
}
console.log(`written to ${writeFigures('placement', { creates: CREATES, concurrency: CONCURRENCY, figures })}`);
