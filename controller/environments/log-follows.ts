import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { logLoopFailure } from '../db/errors.js';
import type { Db } from '../db/database.js';
import { eventsAfter } from './events.repo.js';
import { recheckStreams, type FollowCaller, type TokenCheck } from './stream-access.js';
import type { FollowQueue } from './follow-queue.js';

export type { FollowCaller, TokenCheck } from './stream-access.js';

export interface LogFollowsOptions {
  readonly db: Db;
  readonly logger: Logger;
  readonly tokens: TokenCheck;
  /** Open follows one user may have on this controller (REMOTEGPU_MAX_FOLLOWS_PER_USER). */
  readonly maxPerUser: number;
  /** How often new platform events are read for every follow at once (default 500 ms). */
  readonly pollMs?: number;
  /** How often every follow's token, user and environment are checked again (default 2 s). */
  readonly checkMs?: number;
}

/** One open follow as the registry sees it. */
export class Follower {
  /** Events up to this id were delivered; undefined until the follow has read its first lines. */
  lastEventId: number | undefined;
  /** Why the follow was ended by the platform (the final SSE event's data); undefined while open or when the client left. */
  endReason: string | undefined;

  constructor(
    public caller: FollowCaller,
    readonly envId: string,
    readonly queue: FollowQueue,
  ) {}

  /**
   * Ends the follow with `reason`. Lines already buffered are still delivered after a delete (they
   * end with "Delete requested"); when the caller lost access they are dropped.
   */
  end(reason: string, options: { discard: boolean }): void {
    if (this.endReason === undefined && !this.queue.stopped.aborted) this.endReason = reason;
    this.queue.close(options);
  }
}

/**
 * Every open log follow of this controller. One timer serves them all: every `pollMs`, one query
 * reads the new platform events of every followed environment and hands them to their followers;
 * every `checkMs`, one query checks every follower's token and user, and one query per user checks
 * that their environments are still visible (and not deleted). A follow whose caller lost access
 * ends with the reason. No timer runs while nobody follows.
 */
export class LogFollows {
  private readonly followers = new Set<Follower>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private lastCheckAt = 0;
  /** Poll rounds run and database queries they made, since start (figures for tests). */
  private rounds = 0;
  private queries = 0;
  private readonly pollMs: number;
  private readonly checkMs: number;

  constructor(private readonly o: LogFollowsOptions) {
    this.pollMs = o.pollMs ?? 500;
    this.checkMs = o.checkMs ?? 2000;
  }

  /**
   * Registers a follow. Throws too_many_requests (429, 42901) when the user already has
   * `maxPerUser` open follows; nothing is registered then.
   */
  open(caller: FollowCaller, envId: string, queue: FollowQueue): Follower {
    const mine = [...this.followers].filter((f) => f.caller.principal.userId === caller.principal.userId).length;
    if (mine >= this.o.maxPerUser) {
      throw new AppError('too_many_requests', `you already follow ${mine} log streams, the most one user may (REMOTEGPU_MAX_FOLLOWS_PER_USER=${this.o.maxPerUser}); close one and retry`);
    }
    const f = new Follower(caller, envId, queue);
    this.followers.add(f);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.pollMs);
      this.timer.unref();
    }
    return f;
  }

  /** Forgets a follow (idempotent); the timer stops with the last one. */
  close(f: Follower): void {
    this.followers.delete(f);
    if (this.followers.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Open follows, and what their buffers hold (figures for tests and benches). */
  stats(): { follows: number; bufferedLines: number; bufferedChars: number; skipped: number; rounds: number; queries: number } {
    let bufferedLines = 0;
    let bufferedChars = 0;
    let skipped = 0;
    for (const f of this.followers) {
      const s = f.queue.stats;
      bufferedLines += s.lines;
      bufferedChars += s.chars;
      skipped += s.skipped;
    }
    return { follows: this.followers.size, bufferedLines, bufferedChars, skipped, rounds: this.rounds, queries: this.queries };
  }

  private async tick(): Promise<void> {
    if (this.ticking) return; // a slow round must not overlap the next one (it would repeat lines)
    this.ticking = true;
    this.rounds++;
    try {
      await this.deliverEvents();
      if (Date.now() - this.lastCheckAt >= this.checkMs) {
        this.lastCheckAt = Date.now();
        await this.checkAccess();
      }
    } catch (err) {
      // A database outage fails every tick (each pollMs): one line each, without a stack.
      logLoopFailure(this.o.logger, err, 'log follow poll', 'warn', { follows: this.followers.size });
    } finally {
      this.ticking = false;
    }
  }

  /** One query for the new events of every followed environment, fanned out to their followers. */
  private async deliverEvents(): Promise<void> {
    const after = new Map<string, number>();
    const byEnv = new Map<string, Follower[]>();
    for (const f of this.followers) {
      if (f.lastEventId === undefined || f.queue.stopped.aborted) continue;
      after.set(f.envId, Math.min(after.get(f.envId) ?? Infinity, f.lastEventId));
      byEnv.set(f.envId, [...(byEnv.get(f.envId) ?? []), f]);
    }
    if (after.size === 0) return;
    this.queries++;
    for (const e of await eventsAfter(this.o.db, after)) {
      for (const f of byEnv.get(e.envId) ?? []) {
        if (f.lastEventId === undefined || f.lastEventId >= e.id) continue;
        f.lastEventId = e.id;
        f.queue.offer({ at: e.at, text: e.message });
      }
    }
  }

  /** Ends the follows whose token or user is no longer valid, or whose environment is gone from their view. */
  private async checkAccess(): Promise<void> {
    const open = [...this.followers].filter((f) => !f.queue.stopped.aborted);
    const found = await recheckStreams(this.o.db, this.o.tokens, open, () => this.queries++);
    for (const [f, access] of found) {
      if ('ended' in access) f.end(access.ended, { discard: true });
      else if (!access.env) f.end('environment no longer visible', { discard: true });
      else if (access.env.desired_state === 'deleted') f.end('environment deleted', { discard: false });
    }
  }
}
