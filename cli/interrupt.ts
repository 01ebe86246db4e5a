import { CliError, EXIT } from './errors.js';

/**
 * Runs `work` with a signal that Ctrl-C (SIGINT) aborts, for commands that run until the user
 * stops them (`logs -f`, `--wait`). Once interrupted it ends with exit 130 after `work` has
 * cleaned up (the stream closed, the progress line ended), instead of dying mid-write.
 */
export async function interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  try {
    return await work(abort.signal);
  } catch (err) {
    if (abort.signal.aborted) throw new CliError('interrupted', EXIT.interrupted);
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
