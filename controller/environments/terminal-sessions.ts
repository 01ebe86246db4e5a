import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { logLoopFailure } from '../db/errors.js';
import type { AgentPool } from '../hosts/types.js';
import { addEvent } from './environment-writes.js';
import { recheckStreams, type FollowCaller, type TokenCheck } from './stream-access.js';
import { CLOSE, TerminalSession, type SessionOwner, type TerminalPeer } from './terminal-session.js';

export interface TerminalSessionsOptions {
  readonly db: Db;
  readonly logger: Logger;
  readonly agents: AgentPool;
  readonly tokens: TokenCheck;
  /** Open terminals one user may have on this controller (REMOTEGPU_TERMINAL_MAX_PER_USER). */
  readonly maxPerUser: number;
  /** A session with neither input nor output for this long is closed (REMOTEGPU_TERMINAL_IDLE_TIMEOUT_MS). */
  readonly idleTimeoutMs: number;
  /** Output waiting for a slow client above which the agent's stream is paused (default 1 MiB). */
  readonly highWaterBytes?: number;
  /** How often every session's token, user and environment are checked again (default 2 s). */
  readonly checkMs?: number;
}

/**
 * Every open terminal of this controller. One timer serves them all: every second the idle ones are
 * closed (4408); every `checkMs` one query checks every session's token and user (4401 when revoked,
 * expired or disabled) and one query per user that their environments are still visible and running
 * (4401 when no longer visible, 4409 when stopped or deleted). No timer runs while none is open.
 */
export class TerminalSessions implements SessionOwner {
  private readonly sessions = new Set<TerminalSession>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private lastCheckAt = 0;
  private readonly log: Logger;
  private readonly highWaterBytes: number;

  constructor(private readonly o: TerminalSessionsOptions) {
    this.log = o.logger.child({ component: 'terminals' });
    this.highWaterBytes = o.highWaterBytes ?? 1024 * 1024;
  }

  /** Throws too_many_requests (429) when the user has as many open terminals as allowed. */
  assertRoom(userId: number): void {
    const mine = [...this.sessions].filter((s) => s.caller.principal.userId === userId).length;
    if (mine >= this.o.maxPerUser) {
      throw new AppError('too_many_requests', `you already have ${mine} terminals open, the most one user may (REMOTEGPU_TERMINAL_MAX_PER_USER=${this.o.maxPerUser}); close one and retry`);
    }
  }

  /**
   * Opens a terminal in `env` (checked running and visible by the caller) for `peer`: registers it
   * (closing the peer with 4429 when the user has too many), records the "opened" event and starts the
   * agent's shell. The session ends by itself (exit, failure, checks) or through `clientClosed`.
   */
  open(caller: FollowCaller, env: { id: string; host_id: string }, peer: TerminalPeer, size: { cols: number; rows: number }, ackMode = false): TerminalSession | undefined {
    try {
      this.assertRoom(caller.principal.userId);
    } catch (err) {
      peer.close(CLOSE.tooMany, 'too many terminals');
      this.log.info({ envId: env.id, userId: caller.principal.userId }, (err as Error).message);
      return undefined;
    }
    const session = new TerminalSession(caller, env.id, peer, this, this.highWaterBytes, ackMode);
    this.sessions.add(session);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), 1000);
      this.timer.unref();
    }
    this.record(env.id, 'terminal_opened', `terminal opened by ${caller.principal.name}`);
    void this.connect(session, env.host_id, size);
    return session;
  }

  private async connect(session: TerminalSession, hostId: string, size: { cols: number; rows: number }): Promise<void> {
    try {
      const agent = await this.o.agents.forHost(hostId);
      if (session.ended) return;
      session.attach(
        agent.exec(session.envId, size, {
          onData: (data) => session.output(data),
          onExit: (code) => void session.exited(code),
          onError: (err) => void session.failed(err),
          onDrain: () => session.drained(),
        }),
      );
    } catch (err) {
      this.log.warn({ envId: session.envId, hostId, err: (err as Error).message }, 'terminal: agent not reached');
      session.end(CLOSE.agentUnreachable, 'agent unreachable');
    }
  }

  ended(session: TerminalSession, reason: string): void {
    if (!this.sessions.delete(session)) return;
    this.record(session.envId, 'terminal_closed', `terminal closed (${reason})`);
    if (this.sessions.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  async stillRunning(envId: string): Promise<boolean> {
    const row = await this.o.db.selectFrom('environments').select(['status', 'desired_state']).where('id', '=', envId).executeTakeFirst();
    return row?.desired_state === 'running' && row.status === 'running';
  }

  /** Open terminals and the output they hold for slow clients (figures for tests and benches). */
  stats(): { sessions: number; queuedBytes: number; maxQueuedBytes: number; paused: number; ackMode: number } {
    let queuedBytes = 0;
    let maxQueuedBytes = 0;
    let paused = 0;
    let ackMode = 0;
    for (const s of this.sessions) {
      queuedBytes += s.queuedBytes;
      maxQueuedBytes = Math.max(maxQueuedBytes, s.maxQueuedBytes);
      if (s.paused) paused += 1;
      if (s.ackMode) ackMode += 1;
    }
    return { sessions: this.sessions.size, queuedBytes, maxQueuedBytes, paused, ackMode };
  }

  /** Ends every session (shutdown). */
  closeAll(code: number, reason: string): void {
    for (const s of [...this.sessions]) s.end(code, reason);
  }

  private record(envId: string, kind: string, message: string): void {
    this.o.db
      .transaction()
      .execute((trx) => addEvent(trx, envId, { kind, message }))
      .catch((err: unknown) => logLoopFailure(this.log, err, 'terminal event', 'warn', { envId }));
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const now = Date.now();
      for (const s of [...this.sessions]) if (now - s.lastActivityAt >= this.o.idleTimeoutMs) s.end(CLOSE.idle, 'idle timeout');
      if (now - this.lastCheckAt >= (this.o.checkMs ?? 2000)) {
        this.lastCheckAt = now;
        await this.checkAccess();
      }
    } catch (err) {
      logLoopFailure(this.log, err, 'terminal check', 'warn', { sessions: this.sessions.size });
    } finally {
      this.ticking = false;
    }
  }

  /** Ends the sessions whose token or user is no longer valid, or whose environment is gone or stopped. */
  private async checkAccess(): Promise<void> {
    for (const [s, access] of await recheckStreams(this.o.db, this.o.tokens, [...this.sessions])) {
      if ('ended' in access) s.end(CLOSE.revoked, access.ended);
      else if (!access.env) s.end(CLOSE.revoked, 'environment no longer visible');
      else if (access.env.desired_state !== 'running' || access.env.status !== 'running') s.end(CLOSE.notRunning, 'environment is not running');
    }
  }
}
