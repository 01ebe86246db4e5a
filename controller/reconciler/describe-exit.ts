import type { ObservedEnvironment } from '../hosts/types.js';

/** Why a container is not running, in words. */
export function describeExit(status: ObservedEnvironment): string {
  if (status.oomKilled) return `container was killed for exceeding its memory limit (OOM, exit code ${status.exitCode})`;
  if (status.state === 'exited') return `container exited with code ${status.exitCode}${status.message ? `: ${status.message}` : ''}`;
  return `container is ${status.state}${status.message ? `: ${status.message}` : ''}`;
}
