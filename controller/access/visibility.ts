import { sql, type ExpressionBuilder } from 'kysely';
import { AppError } from '../../common/errors.js';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';
import type { Principal } from './principal.js';

/**
 * Tenancy rule for environments and datasets: admins see everything; a user sees rows they own and
 * rows of workspaces they are a member of. Anything else is answered 404, so ids don't leak.
 */
export function visibleEnvironments(p: Principal) {
  return (eb: ExpressionBuilder<Database, 'environments'>) =>
    p.role === 'admin'
      ? sql<boolean>`true`
      : eb.or([
          eb('environments.owner_id', '=', p.userId),
          eb('environments.workspace_id', 'in', eb.selectFrom('workspace_members').select('workspace_members.workspace_id').where('workspace_members.user_id', '=', p.userId)),
        ]);
}

/** Datasets a principal may see and mount: own, their workspaces', and public ones (no owner, no workspace). */
export function visibleDatasets(p: Principal) {
  return (eb: ExpressionBuilder<Database, 'datasets'>) =>
    p.role === 'admin'
      ? sql<boolean>`true`
      : eb.or([
          eb.and([eb('datasets.owner_id', 'is', null), eb('datasets.workspace_id', 'is', null)]),
          eb('datasets.owner_id', '=', p.userId),
          eb('datasets.workspace_id', 'in', eb.selectFrom('workspace_members').select('workspace_members.workspace_id').where('workspace_members.user_id', '=', p.userId)),
        ]);
}

/**
 * Throws not_found naming `workspace_id` unless the workspace exists and the principal may use it
 * (an admin, or a member): the same rule as the visibility predicates above.
 */
export async function assertWorkspaceMember(db: Db, p: Principal, workspaceId: number): Promise<void> {
  const ws = await db
    .selectFrom('workspaces')
    .select('id')
    .where('id', '=', workspaceId)
    .where((eb) => (p.role === 'admin' ? sql<boolean>`true` : eb('id', 'in', eb.selectFrom('workspace_members').select('workspace_id').where('user_id', '=', p.userId))))
    .executeTakeFirst();
  if (!ws) {
    throw new AppError('not_found', `workspace ${workspaceId} not found`, { fields: [{ field: 'workspace_id', message: 'unknown workspace or not a member' }] });
  }
}
