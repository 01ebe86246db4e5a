import { AppError } from '../../common/errors.js';
import type { Principal } from '../access/principal.js';
import type { EnvWithHost } from './environments.repo.js';
import type { FollowCaller } from './log-follows.js';
import { TerminalSessions, type TerminalSessionsOptions } from './terminal-sessions.js';
import { issueTicket, redeemTicket } from './terminal-tickets.repo.js';

/** How long a terminal ticket is valid. */
export const TICKET_TTL_MS = 30_000;

export interface TerminalsOptions extends TerminalSessionsOptions {
  /** The environment a principal may see (EnvironmentsService.get: not_found otherwise). */
  readonly environment: (p: Principal, envId: string) => Promise<EnvWithHost>;
}

/** A running environment with its host, as a terminal needs it. */
export type RunningEnvironment = EnvWithHost & { host_id: string };

/**
 * Terminals into environments: tickets (single use, 30 s, bound to the caller, their token and the
 * environment; stored as hashes in the database so any replica redeems them) and the open sessions.
 */
export class TerminalsService {
  readonly sessions: TerminalSessions;

  constructor(private readonly o: TerminalsOptions) {
    this.sessions = new TerminalSessions(o);
  }

  /**
   * Checks that `caller` may open a terminal in `envId` now: not_found (404) when they cannot see it,
   * wrong_state (409) when it is not running, too_many_requests (429) at their limit.
   */
  async prepare(caller: FollowCaller, envId: string): Promise<RunningEnvironment> {
    const env = await this.o.environment(caller.principal, envId);
    if (env.desired_state !== 'running' || env.status !== 'running' || !env.host_id) {
      throw new AppError('wrong_state', `environment ${envId} is not running (status ${env.status}); start it, then open the terminal`);
    }
    this.sessions.assertRoom(caller.principal.userId);
    return env as RunningEnvironment;
  }

  /** A ticket for `envId` after the checks of `prepare`. The ticket is returned once and never stored. */
  async issueTicket(caller: FollowCaller, envId: string): Promise<{ ticket: string; expiresAt: Date }> {
    await this.prepare(caller, envId);
    return issueTicket(this.o.db, { envId, userId: caller.principal.userId, tokenHash: caller.tokenHash }, TICKET_TTL_MS);
  }

  /**
   * Redeems a ticket for `envId`: the caller it was made for, with a fresh principal. unauthenticated
   * (401) when it is unknown, used, expired, made for another environment, or its token or user is
   * no longer valid. A ticket is used up by the first redemption, successful or not.
   */
  async redeem(ticket: string, envId: string): Promise<FollowCaller> {
    const grant = await redeemTicket(this.o.db, ticket);
    if (!grant || grant.envId !== envId) throw new AppError('unauthenticated', 'invalid, used or expired terminal ticket: ask for a new one (POST .../terminal/ticket)');
    const state = (await this.o.tokens([grant.tokenHash])).get(grant.tokenHash);
    if (!state || 'ended' in state) throw new AppError('unauthenticated', `the token that asked for this ticket is no longer valid (${state && 'ended' in state ? state.ended : 'token revoked'})`);
    return { principal: state.principal, tokenHash: grant.tokenHash };
  }
}
