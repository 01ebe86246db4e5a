import type { LogEntry } from './log-entry.js';

/** How much one follow holds for a client that reads slower than lines come. */
export interface FollowBufferLimits {
  /** Lines held (default 1000). */
  readonly lines: number;
  /** Characters of text held (default 1 Mi; a line is at most 16 KiB, the agent cuts longer ones). */
  readonly chars: number;
}

export const DEFAULT_FOLLOW_BUFFER: FollowBufferLimits = { lines: 1000, chars: 2 ** 20 };

/**
 * Platform events may go this many lines over the limits (container output waits instead), so that
 * "Container exited" still reaches a follower whose buffer is full of output; past that they are
 * dropped and counted.
 */
const EVENT_ALLOWANCE = 100;

/** A place in the queue where lines were dropped; its text is written when it is read. */
class SkipMarker {
  count = 1;
  constructor(readonly at: Date) {}
  entry(): LogEntry {
    return { at: this.at, text: `(${this.count} line${this.count === 1 ? '' : 's'} skipped: the client reads slower than the environment writes)` };
  }
}

/**
 * The lines waiting for one follower, bounded. Container output is pushed with `push`, which
 * waits while the buffer is full: the caller stops reading the agent's stream, so gRPC flow control
 * stops the agent, which stops reading Docker (backpressure all the way, nothing lost). Platform
 * events are `offer`ed: they never wait, and when even their allowance is used up they are dropped,
 * leaving one "(N lines skipped …)" line where they were.
 */
export class FollowQueue {
  private readonly items: (LogEntry | SkipMarker)[] = [];
  private chars = 0;
  private openMarker: SkipMarker | undefined;
  private skippedTotal = 0;
  private waitingReader: (() => void) | undefined;
  private readonly waitingWriters: (() => void)[] = [];
  private readonly stop = new AbortController();
  private readonly onAbort = () => this.close();

  constructor(
    private readonly client: AbortSignal,
    private readonly limits: FollowBufferLimits = DEFAULT_FOLLOW_BUFFER,
  ) {
    client.addEventListener('abort', this.onAbort, { once: true });
    this.stop.signal.addEventListener('abort', () => this.wakeAll(), { once: true });
    // The client may have left while the tail was read: a listener added now would never fire.
    if (client.aborted) this.close();
  }

  /** Aborted when the follow ends; cancels the agent's stream. */
  get stopped(): AbortSignal {
    return this.stop.signal;
  }

  /** Lines held now, their characters, and lines dropped so far (for tests and figures). */
  get stats(): { lines: number; chars: number; skipped: number } {
    return { lines: this.items.length, chars: this.chars, skipped: this.skippedTotal };
  }

  /** Adds a line of container output, waiting while the buffer is full; returns false once the follow has ended. */
  async push(entry: LogEntry): Promise<boolean> {
    while (this.full(0) && !this.stop.signal.aborted) {
      await new Promise<void>((resolve) => this.waitingWriters.push(resolve));
    }
    if (this.stop.signal.aborted) return false;
    this.add(entry);
    return true;
  }

  /** Adds a platform event without waiting; over the event allowance it is counted as skipped instead. */
  offer(entry: LogEntry): void {
    if (this.stop.signal.aborted) return;
    if (this.full(EVENT_ALLOWANCE)) {
      this.skippedTotal++;
      if (this.openMarker) this.openMarker.count++;
      else {
        this.items.push((this.openMarker = new SkipMarker(entry.at)));
        this.waitingReader?.();
      }
      return;
    }
    this.add(entry);
  }

  /** Ends the follow: waiting writers return false, the reader gets what is left (nothing with `discard`). */
  close(options: { discard?: boolean } = {}): void {
    if (options.discard) {
      this.items.length = 0;
      this.chars = 0;
      this.openMarker = undefined;
    }
    this.client.removeEventListener('abort', this.onAbort);
    this.stop.abort();
  }

  /** Yields lines as they come until the follow ends, then what is left. */
  async *drain(): AsyncGenerator<LogEntry> {
    for (;;) {
      const item = this.items.shift();
      if (item) {
        yield this.taken(item);
        continue;
      }
      if (this.stop.signal.aborted) return;
      await new Promise<void>((resolve) => {
        this.waitingReader = resolve;
      });
      this.waitingReader = undefined;
    }
  }

  private full(allowance: number): boolean {
    return this.items.length >= this.limits.lines + allowance || this.chars >= this.limits.chars + allowance * 1024;
  }

  private add(entry: LogEntry): void {
    this.openMarker = undefined; // lines accepted again: a later drop starts a new marker
    this.items.push(entry);
    this.chars += entry.text.length;
    this.waitingReader?.();
  }

  private taken(item: LogEntry | SkipMarker): LogEntry {
    this.waitingWriters.shift()?.();
    if (item instanceof SkipMarker) {
      if (item === this.openMarker) this.openMarker = undefined;
      return item.entry();
    }
    this.chars -= item.text.length;
    return item;
  }

  private wakeAll(): void {
    this.waitingReader?.();
    for (const w of this.waitingWriters.splice(0)) w();
  }
}
