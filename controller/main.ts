#!/usr/bin/env node
import { ConfigError } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { loadControllerConfig, type ControllerConfig } from './config.js';
import { startController } from './server.js';
import { describeRestApi } from './http-server.js';

// remotegpu-controller: the production entry point of the controller.

let config: ControllerConfig;
try {
  config = loadControllerConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`remotegpu-controller: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const logger = createLogger({ name: 'controller', level: config.logLevel });
try {
  const controller = await startController(config, logger);
  if (controller.generatedAdminToken) {
    process.stderr.write(`remotegpu-controller: admin API token (shown once): ${controller.generatedAdminToken}\n`);
  }
  process.stderr.write(
    `remotegpu-controller: cluster CA ${controller.caPin}; give agents a join token from POST /api/v1/admin/join-tokens` +
      `${config.joinToken ? ' (or the bootstrap REMOTEGPU_JOIN_TOKEN followed by @' + controller.caPin + ')' : ''}\n`,
  );
  if (config.grpcInsecure) process.stderr.write('remotegpu-controller: WARNING: REMOTEGPU_GRPC_INSECURE=1, plaintext gRPC to agents (development only)\n');
  process.stderr.write(`remotegpu-controller: REST API on ${describeRestApi(controller)}, agents connect to gRPC port ${controller.grpcPort}\n`);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    void controller.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
} catch (err) {
  process.stderr.write(`remotegpu-controller: ${err instanceof Error ? err.message : String(err)}\n`);
  if (err instanceof ConfigError) process.exit(2); // a bad TLS file: the line above says which
  logger.error({ err }, 'controller failed to start');
  process.exit(1);
}
