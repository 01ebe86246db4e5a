import type { Logger } from '../../common/logger.js';
import type { AgentLogLine, AgentPool } from '../hosts/types.js';
import { redactionContext } from './environments.repo.js';
import { lastEventId, lastEvents, type EventLine } from './events.repo.js';
import { FollowQueue, type FollowBufferLimits } from './follow-queue.js';
import type { LogEntry } from './log-entry.js';
import { LogFollows, type FollowCaller, type Follower, type LogFollowsOptions } from './log-follows.js';
import { redactHostPaths } from './redact.js';

export { formatLogLine, type LogEntry } from './log-entry.js';

export interface EnvironmentLogsOptions extends Omit<LogFollowsOptions, 'logger'> {
  readonly agents: AgentPool;
  readonly logger: Logger;
  /** What one follow buffers for a slow client (default 1000 lines, 1 Mi characters). */
  readonly followBuffer?: FollowBufferLimits;
}

/**
 * Merges platform events and container output of one environment in time order. The container
 * side is skipped (with a line saying why) when the host cannot be reached: logs never fail
 * because an agent is down.
 */
export class EnvironmentLogs {
  /** Every open follow of this controller (shared event poll, access checks, the per-user cap). */
  readonly follows: LogFollows;

  constructor(private readonly deps: EnvironmentLogsOptions) {
    this.follows = new LogFollows(deps);
  }

  /** The last `lines` lines. */
  async tail(env: { id: string; host_id: string | null }, lines: number): Promise<LogEntry[]> {
    const events = (await lastEvents(this.deps.db, env.id, lines)).map((e) => ({ at: e.at, text: e.message }));
    const container: LogEntry[] = [];
    if (env.host_id) {
      const controller = new AbortController();
      try {
        const agent = await this.deps.agents.forHost(env.host_id);
        for await (const line of agent.logs(env.id, { tail: lines, follow: false, signal: controller.signal })) container.push(toEntry(line));
      } catch (err) {
        container.push({ at: new Date(), text: `(container output unavailable: ${await this.agentText(env.id, err)})` });
      } finally {
        controller.abort();
      }
    }
    return mergeByTime(events, container).slice(-lines);
  }

  /**
   * Opens a follow of `env` for `caller`, counted against the caller's follow limit at once:
   * throws too_many_requests (429) when the caller has as many open follows as allowed. Read it
   * with `LogFollow.entries`; `close` it when done (it is closed when `entries` ends).
   */
  openFollow(caller: FollowCaller, env: { id: string; host_id: string | null }, lines: number, signal: AbortSignal): LogFollow {
    const queue = new FollowQueue(signal, this.deps.followBuffer);
    const follower = this.follows.open(caller, env.id, queue);
    return new LogFollow(this, env, lines, follower, () => this.follows.close(follower));
  }

  /** Feeds the agent's follow stream into `queue` until it closes; waits while the queue is full (backpressure). */
  async pumpContainerOutput(env: { id: string; host_id: string | null }, queue: FollowQueue): Promise<void> {
    if (!env.host_id || queue.stopped.aborted) return;
    try {
      const agent = await this.deps.agents.forHost(env.host_id);
      for await (const line of agent.logs(env.id, { tail: 0, follow: true, signal: queue.stopped })) {
        if (!(await queue.push(toEntry(line)))) return;
      }
    } catch (err) {
      if (!queue.stopped.aborted) queue.offer({ at: new Date(), text: `(container output stream ended: ${await this.agentText(env.id, err)})` });
    }
  }

  /** An agent's error as users may read it: Docker's text can name host paths (see redact.ts). */
  private async agentText(envId: string, err: unknown): Promise<string> {
    const text = err instanceof Error ? err.message : String(err);
    return redactHostPaths(text, await redactionContext(this.deps.db, envId).catch(() => ({ datasets: [], containerPaths: [] })));
  }

  /** The last `limit` platform events of an environment, oldest first (the console's status timeline). */
  events(envId: string, limit: number): Promise<EventLine[]> {
    return lastEvents(this.deps.db, envId, limit);
  }

  /** The highest event id of an environment (0 when none). */
  lastEventId(envId: string): Promise<number> {
    return lastEventId(this.deps.db, envId);
  }
}

/**
 * One open follow: the last lines, then new container output and platform events as they happen,
 * until the client leaves (its signal aborts), or the platform ends it (`endReason`: the
 * environment was deleted or is no longer visible, the token was revoked or expired, the user
 * was disabled). Holds at most the follow buffer's limits for a slow client.
 */
export class LogFollow {
  constructor(
    private readonly logs: EnvironmentLogs,
    private readonly env: { id: string; host_id: string | null },
    private readonly lines: number,
    private readonly follower: Follower,
    readonly close: () => void,
  ) {}

  /** Aborted when the follow ends, for whatever reason. */
  get stopped(): AbortSignal {
    return this.follower.queue.stopped;
  }

  /** Why the platform ended the follow; undefined while it runs or when the client left. */
  get endReason(): string | undefined {
    return this.follower.endReason;
  }

  /** The lines; the agent's stream is cancelled and the follow closed when this generator ends. */
  async *entries(): AsyncGenerator<LogEntry> {
    const { queue } = this.follower;
    let pump: Promise<void> | undefined;
    try {
      for (const entry of await this.logs.tail(this.env, this.lines)) {
        if (queue.stopped.aborted) return;
        yield entry;
      }
      this.follower.lastEventId = await this.logs.lastEventId(this.env.id);
      pump = this.logs.pumpContainerOutput(this.env, queue);
      yield* queue.drain();
    } finally {
      queue.close();
      this.close();
      await pump;
    }
  }
}

function toEntry(line: AgentLogLine): LogEntry {
  return line.continued ? { at: line.at, text: line.text, continued: true } : { at: line.at, text: line.text };
}

function mergeByTime(a: LogEntry[], b: LogEntry[]): LogEntry[] {
  return [...a, ...b].sort((x, y) => x.at.getTime() - y.at.getTime());
}
