import Dockerode from 'dockerode';
import type { Logger } from '../../common/logger.js';
import { removeEnvState, writeAuthorizedKeys } from './authorized-keys.js';
import { commitContainer, listCommitted, removeImages } from './docker-commit.js';
import { ignoreMissing, toRuntimeError } from './docker-errors.js';
import { dockerEvents } from './docker-events.js';
import { containerLogs } from './docker-logs.js';
import { LABEL, assertEnvId, containerName, replacedName, volumeName } from './docker-names.js';
import { buildCreateOptions, specHash, validateSpec, type CreateContext } from './docker-spec.js';
import { absentStatus, statusFromInspect } from './docker-status.js';
import { RuntimeError } from './errors.js';
import { detectGpuMode, type GpuMode } from './gpu.js';
import { findControlNodes, readCdiKinds } from './gpu-host.js';
import { KeyedLock, UndoStack } from './keyed-lock.js';
import type { ApplyAction, ApplyResult, ContainerRuntime, EnvSpec, LifecycleEvent, LogLine, LogOptions, ObservedStatus } from './types.js';

type Inspect = Dockerode.ContainerInspectInfo;

export interface DockerRuntimeOptions {
  /** The engine; default dockerode's (DOCKER_HOST or /var/run/docker.sock). */
  readonly docker?: Dockerode;
  /** Agent state directory (authorized_keys files). */
  readonly stateDir: string;
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

/** Runs environments as Docker containers; see ContainerRuntime for the contract of each method. */
export class DockerRuntime implements ContainerRuntime {
  private readonly docker: Dockerode;
  private readonly locks = new KeyedLock();
  private readonly log: Logger | undefined;

  private get managedBy(): string {
    return this.options.managedBy ?? 'true';
  }

  constructor(private readonly options: DockerRuntimeOptions) {
    this.docker = options.docker ?? new Dockerode();
    this.log = options.logger?.child({ component: 'runtime' });
  }

  /** The GPU mode 'auto' resolves to on this engine (see detectGpuMode). */
  static async detectGpuMode(docker: Dockerode = new Dockerode()): Promise<GpuMode> {
    const info = (await docker.info().catch((err: unknown) => {
      throw toRuntimeError(err, 'reading engine info');
    })) as { Runtimes?: Record<string, unknown>; CDISpecDirs?: string[] | null };
    return detectGpuMode(info, await readCdiKinds(info.CDISpecDirs ?? []));
  }

  async apply(spec: EnvSpec): Promise<ApplyResult> {
    validateSpec(spec);
    return this.locks.run(spec.envId, () => this.applyLocked(spec));
  }

  async stop(envId: string, timeoutS: number): Promise<ObservedStatus> {
    assertEnvId(envId);
    return this.locks.run(envId, async () => {
      try {
        const found = await this.find(envId);
        if (!found) return absentStatus(envId);
        await this.stopContainer(found, timeoutS > 0 ? timeoutS : 10);
        return this.inspect(envId);
      } catch (err) {
        throw toRuntimeError(err, 'stopping a container');
      }
    });
  }

  async remove(envId: string): Promise<boolean> {
    assertEnvId(envId);
    return this.locks.run(envId, async () => {
      try {
        let existed = false;
        // The volume (and the committed images that go with it) of another namespace's
        // environment is not ours to delete.
        const volume = await ignoreMissing(() => this.docker.getVolume(volumeName(envId)).inspect());
        if (volume && (volume.Labels ?? {})[LABEL.managed] !== this.managedBy) return false;
        for (const c of await this.listEnvContainers(envId)) {
          await ignoreMissing(() => this.docker.getContainer(c.Id).remove({ force: true, v: true }));
          existed = true;
        }
        if (await ignoreMissing(() => this.docker.getVolume(volumeName(envId)).remove())) existed = true;
        const images = await listCommitted(this.docker, envId);
        await removeImages(this.docker, images.map((i) => i.ref));
        existed = (await removeEnvState(this.options.stateDir, envId)) || images.length > 0 || existed;
        this.log?.info({ envId, existed }, 'environment removed');
        return existed;
      } catch (err) {
        throw toRuntimeError(err, 'removing an environment');
      }
    });
  }

  async inspect(envId: string): Promise<ObservedStatus> {
    assertEnvId(envId);
    try {
      const found = await this.find(envId);
      return found ? statusFromInspect(envId, found) : absentStatus(envId);
    } catch (err) {
      throw toRuntimeError(err, 'inspecting a container');
    }
  }

  async list(): Promise<ObservedStatus[]> {
    try {
      const containers = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL.managed}=${this.managedBy}`] } });
      const byEnv = new Map<string, Dockerode.ContainerInfo>();
      for (const c of containers) {
        const envId = c.Labels?.[LABEL.envId];
        if (!envId) continue;
        // A recreate's transient container stands for the environment only while it is alone.
        if (!byEnv.has(envId) || c.Names.includes(`/${containerName(envId)}`)) byEnv.set(envId, c);
      }
      const statuses: ObservedStatus[] = [];
      for (const [envId, c] of byEnv) {
        const info = await ignoreMissing(() => this.docker.getContainer(c.Id).inspect());
        if (info) statuses.push(statusFromInspect(envId, info));
      }
      return statuses.sort((a, b) => (a.envId < b.envId ? -1 : 1));
    } catch (err) {
      throw toRuntimeError(err, 'listing containers');
    }
  }

  async *logs(envId: string, options: LogOptions): AsyncGenerator<LogLine> {
    assertEnvId(envId);
    let found: Inspect | undefined;
    try {
      found = await this.find(envId);
    } catch (err) {
      throw toRuntimeError(err, 'reading logs');
    }
    if (!found) throw new RuntimeError('not_found', `environment ${envId} has no container`);
    yield* containerLogs(this.docker.getContainer(found.Id), found.Config.Tty === true, options);
  }

  events(signal: AbortSignal): AsyncIterable<LifecycleEvent> {
    return dockerEvents(this.docker, signal, Date.now(), this.managedBy);
  }

  execArgs(envId: string, command: readonly string[]): string[] {
    assertEnvId(envId);
    const socketPath = (this.docker.modem as { socketPath?: unknown }).socketPath;
    const host = typeof socketPath === 'string' ? ['-H', `unix://${socketPath}`] : [];
    const argv = command.length > 0 ? [...command] : ['/bin/sh', '-c', LOGIN_SHELL];
    return ['docker', ...host, 'exec', '-it', '-e', 'TERM=xterm-256color', containerName(envId), ...argv];
  }

  // ---- apply ------------------------------------------------------------------------------

  private async applyLocked(spec: EnvSpec): Promise<ApplyResult> {
    const ctx = await this.context();
    buildCreateOptions(spec, ctx); // rejects an impossible spec before anything is touched
    const undo = new UndoStack();
    try {
      const current = await this.adopt(spec.envId);
      if (!current) {
        if (await this.ensureVolume(spec.envId)) {
          undo.push('remove new volume', () => this.docker.getVolume(volumeName(spec.envId)).remove());
        }
        if (await writeAuthorizedKeys(this.options.stateDir, spec.envId, spec.sshAuthorizedKeys)) {
          undo.push('remove state dir', () => removeEnvState(this.options.stateDir, spec.envId));
        }
        const committed = (await listCommitted(this.docker, spec.envId)).filter((i) => i.originalImage === spec.image);
        await this.createAndStart(spec, { ...ctx, image: committed.at(-1)?.ref }, undo);
        return await this.done(spec, 'created', undo);
      }
      await this.ensureVolume(spec.envId);
      await writeAuthorizedKeys(this.options.stateDir, spec.envId, spec.sshAuthorizedKeys);
      if (current.Config.Labels?.[LABEL.specHash] !== specHash(spec) || current.State.Dead) {
        await this.recreate(current, spec, ctx, undo);
        return await this.done(spec, 'recreated', undo);
      }
      return await this.done(spec, await this.converge(current, spec), undo);
    } catch (err) {
      const error = toRuntimeError(err, 'applying an environment');
      await undo.run((what, e) => this.log?.warn({ envId: spec.envId, what, err: String(e) }, 'cleanup after a failed apply failed'));
      this.log?.warn({ envId: spec.envId, code: error.code, msg: error.message }, 'apply failed');
      throw error;
    }
  }

  private async done(spec: EnvSpec, action: ApplyAction, undo: UndoStack): Promise<ApplyResult> {
    undo.clear();
    if (action !== 'none') this.log?.info({ envId: spec.envId, action }, 'environment applied');
    return { status: await this.inspect(spec.envId), action };
  }

  /** Starts or stops a container whose spec matches; never restarts a running one. */
  private async converge(current: Inspect, spec: EnvSpec): Promise<ApplyAction> {
    const c = this.docker.getContainer(current.Id);
    const active = current.State.Running || current.State.Restarting;
    if (spec.desiredState === 'running') {
      if (current.State.Paused) {
        await c.unpause();
        return 'started';
      }
      if (active) return 'none';
      await c.start();
      return 'started';
    }
    if (!active && !current.State.Paused) return 'none';
    await this.stopContainer(current, this.options.stopTimeoutS ?? 10);
    return 'stopped';
  }

  /**
   * Replaces the container, keeping its writable layer: stop, commit to the next private image,
   * move the old container aside, create and start the new one from the commit, then drop the
   * old container and older commits. A failure puts the old container back as it was.
   */
  private async recreate(old: Inspect, spec: EnvSpec, ctx: CreateContext, undo: UndoStack): Promise<void> {
    const envId = spec.envId;
    const oldContainer = this.docker.getContainer(old.Id);
    const wasActive = old.State.Running || old.State.Restarting || old.State.Paused;
    await this.stopContainer(old, this.options.stopTimeoutS ?? 10);
    if (wasActive) undo.push('restart old container', () => oldContainer.start());

    let base: string | undefined;
    const originalImage = old.Config.Labels?.[LABEL.image] ?? old.Config.Image;
    // A new catalog image starts from that image: an old writable layer cannot be moved onto it.
    if (originalImage === spec.image && !old.State.Dead) {
      base = await commitContainer(this.docker, old, envId, originalImage);
      const committed = base;
      undo.push('remove new commit', () => removeImages(this.docker, [committed]));
    }
    await oldContainer.rename({ name: replacedName(envId) });
    undo.push('rename old container back', () => oldContainer.rename({ name: containerName(envId) }));

    await this.createAndStart(spec, { ...ctx, image: base }, undo);

    undo.clear();
    await oldContainer.remove({ force: true, v: true });
    const stale = (await listCommitted(this.docker, envId)).filter((i) => i.ref !== base);
    await removeImages(this.docker, stale.map((i) => i.ref));
  }

  private async createAndStart(spec: EnvSpec, ctx: CreateContext, undo: UndoStack): Promise<void> {
    const created = await this.docker.createContainer(buildCreateOptions(spec, ctx));
    undo.push('remove new container', () => created.remove({ force: true, v: true }));
    if (spec.desiredState === 'running') await created.start();
  }

  /**
   * The environment's container, after repairing a recreate that an agent crash interrupted: a
   * moved-aside container is dropped when its replacement exists (its layer was committed before
   * the move), or moved back when it is alone.
   */
  private async adopt(envId: string): Promise<Inspect | undefined> {
    const containers = await this.listEnvContainers(envId);
    const current = containers.find((c) => c.Names.includes(`/${containerName(envId)}`));
    const replaced = containers.find((c) => c.Names.includes(`/${replacedName(envId)}`));
    if (replaced && current) {
      await ignoreMissing(() => this.docker.getContainer(replaced.Id).remove({ force: true, v: true }));
    } else if (replaced) {
      await this.docker.getContainer(replaced.Id).rename({ name: containerName(envId) });
      this.log?.warn({ envId }, 'moved back a container left aside by an interrupted recreate');
    }
    const chosen = current ?? replaced;
    return chosen ? await ignoreMissing(() => this.docker.getContainer(chosen.Id).inspect()) : undefined;
  }

  // ---- shared -----------------------------------------------------------------------------

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
      managedBy: this.managedBy,
    };
  }

  /** Creates the storage volume when missing; true when this call created it. */
  private async ensureVolume(envId: string): Promise<boolean> {
    const name = volumeName(envId);
    if (await ignoreMissing(() => this.docker.getVolume(name).inspect())) return false;
    await this.docker.createVolume({ Name: name, Labels: { [LABEL.managed]: this.managedBy, [LABEL.envId]: envId } });
    return true;
  }

  private async stopContainer(info: Inspect, timeoutS: number): Promise<void> {
    const c = this.docker.getContainer(info.Id);
    if (info.State.Paused) await ignoreMissing(() => c.unpause());
    if (info.State.Running || info.State.Restarting || info.State.Paused) {
      await ignoreMissing(() => c.stop({ t: timeoutS }));
    }
  }

  /** Every container labelled for the environment (the current one and a moved-aside one). */
  private listEnvContainers(envId: string): Promise<Dockerode.ContainerInfo[]> {
    return this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.managed}=${this.managedBy}`, `${LABEL.envId}=${envId}`] },
    });
  }

  /** Inspect of the container standing for the environment, if any. */
  private async find(envId: string): Promise<Inspect | undefined> {
    const containers = await this.listEnvContainers(envId);
    const chosen =
      containers.find((c) => c.Names.includes(`/${containerName(envId)}`)) ??
      containers.find((c) => c.Names.includes(`/${replacedName(envId)}`));
    return chosen ? await ignoreMissing(() => this.docker.getContainer(chosen.Id).inspect()) : undefined;
  }
}

/** A login shell: bash when the image has it, else sh. */
const LOGIN_SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi';
