import type { Logger } from '../common/logger.js';
import type { ContainerRuntime, LifecycleEvent } from './runtime/types.js';

/** A running event loop. */
export interface EventLoop {
  /** Ends the loop; resolves once it has ended. */
  stop(): Promise<void>;
}

/**
 * The agent's event loop: follows the runtime's lifecycle events (the engine's events of managed
 * containers) and hands each to `onEvent`, reconnecting one second after the stream ends or fails,
 * until stopped.
 */
export function followLifecycleEvents(runtime: ContainerRuntime, logger: Logger, onEvent: (event: LifecycleEvent) => void): EventLoop {
  const abort = new AbortController();
  const loop = (async () => {
    while (!abort.signal.aborted) {
      try {
        for await (const event of runtime.events(abort.signal)) onEvent(event);
      } catch (err) {
        if (!abort.signal.aborted) logger.warn({ err }, 'Docker event stream ended; reconnecting');
      }
      if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return {
    stop: () => {
      abort.abort();
      return loop;
    },
  };
}
