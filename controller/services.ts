import type { Server } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { ControllerConfig } from './config.js';
import type { Db } from './db/database.js';
import { EnvironmentsService } from './environments/environments.service.js';
import { EnvironmentLogs } from './environments/logs.js';
import { EnvironmentObserver } from './environments/observer.js';
import { QueuePlacer } from './environments/queue.js';
import type { AgentPool, HostObserver } from './hosts/types.js';
import { Reconciler } from './reconciler/reconciler.js';
import { GrpcAgentPool } from './hosts/agent-pool.js';
import { ControlPlaneService, controlPlaneServer } from './hosts/control-plane.grpc.js';
import { HostsService } from './hosts/hosts.service.js';
import { HostLivenessLoop } from './hosts/liveness.js';
import { HostRegistry } from './hosts/registry.js';

export interface ServiceDeps {
  readonly db: Db;
  readonly config: ControllerConfig;
  readonly logger: Logger;
  readonly joinToken: string;
  /** Which engine backs `db` (the reconciler's single-instance lock depends on it). */
  readonly dbKind?: 'pglite' | 'postgres';
}

/**
 * The controller's composition root: builds every service once and wires them together. Routes
 * and gRPC handlers receive this object and call services; they never touch each other.
 */
export class ControllerServices {
  readonly db: Db;
  readonly config: ControllerConfig;
  readonly logger: Logger;
  readonly joinToken: string;
  readonly environments: EnvironmentsService;
  readonly environmentLogs: EnvironmentLogs;
  readonly reconciler: Reconciler;
  readonly queue: QueuePlacer;
  /** Called by the hosts component on every report and when a host goes offline. */
  hostObserver: HostObserver;
  readonly agents: AgentPool;
  /** Admin view of hosts (listing, detail, cordon, drain, remove). */
  readonly hosts: HostsService;
  /** Marks hosts that stopped reporting offline (one replica at a time). */
  readonly hostLiveness: HostLivenessLoop;

  constructor(deps: ServiceDeps) {
    this.db = deps.db;
    this.config = deps.config;
    this.logger = deps.logger;
    this.joinToken = deps.joinToken;
    this.agents = new GrpcAgentPool({ db: this.db, config: this.config, logger: this.logger.child({ component: 'agents' }) });
    this.hosts = new HostsService(this.db);
    this.hostLiveness = new HostLivenessLoop({
      db: this.db,
      logger: this.logger,
      hostTimeoutMs: this.config.hostTimeoutMs,
      observer: () => this.hostObserver,
    });
    const kick = () => this.reconciler.kick();
    this.queue = new QueuePlacer({
      db: this.db,
      logger: this.logger.child({ component: 'queue' }),
      ports: { ssh: this.config.sshPortRange, jupyter: this.config.jupyterPortRange },
      kick,
    });
    this.reconciler = new Reconciler({
      db: this.db,
      dbKind: deps.dbKind ?? 'pglite',
      agents: this.agents,
      queue: this.queue,
      logger: this.logger.child({ component: 'reconciler' }),
      intervalMs: this.config.reconcileIntervalMs,
    });
    this.environments = new EnvironmentsService({ db: this.db, config: this.config, logger: this.logger.child({ component: 'environments' }), kick });
    this.environmentLogs = new EnvironmentLogs({ db: this.db, agents: this.agents, logger: this.logger.child({ component: 'logs' }) });
    this.hostObserver = new EnvironmentObserver({ db: this.db, logger: this.logger.child({ component: 'observer' }), agents: () => this.agents, kick });
  }

  /** Adds the controller's gRPC services (ControlPlane) to `server`. */
  registerGrpc(server: Server): void {
    const registry = new HostRegistry({ db: this.db, logger: this.logger, joinToken: this.joinToken, observer: () => this.hostObserver });
    server.addService(ControlPlaneService, controlPlaneServer({ registry, reportIntervalMs: this.config.reportIntervalMs, logger: this.logger }));
  }

  /** Starts the background loops (reconciler, host liveness). */
  startLoops(): void {
    this.reconciler.start();
    this.hostLiveness.start();
  }

  /** Stops the background loops and agent connections. */
  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.hostLiveness.stop();
    this.agents.close();
  }
}
