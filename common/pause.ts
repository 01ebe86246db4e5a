/**
 * Resolves after `ms`, or at once when `signal` is (or becomes) aborted: a wait that a shutdown or
 * a Ctrl-C cuts short without an exception. Used by the agent's event loop and the CLI's polls.
 */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
