import path from 'node:path';
import Dockerode from 'dockerode';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import { VERSION } from '../common/version.js';
import { AgentServiceService } from '../gen/remotegpu/v1/agent.js';
import type { HostFacts } from '../gen/remotegpu/v1/types.js';
import type { AgentConfig } from './config.js';
import { createFakeDeviceNodes, fakeNvidiaSmiPath } from './discovery/fake-gpus.js';
import { discoverHost } from './discovery/host.js';
import { discoverGpus } from './discovery/nvidia-smi.js';
import type { GpuDiscovery, HostInfo } from './discovery/types.js';
import { hostFactsToProto } from './convert.js';
import { Reporter } from './reporter.js';
import { DockerRuntime } from './runtime/docker.js';
import type { GpuMode } from './runtime/gpu.js';
import type { ContainerRuntime } from './runtime/types.js';
import { agentService } from './agent-service.grpc.js';
import { SshWatch } from './ssh-watch.js';

export interface RunningAgent {
  /** host:port of the AgentService. */
  readonly address: string;
  readonly runtime: ContainerRuntime;
  readonly reporter: Reporter;
  readonly gpuMode: GpuMode;
  /** Stops the gRPC server and the loops; containers keep running. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts an agent: discovers the host, picks the GPU passthrough mode, serves AgentService,
 * registers with the controller and reports. Containers survive the agent: a restarted agent
 * re-adopts them by label.
 */
export async function startAgent(config: AgentConfig, logger: Logger): Promise<RunningAgent> {
  const dataDir = path.resolve(config.dataDir);
  const docker = dockerFor(config.dockerHost);
  const fake = config.fakeGpus ? path.resolve(config.fakeGpus) : undefined;
  const nvidiaSmiPath = fake ? fakeNvidiaSmiPath() : config.nvidiaSmi;
  const smiEnv = fake ? { ...config.processEnv, REMOTEGPU_FAKE_GPUS: fake } : config.processEnv;

  let host: HostInfo = await discoverHost(dataDir);
  let gpus: GpuDiscovery = await discoverGpus({ nvidiaSmiPath, timeoutMs: 20_000, env: smiEnv });
  logger.info({ gpus: gpus.gpus.length, kind: gpus.kind, condition: gpus.condition || undefined, fake: Boolean(fake) }, 'GPU discovery');

  let deviceDir = '/dev';
  if (fake) {
    // Development/tests only: real character devices named like the NVIDIA ones, reaching no driver.
    deviceDir = path.join(dataDir, 'fake-dev');
    createFakeDeviceNodes(deviceDir, gpus.gpus.map((g) => g.index).filter((i) => i >= 0));
  }
  const gpuMode: GpuMode =
    config.gpuMode !== 'auto' ? config.gpuMode : fake ? 'devices' : await DockerRuntime.detectGpuMode(docker).catch(() => 'devices' as const);

  const publicAddress = config.publicAddress ?? host.addresses[0] ?? '127.0.0.1';
  const loopback = publicAddress === '127.0.0.1' || publicAddress === 'localhost' || publicAddress === '::1';
  const runtime = new DockerRuntime({
    docker,
    stateDir: dataDir,
    gpuMode,
    gpuIndexes: () => new Map(gpus.gpus.filter((g) => g.uuid).map((g) => [g.uuid, g.index])),
    deviceDir,
    publishAddress: loopback ? publicAddress : '0.0.0.0',
    defaultPidsLimit: config.pidsLimit,
    logger,
    ...(config.namespace ? { managedBy: config.namespace } : {}),
  });

  let credential: string | undefined;
  const sshPorts = new Map<string, number>();
  let reporter: Reporter | undefined;
  const sshWatch = new SshWatch({
    address: loopback ? publicAddress : '127.0.0.1',
    onReady: (envId) => reporter?.pushEvent({ envId, atMs: Date.now(), kind: 'ssh_ready', message: 'SSH service ready' }),
  });

  const server = new Server();
  server.addService(
    AgentServiceService,
    agentService({
      runtime,
      logger,
      processEnv: config.processEnv,
      credential: () => credential,
      sshReady: (envId) => sshWatch.isReady(envId),
      applied: (status, spec) => {
        const ssh = spec.ports.find((p) => p.name === 'ssh');
        if (ssh) sshPorts.set(status.envId, ssh.hostPort);
        if (status.state === 'running' && ssh) sshWatch.watch(status.envId, ssh.hostPort);
        if (status.state !== 'running') sshWatch.reset(status.envId);
        reporter?.reportSoon();
      },
    }),
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(config.listen, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(new Error(`cannot listen on ${config.listen}: ${err.message}`)) : resolve(p),
    ),
  );
  const advertise = config.advertise ?? `${publicAddress}:${port}`;

  let lastGpuScan = Date.now();
  let lastHostScan = Date.now();
  const facts = async (): Promise<HostFacts> => {
    const now = Date.now();
    if (now - lastGpuScan >= Math.min(config.reportIntervalMs, config.discoveryIntervalMs)) {
      lastGpuScan = now;
      gpus = await discoverGpus({ nvidiaSmiPath, timeoutMs: 20_000, env: smiEnv });
    }
    if (now - lastHostScan >= config.discoveryIntervalMs) {
      lastHostScan = now;
      host = await discoverHost(dataDir).catch(() => host);
    }
    const offered = config.cpuCores > 0 ? { ...host, cpuCores: config.cpuCores } : host;
    return hostFactsToProto({ host: offered, gpus, publicAddress, agentAddress: advertise, agentVersion: VERSION, gpuMode });
  };

  reporter = new Reporter({
    controller: config.controller,
    joinToken: config.joinToken,
    dataDir,
    intervalMs: config.reportIntervalMs,
    runtime,
    logger: logger.child({ component: 'reporter' }),
    facts,
    sshReady: (envId) => sshWatch.isReady(envId),
    onIdentity: (identity) => {
      credential = identity.credential;
    },
  });
  await reporter.start();

  // Lifecycle events from the engine go to the controller with the next report.
  const events = new AbortController();
  const eventsLoop = (async () => {
    while (!events.signal.aborted) {
      try {
        for await (const event of runtime.events(events.signal)) {
          if (event.kind === 'started') {
            sshWatch.reset(event.envId);
            const ssh = sshPorts.get(event.envId);
            if (ssh) sshWatch.watch(event.envId, ssh);
          } else if (event.kind === 'exited' || event.kind === 'removed' || event.kind === 'oom_killed') {
            sshWatch.reset(event.envId);
          }
          reporter!.pushEvent(event);
        }
      } catch (err) {
        if (!events.signal.aborted) logger.warn({ err }, 'Docker event stream ended; reconnecting');
      }
      if (!events.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
  })();

  logger.info({ listen: config.listen, advertise, gpuMode, publicAddress, controller: config.controller }, 'agent started');
  let stopping: Promise<void> | undefined;
  return {
    address: advertise,
    runtime,
    reporter,
    gpuMode,
    stop: () =>
      (stopping ??= (async () => {
        events.abort();
        sshWatch.stop();
        await reporter!.stop();
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 2000);
          server.tryShutdown(() => {
            clearTimeout(t);
            resolve();
          });
        });
        await eventsLoop;
      })()),
  };
}

/** Dockerode for a DOCKER_HOST value: unix:///path, tcp://host:port or a bare socket path. */
export function dockerFor(dockerHost: string): Dockerode {
  if (dockerHost.startsWith('unix://')) return new Dockerode({ socketPath: dockerHost.slice('unix://'.length) });
  if (dockerHost.startsWith('tcp://')) {
    const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
    return new Dockerode({ host: url.hostname, port: Number(url.port || 2375) });
  }
  return new Dockerode({ socketPath: dockerHost });
}
