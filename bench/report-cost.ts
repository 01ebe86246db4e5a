import { X509Certificate } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { createLogger } from '../common/logger.js';
import { createCsr } from '../common/pki.js';
import { loadControllerConfig } from '../controller/config.js';
import type { Db } from '../controller/db/database.js';
import { migrateToLatest } from '../controller/db/migrate.js';
import type { Database } from '../controller/db/schema.js';
import { EnvironmentObserver } from '../controller/environments/observer.js';
import { WakeSignal } from '../controller/environments/wake.js';
import { GrpcAgentPool } from '../controller/hosts/agent-pool.js';
import { JoinTokens } from '../controller/hosts/join-tokens.js';
import type { HostFacts } from '../controller/hosts/model.js';
import { HostRegistry } from '../controller/hosts/registry.js';
import type { ObservedEnvironment } from '../controller/hosts/types.js';
import { ClusterTrust } from '../controller/trust/cluster-trust.js';
import { median, writeFigures } from './bench-util.js';

// What one ReportStatus costs the controller (issue 12, cheap reports): N hosts with G GPUs and E
// running environments each report their unchanged state to the real HostRegistry and
// EnvironmentObserver on a real PostgreSQL server (direct calls, no gRPC), C at a time, for R
// rounds. Prints per round and as medians over the rounds: controller CPU per report (ms), database
// round trips per report (every statement sent, BEGIN and COMMIT included: counted on the pg
// client), and report latency p50/p99. Runs against whatever code is checked out: run it on the
// commit before the change and after, and compare (bench/report-cost.json: medians measured for issue 12).
// Run: REMOTEGPU_TEST_DATABASE_URL=postgres://... npx tsx bench/report-cost.ts [--hosts 1000] [--gpus 8] [--envs 4] [--rounds 5] [--concurrency 32] [--label after]

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const HOSTS = Number(arg('hosts', '1000'));
const GPUS = Number(arg('gpus', '8'));
const ENVS = Number(arg('envs', '4'));
const ROUNDS = Number(arg('rounds', '5'));
const CONCURRENCY = Number(arg('concurrency', '32'));
const LABEL = arg('label', 'current');
const SERVER = process.env.REMOTEGPU_BENCH_DATABASE_URL ?? process.env.REMOTEGPU_TEST_DATABASE_URL;
if (!SERVER) throw new Error('set REMOTEGPU_TEST_DATABASE_URL (or REMOTEGPU_BENCH_DATABASE_URL) to a PostgreSQL server URL whose user may CREATE DATABASE');
const GiB = 2 ** 30;
const logger = createLogger({ name: 'bench', level: 'silent' });

// A fresh database on the server, dropped at the end.
const dbName = `rgbench_${Date.now().toString(36)}`;
const admin = async (text: string) => {
  const c = new pg.Client({ connectionString: SERVER });
  await c.connect();
  await c.query(text);
  await c.end();
};
await admin(`CREATE DATABASE ${dbName}`);
const url = new URL(SERVER);
url.pathname = `/${dbName}`;

let roundTrips = 0;
const pool = new pg.Pool({
  connectionString: url.toString(),
  max: 10,
  types: { getTypeParser: ((oid: number, format?: 'text') => (oid === 20 || oid === 1700 ? Number : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser },
});
// A connection error must not crash the bench (as in openDatabase); every statement a client sends is one round trip.
pool.on('error', () => {});
pool.on('connect', (client) => {
  client.on('error', () => {});
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    roundTrips++;
    return query(...args);
  };
});
const db: Db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });

try {
  await migrateToLatest(db);
  const config = loadControllerConfig({ REMOTEGPU_DATA_DIR: 'memory://', REMOTEGPU_JOIN_TOKEN: 'bench-join-token-0123456789', REMOTEGPU_SECRET_KEY: 'bench-secret-key-0123456789abcdef0123456789', REMOTEGPU_LOG_LEVEL: 'silent' });
  const trust = await ClusterTrust.create({ db, config, logger });
  const joinTokens = new JoinTokens({ db, logger, bootstrapToken: config.joinToken, caPin: () => trust.caPin });
  const agents = new GrpcAgentPool({ db, config, logger, trust });
  const observer = new EnvironmentObserver({ db, logger, agents, wake: new WakeSignal() });
  const registry = new HostRegistry({ db, logger, trust, joinTokens, observer });

  const user = await db.insertInto('users').values({ name: 'bench' }).returning('id').executeTakeFirstOrThrow();
  const image = await db.insertInto('images').values({ name: 'img', docker_ref: 'img' }).returning('id').executeTakeFirstOrThrow();

  interface Host {
    id: string;
    cert: X509Certificate;
    facts: HostFacts;
    environments: ObservedEnvironment[];
    seq: number;
  }
  const hosts: Host[] = [];
  const t0 = performance.now();
  for (let h = 0; h < HOSTS; h++) {
    const name = `bench-${h}`;
    const facts: HostFacts = {
      hostname: name, publicAddress: `10.1.${h >> 8}.${h & 255}`, agentAddress: `10.1.${h >> 8}.${h & 255}:9091`, agentVersion: '0.1.0', os: 'Ubuntu 22.04', kernel: '6.5',
      cpuModel: 'EPYC', cpuCores: 128, memoryBytes: 1024 * GiB, diskTotalBytes: 4096 * GiB, diskFreeBytes: 4000 * GiB, diskReserveBytes: 0, diskPressure: false,
      gpus: Array.from({ length: GPUS }, (_, i) => ({ index: i, uuid: `GPU-${name}-${i}`, model: 'NVIDIA H100 80GB HBM3', memoryBytes: 80 * GiB, memoryUsedBytes: 0, utilizationPercent: 0, temperatureC: 35, pciBusId: `0000:${i}`, health: 'healthy' as const, healthReason: '', migEnabled: false })),
      gpuCondition: '', driverVersion: '535', cudaVersion: '12.2', gpuMode: 'nvidia', machineId: `m-${h}`, publishAddress: '0.0.0.0', busyPorts: [22], ephemeralPorts: null,
    };
    const { csrPem } = await createCsr(name);
    const reg = await registry.register({ joinToken: 'bench-join-token-0123456789', csrPem, facts });
    const environments: ObservedEnvironment[] = [];
    for (let e = 0; e < ENVS; e++) {
      const id = `env-${h}-${e}`;
      await db
        .insertInto('environments')
        .values({
          id, owner_id: user.id, workspace_id: null, name: id, image_id: image.id, image: 'img', image_ref: 'img', image_ssh_port: 22, image_jupyter_port: null, image_data_path: '/root/workspace',
          cpu: 1, memory_bytes: GiB, gpu: 0, storage_bytes: GiB, gpu_model: null, desired_state: 'running', status: 'running', host_id: reg.hostId,
          reserved_cpu: 1, reserved_memory_bytes: GiB, reserved_storage_bytes: GiB, ssh_port: null, jupyter_port: null, jupyter_token: 't', idempotency_key: null,
          spec_generation: 1, applied_generation: 1, observed_state: 'running', observed_at: new Date(Date.now() - 60_000), started_at: new Date(Date.now() - 120_000),
        })
        .execute();
      environments.push({ envId: id, state: 'running', containerId: `c-${id}`, specHash: 'h', gpuUuids: [], exitCode: 0, oomKilled: false, startedAt: new Date(Date.now() - 120_000), finishedAt: null, message: '', sshReady: true, storageUsedBytes: null, rootfsUsedBytes: null, stopReason: '', sshHostKeys: [] });
    }
    hosts.push({ id: reg.hostId, cert: new X509Certificate(reg.certificatePem), facts, environments, seq: 0 });
  }
  console.log(`${LABEL}: ${HOSTS} hosts (${GPUS} GPUs, ${ENVS} environments each) set up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const reportOnce = async (h: Host) => {
    h.seq++;
    await registry.report({
      hostId: h.id,
      proof: { peer: { identity: { kind: 'host', hostId: h.id }, cert: h.cert }, bearer: '' },
      seq: h.seq,
      facts: h.facts,
      environments: h.environments,
      events: [],
      takenAt: new Date(),
    });
  };
  /** Every host reports once, CONCURRENCY at a time; per-report figures. */
  const round = async () => {
    const latencies: number[] = [];
    const trips = roundTrips;
    const cpu = process.cpuUsage();
    const start = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < hosts.length) {
          const h = hosts[next++]!;
          const t = performance.now();
          await reportOnce(h);
          latencies.push(performance.now() - t);
        }
      }),
    );
    const wallMs = performance.now() - start;
    const used = process.cpuUsage(cpu);
    latencies.sort((a, b) => a - b);
    return {
      cpuMsPerReport: (used.user + used.system) / 1000 / hosts.length,
      roundTripsPerReport: (roundTrips - trips) / hosts.length,
      p50Ms: latencies[Math.floor(latencies.length * 0.5)]!,
      p99Ms: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!,
      reportsPerS: hosts.length / (wallMs / 1000),
    };
  };

  await round(); // warm-up: caches, hashes, JIT
  const rounds: Awaited<ReturnType<typeof round>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const res = await round();
    rounds.push(res);
    console.log(`  round ${r + 1}: ${res.cpuMsPerReport.toFixed(3)} ms CPU/report, ${res.roundTripsPerReport.toFixed(2)} round trips/report, p50 ${res.p50Ms.toFixed(2)} ms, p99 ${res.p99Ms.toFixed(2)} ms, ${res.reportsPerS.toFixed(0)} reports/s`);
  }
  const med = (k: keyof (typeof rounds)[number]) => median(rounds.map((r) => r[k]));
  const figures = { label: LABEL, hosts: HOSTS, gpus: GPUS, envs: ENVS, concurrency: CONCURRENCY, rounds, median: { cpuMsPerReport: med('cpuMsPerReport'), roundTripsPerReport: med('roundTripsPerReport'), p50Ms: med('p50Ms'), p99Ms: med('p99Ms'), reportsPerS: med('reportsPerS') } };
  const m = figures.median;
  console.log(`${LABEL} median of ${ROUNDS} rounds: ${m.cpuMsPerReport.toFixed(3)} ms CPU/report, ${m.roundTripsPerReport.toFixed(2)} round trips/report, p50 ${m.p50Ms.toFixed(2)} ms, p99 ${m.p99Ms.toFixed(2)} ms, ${m.reportsPerS.toFixed(0)} reports/s`);
  console.log(`figures: ${writeFigures(`report-cost-${LABEL}`, figures)}`);
  agents.close();
} finally {
  await db.destroy();
  await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
}
