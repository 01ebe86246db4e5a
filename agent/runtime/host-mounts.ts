import { mkdir, readdir, rm, stat, statfs, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { formatBytes } from '../../common/format.js';
import type { Logger } from '../../common/logger.js';
import { RuntimeError } from './errors.js';
import { datasetViewName, datasetViewPath, envRunDir, volumeDataPath, volumeFilePath, volumeMountPath } from './docker-names.js';
import { KeyedLock } from './keyed-lock.js';
import type { MountPolicy } from './mount-policy.js';
import { mountView, readRecords, viewsRecordPath, type ViewRecord } from './dataset-views.js';
import { VIEW_OPTIONS, createVolumeFile, mountedFsUsage, loopAttached, loopDeviceOf, mount, mountPoints, tool, unmount, unmountAndRemove } from './mount-table.js';
import type { DatasetMountSpec } from './types.js';

const TMPFS_MAGIC = 0x01021994;
/** Smallest volume mkfs.ext4 makes with room for the user's files. */
export const MIN_VOLUME_BYTES = 16 * 1024 * 1024;

/** What HostMounts needs. */
export interface HostMountsSettings {
  /** The agent's data directory: volume files live in `<stateDir>/volumes`, dataset records in `<stateDir>/envs/<id>`. */
  readonly stateDir: string;
  /** This agent's run directory (on a tmpfs): mount points of volumes and dataset views. */
  readonly runDir: string;
  /** Fraction of the data directory's disk a new volume must leave free (REMOTEGPU_DISK_RESERVE). */
  readonly diskReserve: number;
  /** What may be a dataset: checked again right before every view is mounted (also on restore). */
  readonly policy: MountPolicy;
  readonly log?: Logger | undefined;
}


/**
 * The host side of an environment's storage and datasets, made by the agent itself (as root):
 * - its volume: a sparse file of exactly `storageBytes`, formatted ext4, loop-mounted
 *   (nosuid,nodev) under the run directory; the container gets its `data` directory, so writing
 *   past the size fails with ENOSPC inside the container and fills nothing else;
 * - one view per dataset: a non-recursive bind mount of the dataset's real path, remounted
 *   nosuid,nodev and, unless writable, read-only (no submount is carried in, so read-only holds
 *   for the whole tree); the container bind-mounts the view, so Docker mounts what was checked
 *   even if a path component is swapped later.
 * The run directory is a tmpfs: after a host reboot the mount points are gone, so Docker cannot
 * start a container before restore() has mounted them again (its bind sources do not exist).
 */
export class HostMounts {
  /** Volume creation and growth, one at a time on this host, so that two cannot both pass the reserve check. */
  private readonly disk = new KeyedLock();

  constructor(private readonly settings: HostMountsSettings) {}

  /** Makes sure the run directory exists on a tmpfs (mounting a small one when it is not). */
  async prepare(): Promise<void> {
    const { runDir } = this.settings;
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    if ((await statfs(runDir)).type === TMPFS_MAGIC) return;
    await mount(['-t', 'tmpfs', '-o', 'size=16m,mode=0700,nosuid,nodev,noexec', 'remotegpu-run', runDir]);
    this.settings.log?.info({ runDir }, 'mounted a tmpfs for environment mount points');
  }

  /**
   * The host directory to bind-mount at the environment's data path: its volume, created when
   * missing (refused with 'disk_full' when the data directory's disk would fall below its reserve),
   * grown when `storageBytes` is larger than its file system (see grow), never shrunk, and mounted
   * when it is not. `created` is true when this call made the file.
   */
  async ensureVolume(envId: string, storageBytes: number): Promise<{ source: string; created: boolean }> {
    const file = volumeFilePath(this.settings.stateDir, envId);
    const size = Math.max(storageBytes, MIN_VOLUME_BYTES);
    const existing = await stat(file).catch(() => undefined);
    let created = false;
    if (!existing) {
      await this.disk.run('disk', async () => {
        await this.checkReserve(size, envId);
        await createVolumeFile(file, size);
      });
      created = true;
    }
    try {
      if (existing) await this.grow(envId, file, size);
      await this.mountVolume(envId);
    } catch (err) {
      if (created) await this.removeVolume(envId).catch(() => undefined);
      throw err;
    }
    return { source: volumeDataPath(this.settings.runDir, envId), created };
  }

  /** True when the environment has a volume file (created by this agent). */
  async hasVolume(envId: string): Promise<boolean> {
    return Boolean(await stat(volumeFilePath(this.settings.stateDir, envId)).catch(() => undefined));
  }

  /**
   * Makes the views of `mounts` (each dataset's host path already checked by the mount policy and
   * resolved to its real path) and records them for restore(); views of datasets no longer listed
   * are kept until pruneViews (a container being replaced may still use them).
   */
  async ensureViews(envId: string, mounts: readonly DatasetMountSpec[]): Promise<void> {
    const records: ViewRecord[] = mounts.map((m) => ({ datasetId: m.datasetId, hostPath: m.hostPath, readonly: m.readonly }));
    const mounted = records.length > 0 ? await mountPoints() : new Set<string>();
    for (const r of records) await mountView(this.settings, envId, r, mounted);
    const recordFile = viewsRecordPath(this.settings.stateDir, envId);
    await mkdir(dirname(recordFile), { recursive: true, mode: 0o700 });
    await writeFile(recordFile, JSON.stringify(records));
  }

  /** Unmounts the views of `envId` that `mounts` no longer use. */
  async pruneViews(envId: string, mounts: readonly DatasetMountSpec[]): Promise<void> {
    const keep = new Set(mounts.map((m) => datasetViewName(m)));
    const dir = join(envRunDir(this.settings.runDir, envId), 'datasets');
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!keep.has(name)) await unmountAndRemove(join(dir, name));
    }
  }

  /**
   * Mounts every volume and recorded dataset view of this agent that is not mounted (after an agent
   * or host restart); returns the environment ids whose mounts it had to restore. A view whose
   * dataset is gone is skipped with a warning (its container then cannot start).
   */
  async restore(): Promise<string[]> {
    const restored = new Set<string>();
    const mounted = await mountPoints();
    const volumes = await readdir(join(this.settings.stateDir, 'volumes')).catch(() => [] as string[]);
    // Only finished volumes: `<id>.ext4.new` is a creation an agent crash cut short.
    for (const name of volumes.filter((n) => n.endsWith('.ext4'))) {
      const envId = name.slice(0, -'.ext4'.length);
      if (mounted.has(volumeMountPath(this.settings.runDir, envId))) continue;
      try {
        await this.mountVolume(envId);
        restored.add(envId);
      } catch (err) {
        this.settings.log?.warn({ envId, err: String(err) }, 'could not mount an environment volume');
      }
    }
    const envs = await readdir(join(this.settings.stateDir, 'envs')).catch(() => [] as string[]);
    for (const envId of envs) {
      const records = await readRecords(viewsRecordPath(this.settings.stateDir, envId));
      for (const r of records) {
        if (mounted.has(datasetViewPath(this.settings.runDir, envId, datasetViewName(r)))) continue;
        try {
          await mountView(this.settings, envId, r, mounted);
          restored.add(envId);
        } catch (err) {
          this.settings.log?.warn({ envId, datasetId: r.datasetId, err: String(err) }, 'could not restore a dataset view');
        }
      }
    }
    if (restored.size > 0) this.settings.log?.info({ environments: [...restored] }, 'restored environment mounts');
    return [...restored];
  }

  /** Unmounts everything of the environment, deletes its volume file (its data) and its records; true when anything existed. */
  async remove(envId: string): Promise<boolean> {
    const runEnv = envRunDir(this.settings.runDir, envId);
    let existed = false;
    // Deepest first, each until nothing is mounted there any more (mounts may be stacked).
    for (let round = 0; round < 8; round++) {
      const points = [...(await mountPoints())].filter((p) => p.startsWith(`${runEnv}/`)).sort().reverse();
      if (points.length === 0) break;
      for (const point of points) await unmount(point);
      existed = true;
    }
    await rm(runEnv, { recursive: true, force: true });
    await rm(viewsRecordPath(this.settings.stateDir, envId), { force: true });
    return (await this.removeVolume(envId)) || existed;
  }

  /** Bytes used and total of the mounted volume, undefined when it is not mounted. */
  usage(envId: string): Promise<{ usedBytes: number; sizeBytes: number } | undefined> {
    return mountedFsUsage(volumeMountPath(this.settings.runDir, envId));
  }

  private async removeVolume(envId: string): Promise<boolean> {
    const point = volumeMountPath(this.settings.runDir, envId);
    if ((await mountPoints()).has(point)) await unmount(point);
    const file = volumeFilePath(this.settings.stateDir, envId);
    const existed = Boolean(await stat(file).catch(() => undefined));
    await rm(file, { force: true });
    return existed;
  }

  private async mountVolume(envId: string): Promise<void> {
    const point = volumeMountPath(this.settings.runDir, envId);
    if (!(await mountPoints()).has(point)) {
      await mkdir(point, { recursive: true, mode: 0o700 });
      // Private (see mountView); one mount(8) call does both.
      await mount(['-t', 'ext4', '-o', `loop,noatime,${VIEW_OPTIONS.join(',')}`, '--make-private', volumeFilePath(this.settings.stateDir, envId), point]);
    }
    await mkdir(join(point, 'data'), { recursive: true, mode: 0o755 });
  }

  /**
   * Grows the volume to `size` when its file is smaller: the file first, then its file system; a
   * marker file says a grow is under way, so one cut short (resize2fs failed, the agent died) is
   * finished by the next apply. Offline when nothing else has it mounted (the environment is
   * stopped: unmount, e2fsck, resize2fs; nothing beyond root's usual capabilities), else online
   * through the loop device (resize2fs then needs CAP_SYS_RESOURCE).
   */
  private async grow(envId: string, file: string, size: number): Promise<void> {
    const marker = `${file}.growing`;
    const from = (await stat(file)).size;
    const cutShort = Boolean(await stat(marker).catch(() => undefined));
    if (from >= size && !cutShort) return;
    if (from < size) {
      await this.disk.run('disk', async () => {
        await this.checkReserve(size - from, envId);
        await writeFile(marker, String(size));
        await truncate(file, size);
      });
    }
    const point = volumeMountPath(this.settings.runDir, envId);
    if ((await mountPoints()).has(point)) await unmount(point);
    if (await stillAttached(file)) {
      // A running container still has it mounted: grow it in place.
      await this.mountVolume(envId);
      const device = await loopDeviceOf(point);
      if (!device) throw new RuntimeError('internal', `environment ${envId}: its volume is mounted from no loop device`);
      await tool('losetup', ['--set-capacity', device]);
      await tool('resize2fs', [device]);
    } else {
      // Exit code 1: errors were found and fixed, which resize2fs accepts.
      await tool('e2fsck', ['-f', '-p', file]).catch((err: unknown) => {
        if ((err as { cause?: { code?: unknown } }).cause?.code !== 1) throw err;
      });
      await tool('resize2fs', [file]);
    }
    await rm(marker, { force: true });
    this.settings.log?.info({ envId, from, to: Math.max(size, from) }, 'environment volume grown');
  }

  /**
   * Refuses ('disk_full') when `bytes` more, plus what the existing sparse volumes may still grow
   * into, would take the data directory's disk below its reserve.
   */
  private async checkReserve(bytes: number, envId: string): Promise<void> {
    const dir = join(this.settings.stateDir, 'volumes');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const fs = await statfs(dir);
    const total = fs.blocks * fs.bsize;
    const free = fs.bavail * fs.bsize;
    let promised = 0;
    for (const name of await readdir(dir)) {
      const s = await stat(join(dir, name)).catch(() => undefined);
      if (s) promised += Math.max(0, s.size - s.blocks * 512);
    }
    const reserve = Math.ceil(total * this.settings.diskReserve);
    if (free - promised - bytes < reserve) {
      throw new RuntimeError(
        'disk_full',
        `environment ${envId}: a ${formatBytes(bytes)} volume would leave ${formatBytes(Math.max(0, free - promised - bytes))} free on the data disk (${formatBytes(free)} free, ${formatBytes(promised)} promised to existing volumes), below its ${formatBytes(reserve)} reserve (REMOTEGPU_DISK_RESERVE)`,
      );
    }
  }
}

/**
 * True when a loop device is still attached to `file` a moment after its host mount went away: the
 * kernel detaches an autoclear loop device shortly after the last unmount, unless another mount
 * namespace (a running container) still has the file system.
 */
async function stillAttached(file: string): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    if (!(await loopAttached(file))) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}
