import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runFleetBench, type FleetBenchOptions, type FleetBenchResult } from './run.js';

// npm run bench:fleet -- --hosts 5000 [options]: the fleet bench (see README "Fleet bench").
// Prints the table of the scale issue, each figure also as a ratio to this run's baselines, and
// writes everything as JSON to bench/results/fleet-<hosts>.json.

const { values: a } = parseArgs({
  options: {
    hosts: { type: 'string', default: '100' },
    creates: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
    'create-max-s': { type: 'string', default: '180' },
    fill: { type: 'boolean', default: false },
    envs: { type: 'string', default: '100000' },
    'skip-reads': { type: 'boolean', default: false },
    'read-concurrency': { type: 'string', default: '16' },
    'read-s': { type: 'string', default: '10' },
    'report-interval-ms': { type: 'string', default: '10000' },
    'report-window-s': { type: 'string', default: '30' },
    'report-spread': { type: 'string', default: 'even' },
    insecure: { type: 'boolean', default: false },
    'register-concurrency': { type: 'string', default: '32' },
    'database-url': { type: 'string' },
    'running-timeout-s': { type: 'string', default: '300' },
    'skip-baselines': { type: 'boolean', default: false },
    users: { type: 'string', default: '16' },
    'controller-env': { type: 'string', multiple: true, default: [] },
    out: { type: 'string' },
  },
});

const int = (name: keyof typeof a) => {
  const n = Number(a[name]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got ${String(a[name])}`);
  return n;
};
const spread = a['report-spread'];
if (spread !== 'even' && spread !== 'random' && spread !== 'aligned') throw new Error('--report-spread must be even, random or aligned');

const options: FleetBenchOptions = {
  hosts: int('hosts'),
  // Default: 1,000, at most half the fleet's GPUs (room to spare, so no create is refused for capacity).
  creates: a.creates === undefined ? Math.min(1000, int('hosts') * 4) : int('creates'),
  concurrency: int('concurrency'),
  createMaxSeconds: int('create-max-s'),
  fill: a.fill!,
  envs: int('envs'),
  skipReads: a['skip-reads']!,
  readConcurrency: int('read-concurrency'),
  readSeconds: int('read-s'),
  reportIntervalMs: int('report-interval-ms'),
  reportWindowS: int('report-window-s'),
  reportSpread: spread,
  insecure: a.insecure!,
  registerConcurrency: int('register-concurrency'),
  databaseUrl: a['database-url'],
  runningTimeoutS: int('running-timeout-s'),
  skipBaselines: a['skip-baselines']!,
  users: Math.max(1, int('users')),
  controllerEnv: Object.fromEntries((a['controller-env'] ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
  log: (line) => console.error(`[fleet ${new Date().toISOString().slice(11, 19)}] ${line}`),
};

const result = await runFleetBench(options);
console.log(table(result));
const file = path.resolve(a.out ?? `bench/results/fleet-${options.hosts}.json`);
mkdirSync(path.dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify({ measuredAt: new Date().toISOString(), ...result }, null, 2)}\n`);
console.log(`written to ${path.relative(process.cwd(), file)}`);
process.exit(result.correctness.ok ? 0 : 1);

function table(r: FleetBenchResult): string {
  const b = r.baselines;
  const hono = b.honoGetPerSecond ?? NaN;
  const pgs = b.postgresInsertsPerSecond ?? NaN;
  // A latency in units of one bare Hono GET (its mean time at the same concurrency) and of one insert.
  const honoMs = (1000 * r.options.concurrency) / hono;
  const pgMs = (1000 * 8) / pgs;
  const f = (n: number, digits = 1) => (Number.isFinite(n) ? (Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(digits)) : '—');
  const s = (ms: number) => (ms >= 1000 ? `${f(ms / 1000, 2)} s` : `${f(ms)} ms`);
  const rate = (label: string, v: number) => [label, f(v), `${f((v / hono) * 1000, 2)} ‰`, `${f((v / pgs) * 1000, 2)} ‰`];
  const lat = (label: string, p50: number, p99: number) => [label, `${s(p50)} / ${s(p99)}`, `${f(p50 / honoMs)} / ${f(p99 / honoMs)} ×`, `${f(p50 / pgMs)} / ${f(p99 / pgMs)} ×`];
  const rows: string[][] = [
    ['figure', `${r.registration.hosts.toLocaleString('en')} hosts`, 'vs Hono GET', 'vs PG insert'],
    ['registration (hosts/s)', `${f(r.registration.perSecond)} (${f(r.registration.seconds)} s)`, `${f((r.registration.perSecond / hono) * 1000, 2)} ‰`, `${f((r.registration.perSecond / pgs) * 1000, 2)} ‰`],
    rate('one-GPU creates/s through REST', r.creates.perSecond),
    lat('create latency p50 / p99', r.creates.latencyMs.p50, r.creates.latencyMs.p99),
    lat('create → running p50 / p99', r.running.createToRunningMs.p50, r.running.createToRunningMs.p99),
    ['controller CPU for reports', `${f(r.reports.controllerCpuPercent)}% of a core (PostgreSQL ${f(r.reports.postgresCpuPercent ?? NaN)}%)`, '', ''],
    lat('ReportStatus p50 / p99 (idle)', r.reports.latencyMs.p50, r.reports.latencyMs.p99),
    lat('ReportStatus p50 / p99 (creating)', r.reports.duringCreatesMs.p50, r.reports.duringCreatesMs.p99),
    ['controller RSS after creates / peak', `${f(r.rssBytes.afterCreates / 2 ** 20, 0)} / ${f(r.rssBytes.peak / 2 ** 20, 0)} MB`, '', ''],
  ];
  if (r.reads) {
    const rd = r.reads;
    rows.push(rate(`list page 1 req/s (${rd.totalExpected.toLocaleString('en')} rows)`, rd.listPage1.perSecond), lat('list page 1 p50 / p99', rd.listPage1.p50, rd.listPage1.p99));
    rows.push(rate(`list page ${rd.deepPage.page} req/s`, rd.deepPage.perSecond), lat(`list page ${rd.deepPage.page} p50 / p99`, rd.deepPage.p50, rd.deepPage.p99));
    rows.push(rate('detail by id req/s', rd.detail.perSecond), lat('detail p50 / p99', rd.detail.p50, rd.detail.p99));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => `| ${row.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const c = r.correctness;
  return [
    `fleet bench: ${r.registration.hosts} hollow hosts × 8 H100 over ${r.grpcMode}, ${r.creates.created} creates (c=${r.options.concurrency}), ${r.machine.cpus} CPUs shared (${r.machine.note}); wall ${f(r.wallSeconds)} s`,
    line(rows[0]!),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.slice(1).map(line),
    `baselines of this run: bare Hono GET ${f(hono)} req/s at concurrency ${r.options.concurrency} (mean ${f(honoMs)} ms), PostgreSQL ${f(pgs)} single-row inserts/s on 8 connections (mean ${f(pgMs, 2)} ms); ‰: per mille of that rate, ×: multiples of that mean time`,
    `registration CPU per host: controller ${f(r.registration.controllerCpuMsPerHost)} ms, hollow side ${f(r.registration.benchCpuMsPerHost)} ms; hollow process RSS ${f(r.rssBytes.hollowProcess / 2 ** 20, 0)} MB`,
    `creates: ${r.creates.created} of ${r.creates.requested} in ${f(r.creates.seconds)} s, ${r.creates.errors} refused, ${r.creates.retried503} retried after a 503, ${r.creates.recoveredAfterLoad} refused ones found made after all; reports failed: ${r.reports.latencyMs.errors} idle, ${r.reports.duringCreatesMs.errors} while creating; hollow event-loop delay p99 ${f(r.reports.latencyMs.hollowEventLoopDelayP99Ms)} ms`,
    `correctness: ${c.ok ? 'ok' : 'FAILED'} — GPUs reserved twice ${c.gpusReservedTwice}, ports reserved twice ${c.portsReservedTwice}, running ${r.running.running}/${r.creates.created}, GPUs used ${c.totalGpus - c.freeGpus}/${c.totalGpus}${c.problems.length ? `; ${c.problems.join('; ')}` : ''}`,
  ].join('\n');
}
