import { AppError, fieldError } from '../../common/errors.js';
import type { Db, Trx } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { visibleDatasets } from '../access/visibility.js';
import type { Principal } from '../access/principal.js';
import { invalidMount, isUnder, validateMountPath } from '../catalog/paths.js';
import { lockEnvironment, type EnvWithHost } from './environments.repo.js';
import { addEvent, requestChange, requestReapply } from './environment-writes.js';
import { assertAllowed } from './state-machine.js';

/**
 * Mounts a dataset the caller may see at `mountPath` (absolute, normalized, not a system path,
 * unique per environment) in `env`, which the caller may see. A running environment gets it
 * through a container recreate that keeps its data. Users can only narrow: a dataset an admin has
 * not marked writable is mounted read-only, and asking for `readonly: false` on it is an
 * invalid_argument naming `readonly` (nothing is written).
 */
export async function mountDataset(db: Db, p: Principal, env: EnvWithHost, input: { datasetId: number; mountPath: string; readonly: boolean }): Promise<void> {
  assertAllowed('mount', env.status, env.id);
  const mountPath = validateMountPath(input.mountPath);
  const dataPath = env.image_data_path; // the environment's own copy: an edited image does not move it
  if (isUnder(mountPath, dataPath) || isUnder(dataPath, mountPath)) {
    throw invalidMount(`mount_path ${mountPath} overlaps the environment's data path ${dataPath}`);
  }
  const dataset = await db.selectFrom('datasets').select(['id', 'name', 'writable']).where('id', '=', input.datasetId).where(visibleDatasets(p)).executeTakeFirst();
  if (!dataset) {
    throw new AppError('not_found', `dataset ${input.datasetId} not found`, { fields: [{ field: 'dataset_id', message: 'unknown dataset' }] });
  }
  assertMountable(dataset, input.readonly);
  try {
    await db.transaction().execute(async (trx) => {
      assertAllowed('mount', (await lockEnvironment(trx, env.id)).status, env.id);
      const mounts = await trx.selectFrom('environment_mounts').select(['dataset_id', 'mount_path']).where('env_id', '=', env.id).execute();
      for (const m of mounts) {
        if (m.dataset_id === input.datasetId) throw new AppError('conflict', `dataset ${input.datasetId} is already mounted at ${m.mount_path}`);
        if (isUnder(mountPath, m.mount_path) || isUnder(m.mount_path, mountPath)) {
          throw new AppError('conflict', `mount_path ${mountPath} overlaps the mount at ${m.mount_path}`, { fields: [{ field: 'mount_path', message: 'overlaps another mount' }] });
        }
      }
      await trx.insertInto('environment_mounts').values({ env_id: env.id, dataset_id: input.datasetId, mount_path: mountPath, readonly: input.readonly }).execute();
      const message = `Dataset ${dataset.name} (${dataset.id}) mounted at ${mountPath}${input.readonly ? ' read-only' : ''}`;
      await requestChange(trx, env.id, null, { kind: 'dataset_mounted', message });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError('conflict', `mount_path ${mountPath} or dataset ${input.datasetId} is already mounted in ${env.id}`);
    throw err;
  }
}

/**
 * Users can only narrow a dataset's access: read-write needs a dataset an admin marked writable.
 * The agent spec applies the same rule to every mount when it is built (see spec.ts).
 */
export function assertMountable(dataset: { id: number; name: string; writable: boolean }, readonly: boolean): void {
  if (readonly || dataset.writable) return;
  throw fieldError(
    'readonly',
    'must be true (or omitted): the dataset is read-only',
    `readonly: dataset "${dataset.name}" (${dataset.id}) is read-only and can only be mounted with "readonly": true (the default); an admin can mark it writable`,
  );
}

/** Unmounts a dataset from `env`, which the caller may see; not_found when it is not mounted. */
export async function unmountDataset(db: Db, env: EnvWithHost, datasetId: number): Promise<void> {
  assertAllowed('unmount', env.status, env.id);
  await db.transaction().execute(async (trx) => {
    const removed = await trx.deleteFrom('environment_mounts').where('env_id', '=', env.id).where('dataset_id', '=', datasetId).executeTakeFirst();
    if (Number(removed.numDeletedRows) === 0) throw new AppError('not_found', `dataset ${datasetId} is not mounted in ${env.id}`);
    await requestChange(trx, env.id, null, { kind: 'dataset_unmounted', message: `Dataset ${datasetId} unmounted` });
  });
}

/**
 * In the transaction that makes `dataset` read-only (an admin's PATCH): every environment that is
 * not deleted and mounts it read-write is applied again, so its container is recreated with the
 * mount read-only now rather than at its next start (buildAgentSpec reads the dataset's flag).
 * Mounts that were read-only already change nothing and recreate nothing. Returns the ids.
 */
export async function remountReadOnly(trx: Trx, dataset: { readonly id: number; readonly name: string }): Promise<string[]> {
  const mounted = await trx
    .selectFrom('environment_mounts as m')
    .innerJoin('environments as e', 'e.id', 'm.env_id')
    .select('e.id')
    .where('m.dataset_id', '=', dataset.id)
    .where('m.readonly', '=', false)
    .where('e.desired_state', '!=', 'deleted')
    .orderBy('e.id')
    .execute();
  const message = `Dataset ${dataset.name} (${dataset.id}) is read-only now: remounting it read-only`;
  return requestReapply(trx, mounted.map((m) => m.id), { kind: 'dataset_readonly', message });
}

/**
 * In the transaction that removes `ownerId` from workspace `workspaceId`: the workspace's datasets
 * are unmounted from that user's environments that are not deleted (those in the workspace itself
 * were handed to its owner before). A running one is recreated without them; a stopped one starts
 * without them. Returns the ids of the environments that changed.
 */
export async function unmountWorkspaceDatasets(trx: Trx, ownerId: number, workspaceId: number, why: string): Promise<string[]> {
  const mounted = await trx
    .selectFrom('environment_mounts as m')
    .innerJoin('environments as e', 'e.id', 'm.env_id')
    .innerJoin('datasets as d', 'd.id', 'm.dataset_id')
    .select(['e.id', 'e.status', 'd.id as dataset_id', 'd.name'])
    .where('e.owner_id', '=', ownerId)
    .where('e.desired_state', '!=', 'deleted')
    .where('d.workspace_id', '=', workspaceId)
    .orderBy('e.id')
    .orderBy('d.id')
    .execute();
  const byEnv = new Map<string, typeof mounted>();
  for (const m of mounted) byEnv.set(m.id, [...(byEnv.get(m.id) ?? []), m]);
  for (const [envId, rows] of byEnv) {
    await trx.deleteFrom('environment_mounts').where('env_id', '=', envId).where('dataset_id', 'in', rows.map((r) => r.dataset_id)).execute();
    const message = `Dataset${rows.length > 1 ? 's' : ''} ${rows.map((r) => `${r.name} (${r.dataset_id})`).join(', ')} unmounted: ${why}`;
    if (rows[0]!.status === 'stopped') await addEvent(trx, envId, { kind: 'dataset_unmounted', message });
    else await requestChange(trx, envId, null, { kind: 'dataset_unmounted', message });
  }
  return [...byEnv.keys()];
}
