import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { ControllerConfig } from './config.js';
import { openDatabase, type DatabaseHandle } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { bootstrapAdmin } from './users/bootstrap.js';
import { storedSetting } from './db/settings.js';
import { buildApi } from './api/routes.js';
import { ControllerServices } from './services.js';

export interface RunningController {
  /** Base URL of the REST API, e.g. http://127.0.0.1:8080. */
  readonly httpUrl: string;
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
    const http = await listenHttp(app.fetch, config.httpHost, config.httpPort);
    stops.push(() => closeHttp(http));
    const port = (http.address() as AddressInfo).port;
    const shownHost = config.httpHost === '0.0.0.0' || config.httpHost === '::' ? '127.0.0.1' : config.httpHost;

    services.startLoops();
    logger.info({ httpPort: port, grpcPort, database: database.kind }, 'controller started');
    return {
      httpUrl: `http://${shownHost}:${port}`,
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

function listenHttp(fetch: (req: Request) => Response | Promise<Response>, hostname: string, port: number): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, hostname, port }, () => resolve(server));
    server.once('error', (err) => reject(new Error(`cannot listen for HTTP on ${hostname}:${port}: ${err.message}`)));
  });
}

function closeHttp(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    // Followers of log streams keep connections open; end them so shutdown is prompt.
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
}
