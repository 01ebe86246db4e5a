import Dockerode from 'dockerode';
import type { Logger } from '../../common/logger.js';
import { toRuntimeError } from './docker-errors.js';
import { dockerEvents } from './docker-events.js';
import { findContainer, inspectEnvironment, listEnvironments } from './docker-inspect.js';
import { DockerLifecycle, type LifecycleSettings } from './docker-lifecycle.js';
import { containerLogs } from './docker-logs.js';
import { assertEnvId, containerName } from './docker-names.js';
import { buildCreateOptions, validateSpec, type CreateContext } from './docker-spec.js';
import { RuntimeError } from './errors.js';
import type { GpuMode } from './gpu.js';
import { findControlNodes } from './gpu-host.js';
import { KeyedLock } from './keyed-lock.js';
import type { MountPolicy } from './mount-policy.js';
import type { ApplyResult, ContainerRuntime, EnvSpec, LifecycleEvent, LogLine, LogOptions, ObservedStatus } from './types.js';

export interface DockerRuntimeOptions {
  /** The engine; default dockerode's (DOCKER_HOST or /var/run/docker.sock). */
  readonly docker?: Dockerode;
  /** Agent state directory (authorized_keys files); never a mount source (mount-policy.ts). */
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

  constructor(private readonly options: DockerRuntimeOptions) {
    this.engine = {
      docker: options.docker ?? new Dockerode(),
      managedBy: options.managedBy ?? 'true',
      stateDir: options.stateDir,
      stopTimeoutS: options.stopTimeoutS ?? 10,
      log: options.logger?.child({ component: 'runtime' }),
    };
    this.lifecycle = new DockerLifecycle(this.engine);
    this.mountPolicy = { datasetRoots: options.datasetRoots ?? [], dataDir: options.stateDir, dockerSocket: this.socketPath() };
  }

  async apply(spec: EnvSpec): Promise<ApplyResult> {
    // Before anything is created: a spec the agent's own rules refuse never reaches Docker.
    validateSpec(spec, this.mountPolicy);
    return this.locks.run(spec.envId, async () => {
      // Built once, before anything is touched: an impossible spec (e.g. a GPU this host lacks) is rejected here.
      const options = buildCreateOptions(spec, await this.context());
      return this.lifecycle.apply(spec, options);
    });
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

  events(signal: AbortSignal): AsyncIterable<LifecycleEvent> {
    return dockerEvents(this.engine.docker, signal, Date.now(), this.engine.managedBy);
  }

  execArgs(envId: string, command: readonly string[]): string[] {
    assertEnvId(envId);
    const socketPath = this.socketPath();
    const host = socketPath ? ['-H', `unix://${socketPath}`] : [];
    const argv = command.length > 0 ? [...command] : ['/bin/sh', '-c', LOGIN_SHELL];
    return ['docker', ...host, 'exec', '-it', '-e', 'TERM=xterm-256color', containerName(envId), ...argv];
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
    };
  }

  /** The engine's unix socket, when it is reached through one. */
  private socketPath(): string | undefined {
    const socketPath = (this.engine.docker.modem as { socketPath?: unknown }).socketPath;
    return typeof socketPath === 'string' ? socketPath : undefined;
  }
}

/** A login shell: bash when the image has it, else sh. */
const LOGIN_SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi';
