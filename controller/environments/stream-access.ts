import type { Principal } from '../access/principal.js';
import { visibleEnvironments } from '../access/visibility.js';
import type { Db } from '../db/database.js';
import type { DesiredState, EnvStatus } from '../db/schema.js';

/** The caller of a long-lived stream (a log follow, a terminal): who, and the hash of the token they authenticated with (never the token). */
export interface FollowCaller {
  readonly principal: Principal;
  readonly tokenHash: string;
}

/**
 * Checks tokens by their hash: a fresh principal while the token is valid, or why it no longer is
 * ('token revoked', 'token expired', 'user disabled'). UsersService.checkTokens.
 */
export type TokenCheck = (hashes: readonly string[]) => Promise<ReadonlyMap<string, { principal: Principal } | { ended: string }>>;

/** An open stream of one caller on one environment. */
export interface WatchedStream {
  caller: FollowCaller;
  readonly envId: string;
}

/**
 * What a recheck found for one stream: its token or user no longer valid (`ended`), or its
 * environment as its caller sees it now (`env` undefined: gone from their view).
 */
export type StreamAccess = { readonly ended: string } | { readonly env: { readonly status: EnvStatus; readonly desired_state: DesiredState } | undefined };

/**
 * Rechecks the callers of open streams: one token query for all of them, then one visibility query
 * per user. A stream whose token is still valid gets its fresh principal (a role change shows at
 * the next check). Each stream's owner decides what a finding ends (LogFollows, TerminalSessions).
 * `countQuery` is called for each query made.
 */
export async function recheckStreams<T extends WatchedStream>(db: Db, tokens: TokenCheck, open: readonly T[], countQuery: () => void = () => {}): Promise<Map<T, StreamAccess>> {
  const found = new Map<T, StreamAccess>();
  if (open.length === 0) return found;
  countQuery();
  const states = await tokens(open.map((s) => s.caller.tokenHash));
  const byUser = new Map<number, { principal: Principal; streams: T[] }>();
  for (const s of open) {
    const state = states.get(s.caller.tokenHash) ?? { ended: 'token revoked' };
    if ('ended' in state) {
      found.set(s, { ended: state.ended });
      continue;
    }
    s.caller = { ...s.caller, principal: state.principal };
    const group = byUser.get(state.principal.userId) ?? { principal: state.principal, streams: [] };
    group.streams.push(s);
    byUser.set(state.principal.userId, group);
  }
  for (const { principal, streams } of byUser.values()) {
    countQuery();
    const rows = await db
      .selectFrom('environments')
      .select(['id', 'status', 'desired_state'])
      .where('id', 'in', [...new Set(streams.map((s) => s.envId))])
      .where(visibleEnvironments(principal))
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const s of streams) found.set(s, { env: byId.get(s.envId) });
  }
  return found;
}
