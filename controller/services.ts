import type { Server } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import { configuredPortRanges, type ControllerConfig } from './config.js';
import type { Db } from './db/database.js';
import { EnvironmentsService } from './environments/environments.service.js';
import { remountReadOnly } from './environments/environment-mounts.js';
import { abandonRemovals } from './environments/environment-writes.js';
import { EnvironmentLogs } from './environments/logs.js';
import { EnvironmentObserver } from './environments/observer.js';
import { OwnerEffects } from './environments/owner-effects.js';
import { QueuePlacer } from './environments/queue.js';
import { CapacityIndex } from './environments/capacity-index.js';
import type { AgentPool, HostObserver } from './hosts/types.js';
import { Reconciler } from './reconciler/reconciler.js';
import { WakeSignal } from './environments/wake.js';
import { GrpcAgentPool } from './hosts/agent-pool.js';
import { ControlPlaneService, controlPlaneServer } from './hosts/control-plane.grpc.js';
import { HostsService } from './hosts/hosts.service.js';
import { JoinTokens } from './hosts/join-tokens.js';
import { HostLivenessLoop } from './hosts/liveness.js';
import { HostRegistry } from './hosts/registry.js';
import type { ClusterTrust } from './trust/cluster-trust.js';
import { EnvironmentAccess } from './environments/access-info.js';
import { DatasetsService } from './catalog/datasets.service.js';
import { ImagesService } from './catalog/images.service.js';
import { DatabaseHealth } from './db/health.js';
import { SshKeysService } from './users/ssh-keys.service.js';
import { TerminalsService } from './environments/terminals.service.js';
import { UsersService } from './users/users.service.js';
import { WorkspacesService } from './users/workspaces.service.js';
import { QuotasService } from './quotas/quotas.service.js';
import { ControllerMetrics, type NamedPool } from './metrics/controller-metrics.js';
import { gpusByModel, hostsByStatus } from './hosts/fleet-counts.repo.js';
import { environmentWork } from './environments/work-counts.repo.js';

export interface ServiceDeps {
  readonly db: Db;
  readonly config: ControllerConfig;
  readonly logger: Logger;
  /** The cluster CA, the controller certificate and the gRPC credentials (or plaintext mode). */
  readonly trust: ClusterTrust;
  /**
   * The reconciler's own handle (its pool on PostgreSQL: its pass lock, work list, agent calls'
   * reads, outcomes and the queue's placements); `db` when not given (embedded PGlite: one session).
   */
  readonly reconcilerDb?: Db;
  /** Which engine backs `db` (the reconciler's single-instance lock depends on it). */
  readonly dbKind?: 'pglite' | 'postgres';
  /** Replaces the environments' observer of host reports (tests of the hosts component alone). */
  readonly hostObserver?: HostObserver;
  /** The database pools whose connection counts are metrics (server.ts: the pg pool; none in tests). */
  readonly pools?: readonly NamedPool[];
}

/**
 * The controller's composition root: builds every service once, in dependency order, and hands
 * each one what it needs through its constructor. Data flows one way: the API and the gRPC side
 * call services, services write the database and raise `wake`, and the reconciler, listening to
 * `wake`, makes the agents follow. Routes and gRPC handlers receive this object and call services.
 */
export class ControllerServices {
  /** Raised whenever desired state changes; the reconciler listens. */
  readonly wake = new WakeSignal();
  readonly agents: AgentPool;
  /** Moves environment status on from host reports and host silence. */
  readonly hostObserver: HostObserver;
  readonly trust: ClusterTrust;
  /** Registration and reports of agents (served over gRPC by registerGrpc). */
  readonly registry: HostRegistry;
  /** Marks hosts that stopped reporting offline (one replica at a time). */
  readonly hostLiveness: HostLivenessLoop;
  readonly queue: QueuePlacer;
  /** This process's view of host capacity: picks placement candidates (the database decides). */
  readonly capacityIndex: CapacityIndex;
  readonly reconciler: Reconciler;
  readonly environments: EnvironmentsService;
  readonly environmentLogs: EnvironmentLogs;
  /** Terminals into environments: tickets and open sessions. */
  readonly terminals: TerminalsService;
  /** Admin view of hosts (listing, detail, approve, cordon, drain, remove). */
  readonly hosts: HostsService;
  /** Join tokens an admin manages, and the check of the token a registering agent presents. */
  readonly joinTokens: JoinTokens;
  /** Users, API tokens and authentication by token. */
  readonly users: UsersService;
  readonly workspaces: WorkspacesService;
  readonly sshKeys: SshKeysService;
  /** Per-user and per-workspace limits and their usage (the check runs in each reservation). */
  readonly quotas: QuotasService;
  readonly images: ImagesService;
  readonly datasets: DatasetsService;
  /** Whether the database answers (`GET /readyz`). */
  readonly health: DatabaseHealth;
  /** The ssh command and Jupyter URL of placed environments (the API's access_info). */
  readonly access: EnvironmentAccess;
  /** Prometheus metrics (GET /metrics); the services record into it. */
  readonly metrics: ControllerMetrics;
  /** The bearer token GET /metrics requires (REMOTEGPU_METRICS_TOKEN); undefined: open. */
  readonly metricsToken: string | undefined;
  private readonly reportIntervalMs: number;
  private readonly logger: Logger;

  constructor(deps: ServiceDeps) {
    const { db, config, logger } = deps;
    const child = (component: string) => logger.child({ component });
    const ports = { ssh: config.sshPortRange, jupyter: config.jupyterPortRange };
    this.logger = logger;
    this.reportIntervalMs = config.reportIntervalMs;

    this.trust = deps.trust;
    this.metrics = new ControllerMetrics({
      fleet: { hostsByStatus: () => hostsByStatus(db), gpusByModel: () => gpusByModel(db), environmentWork: () => environmentWork(db) },
      pools: deps.pools,
      logger: child('metrics'),
    });
    const { metrics } = this;
    this.metricsToken = config.metricsToken;
    this.agents = new GrpcAgentPool({ db, config, logger: child('agents'), trust: deps.trust });
    this.hostObserver = deps.hostObserver ?? new EnvironmentObserver({ db, logger: child('observer'), agents: this.agents, wake: this.wake });
    this.joinTokens = new JoinTokens({ db, logger: child('join-tokens'), bootstrapToken: config.joinToken, caPin: () => deps.trust.caPin });
    const { telemetryRefreshMs } = config;
    this.registry = new HostRegistry({ db, logger, trust: deps.trust, joinTokens: this.joinTokens, observer: this.hostObserver, portRanges: configuredPortRanges(config), telemetryRefreshMs });
    // After a start, silence counts from the first pass: every host gets a full timeout to report.
    this.hostLiveness = new HostLivenessLoop({ db, logger, hostTimeoutMs: config.hostTimeoutMs, observer: this.hostObserver, graceAfterStart: true });
    this.capacityIndex = new CapacityIndex(db, config.placementIndexMaxAgeMs);
    const reconcilerDb = deps.reconcilerDb ?? db;
    // The queue is placed by reconciler passes only: on the reconciler's pool.
    this.queue = new QueuePlacer({ db: reconcilerDb, logger: child('queue'), ports, wake: this.wake, index: this.capacityIndex });
    this.reconciler = new Reconciler({
      db: reconcilerDb,
      dbKind: deps.dbKind ?? 'pglite',
      agents: this.agents,
      queue: this.queue,
      wake: this.wake,
      logger: child('reconciler'),
      intervalMs: config.reconcileIntervalMs,
      metrics,
      limits: config.reconcile,
    });
    this.environments = new EnvironmentsService({ db, ports, logger: child('environments'), wake: this.wake, metrics, index: this.capacityIndex });
    this.environmentLogs = new EnvironmentLogs({
      db,
      agents: this.agents,
      logger: child('logs'),
      tokens: (hashes) => this.users.checkTokens(hashes),
      maxPerUser: config.maxFollowsPerUser,
    });
    const terminalLimits = { maxPerUser: config.terminalMaxPerUser, idleTimeoutMs: config.terminalIdleTimeoutMs };
    this.terminals = new TerminalsService({ db, agents: this.agents, logger, tokens: (h) => this.users.checkTokens(h), environment: (p, id) => this.environments.get(p, id), ...terminalLimits });
    this.hosts = new HostsService(db, this.wake, (trx, hostId) => abandonRemovals(trx, hostId, removalAbandoned(hostId)));
    // Keys, disabling and workspace membership reach the environments already there.
    const ownerEffects = new OwnerEffects(this.wake);
    this.users = new UsersService(db, ownerEffects, { authCacheMs: config.authCacheMs });
    this.workspaces = new WorkspacesService(db, ownerEffects);
    this.sshKeys = new SshKeysService(db, ownerEffects);
    this.quotas = new QuotasService(db);
    this.images = new ImagesService(db);
    this.datasets = new DatasetsService(db, { remountReadOnly, wake: () => this.wake.notify() });
    this.health = new DatabaseHealth(db);
    this.access = new EnvironmentAccess(config.jupyterUrlTemplate);
  }

  /** Adds the controller's gRPC services (ControlPlane) to `server`. */
  registerGrpc(server: Server): void {
    server.addService(ControlPlaneService, controlPlaneServer({ registry: this.registry, reportIntervalMs: this.reportIntervalMs, logger: this.logger, metrics: this.metrics }));
  }

  /** Starts the background loops (reconciler, host liveness, controller certificate renewal). */
  startLoops(): void {
    this.trust.start();
    this.reconciler.start();
    this.hostLiveness.start();
  }

  /** Stops the background loops and agent connections. */
  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.hostLiveness.stop();
    this.trust.stop();
    this.agents.close();
  }
}

/** The event of an environment whose host an admin removed before its agent confirmed the removal. */
function removalAbandoned(hostId: string) {
  return {
    kind: 'removal_abandoned',
    message: `Host ${hostId} was removed by an admin before its agent confirmed this removal: the container and its data may remain on that server`,
  } as const;
}
