import { AppError, fieldError } from '../../common/errors.js';
import { visibleDatasets } from '../access/visibility.js';
import type { Db } from '../db/database.js';
import type { DatasetRow } from '../db/schema.js';
import type { Principal } from '../access/principal.js';
import { pageOffset, type Page, type PageRequest } from '../db/pagination.js';
import { requireEnabledUser } from '../users/users.repo.js';

export interface NewDataset {
  readonly name: string;
  readonly description: string;
  readonly hostPath: string;
  /** Restricts the dataset to this user (null: not restricted to a user). */
  readonly ownerId: number | null;
  /** Restricts the dataset to this workspace's members (null: not restricted to a workspace). */
  readonly workspaceId: number | null;
  /** Whether users may mount it read-write; false (the default): every mount of it is read-only. */
  readonly writable: boolean;
}

/** What an admin may change of a dataset; undefined fields stay as they are. */
export interface DatasetChanges {
  readonly name?: string | undefined;
  readonly description?: string | undefined;
  readonly writable?: boolean | undefined;
}

/** Directories on the GPU hosts that users may mount into environments, and who may see them. */
export class DatasetsService {
  constructor(private readonly db: Db) {}

  /**
   * Registers a dataset (a directory present on the GPU hosts). With neither owner nor workspace it
   * is visible to everybody. Throws invalid_argument naming owner_id or workspace_id when they do
   * not exist.
   */
  async create(input: NewDataset): Promise<DatasetRow> {
    if (input.ownerId !== null) await requireEnabledUser(this.db, input.ownerId, 'owner_id');
    if (input.workspaceId !== null) {
      const ws = await this.db.selectFrom('workspaces').select('id').where('id', '=', input.workspaceId).executeTakeFirst();
      if (!ws) throw fieldError('workspace_id', `no workspace has id ${input.workspaceId}`);
    }
    return this.db
      .insertInto('datasets')
      .values({
        name: input.name,
        description: input.description,
        host_path: input.hostPath,
        owner_id: input.ownerId,
        workspace_id: input.workspaceId,
        writable: input.writable,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Datasets `principal` may see and mount (all of them for admins), in id order. */
  async list(principal: Principal, page: PageRequest): Promise<Page<DatasetRow>> {
    const [items, count] = await Promise.all([
      this.db
        .selectFrom('datasets')
        .selectAll()
        .where(visibleDatasets(principal))
        .orderBy('id')
        .limit(page.pageSize)
        .offset(pageOffset(page))
        .execute(),
      this.db
        .selectFrom('datasets')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where(visibleDatasets(principal))
        .executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(count.n) };
  }

  /** One dataset `principal` may see. Throws not_found, also when it exists but is not visible. */
  async get(principal: Principal, datasetId: number): Promise<DatasetRow> {
    const row = await this.db.selectFrom('datasets').selectAll().where('id', '=', datasetId).where(visibleDatasets(principal)).executeTakeFirst();
    if (!row) throw new AppError('not_found', `dataset ${datasetId} not found`);
    return row;
  }

  /**
   * Changes the given fields of a dataset. Making it read-only (`writable: false`) does not touch
   * running containers: its existing mounts become read-only at their environment's next apply
   * (start, restart, recreate), because the agent spec is computed from the dataset's flag.
   * Throws not_found.
   */
  async update(datasetId: number, changes: DatasetChanges): Promise<DatasetRow> {
    const set = {
      ...(changes.name !== undefined && { name: changes.name }),
      ...(changes.description !== undefined && { description: changes.description }),
      ...(changes.writable !== undefined && { writable: changes.writable }),
    };
    const row =
      Object.keys(set).length === 0
        ? await this.db.selectFrom('datasets').selectAll().where('id', '=', datasetId).executeTakeFirst()
        : await this.db.updateTable('datasets').set(set).where('id', '=', datasetId).returningAll().executeTakeFirst();
    if (!row) throw new AppError('not_found', `dataset ${datasetId} not found`);
    return row;
  }

  /**
   * Deletes a dataset's registration (the data on the hosts is untouched). Refused (wrong_state)
   * while an environment that is not deleted mounts it. Throws not_found.
   */
  async delete(datasetId: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const ds = await trx.selectFrom('datasets').select(['id', 'name']).where('id', '=', datasetId).forUpdate().executeTakeFirst();
      if (!ds) throw new AppError('not_found', `dataset ${datasetId} not found`);
      const mounted = await trx
        .selectFrom('environment_mounts as m')
        .innerJoin('environments as e', 'e.id', 'm.env_id')
        .select(['e.id', 'e.status'])
        .where('m.dataset_id', '=', datasetId)
        .where('e.desired_state', '<>', 'deleted')
        .orderBy('e.created_at')
        .execute();
      if (mounted.length > 0) {
        throw new AppError(
          'wrong_state',
          `dataset "${ds.name}" is mounted in ${mounted.length} environment(s) (${mounted.slice(0, 5).map((e) => `${e.id} ${e.status}`).join(', ')}); unmount it first`,
        );
      }
      // Mounts of deleted environments are history only; they must not keep the dataset alive.
      await trx.deleteFrom('environment_mounts').where('dataset_id', '=', datasetId).execute();
      await trx.deleteFrom('datasets').where('id', '=', datasetId).execute();
    });
  }
}
