import { AppError } from '../../common/errors.js';
import type { Db, Trx } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { pageOffset, type Page, type PageRequest } from '../db/pagination.js';
import type { EnvironmentEffects } from './environment-effects.js';
import { requireEnabledUser } from './users.repo.js';

export type MemberRole = 'owner' | 'member';

export interface Workspace {
  readonly id: number;
  readonly name: string;
  readonly owner_id: number;
  readonly created_at: Date;
  readonly member_count: number;
}

export interface WorkspaceMember {
  readonly user_id: number;
  readonly name: string;
  readonly role: MemberRole;
  readonly created_at: Date;
}

export interface WorkspaceDetail extends Workspace {
  readonly members: WorkspaceMember[];
}

/** Workspaces (groups of users sharing environments and datasets) and their members. */
export class WorkspacesService {
  constructor(
    private readonly db: Db,
    private readonly effects: EnvironmentEffects,
  ) {}

  /**
   * Creates a workspace; its owner becomes a member with role `owner`. Throws invalid_argument
   * (field owner_id) when the owner does not exist or is disabled.
   */
  async create(input: { name: string; ownerId: number }): Promise<WorkspaceDetail> {
    const id = await this.db.transaction().execute(async (trx) => {
      await requireEnabledUser(trx, input.ownerId, 'owner_id');
      const ws = await trx.insertInto('workspaces').values({ name: input.name, owner_id: input.ownerId }).returning('id').executeTakeFirstOrThrow();
      await trx.insertInto('workspace_members').values({ workspace_id: ws.id, user_id: input.ownerId, role: 'owner' }).execute();
      return ws.id;
    });
    return this.get(id);
  }

  /** Workspaces in id order with their member counts. */
  async list(page: PageRequest): Promise<Page<Workspace>> {
    const [items, count] = await Promise.all([
      this.db
        .selectFrom('workspaces as w')
        .select(['w.id', 'w.name', 'w.owner_id', 'w.created_at'])
        .select((eb) =>
          eb
            .selectFrom('workspace_members as m')
            .select((eb2) => eb2.fn.countAll<number>().as('n'))
            .whereRef('m.workspace_id', '=', 'w.id')
            .as('member_count'),
        )
        .orderBy('w.id')
        .limit(page.pageSize)
        .offset(pageOffset(page))
        .execute(),
      this.db.selectFrom('workspaces').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: items.map((w) => ({ ...w, member_count: Number(w.member_count ?? 0) })), total: Number(count.n) };
  }

  /** One workspace with its members (owner first, then by user id). Throws not_found. */
  async get(workspaceId: number): Promise<WorkspaceDetail> {
    const ws = await this.db.selectFrom('workspaces').select(['id', 'name', 'owner_id', 'created_at']).where('id', '=', workspaceId).executeTakeFirst();
    if (!ws) throw new AppError('not_found', `workspace ${workspaceId} not found`);
    const members = await this.db
      .selectFrom('workspace_members as m')
      .innerJoin('users as u', 'u.id', 'm.user_id')
      .select(['m.user_id', 'u.name', 'm.role', 'm.created_at'])
      .where('m.workspace_id', '=', workspaceId)
      .orderBy('m.role', 'desc') // 'owner' sorts after 'member'; desc puts the owner first
      .orderBy('m.user_id')
      .execute();
    return { ...ws, member_count: members.length, members };
  }

  /**
   * Adds a user to a workspace as a member. Throws not_found (workspace), invalid_argument (field
   * user_id) for an unknown or disabled user, conflict when the user is already a member.
   */
  async addMember(workspaceId: number, userId: number): Promise<WorkspaceMember> {
    await this.requireWorkspace(workspaceId);
    const user = await requireEnabledUser(this.db, userId, 'user_id');
    try {
      const row = await this.db
        .insertInto('workspace_members')
        .values({ workspace_id: workspaceId, user_id: userId, role: 'member' })
        .returning(['user_id', 'role', 'created_at'])
        .executeTakeFirstOrThrow();
      return { ...row, name: user.name };
    } catch (err) {
      if (isUniqueViolation(err)) throw new AppError('conflict', `user ${userId} is already a member of workspace ${workspaceId}`, { cause: err });
      throw err;
    }
  }

  /**
   * Removes a member. What was theirs in the workspace stays the workspace's: in the same
   * transaction their environments in it are handed to the workspace's owner (an `owner_changed`
   * event each) and stopped, so nothing they started keeps running there and their SSH keys leave
   * with them (the next start installs the owner's keys); the data stays. The workspace's datasets
   * are unmounted from their other environments, and every environment of the workspace gets a new
   * Jupyter token (a running one is recreated). They no longer see any of it (404). Throws
   * not_found when the workspace or the membership is absent, wrong_state for the owner (a
   * workspace always keeps its owner).
   */
  async removeMember(workspaceId: number, userId: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const ws = await trx
        .selectFrom('workspaces as w')
        .innerJoin('users as o', 'o.id', 'w.owner_id')
        .select(['w.id', 'w.name', 'w.owner_id', 'o.name as owner_name'])
        .where('w.id', '=', workspaceId)
        .forUpdate('w')
        .executeTakeFirst();
      if (!ws) throw new AppError('not_found', `workspace ${workspaceId} not found`);
      const member = await trx
        .selectFrom('workspace_members as m')
        .innerJoin('users as u', 'u.id', 'm.user_id')
        .select(['m.role', 'u.name'])
        .where('m.workspace_id', '=', workspaceId)
        .where('m.user_id', '=', userId)
        .executeTakeFirst();
      if (!member) throw new AppError('not_found', `user ${userId} is not a member of workspace ${workspaceId}`);
      if (member.role === 'owner') throw new AppError('wrong_state', `user ${userId} owns workspace ${workspaceId} and cannot be removed from it`);
      await trx.deleteFrom('workspace_members').where('workspace_id', '=', workspaceId).where('user_id', '=', userId).execute();
      await this.effects.memberRemoved(trx, { id: ws.id, name: ws.name }, { id: userId, name: member.name }, { id: ws.owner_id, name: ws.owner_name });
    });
    this.effects.committed();
  }

  /**
   * Deletes a workspace with its memberships and datasets. Refused (wrong_state) while an environment
   * that is not deleted belongs to it or mounts one of its datasets. Deleted environments keep their
   * history but lose the link to the workspace. Throws not_found.
   */
  async delete(workspaceId: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const ws = await trx.selectFrom('workspaces').select('id').where('id', '=', workspaceId).forUpdate().executeTakeFirst();
      if (!ws) throw new AppError('not_found', `workspace ${workspaceId} not found`);
      await assertUnused(trx, workspaceId);
      const datasetIds = trx.selectFrom('datasets').select('id').where('workspace_id', '=', workspaceId);
      await trx.deleteFrom('environment_mounts').where('dataset_id', 'in', datasetIds).execute();
      await trx.updateTable('environments').set({ workspace_id: null }).where('workspace_id', '=', workspaceId).execute();
      await trx.deleteFrom('workspaces').where('id', '=', workspaceId).execute();
    });
  }

  private async requireWorkspace(workspaceId: number): Promise<void> {
    const ws = await this.db.selectFrom('workspaces').select('id').where('id', '=', workspaceId).executeTakeFirst();
    if (!ws) throw new AppError('not_found', `workspace ${workspaceId} not found`);
  }
}

/** Throws wrong_state while an environment that is not deleted belongs to the workspace or mounts one of its datasets. */
async function assertUnused(trx: Trx, workspaceId: number): Promise<void> {
  const live = await trx
    .selectFrom('environments')
    .select(['id', 'status'])
    .where('workspace_id', '=', workspaceId)
    .where('desired_state', '<>', 'deleted')
    .orderBy('created_at')
    .execute();
  if (live.length > 0) {
    throw new AppError(
      'wrong_state',
      `workspace ${workspaceId} still has ${live.length} environment(s) (${live.slice(0, 5).map((e) => `${e.id} ${e.status}`).join(', ')}); delete them first`,
    );
  }
  const mounted = await trx
    .selectFrom('environment_mounts as m')
    .innerJoin('environments as e', 'e.id', 'm.env_id')
    .select(['m.env_id', 'm.dataset_id'])
    .where('m.dataset_id', 'in', trx.selectFrom('datasets').select('id').where('workspace_id', '=', workspaceId))
    .where('e.desired_state', '<>', 'deleted')
    .execute();
  if (mounted.length > 0) {
    throw new AppError(
      'wrong_state',
      `datasets of workspace ${workspaceId} are mounted in environment(s) ${[...new Set(mounted.map((m) => m.env_id))].slice(0, 5).join(', ')}; unmount them first`,
    );
  }
}
