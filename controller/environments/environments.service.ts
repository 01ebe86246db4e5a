import { AppError, fieldError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Db, Trx } from '../db/database.js';
import { pageOffset, type Page, type PageRequest } from '../db/pagination.js';
import type { EnvStatus } from '../db/schema.js';
import type { Principal } from '../access/principal.js';
import type { WakeSignal } from './wake.js';
import { createEnvironment, placementRequest, quotaOwner, type CreateEnvironmentInput } from './create-environment.js';
import { assertWithinQuota } from '../quotas/quota-check.js';
import { assertOwnerEnabled, findById, findVisible, listMounts, lockEnvironment, type EnvWithHost } from './environments.repo.js';
import { listVisible } from './environment-list.js';
import { mountDataset, unmountDataset } from './environment-mounts.js';
import { requestChange, type DesiredChange } from './environment-writes.js';
import { placeOnAnyHost, releaseCompute, type PortRanges } from './placement.js';
import type { CapacityIndex } from './capacity-index.js';
import { assertAllowed } from './state-machine.js';
import { snapshotForScheduling } from '../hosts/scheduling-snapshot.js';
import type { ControllerMetrics } from '../metrics/controller-metrics.js';

export { DEFAULT_STORAGE_BYTES, type CreateEnvironmentInput } from './create-environment.js';

export interface EnvironmentsDeps {
  readonly db: Db;
  readonly ports: PortRanges;
  readonly logger: Logger;
  /** Tells the reconciler that desired state changed. */
  readonly wake: WakeSignal;
  /** Records how creates and starts end (placements by outcome and reason) and their latency. */
  readonly metrics?: ControllerMetrics | undefined;
  /** This process's view of host capacity, for picking placement candidates. */
  readonly index?: CapacityIndex;
}

/**
 * The environment lifecycle as the API sees it. Every method checks what the caller may see,
 * writes desired state, reservations and events in transactions (through environment-writes.ts)
 * and returns at once; the reconciler makes the agents follow.
 */
export class EnvironmentsService {
  constructor(private readonly deps: EnvironmentsDeps) {}

  /** See createEnvironment: placed, queued, or the earlier environment of the Idempotency-Key. */
  async create(p: Principal, input: CreateEnvironmentInput, idempotencyKey?: string): Promise<{ env: EnvWithHost; replayed: boolean }> {
    const create = () => createEnvironment(this.deps, p, input, idempotencyKey);
    const outcome = this.deps.metrics ? await this.deps.metrics.timePlacement('create', create, (o) => o.kind, (o) => (o.kind === 'queued' ? 'no_capacity' : 'none')) : await create();
    if (outcome.kind === 'placed') this.deps.logger.info({ envId: outcome.envId }, 'environment placed');
    if (outcome.kind !== 'replayed') this.deps.wake.notify();
    // A new one's row comes from its own transaction (no read after the commit to fail); a replay's is read.
    const env = outcome.env ?? (await findById(this.deps.db, outcome.envId));
    if (!env) throw notFound(outcome.envId);
    return { env, replayed: outcome.kind === 'replayed' };
  }

  /** A page of the caller's environments. */
  async list(p: Principal, q: PageRequest & { status?: EnvStatus | undefined; workspaceId?: number | undefined }): Promise<Page<EnvWithHost>> {
    return listVisible(this.deps.db, p, { status: q.status, workspaceId: q.workspaceId, limit: q.pageSize, offset: pageOffset(q) });
  }

  /** One environment the caller may see; not_found otherwise (also for other users' ids). */
  async get(p: Principal, envId: string): Promise<EnvWithHost> {
    const env = await findVisible(this.deps.db, p, envId);
    if (!env) throw notFound(envId);
    return env;
  }

  /**
   * Starts a stopped environment on its host: reserves CPU, memory and `gpu` GPUs (default: its
   * GPU count) again there, and with `storage` larger than its volume, the extra storage (the agent
   * grows the volume, keeping the data). no_capacity (40902) when that host has no room; a smaller
   * `storage` is a 400 (volumes never shrink); quota_exceeded (40904) when the owner's or the
   * workspace's limits have no room for its GPUs, CPU and memory. One that was never placed (it was
   * queued, then stopped) is queued again. wrong_state while its owner is disabled (an admin or a
   * workspace member cannot run it for them).
   */
  async start(p: Principal, envId: string, options: { gpu?: number | undefined; storage?: number | undefined } = {}): Promise<void> {
    const env = await this.get(p, envId);
    assertAllowed('start', env.status, envId);
    const gpu = options.gpu ?? env.gpu;
    const storage = options.storage ?? env.storage_bytes;
    if (storage < env.storage_bytes) {
      throw fieldError('storage', `must be at least ${env.storage_bytes} (the current size): a volume only grows`, `storage: ${envId} has ${env.storage_bytes} bytes of storage and a volume only grows; send ${env.storage_bytes} or more (or leave storage out)`);
    }
    const grown = storage > env.storage_bytes ? { storage_bytes: storage } : {};
    const growth = grown.storage_bytes ? ` and storage grown to ${grown.storage_bytes} bytes` : '';
    const moreStorage = storage - env.storage_bytes;
    if (env.host_id === null) {
      const quota = (trx: Trx) => assertWithinQuota(trx, quotaOwner(env), { pending_environments: 1, storage: moreStorage });
      await this.change(envId, 'start', { desired_state: 'running', status: 'pending', status_reason: 'waiting for capacity', gpu, ...grown }, `Start requested${growth}; queued until a host has room`, quota);
      return;
    }
    const placed = await placeOnAnyHost(this.deps, {
      envId,
      // Its volume is reserved there already: only what it grows by must fit, but the reservation
      // becomes the whole new size (the host's allocated storage is the sum of its volumes).
      request: { ...placementRequest({ ...env, gpu }), storageBytes: Math.max(0, storage - env.reserved_storage_bytes) },
      reservedStorageBytes: storage,
      wantJupyter: env.image_jupyter_port !== null,
      existingPorts: { ssh: env.ssh_port, jupyter: env.jupyter_port },
      onlyHostId: env.host_id,
      before: async (trx) => {
        // The owner's row first, then the environment's: the order a disable locks them in.
        await assertOwnerEnabled(trx, envId, 'start');
        assertAllowed('start', (await lockEnvironment(trx, envId)).status, envId);
        await releaseCompute(trx, envId);
        // After the release: what it held before (an `error` one may hold compute) is not counted twice.
        await assertWithinQuota(trx, quotaOwner(env), { gpus: gpu, cpu: env.cpu, memory: env.memory_bytes, storage: moreStorage });
        return true;
      },
      after: async (trx, r) => {
        const message = `Start requested${r.gpuUuids.length ? ` with GPUs ${r.gpuUuids.join(', ')}` : ' without GPUs'}${growth}`;
        await requestChange(trx, envId, { desired_state: 'running', status: 'starting', status_reason: '', gpu, ...grown }, { kind: 'start_requested', message });
      },
    });
    if (!placed.ok) throw await this.noRoomToStart(env, gpu, storage - env.storage_bytes);
    this.deps.wake.notify();
  }

  /** Stops a running environment; CPU, memory and GPUs are released once the container stopped. */
  async stop(p: Principal, envId: string): Promise<void> {
    await this.get(p, envId);
    await this.change(envId, 'stop', { desired_state: 'stopped', status: 'stopping' }, 'Stop requested');
  }

  /**
   * Restarts the container with the same GPUs and ports; it ends running, also from `error` after a
   * stop that failed (the environment still holds its CPU, memory and GPUs then: compute is released
   * only once a stop succeeded). wrong_state while its owner is disabled.
   */
  async restart(p: Principal, envId: string): Promise<void> {
    await this.get(p, envId);
    await this.change(envId, 'restart', { desired_state: 'running', status: 'restarting' }, 'Restart requested');
  }

  /** Deletes: gone from the API at once; the reconciler removes the container and frees reservations. */
  async delete(p: Principal, envId: string): Promise<void> {
    await this.get(p, envId);
    await this.change(envId, 'delete', { desired_state: 'deleted', status: 'deleting', deleted_at: new Date() }, 'Delete requested');
  }

  /** Mounts a dataset the caller may see (see mountDataset). */
  async mount(p: Principal, envId: string, input: { datasetId: number; mountPath: string; readonly: boolean }): Promise<void> {
    await mountDataset(this.deps.db, p, await this.get(p, envId), input);
    this.deps.wake.notify();
  }

  /** Unmounts a dataset; not_found when it is not mounted. */
  async unmount(p: Principal, envId: string, datasetId: number): Promise<void> {
    await unmountDataset(this.deps.db, await this.get(p, envId), datasetId);
    this.deps.wake.notify();
  }

  /** Datasets mounted in an environment the caller may see. */
  async listMounts(p: Principal, envId: string) {
    await this.get(p, envId);
    return listMounts(this.deps.db, envId);
  }

  /**
   * A user action as one transaction: the row is locked and the action checked against its current
   * status, then the change and its event are written. A pending environment holds nothing and no
   * agent knows it: a stop of one settles at once.
   */
  private async change(
    envId: string,
    action: 'start' | 'stop' | 'restart' | 'delete',
    change: DesiredChange,
    message: string,
    quota?: (trx: Trx) => Promise<void>,
  ): Promise<void> {
    await this.deps.db.transaction().execute(async (trx) => {
      // The owner's row before the environment's, as a disable locks them.
      if (action === 'start' || action === 'restart') await assertOwnerEnabled(trx, envId, action);
      const current = await lockEnvironment(trx, envId);
      assertAllowed(action, current.status, envId);
      await quota?.(trx);
      const settled = current.host_id === null && action === 'stop';
      const status_reason = change.status_reason ?? '';
      await requestChange(trx, envId, { ...change, status_reason, ...(settled ? { status: 'stopped' as const } : {}) }, { kind: `${action}_requested`, message });
    });
    this.deps.wake.notify();
  }

  private async noRoomToStart(env: EnvWithHost, gpu: number, moreStorage: number): Promise<AppError> {
    const [snap] = await snapshotForScheduling(this.deps.db, { hostIds: [env.host_id!] });
    const free = snap ? snap.gpus.filter((g) => g.healthy && !g.allocated).length : 0;
    const storage = moreStorage > 0 ? ` and ${moreStorage} more bytes of storage` : '';
    const freeStorage = moreStorage > 0 && snap ? `, ${Math.max(0, snap.storageBytes - snap.allocatedStorageBytes)} bytes of storage` : '';
    const retry = moreStorage > 0 ? 'retry later or start without growing storage' : 'retry later or start with {"gpu": 0} to reach the data';
    return new AppError(
      'no_capacity',
      `host ${env.host_id} cannot start ${env.id} now: it needs ${gpu} GPU(s), ${env.cpu} CPU cores and ${env.memory_bytes} bytes of memory there${storage}, and ${free} GPU(s)${freeStorage} are free (status ${snap?.status ?? 'unknown'}); ${retry}`,
    );
  }
}

function notFound(envId: string): AppError {
  return new AppError('not_found', `environment ${envId} not found`);
}
