import path from 'node:path';
import Dockerode from 'dockerode';
import type { Logger } from '../common/logger.js';
import { VERSION } from '../common/version.js';
import { hostForPort } from '../common/format.js';
import { ReloadableServerCredentials } from '../common/grpc-tls.js';
import { serveAgentService, type AgentServiceAuth } from './agent-service.grpc.js';
import type { AgentConfig } from './config.js';
import { createFakeDeviceNodes, fakeNvidiaSmiPath } from './discovery/fake-gpus.js';
import { readMachineId } from './discovery/host.js';
import { HostScan } from './host-scan.js';
import { identityAtStart, type AgentIdentity } from './identity.js';
import { followLifecycleEvents } from './lifecycle-events.js';
import { Reporter } from './reporter.js';
import { RootfsWatch } from './rootfs-watch.js';
import { DockerRuntime } from './runtime/docker.js';
import { runtimeRunDir as runDirOf } from './runtime/docker-names.js';
import { detectEngineGpuMode } from './runtime/docker-gpu-mode.js';
import { keepMetadataBlocked } from './runtime/metadata-block.js';
import type { GpuMode } from './runtime/gpu.js';
import type { ContainerRuntime, LifecycleEvent } from './runtime/types.js';
import { SshWatch } from './ssh-watch.js';
import { SshHostKeys } from './ssh-host-keys.js';
import { defaultPublishAddress, localAddresses } from './runtime/host-ports.js';
import { isWildcard, readEphemeralRange, type PortRange } from '../common/ports.js';
import { environmentUsage, measureRootfs, type RootfsSource } from './usage.js';
import { AgentMetrics } from './metrics.js';
import { serveMetrics } from './metrics-server.js';

// Wiring only: which parts make an agent and how they are connected. The parts live in their own
// modules: discovery (host-scan.ts, discovery/), the runtime (runtime/), the AgentService
// (agent-service.grpc.ts), the reporter, the event loop (lifecycle-events.ts), SSH readiness
// (ssh-watch.ts), SSH host keys (ssh-host-keys.ts).

export interface RunningAgent {
  /** host:port of the AgentService. */
  readonly address: string;
  readonly runtime: ContainerRuntime;
  readonly reporter: Reporter;
  readonly gpuMode: GpuMode;
  /** URL of GET /metrics when REMOTEGPU_AGENT_METRICS_ADDR is set (the port picked for :0 included). */
  readonly metricsUrl: string | undefined;
  /** Stops the gRPC server and the loops; containers keep running. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts an agent: discovers the host, picks the GPU passthrough mode, serves AgentService,
 * registers with the controller and reports. Containers survive the agent: a restarted agent
 * re-adopts them by label.
 */
export async function startAgent(config: AgentConfig, logger: Logger): Promise<RunningAgent> {
  if (config.grpcInsecure) logger.warn(PLAINTEXT_WARNING);
  // A data directory that cannot work with this configuration fails before anything starts (ConfigError).
  const identity = await identityAtStart({ ...config, dataDir: path.resolve(config.dataDir) });
  const host = await prepareHost(config, logger);
  // Before any container can start (restore below): environments never reach 169.254.169.254.
  const metadata = config.blockMetadata ? keepMetadataBlocked(config.networkPool, logger) : undefined;
  await metadata?.ready;
  const runtime = await startRuntime(config, host, logger);
  const metrics = new AgentMetrics(() => host.scan.gpus);
  const metricsServer = config.metricsListen ? await serveMetrics(config.metricsListen, metrics) : undefined;
  const auth = serviceAuth(config.grpcInsecure, identity);
  // Created once the AgentService's port is known (the callbacks below need it only after registration).
  let reporter: Reporter | undefined = undefined;
  const { ssh, hostKeys } = watchSsh(host, runtime, logger, () => reporter);
  const server = await serveAgentService(config.listen, {
    runtime,
    logger,
    processEnv: config.processEnv,
    auth: auth.auth,
    sshReady: (envId) => ssh.isReady(envId),
    metrics,
    applied: (status, spec) => {
      ssh.applied(status, spec.ports);
      reporter?.reportSoon();
    },
  });
  const advertise = config.advertise ?? `${hostForPort(host.publicAddress)}:${server.port}`;
  const rootfs = watchRootfs(config, host, runtime, logger, (event) => reporter?.pushEvent(event));

  reporter = newReporter(config, { identity, host, runtime, advertise, rootfs, logger, metrics, sshReady: (envId) => ssh.isReady(envId), hostKeys, onIdentity: auth.update });
  await reporter.start();

  // Lifecycle events from the engine go to the controller with the next report.
  const events = followLifecycleEvents(runtime, logger, (event) => {
    ssh.observe(event);
    if (event.kind === 'removed') hostKeys.forget(event.envId);
    reporter!.pushEvent(event);
  });

  const grpc = config.grpcInsecure ? 'plaintext' : 'mutual TLS';
  logger.info({ listen: config.listen, advertise, gpuMode: host.gpuMode, publicAddress: host.publicAddress, controller: config.controller, hostId: identity?.hostId, grpc, metrics: metricsServer?.url }, 'agent started');
  let stopping: Promise<void> | undefined;
  const stop = async () => {
    const eventsEnded = events.stop();
    metadata?.stop();
    ssh.stop();
    await rootfs.stop();
    await reporter!.stop();
    await metricsServer?.close();
    await server.shutdown();
    await eventsEnded;
    await runtime.settle();
  };
  return { address: advertise, runtime, reporter, gpuMode: host.gpuMode, metricsUrl: metricsServer?.url, stop: () => (stopping ??= stop()) };
}

/**
 * SSH readiness of the environments (ssh-watch.ts) and their host keys (ssh-host-keys.ts). The keys
 * are read when sshd first answers (it has its keys then), before the `ssh_ready` event goes out:
 * the report that carries the event carries the keys too.
 */
function watchSsh(host: PreparedHost, runtime: ContainerRuntime, logger: Logger, reporter: () => Reporter | undefined): { ssh: SshWatch; hostKeys: SshHostKeys } {
  const hostKeys = new SshHostKeys({ runtime, logger: logger.child({ component: 'ssh-host-keys' }), onRead: () => reporter()?.reportSoon() });
  const ssh = new SshWatch({
    // The published port answers where it is published (on every address: on loopback).
    address: isWildcard(host.publishAddress) ? '127.0.0.1' : host.publishAddress,
    onReady: (envId) => void hostKeys.refresh(envId).then(() => reporter()?.pushEvent({ envId, atMs: Date.now(), kind: 'ssh_ready', message: 'SSH service ready' })),
  });
  return { ssh, hostKeys };
}

const PLAINTEXT_WARNING =
  'plaintext gRPC (REMOTEGPU_GRPC_INSECURE=1): anyone on the network can read and alter the traffic between the controller and this agent, steal the host credential and impersonate either side; use it only for development or on a network you fully trust';

/** What the reporter is made of besides the configuration. */
interface ReporterParts {
  readonly identity: AgentIdentity | undefined;
  readonly host: PreparedHost;
  readonly runtime: ContainerRuntime;
  /** host:port the controller reaches the AgentService at. */
  readonly advertise: string;
  readonly rootfs: RootfsSource;
  readonly logger: Logger;
  readonly sshReady: (envId: string) => boolean;
  readonly hostKeys: SshHostKeys;
  readonly onIdentity: (identity: AgentIdentity) => void;
  readonly metrics: AgentMetrics;
}

/** The reporter: registration, then reports of the host facts, every environment's status and disk usage, and lifecycle events. */
function newReporter(config: AgentConfig, p: ReporterParts): Reporter {
  const { host } = p;
  return new Reporter({
    controllers: config.controllers,
    backoffMaxMs: config.reconnectMaxMs,
    joinToken: config.joinToken,
    caPin: config.caPin,
    insecure: config.grpcInsecure,
    identity: p.identity,
    dataDir: host.dataDir,
    intervalMs: config.reportIntervalMs,
    jitter: config.reportJitter,
    runtime: p.runtime,
    logger: p.logger.child({ component: 'reporter' }),
    facts: host.scan.factsSource({ publicAddress: host.publicAddress, agentAddress: p.advertise, agentVersion: VERSION, gpuMode: host.gpuMode, cpuCores: config.cpuCores, diskReserve: config.diskReserve, machineId: readMachineId(config.machineId), publishAddress: host.publishAddress, ephemeralPorts: host.ephemeralPorts }),
    usage: (statuses) => environmentUsage(statuses, runtimeRunDir(config), p.rootfs),
    sshReady: p.sshReady,
    sshHostKeys: (status, ready) => p.hostKeys.forReport(status, ready),
    onIdentity: p.onIdentity,
    metrics: p.metrics,
  });
}

/**
 * Who may call the AgentService, and how a new identity (registered, certificate renewed) reaches it:
 * the served certificate is swapped without a restart (connections in flight keep going).
 */
function serviceAuth(insecure: boolean, identity: AgentIdentity | undefined): { auth: AgentServiceAuth; update: (identity: AgentIdentity) => void } {
  if (insecure) {
    let credential = identity?.credential;
    return { auth: { kind: 'bearer', credential: () => credential }, update: (next) => void (credential = next.credential) };
  }
  const material = (i: AgentIdentity) => ({ caPem: i.caPem, keyPem: i.keyPem, certPem: i.certPem });
  const credentials = new ReloadableServerCredentials(identity ? material(identity) : undefined, true);
  return { auth: { kind: 'mtls', credentials }, update: (next) => credentials.update(material(next)) };
}

/**
 * The Docker runtime on the prepared host (it asks the latest GPU discovery on every apply), ready
 * before the first report: volumes and dataset views mounted again after a host reboot, and the
 * containers Docker could not start without them started.
 */
async function startRuntime(config: AgentConfig, host: PreparedHost, logger: Logger): Promise<DockerRuntime> {
  const runtime = new DockerRuntime({
    docker: host.docker,
    stateDir: host.dataDir,
    datasetRoots: config.datasetRoots,
    gpuMode: host.gpuMode,
    gpuIndexes: () => host.scan.gpuIndexes(),
    deviceDir: host.deviceDir,
    publishAddress: host.publishAddress,
    ephemeralPorts: host.ephemeralPorts,
    defaultPidsLimit: config.pidsLimit,
    logger,
    ...(config.namespace ? { managedBy: config.namespace } : {}),
    runDir: runtimeRunDir(config),
    diskReserve: config.diskReserve,
    networkPool: config.networkPool,
    networkSpares: config.networkSpares,
  });
  await runtime.restore();
  return runtime;
}

/** The runtime's run directory (REMOTEGPU_RUN_DIR/<namespace>): volumes are mounted under it (docker-names.ts). */
function runtimeRunDir(config: AgentConfig): string {
  return runDirOf(config.runDir, config.namespace);
}

/**
 * Measures every container's writable layer once a minute and applies REMOTEGPU_ROOTFS_LIMIT (a
 * warning at 90%, a stop at the limit: rootfs-watch.ts); started here, its events go to `onEvent`.
 */
function watchRootfs(config: AgentConfig, host: PreparedHost, runtime: ContainerRuntime, logger: Logger, onEvent: (event: LifecycleEvent) => void): RootfsWatch {
  const watch = new RootfsWatch({
    runtime,
    measure: (containerId, envId) => measureRootfs(host.docker, containerId, envId, runtimeRunDir(config)),
    limitBytes: config.rootfsLimitBytes,
    stateDir: host.dataDir,
    onEvent,
    logger: logger.child({ component: 'rootfs' }),
  });
  void watch.start();
  return watch;
}

/** The host as the agent starts on it. */
interface PreparedHost {
  readonly dataDir: string;
  readonly docker: Dockerode;
  readonly scan: HostScan;
  /** Where the NVIDIA device nodes are: /dev, or the fake ones under the data directory. */
  readonly deviceDir: string;
  readonly gpuMode: GpuMode;
  readonly publicAddress: string;
  /** The public address is a loopback one (one machine). */
  readonly loopback: boolean;
  /** Where containers' ports are published (REMOTEGPU_PUBLISH_ADDRESS or defaultPublishAddress). */
  readonly publishAddress: string;
  /** The host's ephemeral port range (read once at start); null when unknown. */
  readonly ephemeralPorts: PortRange | null;
}

/** Discovers the host and its GPUs (fake ones with REMOTEGPU_FAKE_GPUS), and picks the GPU mode. */
async function prepareHost(config: AgentConfig, logger: Logger): Promise<PreparedHost> {
  const dataDir = path.resolve(config.dataDir);
  const docker = dockerFor(config.dockerHost);
  const fake = config.fakeGpus ? path.resolve(config.fakeGpus) : undefined;
  const scan = await HostScan.discover({
    dataDir,
    nvidiaSmiPath: fake ? fakeNvidiaSmiPath() : config.nvidiaSmi,
    nvidiaSmiEnv: fake ? { ...config.processEnv, REMOTEGPU_FAKE_GPUS: fake } : config.processEnv,
    gpuScanMs: Math.min(config.reportIntervalMs, config.discoveryIntervalMs),
    hostScanMs: config.discoveryIntervalMs,
  });
  const gpus = scan.gpus;
  logger.info({ gpus: gpus.gpus.length, kind: gpus.kind, condition: gpus.condition || undefined, fake: Boolean(fake) }, 'GPU discovery');

  let deviceDir = '/dev';
  if (fake) {
    // Development/tests only: real character devices named like the NVIDIA ones, reaching no driver.
    deviceDir = path.join(dataDir, 'fake-dev');
    createFakeDeviceNodes(deviceDir, gpus.gpus.map((g) => g.index).filter((i) => i >= 0));
  }
  const gpuMode: GpuMode =
    config.gpuMode !== 'auto' ? config.gpuMode : fake ? 'devices' : await detectEngineGpuMode(docker).catch(() => 'devices' as const);

  const publicAddress = config.publicAddress ?? scan.host.addresses[0] ?? '127.0.0.1';
  const loopback = publicAddress === '127.0.0.1' || publicAddress === 'localhost' || publicAddress === '::1';
  const publishAddress = config.publishAddress ?? defaultPublishAddress(publicAddress, localAddresses());
  const ephemeralPorts = await readEphemeralRange();
  logger.info({ publishAddress, ephemeralPorts }, 'containers\' ports are published on this address; host ports in the ephemeral range may be taken by outgoing connections');
  return { dataDir, docker, scan, deviceDir, gpuMode, publicAddress, loopback, publishAddress, ephemeralPorts };
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
