import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { placementRequest } from './create-environment.js';
import { listQueued, lockEnvironment } from './environments.repo.js';
import { requestChange } from './environment-writes.js';
import { placeOnAnyHost, type PortRanges } from './placement.js';

/** How many queued environments one pass looks at. */
const QUEUE_BATCH = 100;

/**
 * Places queued (`pending`) environments when room frees, oldest first. A queued environment that
 * still does not fit does not block younger, smaller ones behind it (backfill).
 */
export class QueuePlacer {
  constructor(private readonly deps: { db: Db; logger: Logger; ports: PortRanges }) {}

  /** Tries to place every queued environment once. Returns how many were placed. */
  async placeQueued(): Promise<number> {
    let placed = 0;
    for (const env of await listQueued(this.deps.db, QUEUE_BATCH)) {
      const result = await placeOnAnyHost(this.deps.db, this.deps.ports, {
        envId: env.id,
        request: placementRequest(env),
        wantJupyter: env.jupyter_port !== null,
        before: async (trx) => {
          const current = await lockEnvironment(trx, env.id);
          return current.status === 'pending' && current.desired_state === 'running';
        },
        after: async (trx, r) => {
          const message = `Room freed: scheduled on ${r.hostId}${r.gpuUuids.length ? ` with GPUs ${r.gpuUuids.join(', ')}` : ''}`;
          await requestChange(trx, env.id, { status: 'creating', status_reason: '' }, { kind: 'scheduled', message });
        },
      });
      if (result.ok) {
        placed++;
        this.deps.logger.info({ envId: env.id, hostId: result.reservation.hostId }, 'queued environment placed');
      }
    }
    return placed;
  }
}
