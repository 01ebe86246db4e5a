import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { capacityOfHosts } from '../hosts/capacity-snapshot.js';
import { PortInUseError } from '../hosts/types.js';
import { snapshotForScheduling } from '../hosts/scheduling-snapshot.js';
import { assertWithinQuota, QuotaExceeded } from '../quotas/quota-check.js';
import { quotaViolation, type QuotaDelta } from '../quotas/quota-rules.js';
import { afterPlacement, neverFits, schedule, type HostSnapshot, type PlacementRequest } from '../scheduler/index.js';
import { placementRequest, quotaOwner } from './create-environment.js';
import { listQueued, lockEnvironment, lockOwner } from './environments.repo.js';
import { noteReason, requestChange } from './environment-writes.js';
import { movePortOff, placeOnAnyHost, type PortRanges } from './placement.js';
import type { WakeSignal } from './wake.js';
import type { CapacityIndex } from './capacity-index.js';

/**
 * How many queued environments one pass looks at, in the fair order of `listQueued`: every
 * owner's oldest entries come first, so one owner's entries fill this only after everybody
 * else's earlier turns.
 */
export const QUEUE_SCAN_LIMIT = 5000;

type QueuedEnvironment = Awaited<ReturnType<typeof listQueued>>[number];

/** What one pass did: placed, and looked at (the rest did not fit now, or not within a quota). */
export interface QueuePass {
  readonly placed: number;
  readonly scanned: number;
}

/**
 * Places queued (`pending`) environments when room frees. Fair: owners take turns (each owner's
 * oldest first), and an entry that does not fit now, that no host could ever hold (a host was
 * removed after it queued) or that its quota does not allow yet is passed over without blocking
 * anyone behind it. One snapshot of the hosts per pass: entries are scheduled against it in
 * memory, a placement updates it, and only an entry that fits is tried in a transaction (which
 * checks the host again, and the quotas).
 */
export class QueuePlacer {
  constructor(private readonly deps: { db: Db; logger: Logger; ports: PortRanges; wake?: WakeSignal; index?: CapacityIndex }) {}

  /**
   * After an agent refused an apply: when it found a host port of the environment taken on its
   * host (PortInUseError), moves the environment to a free port (movePortOff: a new spec
   * generation and an event) and wakes the reconciler, which applies it. False for any other
   * refusal, or when it could not move (no free port left: the environment goes to `error`).
   */
  async movePort(envId: string, err: unknown): Promise<boolean> {
    if (!(err instanceof PortInUseError)) return false;
    const moved = await movePortOff(this.deps.db, this.deps.ports, envId, err.port);
    if (!moved) return false;
    this.deps.logger.warn({ envId, ...moved }, 'host port in use on the host; environment moved to another port');
    this.deps.wake?.notify();
    return true;
  }

  /** Tries to place every queued environment once. Returns how many were placed. */
  async placeQueued(): Promise<number> {
    return (await this.pass()).placed;
  }

  /** One pass over the queue (see the class); never throws for one entry's failure. */
  async pass(): Promise<QueuePass> {
    const queued = await listQueued(this.deps.db, QUEUE_SCAN_LIMIT);
    if (queued.length === 0) return { placed: 0, scanned: 0 };
    // One read of every host per pass (on this placer's pool), which also refreshes this process's capacity index.
    let hosts: readonly HostSnapshot[] = this.deps.index ? await this.deps.index.readOn(this.deps.db) : await snapshotForScheduling(this.deps.db);
    // Room only shrinks during a pass: a request shape that did not fit stays unfit until the next.
    const misfits = new Map<string, string>();
    // Usage only grows during a pass too: a scope (user, workspace) that refused an entry refuses
    // every later one its usage as read then plus the entry passes, without a transaction each.
    const refusals = new Map<string, QuotaExceeded>();
    let capacity: HostSnapshot[] | undefined;
    let placed = 0;
    for (const env of queued) {
      const request = placementRequest(env);
      const shape = shapeOf(request);
      let reason = misfits.get(shape);
      if (reason === undefined) {
        const result = schedule(request, hosts);
        if (!result.ok) {
          capacity ??= await capacityOfHosts(this.deps.db);
          reason = neverFits(request, capacity) ?? `waiting for capacity: ${result.message}`;
          misfits.set(shape, reason);
        }
      }
      const delta = { gpus: env.gpu, cpu: env.cpu, memory: env.memory_bytes };
      reason ??= refusedBefore(refusals, env, delta);
      if (reason !== undefined) {
        await this.note(env, reason);
        continue;
      }
      try {
        const result = await this.place(env, request, hosts, delta);
        if (result.ok) {
          placed++;
          hosts = afterPlacement(hosts, result.reservation.hostId, request, result.reservation.gpuUuids);
          this.deps.logger.info({ envId: env.id, hostId: result.reservation.hostId }, 'queued environment placed');
        }
      } catch (err) {
        if (err instanceof QuotaExceeded) refusals.set(`${err.scope.kind}:${err.scope.id}`, err);
        if (err instanceof AppError && err.code === 'quota_exceeded') {
          await this.note(env, `waiting for quota: ${err.message}`);
          continue;
        }
        this.deps.logger.error({ err, envId: env.id }, 'placing a queued environment failed');
      }
    }
    return { placed, scanned: queued.length };
  }

  /** Tries to place one queued entry that fits `hosts`, within its quota and while its owner is enabled. */
  private place(env: QueuedEnvironment, request: PlacementRequest, hosts: readonly HostSnapshot[], delta: QuotaDelta) {
    return placeOnAnyHost(this.deps, {
      envId: env.id,
      request,
      snapshot: hosts,
      wantJupyter: env.jupyter_port !== null,
      before: async (trx) => {
        // The owner's row first (a disable locks it, then their environments): a disabled owner's entry waits.
        if ((await lockOwner(trx, env.id)).disabled_at) return false;
        const current = await lockEnvironment(trx, env.id);
        if (current.status !== 'pending' || current.desired_state !== 'running') return false;
        // Its environment count and storage were counted when it was queued; now it holds compute.
        await assertWithinQuota(trx, quotaOwner(env), delta);
        return true;
      },
      after: async (trx, r) => {
        const message = `Room freed: scheduled on ${r.hostId}${r.gpuUuids.length ? ` with GPUs ${r.gpuUuids.join(', ')}` : ''}`;
        await requestChange(trx, env.id, { status: 'creating', status_reason: '' }, { kind: 'scheduled', message });
      },
    });
  }

  /**
   * Shows why a queued environment waits (its status_reason), if it is still queued, when the kind
   * of reason changed (capacity, quota, never fits) or a quota or never-fits reason did: the
   * capacity text (the largest free slot) changes all the time and is not rewritten every pass.
   */
  private async note(env: { id: string; status_reason: string }, reason: string): Promise<void> {
    const capacity = (r: string) => r.startsWith('waiting for capacity');
    if (reason === env.status_reason || (capacity(reason) && capacity(env.status_reason))) return;
    await this.deps.db.transaction().execute(async (trx) => {
      const current = await lockEnvironment(trx, env.id);
      if (current.status === 'pending') await noteReason(trx, env.id, reason);
    });
  }
}

/** Why a scope that refused an entry earlier in this pass refuses this one too, if it does. */
function refusedBefore(refusals: Map<string, QuotaExceeded>, env: { owner_id: number; workspace_id: number | null }, delta: QuotaDelta): string | undefined {
  for (const key of [`user:${env.owner_id}`, `workspace:${env.workspace_id}`]) {
    const r = refusals.get(key);
    const violation = r && quotaViolation(r.scope, r.limits, r.usage, delta);
    if (violation) return `waiting for quota: ${violation}`;
  }
  return undefined;
}

function shapeOf(r: PlacementRequest): string {
  return `${r.cpuCores}/${r.memoryBytes}/${r.gpuCount}/${r.storageBytes}/${r.gpuModel ?? ''}`;
}
