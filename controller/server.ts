import { Server } from '@grpc/grpc-js';
import { shutdownServer } from '../common/grpc.js';
import type { Logger } from '../common/logger.js';
import { ephemeralOverlapWarnings, readEphemeralRange } from '../common/ports.js';
import { configuredPortRanges, type ControllerConfig } from './config.js';
import { openDatabase, openReconcilerDatabase, type DatabaseHandle } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { bootstrapAdmin } from './users/bootstrap.js';
import { ClusterTrust } from './trust/cluster-trust.js';
import { buildApp } from './app.js';
import { ControllerServices } from './services.js';
import { listenHttp, readTlsFiles } from './http-server.js';

export interface RunningController {
  /** Base URL of the REST API as a client here reaches it: http://127.0.0.1:8080, https:// with TLS. */
  readonly httpUrl: string;
  /** Where the REST API listens, HOST:PORT (0.0.0.0:8080 = all interfaces); see describeRestApi. */
  readonly httpListen: string;
  /** Port of the ControlPlane gRPC server. */
  readonly grpcPort: number;
  /** The pin of the cluster CA ("sha256:<64 hex>") that join tokens carry. */
  readonly caPin: string;
  /**
   * The bootstrap join token as an agent takes it (`REMOTEGPU_JOIN_TOKEN@<caPin>`), when
   * REMOTEGPU_JOIN_TOKEN is set; otherwise admins create join tokens through the API.
   */
  readonly bootstrapJoinToken: string | undefined;
  /** The admin token when it was generated at this start (printed once by the caller). */
  readonly generatedAdminToken: string | undefined;
  readonly database: DatabaseHandle;
  readonly services: ControllerServices;
  /** Stops loops, servers and the database. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a controller: opens and migrates the database, creates the first admin, serves the REST
 * API and the ControlPlane gRPC service, and runs the background loops.
 */
export async function startController(config: ControllerConfig, logger: Logger): Promise<RunningController> {
  const tls = config.httpTls && readTlsFiles(config.httpTls); // a bad file fails before the database opens
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize, connectTimeoutMs: config.dbConnectTimeoutMs });
  const stops: (() => Promise<void>)[] = [() => database.close()];
  const stop = async () => {
    for (const fn of stops.splice(0).reverse()) {
      await fn().catch((err: unknown) => logger.warn({ err }, 'error while stopping'));
    }
  };
  try {
    const applied = await migrateToLatest(database.db);
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
    const boot = await bootstrapAdmin(database.db, config.bootstrapToken);
    const trust = await ClusterTrust.create({ db: database.db, config, logger });
    if (trust.insecure) {
      logger.warn('REMOTEGPU_GRPC_INSECURE=1: plaintext gRPC between controller and agents; anyone on the network can read host traffic and impersonate hosts or the controller (development only)');
    }

    for (const warning of ephemeralOverlapWarnings(configuredPortRanges(config), await readEphemeralRange(), 'the controller\'s machine')) logger.warn(warning);

    // The reconciler's own pool (PostgreSQL): creates queuing for connections must not starve it.
    const reconcilerDatabase = await openReconcilerDatabase(database, { databaseUrl: config.databaseUrl, poolSize: config.reconcilerDbPoolSize, connectTimeoutMs: config.dbConnectTimeoutMs });
    stops.push(() => reconcilerDatabase.close());
    const services = new ControllerServices({ db: database.db, reconcilerDb: reconcilerDatabase.db, dbKind: database.kind, config, logger, trust,
      pools: [
        { name: 'main', pool: database.pool },
        { name: 'reconciler', pool: reconcilerDatabase === database ? undefined : reconcilerDatabase.pool },
      ],
    });
    stops.push(() => services.stop());

    const grpc = await serveGrpc(services, config);
    stops.push(grpc.stop);
    const grpcPort = grpc.port;

    const app = buildApp({ services, logger });
    const http = await listenHttp(app.fetch, config.httpHost, config.httpPort, tls);
    stops.push(() => http.close());

    services.startLoops();
    logger.info({ http: http.listen, tls: tls !== undefined, grpcPort, grpcTls: !trust.insecure, database: database.kind }, 'controller started');
    return {
      httpUrl: http.url,
      httpListen: http.listen,
      grpcPort,
      caPin: trust.caPin,
      bootstrapJoinToken: config.joinToken ? `${config.joinToken}@${trust.caPin}` : undefined,
      generatedAdminToken: boot.generatedToken,
      database,
      services,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Serves the ControlPlane with the cluster trust's credentials (mutual TLS, or plaintext when told). */
async function serveGrpc(services: ControllerServices, config: ControllerConfig): Promise<{ port: number; stop: () => Promise<void> }> {
  const grpc = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  services.registerGrpc(grpc);
  const port = await new Promise<number>((resolve, reject) =>
    grpc.bindAsync(`${config.grpcHost}:${config.grpcPort}`, services.trust.serverCredentials, (err, p) =>
      err ? reject(new Error(`cannot listen for gRPC on ${config.grpcHost}:${config.grpcPort}: ${err.message}`)) : resolve(p),
    ),
  );
  return { port, stop: () => shutdownServer(grpc) };
}
