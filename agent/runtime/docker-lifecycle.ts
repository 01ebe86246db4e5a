import type Dockerode from 'dockerode';
import type { ContainerCreateOptions } from 'dockerode';
import type { Logger } from '../../common/logger.js';
import { dropLegacyAuthorizedKeys, removeEnvState, writeAuthorizedKeys, writeDesiredState } from './authorized-keys.js';
import { commitContainer, listCommitted, removeImages } from './docker-commit.js';
import { ignoreMissing, toRuntimeError } from './docker-errors.js';
import { findContainer, inspectEnvironment, listEnvContainers, pickStanding, type ManagedEngine } from './docker-inspect.js';
import { LABEL, containerName, replacedName, volumeName } from './docker-names.js';
import type { HostMounts } from './host-mounts.js';
import { specHash, withImage } from './docker-spec.js';
import { absentStatus } from './docker-status.js';
import { RuntimeError } from './errors.js';
import { portFree } from './host-ports.js';
import { UndoStack } from './keyed-lock.js';
import { keysLinkTar } from './keys-link.js';
import type { ApplyAction, ApplyResult, EnvSpec, ObservedStatus } from './types.js';

type Inspect = Dockerode.ContainerInspectInfo;

/** What the lifecycle needs besides the engine. */
export interface LifecycleSettings extends ManagedEngine {
  /** Agent state directory (keys directories). */
  readonly stateDir: string;
  /** Seconds between SIGTERM and SIGKILL when apply or a recreate stops a container. */
  readonly stopTimeoutS: number;
  readonly log: Logger | undefined;
  /** The host side of volumes and dataset views. */
  readonly mounts: HostMounts;
  /** Each environment's own bridge network. */
  readonly networks: EnvNetworkManager;
  /** The host address ports are published on (checked free before a container that publishes them starts). */
  readonly publishAddress: string;
}

/** What the lifecycle needs of the per-environment networks (spare-networks.ts over env-network.ts). */
export interface EnvNetworkManager {
  /** The environment's network; `attached` is the one its current container is on, if any. */
  ensure(envId: string, attached?: string): Promise<{ name: string; created: boolean }>;
  /** Removes its networks (`attached`: those its containers were on); true when any existed. */
  remove(envId: string, attached?: readonly string[]): Promise<boolean>;
  /** The apply of `envId` is over (whatever its outcome). */
  release?(envId: string): void;
}

/** The create options of a spec on network `network` (buildCreateOptions, with the host's facts). */
export type OptionsBuilder = (network: string) => ContainerCreateOptions;

/**
 * Changes the engine for one environment: apply (create, recreate, start, stop to match the spec),
 * stop and remove. The caller (DockerRuntime) validates, serializes calls per environment, and
 * builds the create options once per apply.
 */
export class DockerLifecycle {
  constructor(private readonly settings: LifecycleSettings) {}

  /**
   * Converges the environment to `spec`; `build` makes its create options (buildCreateOptions) once
   * its network is known, used as they are for a new container, or with a committed image of this
   * environment.
   */
  async apply(spec: EnvSpec, build: OptionsBuilder, legacyVolume: boolean): Promise<ApplyResult> {
    const undo = new UndoStack();
    try {
      const current = await this.adopt(spec.envId);
      const network = await this.prepareHost(spec, legacyVolume, current?.HostConfig.NetworkMode, undo);
      const options = build(network);
      if (!current) {
        const committed = (await listCommitted(this.settings.docker, spec.envId)).filter((i) => i.originalImage === spec.image);
        await this.createAndStart(spec, withImage(options, committed.at(-1)?.ref), undo);
        return await this.done(spec, 'created', undo);
      }
      if (current.Config.Labels?.[LABEL.specHash] !== specHash(spec) || current.State.Dead) {
        await this.recreate(current, spec, options, undo);
        return await this.done(spec, 'recreated', undo);
      }
      return await this.done(spec, await this.converge(current, spec), undo);
    } catch (err) {
      const error = toRuntimeError(err, 'applying an environment');
      await undo.run((what, e) => this.settings.log?.warn({ envId: spec.envId, what, err: String(e) }, 'cleanup after a failed apply failed'));
      this.settings.log?.warn({ envId: spec.envId, code: error.code, msg: error.message }, 'apply failed');
      throw error;
    } finally {
      this.settings.networks.release?.(spec.envId);
    }
  }

  /**
   * What the container needs on the host before it is created or started: its volume (loop volume,
   * or the Docker volume of an older environment), its dataset views, its network and its
   * authorized_keys file. What this call creates is undone when the apply fails. Returns the
   * network's name.
   */
  private async prepareHost(spec: EnvSpec, legacyVolume: boolean, attached: string | undefined, undo: UndoStack): Promise<string> {
    const { envId } = spec;
    const { mounts, networks } = this.settings;
    if (await writeAuthorizedKeys(this.settings.stateDir, envId, spec.sshAuthorizedKeys)) {
      undo.push('remove state dir', () => removeEnvState(this.settings.stateDir, envId));
    }
    // The volume (mkfs, mount) and the network (Docker's iptables rules) take the longest: together.
    const [volume, network] = await Promise.allSettled([legacyVolume ? undefined : mounts.ensureVolume(envId, spec.storageBytes), networks.ensure(envId, attached)]);
    if (volume.status === 'fulfilled' && volume.value?.created) undo.push('remove new volume', () => mounts.remove(envId));
    if (network.status === 'fulfilled' && network.value.created) undo.push('remove new network', () => networks.remove(envId));
    if (volume.status === 'rejected') throw volume.reason;
    if (network.status === 'rejected') throw network.reason;
    await mounts.ensureViews(envId, spec.mounts);
    await writeDesiredState(this.settings.stateDir, envId, spec.desiredState);
    return network.value.name;
  }

  /** ContainerRuntime.stop, for a checked env id. */
  async stop(envId: string, timeoutS: number): Promise<ObservedStatus> {
    try {
      const found = await findContainer(this.settings, envId);
      if (!found) return absentStatus(envId);
      await writeDesiredState(this.settings.stateDir, envId, 'stopped');
      await stopContainer(this.settings.docker, found, timeoutS > 0 ? timeoutS : 10);
      return inspectEnvironment(this.settings, envId);
    } catch (err) {
      throw toRuntimeError(err, 'stopping a container');
    }
  }

  /** ContainerRuntime.remove, for a checked env id. */
  async remove(envId: string): Promise<boolean> {
    try {
      let existed = false;
      // The volume (and the committed images that go with it) of another namespace's
      // environment is not ours to delete.
      const volume = await ignoreMissing(() => this.settings.docker.getVolume(volumeName(envId)).inspect());
      if (volume && (volume.Labels ?? {})[LABEL.managed] !== this.settings.managedBy) return false;
      // The networks its containers are on, read before they go (a network taken as a spare does
      // not carry the environment's name).
      const attached: string[] = [];
      for (const c of await listEnvContainers(this.settings, envId)) {
        attached.push(...Object.keys(c.NetworkSettings?.Networks ?? {}));
        await ignoreMissing(() => this.settings.docker.getContainer(c.Id).remove({ force: true, v: true }));
        existed = true;
      }
      if (await this.settings.networks.remove(envId, attached)) existed = true;
      if (await ignoreMissing(() => this.settings.docker.getVolume(volumeName(envId)).remove())) existed = true;
      if (await this.settings.mounts.remove(envId)) existed = true;
      const images = await listCommitted(this.settings.docker, envId);
      await removeImages(this.settings.docker, images.map((i) => i.ref));
      existed = (await removeEnvState(this.settings.stateDir, envId)) || images.length > 0 || existed;
      this.settings.log?.info({ envId, existed }, 'environment removed');
      return existed;
    } catch (err) {
      throw toRuntimeError(err, 'removing an environment');
    }
  }

  private async done(spec: EnvSpec, action: ApplyAction, undo: UndoStack): Promise<ApplyResult> {
    undo.clear();
    // A new container reads its keys through the keys directory: the single file older ones mounted goes.
    if (action === 'created' || action === 'recreated') await dropLegacyAuthorizedKeys(this.settings.stateDir, spec.envId);
    // Views of datasets the container no longer mounts (its previous container is gone).
    await this.settings.mounts.pruneViews(spec.envId, spec.mounts);
    if (action !== 'none') this.settings.log?.info({ envId: spec.envId, action }, 'environment applied');
    return { status: await inspectEnvironment(this.settings, spec.envId), action };
  }

  /** Starts or stops a container whose spec matches; never restarts a running one. */
  private async converge(current: Inspect, spec: EnvSpec): Promise<ApplyAction> {
    const c = this.settings.docker.getContainer(current.Id);
    const active = current.State.Running || current.State.Restarting;
    if (spec.desiredState === 'running') {
      if (current.State.Paused) {
        await c.unpause();
        return 'started';
      }
      if (active) return 'none';
      await this.assertPortsFree(spec);
      await c.start();
      return 'started';
    }
    if (!active && !current.State.Paused) return 'none';
    await stopContainer(this.settings.docker, current, this.settings.stopTimeoutS);
    return 'stopped';
  }

  /**
   * Replaces the container, keeping its writable layer: stop, commit to the next private image,
   * move the old container aside, create and start the new one from the commit, then drop the
   * old container and older commits. A failure puts the old container back as it was.
   */
  private async recreate(old: Inspect, spec: EnvSpec, options: ContainerCreateOptions, undo: UndoStack): Promise<void> {
    const envId = spec.envId;
    const oldContainer = this.settings.docker.getContainer(old.Id);
    const wasActive = old.State.Running || old.State.Restarting || old.State.Paused;
    await stopContainer(this.settings.docker, old, this.settings.stopTimeoutS);
    if (wasActive) undo.push('restart old container', () => oldContainer.start());

    let base: string | undefined;
    const originalImage = old.Config.Labels?.[LABEL.image] ?? old.Config.Image;
    // A new catalog image starts from that image: an old writable layer cannot be moved onto it.
    if (originalImage === spec.image && !old.State.Dead) {
      base = await commitContainer(this.settings.docker, old, envId, originalImage);
      const committed = base;
      undo.push('remove new commit', () => removeImages(this.settings.docker, [committed]));
    }
    await oldContainer.rename({ name: replacedName(envId) });
    undo.push('rename old container back', () => oldContainer.rename({ name: containerName(envId) }));

    await this.createAndStart(spec, withImage(options, base), undo);

    undo.clear();
    await oldContainer.remove({ force: true, v: true });
    const stale = (await listCommitted(this.settings.docker, envId)).filter((i) => i.ref !== base);
    await removeImages(this.settings.docker, stale.map((i) => i.ref));
  }

  /**
   * Creates the container, links its /root/.ssh/authorized_keys to the file in its keys directory
   * (before anything in it runs), and starts it when it is meant to run.
   */
  private async createAndStart(spec: EnvSpec, options: ContainerCreateOptions, undo: UndoStack): Promise<void> {
    if (spec.desiredState === 'running') await this.assertPortsFree(spec);
    const created = await this.settings.docker.createContainer(options);
    undo.push('remove new container', () => created.remove({ force: true, v: true }));
    await created.putArchive(keysLinkTar(), { path: '/' });
    if (spec.desiredState === 'running') await created.start();
  }

  /**
   * Throws 'port_conflict' naming the first host port of the spec that cannot be bound on the
   * publish address now (a process of the host, or an outgoing connection, holds it), so the
   * controller can move the environment to another port instead of Docker failing on it.
   */
  private async assertPortsFree(spec: EnvSpec): Promise<void> {
    const address = this.settings.publishAddress;
    for (const p of spec.ports) {
      if (!(await portFree(address, p.hostPort))) {
        throw new RuntimeError('port_conflict', `host port ${p.hostPort} (${p.name}) is already in use on ${address}: address already in use`, { port: p.hostPort });
      }
    }
  }

  /**
   * The environment's container, after repairing a recreate that an agent crash interrupted: a
   * moved-aside container is dropped when its replacement exists (its layer was committed before
   * the move), or moved back when it is alone.
   */
  private async adopt(envId: string): Promise<Inspect | undefined> {
    const containers = await listEnvContainers(this.settings, envId);
    const current = containers.find((c) => c.Names.includes(`/${containerName(envId)}`));
    const replaced = containers.find((c) => c.Names.includes(`/${replacedName(envId)}`));
    if (replaced && current) {
      await ignoreMissing(() => this.settings.docker.getContainer(replaced.Id).remove({ force: true, v: true }));
    } else if (replaced) {
      await this.settings.docker.getContainer(replaced.Id).rename({ name: containerName(envId) });
      this.settings.log?.warn({ envId }, 'moved back a container left aside by an interrupted recreate');
    }
    return pickStanding(this.settings, containers, envId);
  }
}

async function stopContainer(docker: Dockerode, info: Inspect, timeoutS: number): Promise<void> {
  const c = docker.getContainer(info.Id);
  if (info.State.Paused) await ignoreMissing(() => c.unpause());
  if (info.State.Running || info.State.Restarting || info.State.Paused) {
    await ignoreMissing(() => c.stop({ t: timeoutS }));
  }
}
