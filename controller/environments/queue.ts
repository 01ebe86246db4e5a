import { sql } from 'kysely';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { schedule, type PlacementRequest } from '../scheduler/index.js';
import { snapshotForScheduling } from '../hosts/scheduling-snapshot.js';
import { addEvent } from './events.repo.js';
import { isUniqueViolation, reserveOnHost, type PortRanges } from './placement.js';

/**
 * Places queued (`pending`) environments when room frees, oldest first. A queued environment that
 * still does not fit does not block younger, smaller ones behind it (backfill).
 */
export class QueuePlacer {
  constructor(
    private readonly deps: { db: Db; logger: Logger; ports: PortRanges; kick: () => void },
  ) {}

  /** Asks for a placement attempt soon (room may have freed). */
  kickSoon(): void {
    this.deps.kick();
  }

  /** Tries to place every queued environment once. Returns how many were placed. */
  async placeQueued(): Promise<number> {
    const { db } = this.deps;
    const queued = await db
      .selectFrom('environments as e')
      .innerJoin('images as i', 'i.id', 'e.image_id')
      .select(['e.id', 'e.cpu', 'e.memory_bytes', 'e.gpu', 'e.storage_bytes', 'e.gpu_model', 'i.jupyter_port'])
      .where('e.status', '=', 'pending')
      .where('e.desired_state', '=', 'running')
      .orderBy('e.created_at')
      .limit(100)
      .execute();
    let placed = 0;
    for (const env of queued) {
      const request: PlacementRequest = {
        cpuCores: env.cpu,
        memoryBytes: env.memory_bytes,
        gpuCount: env.gpu,
        storageBytes: env.storage_bytes,
        ...(env.gpu_model ? { gpuModel: env.gpu_model } : {}),
      };
      const result = schedule(request, await snapshotForScheduling(db));
      if (!result.ok) continue;
      for (const candidate of result.candidates) {
        if (await this.tryPlace(env.id, candidate.hostId, request, env.jupyter_port !== null)) {
          placed++;
          break;
        }
      }
    }
    return placed;
  }

  private async tryPlace(envId: string, hostId: string, request: PlacementRequest, wantJupyter: boolean): Promise<boolean> {
    try {
      return await this.deps.db.transaction().execute(async (trx) => {
        const env = await trx.selectFrom('environments').select(['status', 'desired_state']).where('id', '=', envId).forUpdate().executeTakeFirst();
        if (!env || env.status !== 'pending' || env.desired_state !== 'running') return false;
        const reserved = await reserveOnHost(trx, { envId, hostId, request, ports: this.deps.ports, wantJupyter });
        if (!reserved) throw new Rollback();
        await trx
          .updateTable('environments')
          .set({ status: 'creating', status_reason: '', spec_generation: sql`spec_generation + 1`, updated_at: new Date() })
          .where('id', '=', envId)
          .execute();
        await addEvent(trx, envId, 'scheduled', `Room freed: scheduled on ${hostId}${reserved.gpuUuids.length ? ` with GPUs ${reserved.gpuUuids.join(', ')}` : ''}`);
        return true;
      });
    } catch (err) {
      if (err instanceof Rollback || isUniqueViolation(err)) return false;
      throw err;
    }
  }
}

class Rollback extends Error {}
