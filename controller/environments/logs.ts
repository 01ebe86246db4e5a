import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import type { AgentLogLine, AgentPool } from '../hosts/types.js';
import { redactionContext } from './environments.repo.js';
import { eventsAfter, lastEvents } from './events.repo.js';
import { redactHostPaths } from './redact.js';

export interface LogEntry {
  readonly at: Date;
  readonly text: string;
}

/** `[YYYY-MM-DD HH:MM:SS] text`, in UTC, as the seed page shows. */
export function formatLogLine(entry: LogEntry): string {
  const iso = entry.at.toISOString();
  return `[${iso.slice(0, 10)} ${iso.slice(11, 19)}] ${entry.text}`;
}

/**
 * Merges platform events and container output of one environment in time order. The container
 * side is skipped (with a line saying why) when the host cannot be reached: logs never fail
 * because an agent is down.
 */
export class EnvironmentLogs {
  constructor(private readonly deps: { db: Db; agents: AgentPool; logger: Logger; pollMs?: number }) {}

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
   * The last `lines` lines, then new container output and platform events as they happen, until
   * `signal` aborts or `stillVisible()` says the environment is gone. The agent's stream is
   * cancelled when this generator ends.
   */
  async *follow(env: { id: string; host_id: string | null }, lines: number, signal: AbortSignal, stillVisible: () => Promise<boolean>): AsyncGenerator<LogEntry> {
    const initial = await this.tail(env, lines);
    for (const entry of initial) yield entry;
    const lastEventId = (await lastEvents(this.deps.db, env.id, 1))[0]?.id ?? 0;
    const queue = new FollowQueue(signal);
    const pump = this.pumpContainerOutput(env, queue);
    const poller = this.pollEvents(env.id, lastEventId, queue, stillVisible);
    try {
      yield* queue.drain();
    } finally {
      clearInterval(poller);
      queue.close();
      await pump;
    }
  }

  /** Feeds the agent's follow stream into `queue` until it closes. */
  private async pumpContainerOutput(env: { id: string; host_id: string | null }, queue: FollowQueue): Promise<void> {
    if (!env.host_id || queue.stopped.aborted) return;
    try {
      const agent = await this.deps.agents.forHost(env.host_id);
      for await (const line of agent.logs(env.id, { tail: 0, follow: true, signal: queue.stopped })) queue.push(toEntry(line));
    } catch (err) {
      if (!queue.stopped.aborted) queue.push({ at: new Date(), text: `(container output stream ended: ${await this.agentText(env.id, err)})` });
    }
  }

  /** An agent's error as users may read it: Docker's text can name host paths (see redact.ts). */
  private async agentText(envId: string, err: unknown): Promise<string> {
    const text = err instanceof Error ? err.message : String(err);
    return redactHostPaths(text, await redactionContext(this.deps.db, envId).catch(() => ({ datasets: [], containerPaths: [] })));
  }

  /** Polls new platform events into `queue`; closes it when the environment is no longer visible. */
  private pollEvents(envId: string, afterId: number, queue: FollowQueue, stillVisible: () => Promise<boolean>): NodeJS.Timeout {
    let lastEventId = afterId;
    let polling = false;
    return setInterval(() => {
      if (polling) return; // a slow poll must not overlap the next one (it would repeat lines)
      polling = true;
      void (async () => {
        try {
          for (const e of await eventsAfter(this.deps.db, envId, lastEventId)) {
            lastEventId = e.id;
            queue.push({ at: e.at, text: e.message });
          }
          if (!(await stillVisible())) queue.close();
        } catch (err) {
          this.deps.logger.warn({ err, envId }, 'log follow poll failed');
        } finally {
          polling = false;
        }
        queue.wake();
      })();
    }, this.deps.pollMs ?? 500);
  }
}

/** Lines waiting for a follower, and the signal that ends the follow (client gone or closed). */
class FollowQueue {
  private readonly lines: LogEntry[] = [];
  private waiting: (() => void) | undefined;
  private readonly stop = new AbortController();
  private readonly onAbort = () => this.close();

  constructor(private readonly client: AbortSignal) {
    client.addEventListener('abort', this.onAbort, { once: true });
    this.stop.signal.addEventListener('abort', () => this.wake(), { once: true });
    // The client may have left while the tail was read: a listener added now would never fire.
    if (client.aborted) this.close();
  }

  /** Aborted when the follow ends; cancels the agent's stream. */
  get stopped(): AbortSignal {
    return this.stop.signal;
  }

  push(entry: LogEntry): void {
    this.lines.push(entry);
    this.wake();
  }

  wake(): void {
    this.waiting?.();
  }

  close(): void {
    this.client.removeEventListener('abort', this.onAbort);
    this.stop.abort();
  }

  /** Yields lines as they come until the follow ends, then what is left. */
  async *drain(): AsyncGenerator<LogEntry> {
    while (!this.stop.signal.aborted) {
      while (this.lines.length > 0) yield this.lines.shift()!;
      if (this.stop.signal.aborted) break;
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
      });
      this.waiting = undefined;
    }
    while (this.lines.length > 0) yield this.lines.shift()!;
  }
}

function toEntry(line: AgentLogLine): LogEntry {
  return { at: line.at, text: line.text };
}

function mergeByTime(a: LogEntry[], b: LogEntry[]): LogEntry[] {
  return [...a, ...b].sort((x, y) => x.at.getTime() - y.at.getTime());
}
