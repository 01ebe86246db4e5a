import { AppError } from '../../common/errors.js';
import type { Trx } from '../db/database.js';
import { quotaNeverAllows, quotaViolation, type QuotaDelta, type QuotaLimits, type QuotaScope, type QuotaUsage } from './quota-rules.js';
import { lockLimits, scopeName, usageOf } from './quotas.repo.js';

/** Whose limits an environment counts against: its owner's, and its workspace's when it has one. */
export interface QuotaOwner {
  readonly ownerId: number;
  readonly workspaceId: number | null;
}

/**
 * quota_exceeded (40904) for a limit `usage` plus the request passes, with what was read: a caller
 * placing many requests (the queue's pass) can tell which later ones this scope refuses too
 * without reading again (`quotaViolation(scope, limits, usage, delta)`).
 */
export class QuotaExceeded extends AppError {
  constructor(
    message: string,
    readonly scope: QuotaScope,
    readonly limits: QuotaLimits,
    readonly usage: QuotaUsage,
  ) {
    super('quota_exceeded', message);
  }
}

function scopesOf(owner: QuotaOwner) {
  const scopes: { kind: 'user' | 'workspace'; id: number }[] = [{ kind: 'user', id: owner.ownerId }];
  if (owner.workspaceId !== null) scopes.push({ kind: 'workspace', id: owner.workspaceId });
  return scopes;
}

/**
 * Checks, inside the transaction that reserves, that `delta` fits the owner's limits and the
 * workspace's: each quota row is locked (user first, then workspace: always this order, so two
 * transactions never wait on each other in a circle) and the usage read after the lock, so two
 * concurrent reservations cannot both pass against the same room. Throws quota_exceeded (40904)
 * naming the limit. Without limits set it reads nothing more.
 *
 * `neverAllows` also refuses a delta that passes a limit on its own (a queued environment that
 * could never be placed within the quota).
 */
export async function assertWithinQuota(trx: Trx, owner: QuotaOwner, delta: QuotaDelta, options: { neverAllows?: QuotaDelta } = {}): Promise<void> {
  const locked: { kind: 'user' | 'workspace'; id: number; limits: QuotaLimits }[] = [];
  for (const scope of scopesOf(owner)) {
    const limits = await lockLimits(trx, scope.kind, scope.id);
    if (limits) locked.push({ ...scope, limits });
  }
  for (const { kind, id, limits } of locked) {
    // The scope's name is only for a refusal's message: read when there is one.
    const unnamed = { kind, id, name: '' };
    const named = async () => ({ kind, id, name: await scopeName(trx, kind, id) });
    const { neverAllows } = options;
    if (neverAllows && quotaNeverAllows(unnamed, limits, neverAllows)) throw new AppError('quota_exceeded', quotaNeverAllows(await named(), limits, neverAllows)!);
    const usage = await usageOf(trx, kind, id);
    if (quotaViolation(unnamed, limits, usage, delta)) {
      const scope = await named();
      throw new QuotaExceeded(quotaViolation(scope, limits, usage, delta)!, scope, limits, usage);
    }
  }
}
