import { ConfigError } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { describeRestApi } from '../controller/http-server.js';
import { LOCAL_IMAGE, startLocalPlatform } from './local-platform.js';

// `npm start`: the controller and one agent on this machine, connected to each other.

const say = (line: string) => process.stderr.write(`remotegpu: ${line}\n`);
const logger = createLogger({ name: 'remotegpu', level: process.env.REMOTEGPU_LOG_LEVEL ?? 'warn' });

try {
  const platform = await startLocalPlatform(process.env, logger);
  const { controller } = platform;
  say(`REST API on ${describeRestApi(controller)} (OpenAPI: ${controller.httpUrl}/api/v1/openapi.json)`);
  say(`web console on ${controller.httpUrl}/ (sign in with an API token; API docs: ${controller.httpUrl}/api/docs)`);
  if (controller.generatedAdminToken) say(`admin token (shown once, keep it): ${controller.generatedAdminToken}`);
  else say('admin token: the one in REMOTEGPU_BOOTSTRAP_TOKEN (or printed at the first start)');
  if (platform.agent) {
    say(`agent on ${platform.agent.address} using the local Docker engine, GPU mode ${platform.agent.gpuMode}`);
    say(
      process.env.REMOTEGPU_GRPC_INSECURE === '1'
        ? 'WARNING: plaintext gRPC between controller and agent (REMOTEGPU_GRPC_INSECURE=1)'
        : `controller and agent talk mutual TLS; cluster CA ${platform.controller.caPin}`,
    );
    if (platform.fakeGpus) say(`no nvidia-smi here: simulating the GPUs recorded in ${platform.fakeGpus} (development only)`);
    say(`image "${LOCAL_IMAGE.name}" (${LOCAL_IMAGE.dockerRef}) is in the catalog: POST /api/v1/environments with "image": "${LOCAL_IMAGE.name}"`);
  } else {
    say(platform.agentProblem);
  }
  say('Ctrl-C stops both; running environments keep running and are re-adopted at the next start');
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    say('stopping');
    void platform.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
} catch (err) {
  say(err instanceof ConfigError ? err.message : `failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}
