import { formatBytes } from '../../common/format.js';

// Pure rules of quotas: what is limited, how usage plus a request compares with a limit, and the
// message that names the limit. No I/O.

/** Every limited quantity, in the order messages and the API list them. */
export const QUOTA_KEYS = ['gpus', 'cpu', 'memory', 'storage', 'environments', 'pending_environments'] as const;
export type QuotaKey = (typeof QUOTA_KEYS)[number];

/** Limits of a user or workspace; null: unlimited. Sizes in bytes, CPU in cores. */
export type QuotaLimits = Record<QuotaKey, number | null>;
/** What a user or workspace holds now (see `usageOf` for what counts). */
export type QuotaUsage = Record<QuotaKey, number>;
/** What an operation adds to the usage (missing: nothing). */
export type QuotaDelta = Partial<Record<QuotaKey, number>>;

export const UNLIMITED: QuotaLimits = Object.freeze({ gpus: null, cpu: null, memory: null, storage: null, environments: null, pending_environments: null });

/** Who a limit belongs to, for messages: "user alice", "workspace ml-team". */
export interface QuotaScope {
  readonly kind: 'user' | 'workspace';
  readonly id: number;
  readonly name: string;
}

function amount(key: QuotaKey, n: number): string {
  return key === 'memory' || key === 'storage' ? formatBytes(n) : String(n);
}

/**
 * The first limit that `usage` plus `delta` would pass, as the user-facing message, e.g.
 * "quota exceeded: gpus 4 of 4 in use for user alice; requested 2", or null when every limit
 * holds. Only quantities the operation increases are checked, so an operation that adds nothing
 * to a quantity already over a (lowered) limit is not refused for it.
 */
export function quotaViolation(scope: QuotaScope, limits: QuotaLimits, usage: QuotaUsage, delta: QuotaDelta): string | null {
  for (const key of QUOTA_KEYS) {
    const limit = limits[key];
    const more = delta[key] ?? 0;
    if (limit === null || !(more > 0) || usage[key] + more <= limit) continue;
    return (
      `quota exceeded: ${key} ${amount(key, usage[key])} of ${amount(key, limit)} in use for ${scope.kind} ${scope.name}; requested ${amount(key, more)}` +
      `; free some (stop or delete environments) or ask an admin to raise the limit (GET /api/v1/me shows limits and usage)`
    );
  }
  return null;
}

/**
 * The first limit that `delta` alone passes (whatever is in use): a request that could never be
 * placed within the quota, e.g. 8 GPUs under a limit of 4. Null when it could.
 */
export function quotaNeverAllows(scope: QuotaScope, limits: QuotaLimits, delta: QuotaDelta): string | null {
  for (const key of QUOTA_KEYS) {
    const limit = limits[key];
    const more = delta[key] ?? 0;
    if (limit === null || !(more > limit)) continue;
    return `quota exceeded: ${key} limit is ${amount(key, limit)} for ${scope.kind} ${scope.name}; requested ${amount(key, more)}, which never fits; ask an admin to raise the limit`;
  }
  return null;
}
