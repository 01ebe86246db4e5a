import { AppError } from '../../common/errors.js';
import type { EnvStatus } from '../db/schema.js';

/** User actions on an environment. */
export type EnvAction = 'start' | 'stop' | 'restart' | 'delete' | 'mount' | 'unmount';

/**
 * Which statuses each action is allowed from. Anything else is a 409 (40901) naming the status:
 * never a silent no-op.
 */
export const ALLOWED: Record<EnvAction, readonly EnvStatus[]> = {
  start: ['stopped', 'error'],
  stop: ['running', 'creating', 'starting', 'restarting', 'error', 'pending'],
  restart: ['running', 'error'],
  delete: ['pending', 'creating', 'starting', 'running', 'stopping', 'stopped', 'restarting', 'error', 'lost'],
  mount: ['pending', 'creating', 'starting', 'running', 'stopping', 'stopped', 'restarting', 'error'],
  unmount: ['pending', 'creating', 'starting', 'running', 'stopping', 'stopped', 'restarting', 'error'],
};

/** Throws AppError wrong_state when `action` is not allowed in `status`. */
export function assertAllowed(action: EnvAction, status: EnvStatus, envId: string): void {
  if (!ALLOWED[action].includes(status)) {
    throw new AppError(
      'wrong_state',
      `cannot ${action} environment ${envId} while it is ${status}; allowed when ${ALLOWED[action].join(', ')}`,
    );
  }
}
