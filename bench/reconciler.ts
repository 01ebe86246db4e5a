import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { AgentServiceService, type AgentServiceServer } from '../gen/remotegpu/v1/agent.js';
import { EnvironmentStatus, ObservedState } from '../gen/remotegpu/v1/types.js';
import { loadControllerConfig } from '../controller/config.js';
import { startController } from '../controller/server.js';
import { median, sleep, writeFigures } from './bench-util.js';

// The reconciler under load: the real controller (REST, placement, reconciler) on a real PostgreSQL
// server, N hosts whose agents are one in-process gRPC AgentService answering ApplyEnvironment at
// once (or after --apply-ms), and creates through REST from --concurrency clients while the
// reconciler applies them. Prints environments reconciled to running per second while creates flow
// and after, create latency (POST to 201) and create→running latency (POST sent to the row's
// running, as recorded by the controller) p50/p99; medians of
// --runs runs. Run: REMOTEGPU_BENCH_DATABASE_URL=postgres://USER@HOST:PORT/postgres
//   npx tsx bench/reconciler.ts --hosts 1000 --envs 2000 [--concurrency 32] [--apply-ms 0] [--runs 3]
// Then a backlog phase measures the reconciler alone: as many environments inserted at once, placed
// round-robin on the hosts (no placement), one wake, time until all run (environments per second).
// Extra controller settings pass through the environment (REMOTEGPU_RECONCILER_DB_POOL_SIZE, ...).

const { values: args } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1000' },
    envs: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '32' },
    'apply-ms': { type: 'string', default: '0' },
    runs: { type: 'string', default: '3' },
    label: { type: 'string', default: 'reconciler' },
    backlog: { type: 'string' },
  },
});
const HOSTS = Number(args.hosts);
const ENVS = Number(args.envs);
const CONCURRENCY = Number(args.concurrency);
const APPLY_MS = Number(args['apply-ms']);
const RUNS = Number(args.runs);
/** Environments of the backlog phase (default: as many as --envs). */
const BACKLOG = Number(args.backlog ?? args.envs);
const SERVER = process.env.REMOTEGPU_BENCH_DATABASE_URL ?? process.env.REMOTEGPU_TEST_DATABASE_URL ?? '';
if (!SERVER) throw new Error('set REMOTEGPU_BENCH_DATABASE_URL (a PostgreSQL server whose user may CREATE DATABASE)');
const ADMIN = `rgpu_bench-admin-${randomBytes(8).toString('hex')}`;

/** One AgentService for every hollow host: applies answer `running` after APPLY_MS. */
async function startHollowAgents(): Promise<{ address: string; applies: () => number; close: () => void }> {
  let applies = 0;
  const running = (envId: string) => EnvironmentStatus.fromPartial({ envId, state: ObservedState.OBSERVED_STATE_RUNNING, startedAtMs: Date.now(), sshReady: true });
  const impl: Partial<AgentServiceServer> = {
    applyEnvironment: (call, cb) => {
      applies++;
      const answer = () => cb(null, { status: running(call.request.spec!.envId), action: 'created' });
      if (APPLY_MS > 0) setTimeout(answer, APPLY_MS);
      else answer();
    },
    stopEnvironment: (call, cb) => cb(null, { status: undefined }),
    removeEnvironment: (call, cb) => cb(null, { removed: true }),
    inspectEnvironment: (call, cb) => cb(null, { status: running(call.request.envId) }),
  };
  const server = new Server();
  server.addService(AgentServiceService, impl as AgentServiceServer);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, applies: () => applies, close: () => server.forceShutdown() };
}

async function adminQuery(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: SERVER });
  await c.connect();
  await c.query(text).finally(() => c.end());
}

const pct = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

interface RunFigures {
  createsPerS: number;
  runningPerSWhileCreating: number;
  runningPerSAfter: number;
  createP50Ms: number;
  p50Ms: number;
  after201P50Ms: number;
  after201P99Ms: number;
  p99Ms: number;
  totalS: number;
  createsAnswered503: number;
  backlogRunningPerS: number;
  backlogP50Ms: number;
}

/** BACKLOG environments inserted placed (round-robin on the hosts) in one statement, one wake: until all run. */
async function backlogPhase(db: pg.Client, controller: Awaited<ReturnType<typeof startController>>): Promise<{ perS: number; p50Ms: number }> {
  const t0 = Date.now();
  await db.query(
    `insert into environments (id, owner_id, name, image_id, image, image_ref, image_ssh_port, image_jupyter_port, image_data_path, cpu, memory_bytes, storage_bytes,
       desired_state, status, host_id, jupyter_token)
     select 'env-bl' || lpad(i::text, 7, '0'), t.owner_id, 'bl' || i, t.image_id, t.image, t.image_ref, t.image_ssh_port, t.image_jupyter_port, t.image_data_path, 1, 2^30, 2^30,
       'running', 'creating', 'host-' || lpad((1 + i % $2::int)::text, 6, '0'), 't'
     from generate_series(1, $1::int) i, (select * from environments limit 1) t`,
    [BACKLOG, HOSTS],
  );
  controller.services.wake.notify();
  for (;;) {
    const r = await db.query<{ n: string }>(`select count(*) as n from environments where id like 'env-bl%' and status = 'running'`);
    if (Number(r.rows[0]!.n) >= BACKLOG) break;
    if (Date.now() - t0 > 600_000) throw new Error(`backlog: only ${r.rows[0]!.n} of ${BACKLOG} running after 10 minutes`);
    await sleep(50);
  }
  const tDone = Date.now();
  const rows = (await db.query<{ updated_at: Date }>(`select updated_at from environments where id like 'env-bl%'`)).rows;
  const latencies = rows.map((r) => r.updated_at.getTime() - t0).sort((a, b) => a - b);
  return { perS: BACKLOG / ((tDone - t0) / 1000), p50Ms: pct(latencies, 50) };
}

async function runOnce(): Promise<RunFigures> {
  const name = `rgbench_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const url = new URL(SERVER);
  url.pathname = `/${name}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-bench-recon-'));
  const agents = await startHollowAgents();
  const config = loadControllerConfig({
    ...process.env,
    DATABASE_URL: url.toString(),
    REMOTEGPU_DATA_DIR: dir,
    REMOTEGPU_HTTP_PORT: '0',
    REMOTEGPU_HTTP_HOST: '127.0.0.1',
    REMOTEGPU_GRPC_PORT: '0',
    REMOTEGPU_GRPC_HOST: '127.0.0.1',
    REMOTEGPU_GRPC_INSECURE: '1',
    REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
    REMOTEGPU_SECRET_KEY: 'bench-secret-key-0123456789abcdefghijklmnop',
    // Hollow hosts do not report: never offline during the run.
    REMOTEGPU_HOST_TIMEOUT_MS: '3600000',
  });
  const controller = await startController(config, pino({ level: 'silent' }));
  const db = new pg.Client({ connectionString: url.toString() });
  await db.connect();
  try {
    await db.query(`
      insert into hosts (id, hostname, public_address, agent_address, cpu_cores, memory_bytes, disk_total_bytes, disk_free_bytes, last_report_at)
      select 'host-' || lpad(i::text, 6, '0'), 'h' || i, '127.0.0.1', $1, 128, 2^40, 2^44, 2^44, now() from generate_series(1, $2::int) i`, [agents.address, HOSTS]);
    await db.query(`
      insert into host_gpus (host_id, uuid, index, model, memory_bytes)
      select 'host-' || lpad(i::text, 6, '0'), 'GPU-' || i || '-' || g, g, 'NVIDIA H100 80GB HBM3', 85520809984
      from generate_series(1, $1::int) i, generate_series(0, 7) g`, [HOSTS]);
    await db.query(`insert into images (name, docker_ref) values ('img', 'img')`);

    const sentAt = new Map<string, number>();
    const createMs: number[] = [];
    const answeredAt = new Map<string, number>();
    let next = 0;
    let unavailable = 0;
    const t0 = Date.now();
    const creator = async () => {
      for (let i = next++; i < ENVS; i = next++) {
        const sent = Date.now();
        let res: Response;
        let body: { data?: { env_id: string } };
        // A 503 (no database connection within REMOTEGPU_DB_CONNECT_TIMEOUT_MS) is retried, as clients do.
        for (;;) {
          res = await fetch(`${controller.httpUrl}/api/v1/environments`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ name: `b${i}`, image: 'img', cpu: 1, memory: 2 ** 30, gpu: 1, storage: 2 ** 30 }),
          });
          body = (await res.json()) as { data?: { env_id: string } };
          if (res.status !== 503) break;
          unavailable++;
          await sleep(100);
        }
        if (res.status !== 201 || !body.data) throw new Error(`create answered ${res.status}: ${JSON.stringify(body)}`);
        sentAt.set(body.data.env_id, sent);
        answeredAt.set(body.data.env_id, Date.now());
        createMs.push(Date.now() - sent);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, creator));
    const tCreated = Date.now();
    for (;;) {
      const r = await db.query<{ n: string }>(`select count(*) as n from environments where status = 'running'`);
      if (Number(r.rows[0]!.n) >= ENVS) break;
      if (Date.now() - tCreated > 600_000) throw new Error(`only ${r.rows[0]!.n} of ${ENVS} running after 10 minutes`);
      await sleep(50);
    }
    const tDone = Date.now();
    const rows = (await db.query<{ id: string; updated_at: Date }>(`select id, updated_at from environments where status = 'running'`)).rows;
    const backlog = await backlogPhase(db, controller);
    const latencies = rows.map((r) => r.updated_at.getTime() - sentAt.get(r.id)!).sort((a, b) => a - b);
    createMs.sort((a, b) => a - b);
    // From the 201 to running: the reconciler's share (negative: running before the client read the 201).
    const after201 = rows.map((r) => r.updated_at.getTime() - answeredAt.get(r.id)!).sort((a, b) => a - b);
    const whileCreating = rows.filter((r) => r.updated_at.getTime() <= tCreated).length;
    return {
      createsPerS: ENVS / ((tCreated - t0) / 1000),
      runningPerSWhileCreating: whileCreating / ((tCreated - t0) / 1000),
      runningPerSAfter: tDone > tCreated ? (ENVS - whileCreating) / ((tDone - tCreated) / 1000) : NaN,
      createP50Ms: pct(createMs, 50),
      p50Ms: pct(latencies, 50),
      after201P50Ms: pct(after201, 50),
      after201P99Ms: pct(after201, 99),
      p99Ms: pct(latencies, 99),
      totalS: (tDone - t0) / 1000,
      createsAnswered503: unavailable,
      backlogRunningPerS: backlog.perS,
      backlogP50Ms: backlog.p50Ms,
    };
  } finally {
    await db.end();
    await controller.stop();
    agents.close();
    rmSync(dir, { recursive: true, force: true });
    await adminQuery(`drop database if exists ${name} with (force)`);
  }
}

const runs: RunFigures[] = [];
for (let i = 0; i < RUNS; i++) {
  const r = await runOnce();
  runs.push(r);
  console.log(`run ${i + 1}: ${JSON.stringify(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v * 10) / 10])))}`);
}
const med = (key: keyof RunFigures) => Math.round(median(runs.map((r) => r[key])) * 10) / 10;
const figures = {
  hosts: HOSTS,
  environments: ENVS,
  backlog: BACKLOG,
  concurrency: CONCURRENCY,
  applyMs: APPLY_MS,
  runs: runs.length,
  medians: {
    createsPerS: med('createsPerS'),
    runningPerSWhileCreating: med('runningPerSWhileCreating'),
    runningPerSAfter: med('runningPerSAfter'),
    createP50Ms: med('createP50Ms'),
    createToRunningP50Ms: med('p50Ms'),
    createToRunningP99Ms: med('p99Ms'),
    answeredToRunningP50Ms: med('after201P50Ms'),
    answeredToRunningP99Ms: med('after201P99Ms'),
    totalS: med('totalS'),
    createsAnswered503: med('createsAnswered503'),
    backlogRunningPerS: med('backlogRunningPerS'),
    backlogP50Ms: med('backlogP50Ms'),
  },
};
console.log(JSON.stringify(figures, null, 2));
console.log(`written to ${writeFigures(args.label, figures)}`);
