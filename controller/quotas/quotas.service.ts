import { AppError } from '../../common/errors.js';
import type { Db } from '../db/database.js';
import type { UserRow } from '../db/schema.js';
import type { Principal } from '../access/principal.js';
import type { QuotaLimits, QuotaUsage } from './quota-rules.js';
import { readLimits, usageOf, writeLimits } from './quotas.repo.js';

/** Limits and what is in use, side by side. */
export interface QuotaView {
  readonly limits: QuotaLimits;
  readonly usage: QuotaUsage;
}

/** What `GET /api/v1/me` shows: the caller, their quota, and each workspace they belong to with its quota. */
export interface MeView {
  readonly user: UserRow;
  readonly quota: QuotaView;
  readonly workspaces: { id: number; name: string; role: 'owner' | 'member'; quota: QuotaView }[];
}

type Kind = 'user' | 'workspace';

/**
 * Quotas: limits an admin sets per user and per workspace (unlimited unless set), and their usage.
 * The check itself runs inside each reservation's transaction (`assertWithinQuota`).
 */
export class QuotasService {
  constructor(private readonly db: Db) {}

  /** A user's or workspace's limits and usage. Throws not_found. */
  async get(kind: Kind, id: number): Promise<QuotaView> {
    await this.assertExists(kind, id);
    return this.view(kind, id);
  }

  /**
   * Replaces every limit of a user or workspace (null: unlimited). Lowering a limit below what is
   * in use takes nothing away: it refuses the next reservation that would add to it. Throws
   * not_found.
   */
  async set(kind: Kind, id: number, limits: QuotaLimits): Promise<QuotaView> {
    await this.assertExists(kind, id);
    await writeLimits(this.db, kind, id, limits);
    return this.view(kind, id);
  }

  /** The caller with their quota and their workspaces' quotas (workspaces by id). */
  async me(p: Principal): Promise<MeView> {
    const user = await this.db.selectFrom('users').selectAll().where('id', '=', p.userId).executeTakeFirst();
    if (!user) throw new AppError('not_found', `user ${p.userId} not found`);
    const memberships = await this.db
      .selectFrom('workspace_members as m')
      .innerJoin('workspaces as w', 'w.id', 'm.workspace_id')
      .select(['w.id', 'w.name', 'm.role'])
      .where('m.user_id', '=', p.userId)
      .orderBy('w.id')
      .execute();
    const [quota, ...workspaceQuotas] = await Promise.all([this.view('user', p.userId), ...memberships.map((m) => this.view('workspace', m.id))]);
    return { user, quota: quota!, workspaces: memberships.map((m, i) => ({ ...m, quota: workspaceQuotas[i]! })) };
  }

  private async view(kind: Kind, id: number): Promise<QuotaView> {
    const [limits, usage] = await Promise.all([readLimits(this.db, kind, id), usageOf(this.db, kind, id)]);
    return { limits, usage };
  }

  private async assertExists(kind: Kind, id: number): Promise<void> {
    const row =
      kind === 'user'
        ? await this.db.selectFrom('users').select('id').where('id', '=', id).executeTakeFirst()
        : await this.db.selectFrom('workspaces').select('id').where('id', '=', id).executeTakeFirst();
    if (!row) throw new AppError('not_found', `${kind} ${id} not found`);
  }
}
