import type { Server } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { ControllerConfig } from './config.js';
import type { Db } from './db/database.js';

export interface ServiceDeps {
  readonly db: Db;
  readonly config: ControllerConfig;
  readonly logger: Logger;
  readonly joinToken: string;
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

  constructor(deps: ServiceDeps) {
    this.db = deps.db;
    this.config = deps.config;
    this.logger = deps.logger;
    this.joinToken = deps.joinToken;
  }

  /** Adds the controller's gRPC services (ControlPlane) to `server`. */
  registerGrpc(_server: Server): void {}

  /** Starts the background loops (reconciler, host liveness). */
  startLoops(): void {}

  /** Stops the background loops and agent connections. */
  async stop(): Promise<void> {}
}
