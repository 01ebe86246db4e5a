import type { Logger } from '../common/logger.js';
import type { ContainerRuntime, LifecycleEvent } from './runtime/types.js';
import { pause } from '../common/pause.js';

/** A running event loop. */
export interface EventLoop {
  /** Ends the loop; resolves once it has ended. */
  stop(): Promise<void>;
}

/** Pause before subscribing again after the stream ended: doubles from the first to the last. */
export const RESUBSCRIBE_MIN_MS = 250;
export const RESUBSCRIBE_MAX_MS = 2_000;
/** A stream that lasted this long was healthy: the next failure starts the backoff again. */
const HEALTHY_STREAM_MS = 10_000;

/**
 * The agent's event loop: follows the runtime's lifecycle events (the engine's events of managed
 * containers) and hands each to `onEvent`, until stopped. When the stream ends or fails (Docker
 * restarted or stopped), it subscribes again after RESUBSCRIBE_MIN_MS, doubling up to
 * RESUBSCRIBE_MAX_MS while the engine stays away, asking for the events since the stream broke
 * (an engine that restarted replays what it did since, e.g. the containers its restart policy
 * started again). One warning when the stream breaks and one line when events flow again, not one
 * per attempt.
 */
export function followLifecycleEvents(runtime: ContainerRuntime, logger: Logger, onEvent: (event: LifecycleEvent) => void): EventLoop {
  const abort = new AbortController();
  const loop = (async () => {
    let since: number | undefined;
    let failures = 0;
    while (!abort.signal.aborted) {
      const subscribedAt = Date.now();
      try {
        for await (const event of runtime.events(abort.signal, since)) {
          if (failures > 0) {
            logger.info({ failedAttempts: failures }, 'Docker event stream resumed');
            failures = 0;
          }
          onEvent(event);
        }
      } catch (err) {
        if (abort.signal.aborted) break;
        if (Date.now() - subscribedAt >= HEALTHY_STREAM_MS) failures = 0;
        if (failures === 0) logger.warn({ reason: err instanceof Error ? err.message : String(err) }, 'Docker event stream ended; subscribing again until the engine answers');
      }
      if (abort.signal.aborted) break;
      if (failures === 0) since = Date.now();
      const delay = Math.min(RESUBSCRIBE_MAX_MS, RESUBSCRIBE_MIN_MS * 2 ** Math.min(failures, 8));
      failures++;
      await pause(delay, abort.signal);
    }
  })();
  return {
    stop: () => {
      abort.abort();
      return loop;
    },
  };
}

