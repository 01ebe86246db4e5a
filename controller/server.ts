import { randomBytes } from 'node:crypto';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { ControllerConfig } from './config.js';
import { openDatabase, type DatabaseHandle } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { bootstrapAdmin } from './users/bootstrap.js';
import { storedSetting } from './db/settings.js';
import { buildApi } from './api/routes.js';
import { ControllerServices } from './services.js';
import { listenHttp, readTlsFiles } from './http-server.js';

export interface RunningController {
  /** Base URL of the REST API as a client here reaches it: http://127.0.0.1:8080, https:// with TLS. */
  readonly httpUrl: string;
  /** Where the REST API listens, HOST:PORT (0.0.0.0:8080 = all interfaces); see describeRestApi. */
  readonly httpListen: string;
  /** Port of the ControlPlane gRPC server. */
  readonly grpcPort: number;
  /** Join token agents must present (configured or generated now). */
  readonly joinToken: string;
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
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
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
    const joinToken = config.joinToken ?? (await storedSetting(database.db, 'join_token', () => randomBytes(24).toString('base64url')));

    const services = new ControllerServices({ db: database.db, dbKind: database.kind, config, logger, joinToken });
    stops.push(() => services.stop());

    const grpc = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
    services.registerGrpc(grpc);
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpc.bindAsync(`${config.grpcHost}:${config.grpcPort}`, ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(new Error(`cannot listen for gRPC on ${config.grpcHost}:${config.grpcPort}: ${err.message}`)) : resolve(port),
      ),
    );
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            grpc.forceShutdown();
            resolve();
          }, 2000);
          grpc.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        }),
    );

    const app = buildApi({ services, logger });
    const http = await listenHttp(app.fetch, config.httpHost, config.httpPort, tls);
    stops.push(() => http.close());

    services.startLoops();
    logger.info({ http: http.listen, tls: tls !== undefined, grpcPort, database: database.kind }, 'controller started');
    return {
      httpUrl: http.url,
      httpListen: http.listen,
      grpcPort,
      joinToken,
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
