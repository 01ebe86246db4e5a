import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pinnedControllerCa } from '../../agent/controller-trust.js';
import { freePortIn, startPrivatePostgres, type PrivatePostgres } from '../../test/helpers/postgres-server.js';
import { cpuPercentOver, postgresCpuSeconds, startControllerProcess } from './controller-process.js';
import { checkCorrectness, postgresInsertBaseline, seedEnvironments, withClient, type Correctness } from './db-side.js';
import { GPUS_PER_HOST, HollowFleet } from './hollow-fleet.js';
import { closedLoop, HttpClient, type LoadResult, type Percentiles } from './http-load.js';
import { createToRunning, runCreates, runReads, setUpTenants, waitRunning, type CreateFigures, type ReadFigures, type RunningFigures } from './workload.js';

// One fleet bench run: PostgreSQL, baselines, the controller as a process, hollow hosts that
// register and report, creates, reads, and the correctness check. Used by cli.ts and the CI smoke.

export interface FleetBenchOptions {
  readonly hosts: number;
  /** One-GPU creates (ignored with `fill`: hosts × GPUs per host). */
  readonly creates: number;
  readonly concurrency: number;
  /** Creating stops after this many seconds even if fewer were made. */
  readonly createMaxSeconds: number;
  /** Create one environment per GPU of the fleet: every GPU must end up used. */
  readonly fill: boolean;
  /** Rows seeded for the read test; 0 or `skipReads` skips it. */
  readonly envs: number;
  readonly skipReads: boolean;
  readonly readConcurrency: number;
  readonly readSeconds: number;
  readonly reportIntervalMs: number;
  /** How long controller CPU and report latency are measured with nothing but reports going on. */
  readonly reportWindowS: number;
  readonly reportSpread: 'even' | 'random' | 'aligned';
  readonly insecure: boolean;
  readonly registerConcurrency: number;
  /** A PostgreSQL server URL whose user may CREATE DATABASE; unset: a private server is started. */
  readonly databaseUrl: string | undefined;
  readonly runningTimeoutS: number;
  readonly skipBaselines: boolean;
  readonly users: number;
  /** Extra controller environment variables (settings of a newer controller). */
  readonly controllerEnv: Record<string, string>;
  readonly log: (line: string) => void;
}

export interface FleetBenchResult {
  readonly options: Omit<FleetBenchOptions, 'log' | 'databaseUrl'>;
  readonly grpcMode: 'mutual TLS' | 'plaintext (REMOTEGPU_GRPC_INSECURE=1)';
  readonly machine: { cpus: number; note: string };
  readonly baselines: { honoGetPerSecond: number | null; honoGetP99Ms: number | null; postgresInsertsPerSecond: number | null };
  readonly registration: { hosts: number; seconds: number; perSecond: number; controllerCpuMsPerHost: number; benchCpuMsPerHost: number };
  readonly reports: { windowS: number; controllerCpuPercent: number; postgresCpuPercent: number | null; latencyMs: Percentiles & { errors: number; hollowEventLoopDelayP99Ms: number }; duringCreatesMs: Percentiles & { errors: number } };
  readonly creates: CreateFigures;
  readonly running: RunningFigures & { waitedS: number };
  readonly rssBytes: { hollowProcess: number; afterRegistration: number; afterCreates: number; afterReads: number | null; peak: number };
  readonly reads: ReadFigures | null;
  readonly correctness: Correctness & { ok: boolean; problems: string[] };
  readonly wallSeconds: number;
}

export async function runFleetBench(o: FleetBenchOptions): Promise<FleetBenchResult> {
  const wall0 = performance.now();
  const run = randomBytes(3).toString('hex');
  const work = mkdtempSync(path.join(tmpdir(), 'rgpu-fleet-'));
  const cleanups: (() => Promise<unknown> | unknown)[] = [() => rmSync(work, { recursive: true, force: true })];
  try {
    const dbUrl = await freshDatabase(o, run, cleanups);
    const baselines = o.skipBaselines ? { honoGetPerSecond: null, honoGetP99Ms: null, postgresInsertsPerSecond: null } : await measureBaselines(dbUrl, o);
    o.log(`baselines: Hono GET ${baselines.honoGetPerSecond} req/s, PostgreSQL ${baselines.postgresInsertsPerSecond} inserts/s`);

    const admin = `bench-admin-${randomBytes(12).toString('hex')}`;
    const joinToken = `bench-join-${randomBytes(12).toString('hex')}`;
    const controller = await startControllerProcess({
      databaseUrl: dbUrl,
      dataDir: path.join(work, 'controller'),
      adminToken: admin,
      joinToken,
      insecure: o.insecure,
      logFile: path.join(work, 'controller.log'),
      env: { REMOTEGPU_REPORT_INTERVAL_MS: String(o.reportIntervalMs), REMOTEGPU_HOST_TIMEOUT_MS: String(Math.max(30_000, 3 * o.reportIntervalMs)), ...o.controllerEnv },
    });
    cleanups.unshift(() => controller.stop());
    o.log(`controller pid ${controller.pid} at ${controller.httpUrl}, gRPC ${controller.grpcAddress} (${o.insecure ? 'plaintext' : 'mutual TLS'})`);
    const http = new HttpClient(controller.httpUrl, Math.max(64, o.concurrency, o.readConcurrency) + 8);
    cleanups.unshift(() => http.close());

    const caPem = o.insecure ? undefined : await pinnedControllerCa(controller.grpcAddress, controller.caPin);
    const [controllerCpu0, benchCpu0] = [controller.cpuSeconds(), process.cpuUsage()];
    const { fleet, registerSeconds } = await HollowFleet.start({ run, hosts: o.hosts, controllerAddress: controller.grpcAddress, joinToken, caPem, insecure: o.insecure, registerConcurrency: o.registerConcurrency });
    cleanups.unshift(() => fleet.close());
    const benchCpu = process.cpuUsage(benchCpu0);
    const registration = {
      hosts: o.hosts,
      seconds: round(registerSeconds),
      perSecond: round(o.hosts / registerSeconds),
      controllerCpuMsPerHost: round(((controller.cpuSeconds() - controllerCpu0) * 1000) / o.hosts),
      benchCpuMsPerHost: round((benchCpu.user + benchCpu.system) / 1000 / o.hosts),
    };
    o.log(`${o.hosts} hosts registered in ${registration.seconds} s (${registration.perSecond}/s; CPU per host: controller ${registration.controllerCpuMsPerHost} ms, hollow side ${registration.benchCpuMsPerHost} ms)`);

    fleet.startReporting(o.reportIntervalMs, o.reportSpread);
    // Steady state first: every host reported once (its connection to the controller is up).
    const warm = await fleet.waitAllReported(Math.max(60_000, 3 * o.reportIntervalMs));
    if (warm < o.hosts) o.log(`only ${warm} of ${o.hosts} hosts had a report answered before the report window`);
    fleet.takeReportStats();
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const pgPort = Number(new URL(dbUrl).port);
    const pg0 = postgresCpuSeconds(pgPort);
    const t0 = performance.now();
    const controllerCpuPercent = await cpuPercentOver(controller.pid, o.reportWindowS * 1000);
    const pg1 = postgresCpuSeconds(pgPort);
    const postgresCpuPercent = pg0 === undefined || pg1 === undefined ? null : round(((pg1 - pg0) / ((performance.now() - t0) / 1000)) * 100);
    loop.disable();
    const reportLatency = { ...fleet.takeReportStats(), hollowEventLoopDelayP99Ms: round(loop.percentile(99) / 1e6) };
    o.log(
      `reports: controller ${controllerCpuPercent}% of a core, PostgreSQL ${postgresCpuPercent ?? '?'}%, ReportStatus p50 ${reportLatency.p50} / p99 ${reportLatency.p99} ms (${reportLatency.errors} errors${reportLatency.firstError ? `: ${reportLatency.firstError}` : ''}); hollow process event-loop delay p99 ${reportLatency.hollowEventLoopDelayP99Ms} ms`,
    );
    const rssAfterRegistration = controller.rssBytes();
    const hollowRss = process.memoryUsage().rss;

    const tenants = await setUpTenants(http, admin, o.users, run);
    const count = o.fill ? o.hosts * GPUS_PER_HOST : o.creates;
    const { figures: creates, created } = await runCreates(http, tenants, { count, concurrency: o.concurrency, maxSeconds: o.createMaxSeconds });
    o.log(`creates: ${creates.created}/${count} in ${creates.seconds} s = ${creates.perSecond}/s, p50 ${creates.latencyMs.p50} / p99 ${creates.latencyMs.p99} ms (${creates.errors} refused${creates.firstError ? `: ${creates.firstError}` : ''})`);
    const waited = await waitRunning(http, admin, created.length, o.runningTimeoutS);
    const running = { ...(await createToRunning(http, admin, created)), waitedS: waited.waitedS };
    const duringCreates = fleet.takeReportStats();
    o.log(`running: ${running.running}/${created.length}, create→running p50 ${running.createToRunningMs.p50} / p99 ${running.createToRunningMs.p99} ms`);
    const rssAfterCreates = controller.rssBytes();

    const check = await checkCorrectness(dbUrl, `hollow-${run}-`, new Set(created.map((c) => c.envId)));
    const problems = correctnessProblems(check, running, created.length, o.fill);
    o.log(problems.length === 0 ? 'correctness: ok' : `correctness: FAILED: ${problems.join('; ')}`);

    let reads: ReadFigures | null = null;
    if (!o.skipReads && o.envs > 0) {
      const reader = tenants[0]!;
      const ids = await seedEnvironments(dbUrl, reader.userId, 'bench-devbox', o.envs);
      const visible = await withClient(dbUrl, async (c) => Number((await c.query('SELECT count(*) AS n FROM environments WHERE owner_id = $1 AND deleted_at IS NULL', [reader.userId])).rows[0].n));
      reads = await runReads(http, reader, ids, visible, { concurrency: o.readConcurrency, seconds: o.readSeconds });
      o.log(`reads over ${visible} rows: page 1 ${reads.listPage1.perSecond}/s p99 ${reads.listPage1.p99} ms; page ${reads.deepPage.page} ${reads.deepPage.perSecond}/s p99 ${reads.deepPage.p99} ms; detail ${reads.detail.perSecond}/s p99 ${reads.detail.p99} ms`);
      if (reads.total !== visible) problems.push(`listing total ${reads.total} but the reader sees ${visible} rows`);
    }
    const result: FleetBenchResult = {
      options: { ...o, log: undefined, databaseUrl: undefined } as unknown as FleetBenchResult['options'],
      grpcMode: o.insecure ? 'plaintext (REMOTEGPU_GRPC_INSECURE=1)' : 'mutual TLS',
      machine: { cpus: (await import('node:os')).cpus().length, note: 'controller, PostgreSQL, hollow agents and load generators share this machine' },
      baselines,
      registration,
      reports: { windowS: o.reportWindowS, controllerCpuPercent, postgresCpuPercent, latencyMs: reportLatency, duringCreatesMs: duringCreates },
      creates,
      running,
      rssBytes: { hollowProcess: hollowRss, afterRegistration: rssAfterRegistration, afterCreates: rssAfterCreates, afterReads: reads ? controller.rssBytes() : null, peak: controller.peakRssBytes() },
      reads,
      correctness: { ...check, ok: problems.length === 0, problems },
      wallSeconds: 0,
    };
    return { ...result, wallSeconds: round((performance.now() - wall0) / 1000) };
  } finally {
    for (const c of cleanups) await Promise.resolve(c()).catch((err: unknown) => o.log(`cleanup: ${(err as Error).message}`));
  }
}

function correctnessProblems(c: Correctness, running: RunningFigures, created: number, fill: boolean): string[] {
  const problems: string[] = [];
  if (c.gpusReservedTwice > 0) problems.push(`${c.gpusReservedTwice} GPUs reserved twice`);
  if (c.portsReservedTwice > 0) problems.push(`${c.portsReservedTwice} (host, port) pairs reserved twice`);
  if (c.envsWithWrongGpuCount > 0) problems.push(`${c.envsWithWrongGpuCount} running environments without exactly their GPUs reserved`);
  if (c.placedWithoutAnswer > 0) problems.push(`${c.placedWithoutAnswer} environments placed that no create was answered with`);
  if (c.reservationsOffHost > 0) problems.push(`${c.reservationsOffHost} reservations on another host than their environment's`);
  if (running.running !== created) problems.push(`${created - running.running} of ${created} created environments not running (${running.notRunningExamples.join(', ')})`);
  if (fill && c.freeGpus > 0) problems.push(`cluster filled but ${c.freeGpus} of ${c.totalGpus} GPUs unused`);
  return problems;
}

/** A fresh database on the given server, or on a private server started for the run. */
async function freshDatabase(o: FleetBenchOptions, run: string, cleanups: (() => unknown)[]): Promise<string> {
  let server = o.databaseUrl;
  if (!server) {
    const pg: PrivatePostgres = await startPrivatePostgres(await freePortIn(31300, 31399));
    cleanups.unshift(() => pg.destroy());
    server = pg.url;
  }
  const name = `fleet_${run}`;
  await withClient(server, (c) => c.query(`CREATE DATABASE ${name}`));
  cleanups.unshift(() => withClient(server, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)));
  const url = new URL(server);
  url.pathname = `/${name}`;
  return url.toString();
}

async function measureBaselines(dbUrl: string, o: FleetBenchOptions) {
  const postgresInsertsPerSecond = await postgresInsertBaseline(dbUrl, 8, 5000);
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('hono-baseline.ts', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (b: Buffer) => {
        const m = /listening (\d+)/.exec(b.toString());
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`Hono baseline exited (${code})`)));
    });
    const http = new HttpClient(`http://127.0.0.1:${port}`, o.concurrency + 8);
    await closedLoop({ concurrency: o.concurrency, durationMs: 1000 }, async () => void (await http.request('GET', '/ping'))); // warm-up
    const r: LoadResult = await closedLoop({ concurrency: o.concurrency, durationMs: 5000 }, async () => void (await http.request('GET', '/ping')));
    http.close();
    return { honoGetPerSecond: r.perSecond, honoGetP99Ms: r.p99, postgresInsertsPerSecond };
  } finally {
    child.kill('SIGTERM');
  }
}

const round = (n: number) => Math.round(n * 10) / 10;
