import { sql } from 'kysely';
import { AppError, fieldError } from '../../common/errors.js';
import { visibleDatasets } from '../access/visibility.js';
import type { Db, Trx } from '../db/database.js';
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

/**
 * What a change of a dataset means for the environments that mount it. environments/ provides it
 * (catalog/ sits below environments/ and does not import it); the composition root wires it.
 */
export interface DatasetMounters {
  /**
   * Inside the transaction that makes `dataset` read-only: asks every environment (not deleted) that
   * mounts it read-write to apply again, with an event each; returns their ids.
   */
  remountReadOnly(trx: Trx, dataset: { readonly id: number; readonly name: string }): Promise<readonly string[]>;
  /** Tells the reconciler that desired state changed (called after the commit). */
  wake(): void;
}

/** Directories on the GPU hosts that users may mount into environments, and who may see them. */
export class DatasetsService {
  constructor(
    private readonly db: Db,
    private readonly mounters: DatasetMounters,
  ) {}

  /**
   * Registers a dataset (a directory present on the GPU hosts). With neither owner nor workspace it
   * is visible to everybody. Throws invalid_argument naming owner_id or workspace_id when they do
   * not exist, and naming host_path when a writable dataset would nest with another one (see
   * assertNoWritableNesting).
   */
  async create(input: NewDataset): Promise<DatasetRow> {
    if (input.ownerId !== null) await requireEnabledUser(this.db, input.ownerId, 'owner_id');
    if (input.workspaceId !== null) {
      const ws = await this.db.selectFrom('workspaces').select('id').where('id', '=', input.workspaceId).executeTakeFirst();
      if (!ws) throw fieldError('workspace_id', `no workspace has id ${input.workspaceId}`);
    }
    return this.db.transaction().execute(async (trx) => {
      await lockDatasets(trx);
      await assertNoWritableNesting(trx, { id: null, hostPath: input.hostPath, writable: input.writable }, 'host_path');
      return trx
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
    });
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
   * Changes the given fields of a dataset. Making it writable is refused (invalid_argument naming
   * writable) when its directory nests with another dataset's (see assertNoWritableNesting). Making
   * it read-only (`writable: false`) takes effect now: in the same transaction every environment
   * that mounts it read-write is asked to apply again (an event each), so the reconciler recreates
   * their containers with the mount read-only (the agent spec is computed from the dataset's flag).
   * Throws not_found.
   */
  async update(datasetId: number, changes: DatasetChanges): Promise<DatasetRow> {
    const set = {
      ...(changes.name !== undefined && { name: changes.name }),
      ...(changes.description !== undefined && { description: changes.description }),
      ...(changes.writable !== undefined && { writable: changes.writable }),
    };
    const { row, remounted } = await this.db.transaction().execute(async (trx) => {
      if (changes.writable === true) await lockDatasets(trx);
      const before = await trx.selectFrom('datasets').selectAll().where('id', '=', datasetId).forUpdate().executeTakeFirst();
      if (!before) throw new AppError('not_found', `dataset ${datasetId} not found`);
      if (Object.keys(set).length === 0) return { row: before, remounted: [] as readonly string[] };
      if (changes.writable === true && !before.writable) {
        await assertNoWritableNesting(trx, { id: before.id, hostPath: before.host_path, writable: true }, 'writable');
      }
      const after = await trx.updateTable('datasets').set(set).where('id', '=', datasetId).returningAll().executeTakeFirstOrThrow();
      const remounted = before.writable && !after.writable ? await this.mounters.remountReadOnly(trx, after) : [];
      return { row: after, remounted };
    });
    if (remounted.length > 0) this.mounters.wake();
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

/**
 * Serialises registrations and changes to writable against each other (and against any other
 * write to datasets), so two concurrent requests cannot together create a nesting that each
 * alone would have been refused. Admin operations, rare: a table lock costs nothing here.
 */
async function lockDatasets(trx: Trx): Promise<void> {
  await sql`lock table datasets in share row exclusive mode`.execute(trx);
}

/**
 * A writable dataset must not share its directory with another dataset, contain one or be inside
 * one: a tenant who mounts it read-write could replace the nested directory with a symlink (to
 * /etc, or to another team's private dataset), and every later mount of the other dataset would
 * follow it. Read-only datasets may nest among themselves. Paths are compared as the normalized
 * strings they are stored as (symlinks on the hosts are not resolved). Throws invalid_argument
 * naming `field` (host_path on create, writable on a change).
 */
async function assertNoWritableNesting(
  trx: Trx,
  dataset: { id: number | null; hostPath: string; writable: boolean },
  field: 'host_path' | 'writable',
): Promise<void> {
  const path = dataset.hostPath;
  const clash = await trx
    .selectFrom('datasets')
    .select(['id', 'name', 'host_path', 'writable'])
    .where((eb) =>
      eb.or([
        eb('host_path', '=', path),
        sql<boolean>`starts_with(host_path, ${`${path}/`})`,
        sql<boolean>`starts_with(${path}, host_path || '/')`,
      ]),
    )
    .$if(dataset.id !== null, (qb) => qb.where('id', '<>', dataset.id!))
    .$if(!dataset.writable, (qb) => qb.where('writable', '=', true))
    .orderBy('id')
    .executeTakeFirst();
  if (!clash) return;
  const relation = clash.host_path === path ? 'is the directory of' : clash.host_path.startsWith(`${path}/`) ? 'contains the directory of' : 'is inside the directory of';
  const other = `dataset "${clash.name}" (${clash.id}, ${clash.host_path}${clash.writable ? ', writable' : ''})`;
  const why = 'a writable dataset must not contain, be inside or share the directory of another dataset: a read-write mount could replace the other directory with a symlink';
  const message = `${path} ${relation} ${other}; ${why}`;
  throw fieldError(field, message, field === 'host_path' ? `host_path: ${message}` : `writable: cannot make it writable: ${message}`);
}
