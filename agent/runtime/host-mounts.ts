import { mkdir, readFile, readdir, rm, stat, statfs, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../../common/logger.js';
import { RuntimeError } from './errors.js';
import { datasetViewName, datasetViewPath, envRunDir, volumeDataPath, volumeFilePath, volumeMountPath } from './docker-names.js';
import { createVolumeFile, fileSystemBytes, loopAttached, loopDeviceOf, mount, mountPoints, tool, unmount, unmountAndRemove } from './mount-table.js';
import type { DatasetMountSpec } from './types.js';

const TMPFS_MAGIC = 0x01021994;
/** Smallest volume mkfs.ext4 makes with room for the user's files. */
export const MIN_VOLUME_BYTES = 16 * 1024 * 1024;
/** Mount options of every view an environment gets of the host: no set-uid, no device nodes. */
const VIEW_OPTIONS = ['nosuid', 'nodev'];

/** What HostMounts needs. */
export interface HostMountsSettings {
  /** The agent's data directory: volume files live in `<stateDir>/volumes`, dataset records in `<stateDir>/envs/<id>`. */
  readonly stateDir: string;
  /** This agent's run directory (on a tmpfs): mount points of volumes and dataset views. */
  readonly runDir: string;
  /** Fraction of the data directory's disk a new volume must leave free (REMOTEGPU_DISK_RESERVE). */
  readonly diskReserve: number;
  readonly log?: Logger | undefined;
}

/** One dataset view as recorded for restoring it after a host restart. */
interface ViewRecord {
  readonly datasetId: string;
  /** The dataset's real host path, as the mount policy checked it. */
  readonly hostPath: string;
  readonly readonly: boolean;
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
      await this.checkReserve(size, envId);
      await createVolumeFile(file, size);
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
    for (const r of records) await this.mountView(envId, r);
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
          await this.mountView(envId, r);
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
  async usage(envId: string): Promise<{ usedBytes: number; sizeBytes: number } | undefined> {
    const point = volumeMountPath(this.settings.runDir, envId);
    if (!(await mountPoints()).has(point)) return undefined;
    const s = await statfs(point);
    return { usedBytes: (s.blocks - s.bfree) * s.bsize, sizeBytes: s.blocks * s.bsize };
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
      await mount(['-t', 'ext4', '-o', `loop,noatime,${VIEW_OPTIONS.join(',')}`, volumeFilePath(this.settings.stateDir, envId), point]);
      await mount(['--make-private', point]);
    }
    await mkdir(join(point, 'data'), { recursive: true, mode: 0o755 });
  }

  private async mountView(envId: string, r: ViewRecord): Promise<void> {
    const point = datasetViewPath(this.settings.runDir, envId, datasetViewName(r));
    if ((await mountPoints()).has(point)) return;
    const source = await stat(r.hostPath).catch(() => undefined);
    if (!source?.isDirectory()) throw new RuntimeError('invalid_spec', `environment ${envId}: dataset ${r.datasetId}: ${r.hostPath} is not a directory on this host`);
    await mkdir(point, { recursive: true, mode: 0o700 });
    await mount(['--bind', r.hostPath, point]);
    try {
      // Private: on a host whose mounts are shared (systemd), a mount made later under the dataset
      // must not appear in the view (writable, without nosuid), nor an unmount here reach the host.
      await mount(['--make-private', point]);
      await mount(['-o', ['remount', 'bind', ...VIEW_OPTIONS, r.readonly ? 'ro' : 'rw'].join(','), point]);
    } catch (err) {
      await unmount(point);
      throw err;
    }
  }

  /**
   * Grows the volume's file system to `size` when it is smaller (compared with the file system, not
   * the file, so a grow cut short is finished by the next apply). Offline when nothing else has it
   * mounted (the environment is stopped: unmount, e2fsck, resize2fs; no capability needed beyond
   * root's), else online through the loop device (resize2fs needs CAP_SYS_RESOURCE for that).
   */
  private async grow(envId: string, file: string, size: number): Promise<void> {
    const from = await fileSystemBytes(file);
    if (from >= size) return;
    const fileBytes = (await stat(file)).size;
    if (fileBytes < size) {
      await this.checkReserve(size - fileBytes, envId);
      await truncate(file, size);
    }
    const point = volumeMountPath(this.settings.runDir, envId);
    if ((await mountPoints()).has(point)) await unmount(point);
    if (await loopAttached(file)) {
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
    this.settings.log?.info({ envId, from, to: size }, 'environment volume grown');
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
        `environment ${envId}: a ${gib(bytes)} volume would leave ${gib(Math.max(0, free - promised - bytes))} free on the data disk (${gib(free)} free, ${gib(promised)} promised to existing volumes), below its ${gib(reserve)} reserve (REMOTEGPU_DISK_RESERVE)`,
      );
    }
  }
}

function viewsRecordPath(stateDir: string, envId: string): string {
  return join(stateDir, 'envs', envId, 'datasets.json');
}

async function readRecords(file: string): Promise<ViewRecord[]> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    return Array.isArray(parsed) ? (parsed as ViewRecord[]).filter((r) => typeof r?.hostPath === 'string' && typeof r.datasetId === 'string') : [];
  } catch {
    return [];
  }
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}
