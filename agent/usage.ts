import type Dockerode from 'dockerode';
import { formatBytes } from '../common/format.js';
import { volumeDataPath, volumeMountPath, volumeName } from './runtime/docker-names.js';
import { mountedFsUsage } from './runtime/mount-table.js';
import type { ObservedStatus } from './runtime/types.js';

// What an environment uses of the host's disk, as the reporter sends it: the used bytes of its
// storage volume (statfs, cheap, at every report), its container's writable layer (Docker's
// SizeRw, costly: measured on a slower cadence by RootfsWatch and cached there, plus the layers a
// recreate committed into the environment's private image, which the container runs on), and the reason
// the agent stopped it, if it did. Also the data disk's reserve and pressure for the host facts.

/** One environment's usage as reported; undefined fields are unknown. */
export interface EnvUsage {
  readonly storageUsedBytes?: number | undefined;
  readonly rootfsUsedBytes?: number | undefined;
  /** Why the agent itself stopped the container (e.g. the writable-layer limit). */
  readonly stopReason?: string | undefined;
}

/** What the reporter needs of the writable-layer watch. */
export interface RootfsSource {
  /** The last measured writable-layer size of the environment (committed layers included), undefined before the first. */
  rootfsUsedBytes(envId: string): number | undefined;
  /** Why the agent stopped the environment's container ('' or undefined when it did not). */
  stopReason(envId: string): string | undefined;
  /** The containers as the reporter just listed them (the watch need not list them again). */
  observe?(statuses: readonly ObservedStatus[]): void;
}

/**
 * Used bytes of the filesystem mounted at `path`: (blocks - free blocks) * block size, as df's
 * "Used". Undefined when `path` does not exist or is not a mount point (it would measure the run
 * directory's tmpfs instead).
 */
export async function mountedUsedBytes(path: string): Promise<number | undefined> {
  return (await mountedFsUsage(path))?.usedBytes;
}

/** The used bytes of an environment's ext4 volume; undefined when it is not mounted (or is a legacy Docker volume). */
export function storageUsedBytes(runDir: string, envId: string): Promise<number | undefined> {
  return mountedUsedBytes(volumeMountPath(runDir, envId));
}

/** The usage of every environment in `statuses`, by env id, for one report. */
export async function environmentUsage(statuses: readonly ObservedStatus[], runDir: string, rootfs: RootfsSource | undefined): Promise<Map<string, EnvUsage>> {
  rootfs?.observe?.(statuses);
  const entries = await Promise.all(
    statuses.map(async (s): Promise<[string, EnvUsage]> => {
      const storage = s.state === 'absent' ? undefined : await storageUsedBytes(runDir, s.envId);
      // A stop reason speaks of a container that is not running (it is forgotten once it runs again).
      const stopReason = s.state === 'running' ? undefined : rootfs?.stopReason(s.envId) || undefined;
      return [s.envId, { storageUsedBytes: storage, rootfsUsedBytes: rootfs?.rootfsUsedBytes(s.envId), stopReason }];
    }),
  );
  return new Map(entries);
}

/** A container's writable layer as Docker measures it, and where the environment's storage is mounted in it. */
export interface RootfsMeasurement {
  /** What the environment's container wrote outside its volumes: `layerBytes` + `committedBytes`. */
  readonly usedBytes: number;
  /** The container's own writable layer (Docker's SizeRw). */
  readonly layerBytes: number;
  /**
   * What earlier containers of the environment wrote: the layers a recreate committed into the
   * environment's private image, which the container runs on (0 when it runs on the catalog image).
   * Deleting those files in the container does not free them: a deletion only hides them.
   */
  readonly committedBytes: number;
  /** The container path of the storage volume ('' when the container has none). */
  readonly dataPath: string;
}

/**
 * The history comment of the agent's commits (docker-commit.ts commitContainer): "remotegpu:
 * writable layer of <env> before a recreate". rootfs-docker.test.ts checks the two agree.
 */
export const COMMIT_COMMENT_PREFIX = 'remotegpu: writable layer of ';

/** Committed bytes by image id: an image's layers never change, so each image is read once. */
const committedByImage = new Map<string, number>();
const COMMITTED_CACHE_MAX = 1024;

/**
 * The bytes the agent's commits add to an image: the sizes of the layers at the top of its history
 * that commitContainer made (a recreate's commit of a container running on a committed image
 * stacks its layer on those). 0 for a catalog image. Counted from the history rather than as the
 * image's size less the catalog image's, because the catalog tag may since name another image.
 * Cached by image id.
 */
export async function committedBytes(docker: Dockerode, imageId: string): Promise<number> {
  if (!imageId) return 0;
  const cached = committedByImage.get(imageId);
  if (cached !== undefined) return cached;
  const history = (await docker.getImage(imageId).history()) as { Comment?: string; Size?: number }[];
  let bytes = 0;
  // Newest first: the agent's commits are on top of the catalog image's layers.
  for (const entry of history) {
    if (!entry.Comment?.startsWith(COMMIT_COMMENT_PREFIX)) break;
    bytes += Math.max(0, entry.Size ?? 0);
  }
  if (committedByImage.size >= COMMITTED_CACHE_MAX) committedByImage.clear();
  committedByImage.set(imageId, bytes);
  return bytes;
}

/**
 * Measures what an environment's container wrote outside its volumes: `docker inspect --size`
 * (GET /containers/{id}/json?size=1) → SizeRw, which Docker computes by walking the layer's files,
 * so it costs time proportional to what was written there: call it sparingly; plus what earlier
 * containers of the environment wrote and a recreate committed into the image this one runs on
 * (committedBytes: one image history per new image, cached). Rejects when the container is gone.
 */
export async function measureRootfs(docker: Dockerode, containerId: string, envId: string, runDir: string): Promise<RootfsMeasurement> {
  // dockerode passes the options as query parameters; its types do not list `size`.
  const options = { size: true } as Dockerode.ContainerInspectOptions;
  const info = (await docker.getContainer(containerId).inspect(options)) as Dockerode.ContainerInspectInfo & { SizeRw?: number };
  const source = volumeDataPath(runDir, envId);
  const legacy = volumeName(envId);
  const mount = (info.Mounts ?? []).find((m) => m.Source === source || m.Name === legacy);
  const layerBytes = Math.max(0, info.SizeRw ?? 0);
  const committed = await committedBytes(docker, info.Image);
  return { usedBytes: layerBytes + committed, layerBytes, committedBytes: committed, dataPath: mount?.Destination ?? '' };
}

/** Bytes of the data disk the agent keeps free: `fraction` (REMOTEGPU_DISK_RESERVE) of its size, rounded up. */
export function diskReserveBytes(totalBytes: number, fraction: number): number {
  return Math.ceil(Math.max(0, totalBytes) * Math.max(0, fraction));
}

/** True when the data disk's free bytes are below its reserve: the host should take no new environments. */
export function underDiskPressure(freeBytes: number, reserveBytes: number): boolean {
  return reserveBytes > 0 && freeBytes < reserveBytes;
}

/** "10 GiB", "9.1 GiB", "512 MiB", "100 bytes": binary units, at most one decimal, for messages. */
export const formatSize = formatBytes;
