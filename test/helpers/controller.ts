import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadControllerConfig } from '../../controller/config.js';
import { startController, type RunningController } from '../../controller/server.js';
import { createTestDatabase, type DbTarget, type TestDatabase } from './databases.js';
import { freePort } from './docker.js';

export interface TestController {
  readonly controller: RunningController;
  /** What a test agent needs to register with it (startTestAgent's options). */
  readonly agentOptions: { controllerAddress: string; joinToken: string; caPem: string };
  /** Stops the controller, drops its database and removes its data directory. */
  close(): Promise<void>;
}

/**
 * A real controller process's services (HTTP and gRPC on loopback, reconciler every 100 ms) on a
 * fresh database of `target` (a PostgreSQL database, or embedded PGlite in a temporary data
 * directory), with the catalog image `img:1` (Jupyter on 8888). `env` adds or overrides config.
 */
export async function startTestController(
  target: DbTarget,
  tokens: { admin: string; join: string },
  env: Record<string, string> = {},
): Promise<TestController> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-controller-'));
  let database: TestDatabase | undefined;
  let controller: RunningController | undefined;
  const close = async () => {
    await controller?.stop();
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (target.name === 'postgres') database = await createTestDatabase(target);
    const config = loadControllerConfig({
      DATABASE_URL: database?.url,
      REMOTEGPU_DATA_DIR: dir,
      REMOTEGPU_HTTP_PORT: String(await freePort()),
      REMOTEGPU_HTTP_HOST: '127.0.0.1',
      REMOTEGPU_GRPC_PORT: String(await freePort()),
      REMOTEGPU_GRPC_HOST: '127.0.0.1',
      REMOTEGPU_BOOTSTRAP_TOKEN: tokens.admin,
      REMOTEGPU_JOIN_TOKEN: tokens.join,
      REMOTEGPU_RECONCILE_INTERVAL_MS: '100',
      REMOTEGPU_AGENT_TIMEOUT_MS: '2000',
      ...env,
    });
    controller = await startController(config, pino({ level: 'silent' }));
    await controller.database.db.insertInto('images').values({ name: 'img:1', docker_ref: 'img:1', jupyter_port: 8888 }).execute();
    const agentOptions = { controllerAddress: `127.0.0.1:${controller.grpcPort}`, joinToken: tokens.join, caPem: controller.services.trust.ca.certPem };
    return { controller, agentOptions, close };
  } catch (err) {
    await close();
    throw err;
  }
}
