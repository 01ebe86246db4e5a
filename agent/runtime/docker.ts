import Dockerode from 'dockerode';
import type { Logger } from '../../common/logger.js';
import { toRuntimeError } from './docker-errors.js';
import { dockerEvents } from './docker-events.js';
import { findContainer, inspectEnvironment, listEnvironments } from './docker-inspect.js';
import { DockerLifecycle, type EnvNetworkManager, type LifecycleSettings } from './docker-lifecycle.js';
import { containerLogs } from './docker-logs.js';
import { readContainerFiles } from './docker-files.js';
import { readDesiredState, refreshAuthorizedKeys } from './authorized-keys.js';
import { LABEL, assertEnvId, containerName, networkName, runtimeRunDir, volumeName } from './docker-names.js';
import { ignoreMissing } from './docker-errors.js';
import { buildCreateOptions, validateSpec, withRealMountPaths, type CreateContext } from './docker-spec.js';
import { EnvNetworks } from './env-network.js';
import { HostMounts } from './host-mounts.js';
import { SpareNetworks } from './spare-networks.js';
import { RuntimeError } from './errors.js';
import type { GpuMode } from './gpu.js';
import { findControlNodes } from './gpu-host.js';
import { KeyedLock } from './keyed-lock.js';
import type { MountPolicy } from './mount-policy.js';
import type { PortRange } from '../../common/ports.js';
import type { ApplyResult, ContainerRuntime, EnvSpec, LifecycleEvent, LogLine, LogOptions, ObservedStatus } from './types.js';

export interface DockerRuntimeOptions {
  /** The engine; default dockerode's (DOCKER_HOST or /var/run/docker.sock). */
  readonly docker?: Dockerode;
  /** Agent state directory (keys directories); never a dataset source (mount-policy.ts). */
  readonly stateDir: string;
  /**
   * Host directories datasets may be bind-mounted from (REMOTEGPU_DATASET_ROOTS); default none:
   * every dataset mount is refused (mount-policy.ts).
   */
  readonly datasetRoots?: readonly string[];
  readonly gpuMode: GpuMode;
  /** The host's GPUs, UUID → index; a function is asked on every apply (discovery refreshes). */
  readonly gpuIndexes?: ReadonlyMap<string, number> | (() => ReadonlyMap<string, number>);
  /** Where the NVIDIA device nodes are ('devices' mode); default /dev. */
  readonly deviceDir?: string;
  /** Host address ports are published on; default 0.0.0.0. */
  readonly publishAddress?: string;
  /** The host's ephemeral port range: the first spec publishing a port inside it gets a warning in the log. */
  readonly ephemeralPorts?: PortRange | null;
  readonly defaultPidsLimit?: number;
  /** Seconds between SIGTERM and SIGKILL when apply or a recreate stops a container; default 10. */
  readonly stopTimeoutS?: number;
  readonly logger?: Logger;
  /**
   * Value of the remotegpu.managed label this runtime creates and looks for; default 'true'. Agents
   * sharing one Docker engine (development, tests) each use their own value and never see or touch
   * each other's containers.
   */
  readonly managedBy?: string;
  /**
   * Where this runtime mounts volumes and dataset views: a directory on a tmpfs (a small one is
   * mounted when it is not), emptied by a host reboot; default /run/remotegpu/<managedBy>.
   */
  readonly runDir?: string;
  /** Fraction of the data directory's disk new volumes must leave free; default 0.1. */
  readonly diskReserve?: number;
  /** IPv4 network the environments' /28 networks are cut from; default 10.213.0.0/16. */
  readonly networkPool?: string;
  /** Networks kept ready for new environments (REMOTEGPU_NETWORK_SPARES); default 0: each made on demand. */
  readonly networkSpares?: number;
  /** The networks (tests may pass their own); default EnvNetworks over networkPool. */
  readonly networks?: EnvNetworkManager;
}

/**
 * Runs environments as Docker containers; see ContainerRuntime for the contract of each method.
 * Calls for one environment run one at a time. An apply validates its spec once and builds its
 * create options once (docker-spec.ts), then hands both to the lifecycle (docker-lifecycle.ts);
 * reads go to docker-inspect.ts, logs and events to docker-logs.ts and docker-events.ts.
 */
export class DockerRuntime implements ContainerRuntime {
  /** The engine (its one Docker handle) and the lifecycle's settings, shared with the lifecycle. */
  private readonly engine: LifecycleSettings;
  private readonly lifecycle: DockerLifecycle;
  private readonly locks = new KeyedLock();
  /** What the agent lets a spec bind-mount, checked on every apply (validateSpec). */
  private readonly mountPolicy: MountPolicy;
  private readonly runDir: string;
  private readonly spares: SpareNetworks;
  private prepared: Promise<void> | undefined;
  /** The ephemeral-range warning was logged (once per runtime). */
  private warnedEphemeral = false;

  constructor(private readonly options: DockerRuntimeOptions) {
    const docker = options.docker ?? new Dockerode();
    const pool = options.networkPool ?? '10.213.0.0/16';
    const managedBy = options.managedBy ?? 'true';
    const log = options.logger?.child({ component: 'runtime' });
    this.spares = new SpareNetworks(new EnvNetworks({ docker, managedBy, pool, log }), { docker, managedBy, spares: options.networkSpares ?? 0, log });
    this.runDir = options.runDir ?? runtimeRunDir('/run/remotegpu', managedBy === 'true' ? undefined : managedBy);
    this.mountPolicy = { datasetRoots: options.datasetRoots ?? [], dataDir: options.stateDir, runDir: this.runDir, dockerSocket: socketOf(docker) };
    this.engine = {
      docker,
      managedBy,
      stateDir: options.stateDir,
      stopTimeoutS: options.stopTimeoutS ?? 10,
      log,
      mounts: new HostMounts({ stateDir: options.stateDir, runDir: this.runDir, diskReserve: options.diskReserve ?? 0.1, policy: this.mountPolicy, log }),
      networks: options.networks ?? this.spares,
      publishAddress: options.publishAddress ?? '0.0.0.0',
    };
    this.lifecycle = new DockerLifecycle(this.engine);
  }

  async apply(spec: EnvSpec): Promise<ApplyResult> {
    assertEnvId(spec.envId);
    // First, before the rest is checked: a key list change reaches a running container even when
    // something else in the spec is refused (a dataset gone from the host, a GPU off the bus).
    await this.locks.run(spec.envId, () => this.refreshKeys(spec));
    // Before anything is created: a spec the agent's own rules refuse never reaches Docker.
    validateSpec(spec, this.mountPolicy);
    this.warnIfEphemeral(spec);
    const real = withRealMountPaths(spec);
    await this.prepare();
    return this.locks.run(spec.envId, async () => {
      // An environment created before loop volumes keeps its Docker volume (and its data).
      const legacyVolume = await this.usesDockerVolume(spec.envId);
      const ctx = { ...(await this.context()), legacyVolume };
      const build = (network: string) => buildCreateOptions(real, { ...ctx, network });
      // Built once before anything is touched: an impossible spec (e.g. a GPU this host lacks) is rejected here.
      build(networkName(real.envId));
      return this.lifecycle.apply(real, build, legacyVolume);
    });
  }

  /**
   * After an agent or host restart, before anything else: mounts every volume and dataset view
   * that is not mounted (a reboot empties the run directory), then starts the containers Docker
   * could not start meanwhile because their mounts were missing (Docker recorded the error and left
   * them stopped) and that the controller last wanted running. Returns the ids of the environments
   * it started.
   */
  async restore(): Promise<string[]> {
    await this.prepare();
    await this.engine.mounts.restore();
    const started: string[] = [];
    for (const status of await listEnvironments(this.engine)) {
      if (status.state === 'running' || !MISSING_MOUNT.test(status.message)) continue;
      if ((await readDesiredState(this.options.stateDir, status.envId)) !== 'running') continue;
      await this.locks.run(status.envId, async () => {
        try {
          await this.engine.docker.getContainer(status.containerId).start();
          started.push(status.envId);
        } catch (err) {
          this.engine.log?.warn({ envId: status.envId, err: String(err) }, 'could not start a container after restoring its mounts');
        }
      });
    }
    if (started.length > 0) this.engine.log?.info({ environments: started }, 'started containers Docker could not start without their mounts');
    this.spares.replenishSoon();
    return started;
  }

  /** Waits for background work (spare networks being made) to end; the runtime stays usable. */
  async settle(): Promise<void> {
    await this.spares.settled();
  }

  /** See refreshAuthorizedKeys; a failure is logged, and the apply goes on (its own write reports it). */
  private async refreshKeys(spec: EnvSpec): Promise<void> {
    try {
      await refreshAuthorizedKeys(this.options.stateDir, spec.envId, spec.sshAuthorizedKeys);
    } catch (err) {
      this.engine.log?.warn({ envId: spec.envId, err: String(err) }, 'could not rewrite authorized_keys ahead of the apply');
    }
  }

  private prepare(): Promise<void> {
    this.prepared ??= this.engine.mounts.prepare().catch((err: unknown) => {
      this.prepared = undefined;
      throw toRuntimeError(err, 'preparing the run directory');
    });
    return this.prepared;
  }

  /** True when the environment predates loop volumes: it has a Docker volume of this agent's and no loop volume. */
  private async usesDockerVolume(envId: string): Promise<boolean> {
    try {
      if (await this.engine.mounts.hasVolume(envId)) return false;
      const volume = await ignoreMissing(() => this.engine.docker.getVolume(volumeName(envId)).inspect());
      return (volume?.Labels ?? {})[LABEL.managed] === this.engine.managedBy;
    } catch (err) {
      throw toRuntimeError(err, 'applying an environment');
    }
  }

  async stop(envId: string, timeoutS: number): Promise<ObservedStatus> {
    assertEnvId(envId);
    return this.locks.run(envId, () => this.lifecycle.stop(envId, timeoutS));
  }

  async remove(envId: string): Promise<boolean> {
    assertEnvId(envId);
    return this.locks.run(envId, () => this.lifecycle.remove(envId));
  }

  async inspect(envId: string): Promise<ObservedStatus> {
    return inspectEnvironment(this.engine, envId);
  }

  async list(): Promise<ObservedStatus[]> {
    return listEnvironments(this.engine);
  }

  async *logs(envId: string, options: LogOptions): AsyncGenerator<LogLine> {
    assertEnvId(envId);
    let found: Dockerode.ContainerInspectInfo | undefined;
    try {
      found = await findContainer(this.engine, envId);
    } catch (err) {
      throw toRuntimeError(err, 'reading logs');
    }
    if (!found) throw new RuntimeError('not_found', `environment ${envId} has no container`);
    yield* containerLogs(this.engine.docker.getContainer(found.Id), found.Config.Tty === true, options);
  }

  events(signal: AbortSignal, sinceMs = Date.now()): AsyncIterable<LifecycleEvent> {
    return dockerEvents(this.engine.docker, signal, sinceMs, this.engine.managedBy);
  }

  execArgs(envId: string, command: readonly string[]): string[] {
    assertEnvId(envId);
    const socketPath = socketOf(this.engine.docker);
    const host = socketPath ? ['-H', `unix://${socketPath}`] : [];
    const argv = command.length > 0 ? [...command] : ['/bin/sh', '-c', LOGIN_SHELL];
    return ['docker', ...host, 'exec', '-it', '-e', 'TERM=xterm-256color', containerName(envId), ...argv];
  }

  async readFiles(envId: string, paths: readonly string[], maxBytes: number): Promise<{ containerId: string; files: Map<string, Buffer> }> {
    assertEnvId(envId);
    return readContainerFiles(this.engine, envId, paths, maxBytes);
  }

  /** Logs once when a spec publishes a host port inside the host's ephemeral range (outgoing connections may hold it). */
  private warnIfEphemeral(spec: EnvSpec): void {
    const range = this.options.ephemeralPorts;
    if (this.warnedEphemeral || !range) return;
    const inside = spec.ports.find((p) => p.hostPort >= range.from && p.hostPort <= range.to);
    if (!inside) return;
    this.warnedEphemeral = true;
    this.engine.log?.warn(
      { envId: spec.envId, port: inside.hostPort, ephemeralPorts: `${range.from}-${range.to}` },
      `host port ${inside.hostPort} lies in this host's ephemeral port range ${range.from}-${range.to} (net.ipv4.ip_local_port_range): ` +
        'outgoing connections can hold such ports; set the controller\'s REMOTEGPU_SSH_PORT_RANGE and REMOTEGPU_JUPYTER_PORT_RANGE below it (defaults 20000-24999 and 25000-28999)',
    );
  }

  /** Host facts and settings for buildCreateOptions, read afresh for every apply (discovery refreshes). */
  private async context(): Promise<CreateContext> {
    const deviceDir = this.options.deviceDir ?? '/dev';
    const indexes = this.options.gpuIndexes;
    return {
      stateDir: this.options.stateDir,
      gpuMode: this.options.gpuMode,
      gpuIndexes: typeof indexes === 'function' ? indexes() : (indexes ?? new Map()),
      deviceDir,
      controlNodes: this.options.gpuMode === 'devices' ? await findControlNodes(deviceDir) : [],
      publishAddress: this.options.publishAddress,
      defaultPidsLimit: this.options.defaultPidsLimit,
      managedBy: this.engine.managedBy,
      dockerSocket: this.mountPolicy.dockerSocket,
      runDir: this.runDir,
    };
  }
}

/** The engine's unix socket, when it is reached through one. */
function socketOf(docker: Dockerode): string | undefined {
  const socketPath = (docker.modem as { socketPath?: unknown }).socketPath;
  return typeof socketPath === 'string' ? socketPath : undefined;
}

/** Docker's (runc's) error for a start whose bind source is missing: "error mounting … no such file or directory". */
const MISSING_MOUNT = /mount.*no such file or directory/is;

/** A login shell: bash when the image has it, else sh. */
const LOGIN_SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi';
