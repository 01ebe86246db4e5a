import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import type { AgentLogLine, AgentPool } from '../hosts/types.js';
import { eventsAfter, lastEvents } from './events.repo.js';

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
        container.push({ at: new Date(), text: `(container output unavailable: ${err instanceof Error ? err.message : String(err)})` });
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
    let lastEventId = (await lastEvents(this.deps.db, env.id, 1))[0]?.id ?? 0;

    const queue: LogEntry[] = [];
    let wake: (() => void) | undefined;
    const push = (entry: LogEntry) => {
      queue.push(entry);
      wake?.();
    };
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    stop.signal.addEventListener('abort', () => wake?.(), { once: true });
    // The client may have left while the tail was read: a listener added now would never fire.
    if (signal.aborted) stop.abort();

    const pump = (async () => {
      if (!env.host_id || stop.signal.aborted) return;
      try {
        const agent = await this.deps.agents.forHost(env.host_id);
        for await (const line of agent.logs(env.id, { tail: 0, follow: true, signal: stop.signal })) push(toEntry(line));
      } catch (err) {
        if (!stop.signal.aborted) push({ at: new Date(), text: `(container output stream ended: ${err instanceof Error ? err.message : String(err)})` });
      }
    })();

    const pollMs = this.deps.pollMs ?? 500;
    let polling = false;
    const poller = setInterval(() => {
      if (polling) return; // a slow poll must not overlap the next one (it would repeat lines)
      polling = true;
      void (async () => {
        try {
          for (const e of await eventsAfter(this.deps.db, env.id, lastEventId)) {
            lastEventId = e.id;
            push({ at: e.at, text: e.message });
          }
          if (!(await stillVisible())) stop.abort();
        } catch (err) {
          this.deps.logger.warn({ err, envId: env.id }, 'log follow poll failed');
        } finally {
          polling = false;
        }
        wake?.();
      })();
    }, pollMs);

    try {
      while (!stop.signal.aborted) {
        while (queue.length > 0) yield queue.shift()!;
        if (stop.signal.aborted) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
      while (queue.length > 0) yield queue.shift()!;
    } finally {
      clearInterval(poller);
      signal.removeEventListener('abort', onAbort);
      stop.abort();
      await pump;
    }
  }
}

function toEntry(line: AgentLogLine): LogEntry {
  return { at: line.at, text: line.text };
}

function mergeByTime(a: LogEntry[], b: LogEntry[]): LogEntry[] {
  return [...a, ...b].sort((x, y) => x.at.getTime() - y.at.getTime());
}
