import { constants } from 'node:fs';
import { mkdir, open, readFile, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { datasetViewName, datasetViewPath } from './docker-names.js';
import { RuntimeError } from './errors.js';
import { checkBindSource, type MountPolicy } from './mount-policy.js';
import { VIEW_OPTIONS, mount, mountPoints, unmount } from './mount-table.js';

// An environment's views of its datasets (host-mounts.ts keeps them and restores them): each a
// bind mount of the dataset's directory that the container mounts instead of the dataset itself.

/** One dataset view as recorded for restoring it after a host restart. */
export interface ViewRecord {
  readonly datasetId: string;
  /** The dataset's real host path, as the mount policy checked it. */
  readonly hostPath: string;
  readonly readonly: boolean;
}

/**
 * Mounts the view of one dataset: `r.hostPath` must still be a real path (no component swapped
 * for a symlink since it was checked or recorded) that the mount policy accepts; the directory is
 * opened without following a final symlink, its path read back from the open descriptor, and the
 * bind mount made from the descriptor itself, so the view is the directory that was checked
 * whatever is renamed or swapped meanwhile. `mounted`: the mount points, when the caller has read them (the view is added to them).
 */
export async function mountView(
  settings: { readonly runDir: string; readonly policy: MountPolicy },
  envId: string,
  r: ViewRecord,
  mounted?: Set<string>,
): Promise<void> {
  const point = datasetViewPath(settings.runDir, envId, datasetViewName(r));
  if ((mounted ?? (await mountPoints())).has(point)) return;
  const prefix = `environment ${envId}: dataset ${r.datasetId}: `;
  const real = await realpath(r.hostPath).catch(() => undefined);
  if (real === undefined) throw new RuntimeError('invalid_spec', `${prefix}${r.hostPath} is not a directory on this host`);
  if (real !== r.hostPath) throw new RuntimeError('permission_denied', `${prefix}${r.hostPath} now resolves to ${real}: a path component was replaced by a symlink; not mounted`);
  checkBindSource(real, settings.policy, undefined, prefix);
  const dir = await open(real, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
    throw new RuntimeError('invalid_spec', `${prefix}${r.hostPath} is not a directory on this host (${err.code ?? String(err)})`);
  });
  try {
    const opened = await readlink(`/proc/self/fd/${dir.fd}`);
    if (opened !== real) throw new RuntimeError('permission_denied', `${prefix}${r.hostPath} was replaced while being mounted (opened ${opened}); not mounted`);
    await mkdir(point, { recursive: true, mode: 0o700 });
    // One mount(8) call: the bind, its options (a remount) and private propagation, so that on a
    // host whose mounts are shared (systemd) a mount made later under the dataset does not appear
    // in the view (writable, without nosuid), nor an unmount here reach the host.
    const options = [...VIEW_OPTIONS, r.readonly ? 'ro' : 'rw'].join(',');
    await mount(['--no-canonicalize', '--bind', '-o', options, '--make-private', `/proc/${process.pid}/fd/${dir.fd}`, point]).catch(async (err: unknown) => {
      if ((await mountPoints()).has(point)) await unmount(point);
      throw err;
    });
  } finally {
    await dir.close();
  }
  mounted?.add(point);
}

export function viewsRecordPath(stateDir: string, envId: string): string {
  return join(stateDir, 'envs', envId, 'datasets.json');
}

export async function readRecords(file: string): Promise<ViewRecord[]> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    return Array.isArray(parsed) ? (parsed as ViewRecord[]).filter((r) => typeof r?.hostPath === 'string' && typeof r.datasetId === 'string') : [];
  } catch {
    return [];
  }
}
