import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';

// The controller's Prometheus metrics (served at GET /metrics, api/metrics.routes.ts). This folder
// is a leaf: it imports no other controller folder. Values arrive two ways:
// - events, from one-line calls at the boundaries (the HTTP middleware, the environments service,
//   the reconciler pass, the ControlPlane gRPC edge);
// - gauges read at scrape time from the database (one cheap query each, FleetReaders, given by the
//   composition root) and from the pg pools. Nothing here queries per request.
// No label ever holds an environment or host id: routes are templates, reasons are error codes.

/** What the scrape-time gauges read; the composition root (services.ts) wires the queries. */
export interface FleetReaders {
  /** Host count per status (online, offline, cordoned, draining, pending_approval). */
  hostsByStatus(): Promise<readonly { status: string; count: number }[]>;
  /** Present GPUs per model: total, allocated (reserved by an environment), unhealthy. */
  gpusByModel(): Promise<readonly { model: string; total: number; allocated: number; unhealthy: number }[]>;
  /** Queued environments (pending) and environments behind their spec (the reconciler's work). */
  environmentWork(): Promise<{ pending: number; behind: number }>;
}

/** The counts a pg.Pool exposes (totalCount, idleCount, waitingCount) and its size. */
export interface PoolView {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options: { readonly max?: number | undefined };
}

/** A database connection pool to report: `pool` is absent for embedded PGlite (one connection, no pool). */
export interface NamedPool {
  readonly name: string;
  readonly pool: PoolView | undefined;
}

/** Placements: create (REST), queue (the reconciler placing queued environments). */
export type PlacementOperation = 'create' | 'queue';
/** placed; queued (nothing fit, queue: true); replayed (Idempotency-Key); refused (an AppError: reason is its code); failed (anything else). */
export type PlacementOutcome = 'placed' | 'queued' | 'replayed' | 'refused' | 'failed';

const SECONDS_FAST = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SECONDS_SLOW = [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800];

/** Default process metrics (CPU, memory, event loop, GC) carry this prefix. */
export const CONTROLLER_PROCESS_PREFIX = 'remotegpu_controller_';

/**
 * Every metric of one controller, in a registry of its own (tests run several controllers in one
 * process). The methods are the instrumentation points; none throws.
 */
export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly http: Histogram<'method' | 'route' | 'status'>;
  private readonly placements: Counter<'operation' | 'outcome' | 'reason'>;
  private readonly placementSeconds: Histogram<'operation' | 'outcome'>;
  private readonly createToRunning: Histogram;
  private readonly passSeconds: Histogram;
  private readonly controlPlane: Histogram<'method' | 'code'>;

  constructor(deps: { fleet?: FleetReaders | undefined; pools?: readonly NamedPool[]; logger: Logger }) {
    const registers = [this.registry];
    defaultMetrics(this.registry, CONTROLLER_PROCESS_PREFIX);
    this.http = new Histogram({
      name: 'remotegpu_http_request_duration_seconds',
      help: 'REST API requests by method, route template (unmatched for unknown paths) and HTTP status.',
      labelNames: ['method', 'route', 'status'],
      buckets: SECONDS_FAST,
      registers,
    });
    this.placements = new Counter({
      name: 'remotegpu_placements_total',
      help: 'Placements (create: REST creates; queue: queued environments placed by the reconciler) by outcome, and the error code for refused ones (no_capacity, quota_exceeded, ...).',
      labelNames: ['operation', 'outcome', 'reason'],
      registers,
    });
    this.placementSeconds = new Histogram({
      name: 'remotegpu_placement_duration_seconds',
      help: 'Time a create request took to place, queue or refuse its environment.',
      labelNames: ['operation', 'outcome'],
      buckets: SECONDS_FAST,
      registers,
    });
    this.createToRunning = new Histogram({
      name: 'remotegpu_create_to_running_seconds',
      help: 'From an environment\'s creation (queue time included) to its agent reporting it running for the first time.',
      buckets: SECONDS_SLOW,
      registers,
    });
    this.passSeconds = new Histogram({
      name: 'remotegpu_reconcile_pass_duration_seconds',
      help: 'One reconciler pass: placing queued environments, listing its work and every agent call of it.',
      buckets: SECONDS_FAST,
      registers,
    });
    this.controlPlane = new Histogram({
      name: 'remotegpu_controlplane_request_duration_seconds',
      help: 'ControlPlane gRPC calls from agents (Register, ReportStatus, RenewCertificate) by outcome (ok or the error code).',
      labelNames: ['method', 'code'],
      buckets: SECONDS_FAST,
      registers,
    });
    fleetGauges(registers, deps.fleet, deps.logger);
    poolGauges(registers, deps.pools ?? []);
  }

  /** One REST request: `route` is the route template (e.g. /api/v1/environments/:id), never the raw path. */
  httpRequest(method: string, route: string, status: number, seconds: number): void {
    this.http.observe({ method, route, status: String(status) }, seconds);
  }

  /** How one placement ended, and how long it took. */
  placement(operation: PlacementOperation, outcome: PlacementOutcome, seconds: number, reason = 'none'): void {
    this.placements.inc({ operation, outcome, reason });
    this.placementSeconds.observe({ operation, outcome }, seconds);
  }

  /** The reconciler's queue pass placed `placed` queued environments (their wait shows in create→running). */
  queuePlaced(placed: number): void {
    if (placed > 0) this.placements.inc({ operation: 'queue', outcome: 'placed', reason: 'none' }, placed);
  }

  /**
   * Runs a create and records how it ended: the result's outcome, or refused with the
   * AppError's code, or failed. Rethrows what `fn` throws.
   */
  async timePlacement<T>(operation: PlacementOperation, fn: () => Promise<T>, outcomeOf: (result: T) => PlacementOutcome, reasonOf?: (result: T) => string): Promise<T> {
    const started = performance.now();
    try {
      const result = await fn();
      this.placement(operation, outcomeOf(result), (performance.now() - started) / 1000, reasonOf?.(result));
      return result;
    } catch (err) {
      const code = errorCode(err);
      this.placement(operation, code ? 'refused' : 'failed', (performance.now() - started) / 1000, code ?? 'internal');
      throw err;
    }
  }

  /** The agent reported `env` running; the first time (it was `creating`) counts as create→running. */
  reachedRunning(env: { readonly status: string; readonly created_at?: Date }): void {
    if (env.status !== 'creating' || !env.created_at) return;
    this.createToRunning.observe(Math.max(0, (Date.now() - env.created_at.getTime()) / 1000));
  }

  /** Runs one reconciler pass and records its duration (failed passes too). */
  async timePass(pass: () => Promise<void>): Promise<void> {
    const started = performance.now();
    try {
      await pass();
    } finally {
      this.passSeconds.observe((performance.now() - started) / 1000);
    }
  }

  /** One ControlPlane call ended: `code` is 'ok' or the error code. */
  controlPlaneCall(method: string, code: string, seconds: number): void {
    this.controlPlane.observe({ method, code }, seconds);
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

/**
 * prom-client's default process metrics with `prefix`, less the three gauges it names `*_total`
 * (active handles, requests, resources: promtool's lint refuses `_total` on a gauge); their
 * per-type breakdowns (`nodejs_active_handles{type}`, ...) stay.
 */
export function defaultMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(prefix + name);
}

/** The AppError code of `err`, or undefined for anything else. */
function errorCode(err: unknown): string | undefined {
  return err instanceof AppError ? err.code : undefined;
}

/**
 * Hosts by status, GPUs by model, queue depth and reconciler backlog: read at scrape time, one
 * query each, shared by the gauges of one scrape (prom-client collects them concurrently) and by
 * scrapes that arrive while it runs. A failed read (the database is away) leaves its gauges without
 * series for that scrape and is logged once until a read succeeds again.
 */
function fleetGauges(registers: Registry[], fleet: FleetReaders | undefined, logger: Logger): void {
  if (!fleet) return;
  const shared = <T>(what: string, fn: () => Promise<T>) => sharedRead(what, fn, logger);
  const hosts = shared('hosts', () => fleet.hostsByStatus());
  const gpus = shared('gpus', () => fleet.gpusByModel());
  const work = shared('environments', () => fleet.environmentWork());
  new Gauge({
    name: 'remotegpu_hosts',
    help: 'Registered hosts by status (online, offline, cordoned, draining, pending_approval).',
    labelNames: ['status'],
    registers,
    async collect() {
      const rows = await hosts();
      this.reset();
      for (const row of rows ?? []) this.set({ status: row.status }, row.count);
    },
  });
  const gpuGauge = (name: string, help: string, pick: 'total' | 'allocated' | 'unhealthy') =>
    new Gauge({
      name,
      help,
      labelNames: ['model'],
      registers,
      async collect() {
        const rows = await gpus();
        this.reset();
        for (const r of rows ?? []) this.set({ model: r.model }, r[pick]);
      },
    });
  gpuGauge('remotegpu_gpus', 'GPUs present on registered hosts, by model.', 'total');
  gpuGauge('remotegpu_gpus_allocated', 'GPUs reserved by an environment, by model.', 'allocated');
  gpuGauge('remotegpu_gpus_unhealthy', 'GPUs their agent reports unhealthy (lost, needing a reset), by model.', 'unhealthy');
  const workGauge = (name: string, help: string, pick: 'pending' | 'behind') =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const counts = await work();
        this.reset();
        if (counts) this.set(counts[pick]);
      },
    });
  workGauge('remotegpu_environments_pending', 'Queued environments (status pending): the placement queue depth.', 'pending');
  workGauge('remotegpu_reconciler_backlog', "Environments whose spec generation is ahead of what their agent applied (the reconciler's work, due or backing off).", 'behind');
}

/**
 * `fn` behind a function whose calls while a read runs share it (the gauges of one scrape, and
 * scrapes that arrive meanwhile); undefined when the read failed (logged once until one works).
 */
function sharedRead<T>(what: string, fn: () => Promise<T>, logger: Logger): () => Promise<T | undefined> {
  let inFlight: Promise<T | undefined> | undefined;
  let failing = false;
  const read = async (): Promise<T | undefined> => {
    try {
      const value = await fn();
      failing = false;
      return value;
    } catch (err) {
      if (!failing) logger.warn({ what, reason: err instanceof Error ? err.message : String(err) }, 'metrics: a scrape-time read failed; its series are left out until it works');
      failing = true;
      return undefined;
    }
  };
  return () => (inFlight ??= read().finally(() => (inFlight = undefined)));
}

/** pg pool gauges; for PGlite (no pool) only its size, 1. */
function poolGauges(registers: Registry[], pools: readonly NamedPool[]): void {
  if (pools.length === 0) return;
  new Gauge({
    name: 'remotegpu_db_pool_connections',
    help: 'Database connections of the controller\'s pools by state: in_use (checked out) or idle. Absent for embedded PGlite.',
    labelNames: ['pool', 'state'],
    registers,
    collect() {
      this.reset();
      for (const { name, pool } of pools) {
        if (!pool) continue;
        this.set({ pool: name, state: 'in_use' }, pool.totalCount - pool.idleCount);
        this.set({ pool: name, state: 'idle' }, pool.idleCount);
      }
    },
  });
  new Gauge({
    name: 'remotegpu_db_pool_waiting_queries',
    help: 'Queries waiting for a free connection of the pool. Absent for embedded PGlite.',
    labelNames: ['pool'],
    registers,
    collect() {
      this.reset();
      for (const { name, pool } of pools) if (pool) this.set({ pool: name }, pool.waitingCount);
    },
  });
  new Gauge({
    name: 'remotegpu_db_pool_max_connections',
    help: 'Size of each database pool (1 for embedded PGlite, which has one connection).',
    labelNames: ['pool'],
    registers,
    collect() {
      this.reset();
      for (const { name, pool } of pools) this.set({ pool: name }, pool ? (pool.options.max ?? 10) : 1);
    },
  });
}
