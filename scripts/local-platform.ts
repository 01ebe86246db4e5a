import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import type { Logger } from '../common/logger.js';
import { loadAgentConfig } from '../agent/config.js';
import { startAgent, dockerFor, type RunningAgent } from '../agent/agent.js';
import { loadControllerConfig } from '../controller/config.js';
import { startController, type RunningController } from '../controller/server.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The image `npm start` builds and registers, and its name in the catalog. */
export const LOCAL_IMAGE = { name: 'devbox:1', dockerRef: 'remotegpu/devbox:1' } as const;
/** Simulated GPUs when this machine has no nvidia-smi: 10 A40s recorded on a real server. */
export const DEFAULT_FAKE_GPUS = path.join(ROOT, 'test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');

/** What keeps one platform apart from others on the same machine (tests, benches, screenshots). */
export interface PlatformPlace {
  /** Its own folder: the data directory is `<dir>/data`. */
  readonly dir: string;
  /** Its own run directory (REMOTEGPU_RUN_DIR). */
  readonly runDir: string;
  /** Its admin's token (REMOTEGPU_BOOTSTRAP_TOKEN). */
  readonly adminToken: string;
  /** Its own Docker label namespace (REMOTEGPU_NAMESPACE). */
  readonly namespace: string;
}

/**
 * The variables of a platform that shares the machine: its own folders, namespace and admin token,
 * HTTP, gRPC and agent ports chosen by the kernel. `extra` adds to or overrides them (report
 * interval, published port ranges, ...).
 */
export function platformEnvAt(place: PlatformPlace, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    PATH: process.env.PATH,
    REMOTEGPU_DATA_DIR: path.join(place.dir, 'data'),
    REMOTEGPU_RUN_DIR: place.runDir,
    REMOTEGPU_HTTP_PORT: '0',
    REMOTEGPU_GRPC_PORT: '0',
    REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
    REMOTEGPU_BOOTSTRAP_TOKEN: place.adminToken,
    REMOTEGPU_NAMESPACE: place.namespace,
    ...extra,
  };
}

export interface LocalPlatform {
  readonly controller: RunningController;
  readonly agent: RunningAgent | undefined;
  /** Why no agent runs ('' when one does). */
  readonly agentProblem: string;
  readonly fakeGpus: string | undefined;
  stop(): Promise<void>;
}

/**
 * The one-machine platform behind `npm start`: a controller (embedded PGlite unless DATABASE_URL
 * is set) and one agent on the local Docker engine, connected over mutual TLS on loopback
 * (plaintext only with REMOTEGPU_GRPC_INSECURE=1). Reads the
 * variables of both processes from `env`; defaults suit one machine (ports published on
 * 127.0.0.1, GPUs simulated from a recorded capture when there is no nvidia-smi).
 */
export async function startLocalPlatform(env: Record<string, string | undefined>, logger: Logger, options: { buildImage?: boolean } = {}): Promise<LocalPlatform> {
  const dataDir = env.REMOTEGPU_DATA_DIR ?? './data';
  // The local agent joins with a bootstrap token that lives only in this process (never printed or
  // stored; the agent keeps its certificate in its data directory and does not need it again).
  const joinToken = env.REMOTEGPU_JOIN_TOKEN ?? randomBytes(24).toString('base64url');
  const controllerConfig = loadControllerConfig({ ...env, REMOTEGPU_JOIN_TOKEN: joinToken, REMOTEGPU_DATA_DIR: path.join(dataDir, 'controller'), REMOTEGPU_HTTP_HOST: env.REMOTEGPU_HTTP_HOST ?? '127.0.0.1', REMOTEGPU_GRPC_HOST: env.REMOTEGPU_GRPC_HOST ?? '127.0.0.1' });
  const controller = await startController(controllerConfig, logger.child({ process: 'controller' }));
  const stops: (() => Promise<void>)[] = [() => controller.stop()];
  const stop = async () => {
    for (const fn of stops.splice(0).reverse()) await fn().catch(() => {});
  };

  try {
    await controller.database.db
      .insertInto('images')
      .values({ name: LOCAL_IMAGE.name, docker_ref: LOCAL_IMAGE.dockerRef, jupyter_port: 8888, description: 'local test image: OpenSSH server and a Jupyter stand-in (built by scripts/build-test-image.sh)' })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();

    const dockerHost = env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
    const dockerProblem = await dockerMissing(dockerFor(dockerHost), dockerHost);
    if (dockerProblem) return { controller, agent: undefined, agentProblem: dockerProblem, fakeGpus: undefined, stop };

    if (options.buildImage !== false) await run('bash', [path.join(ROOT, 'scripts/build-test-image.sh')], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });

    const fakeGpus = env.REMOTEGPU_FAKE_GPUS ?? ((await hasNvidiaSmi(env.REMOTEGPU_NVIDIA_SMI ?? 'nvidia-smi')) ? undefined : DEFAULT_FAKE_GPUS);
    const agentConfig = loadAgentConfig({
      ...env,
      REMOTEGPU_CONTROLLER: `127.0.0.1:${controller.grpcPort}`,
      REMOTEGPU_JOIN_TOKEN: controller.bootstrapJoinToken,
      REMOTEGPU_DATA_DIR: path.join(dataDir, 'agent'),
      REMOTEGPU_AGENT_LISTEN: env.REMOTEGPU_AGENT_LISTEN ?? '127.0.0.1:9091',
      REMOTEGPU_PUBLIC_ADDRESS: env.REMOTEGPU_PUBLIC_ADDRESS ?? '127.0.0.1',
      REMOTEGPU_FAKE_GPUS: fakeGpus,
      REMOTEGPU_REPORT_INTERVAL_MS: env.REMOTEGPU_REPORT_INTERVAL_MS ?? '2000',
    });
    const agent = await startAgent(agentConfig, logger.child({ process: 'agent' }));
    stops.push(() => agent.stop());
    return { controller, agent, agentProblem: '', fakeGpus, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function dockerMissing(docker: Dockerode, dockerHost: string): Promise<string> {
  try {
    await docker.ping();
    return '';
  } catch (err) {
    return `no Docker engine at ${dockerHost} (${err instanceof Error ? err.message : String(err)}); install and start one (Debian: apt-get install -y docker.io && dockerd &) and run npm start again. The API runs without a host meanwhile.`;
  }
}

async function hasNvidiaSmi(bin: string): Promise<boolean> {
  if (bin.includes('/')) return existsSync(bin);
  try {
    await run('sh', ['-c', `command -v ${JSON.stringify(bin)}`]);
    return true;
  } catch {
    return false;
  }
}
