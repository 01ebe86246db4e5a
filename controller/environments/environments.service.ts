import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { sql } from 'kysely';
import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { ControllerConfig } from '../config.js';
import type { Db } from '../db/database.js';
import type { EnvStatus } from '../db/schema.js';
import { visibleDatasets } from '../access/visibility.js';
import { schedule, type PlacementRequest } from '../scheduler/index.js';
import type { Principal } from '../access/principal.js';
import { snapshotForScheduling } from '../hosts/scheduling-snapshot.js';
import { findVisible, listVisible, type EnvWithHost } from './environments.repo.js';
import { addEvent } from './events.repo.js';
import { newId } from '../ids.js';
import { isUniqueViolation, releaseCompute, reserveOnHost, type PortRanges } from './placement.js';
import { assertAllowed } from './state-machine.js';

export interface CreateEnvironmentInput {
  readonly name: string;
  readonly description?: string | undefined;
  readonly workspaceId?: number | undefined;
  readonly image: string;
  readonly cpu: number;
  readonly memory: number;
  readonly gpu?: number | undefined;
  readonly storage?: number | undefined;
  readonly gpuModel?: string | undefined;
  readonly queue?: boolean | undefined;
}

export const DEFAULT_STORAGE_BYTES = 50 * 2 ** 30;
const PLACEMENT_ROUNDS = 3;

/** Paths a dataset may never be mounted at or under. */
const FORBIDDEN_MOUNT_ROOTS = ['/proc', '/sys', '/dev', '/etc', '/usr', '/bin', '/sbin', '/lib', '/lib64', '/root/.ssh', '/boot', '/run', '/var/run'];

/**
 * The environment lifecycle as the API sees it. Every method writes desired state, reservations
 * and events in transactions and returns at once; the reconciler makes the agents follow.
 */
export class EnvironmentsService {
  constructor(
    private readonly deps: {
      db: Db;
      config: ControllerConfig;
      logger: Logger;
      /** Asks the reconciler to look at this environment (and the queue) soon. */
      kick: (envId?: string) => void;
    },
  ) {}

  private get db() {
    return this.deps.db;
  }

  private get ports(): PortRanges {
    return { ssh: this.deps.config.sshPortRange, jupyter: this.deps.config.jupyterPortRange };
  }

  /**
   * Creates and places an environment. Throws not_found/invalid_argument for a bad image or
   * workspace, no_capacity (40902) when nothing fits and `queue` is not set. An Idempotency-Key
   * already used by this user returns that environment (`replayed: true`).
   */
  async create(p: Principal, input: CreateEnvironmentInput, idempotencyKey?: string): Promise<{ env: EnvWithHost; replayed: boolean }> {
    if (idempotencyKey) {
      const previous = await this.db
        .selectFrom('environments')
        .select(['id', 'desired_state'])
        .where('owner_id', '=', p.userId)
        .where('idempotency_key', '=', idempotencyKey)
        .executeTakeFirst();
      if (previous?.desired_state === 'deleted') {
        throw new AppError('conflict', `Idempotency-Key "${idempotencyKey}" was used by environment ${previous.id}, which has been deleted; use a new key`);
      }
      if (previous) return { env: await this.getAny(previous.id), replayed: true };
    }
    const image = await this.db.selectFrom('images').selectAll().where('name', '=', input.image).executeTakeFirst();
    if (!image) {
      throw new AppError('invalid_argument', `image "${input.image}" is not in the catalog; GET /api/v1/images lists the catalog`, {
        fields: [{ field: 'image', message: 'unknown image' }],
      });
    }
    if (input.workspaceId !== undefined) await this.assertWorkspaceMember(p, input.workspaceId);

    const gpu = input.gpu ?? 0;
    const storage = input.storage ?? DEFAULT_STORAGE_BYTES;
    const request: PlacementRequest = {
      cpuCores: input.cpu,
      memoryBytes: input.memory,
      gpuCount: gpu,
      storageBytes: storage,
      ...(input.gpuModel ? { gpuModel: input.gpuModel } : {}),
    };
    const envId = newId('env');
    const values = {
      id: envId,
      owner_id: p.userId,
      workspace_id: input.workspaceId ?? null,
      name: input.name,
      description: input.description ?? '',
      image_id: image.id,
      image: image.name,
      cpu: input.cpu,
      memory_bytes: input.memory,
      gpu,
      storage_bytes: storage,
      gpu_model: input.gpuModel ?? null,
      desired_state: 'running' as const,
      status: 'creating' as EnvStatus,
      host_id: null,
      ssh_port: null,
      jupyter_port: null,
      jupyter_token: randomBytes(24).toString('base64url'),
      idempotency_key: idempotencyKey ?? null,
    };

    let lastMessage = 'no host is registered yet; install an agent on a GPU server (see README)';
    for (let round = 0; round < PLACEMENT_ROUNDS; round++) {
      const result = schedule(request, await snapshotForScheduling(this.db));
      if (!result.ok) {
        lastMessage = result.message;
        break;
      }
      for (const candidate of result.candidates) {
        const placed = await this.tryPlaceNew(values, candidate.hostId, request, image.jupyter_port !== null);
        if (placed) {
          this.deps.logger.info({ envId, hostId: candidate.hostId }, 'environment placed');
          this.deps.kick(envId);
          return { env: await this.getAny(envId), replayed: false };
        }
      }
      lastMessage = `every host that fit a moment ago was taken by concurrent requests`;
    }

    if (input.queue) {
      try {
        await this.db.transaction().execute(async (trx) => {
          await trx.insertInto('environments').values({ ...values, status: 'pending', status_reason: `waiting for capacity: ${lastMessage}` }).execute();
          await addEvent(trx, envId, 'queued', `Queued: ${lastMessage}`);
        });
      } catch (err) {
        if (idempotencyKey && isUniqueViolation(err)) return this.create(p, input, idempotencyKey);
        throw err;
      }
      this.deps.kick();
      return { env: await this.getAny(envId), replayed: false };
    }
    throw new AppError('no_capacity', lastMessage);
  }

  /** Inserts the environment and its reservations on one host in one transaction; false when the host is full now. */
  private async tryPlaceNew(values: Record<string, unknown> & { id: string; owner_id: number; idempotency_key: string | null }, hostId: string, request: PlacementRequest, wantJupyter: boolean): Promise<boolean> {
    try {
      await this.db.transaction().execute(async (trx) => {
        await trx.insertInto('environments').values(values as never).execute();
        const reserved = await reserveOnHost(trx, { envId: values.id, hostId, request, ports: this.ports, wantJupyter });
        if (!reserved) throw new HostFull();
        const gpus = reserved.gpuUuids.length > 0 ? ` with GPUs ${reserved.gpuUuids.join(', ')}` : '';
        await addEvent(trx, values.id, 'scheduled', `Scheduled on ${hostId}${gpus}; SSH port ${reserved.sshPort}`);
      });
      return true;
    } catch (err) {
      if (err instanceof HostFull) return false;
      if (isUniqueViolation(err)) {
        if (values.idempotency_key) {
          const dup = await this.db
            .selectFrom('environments')
            .select('id')
            .where('owner_id', '=', values.owner_id as number)
            .where('idempotency_key', '=', values.idempotency_key)
            .executeTakeFirst();
          if (dup) throw new AppError('conflict', 'a request with this Idempotency-Key is being processed; retry it');
        }
        return false;
      }
      throw err;
    }
  }

  /** A page of the caller's environments. */
  async list(p: Principal, q: { page: number; pageSize: number; status?: EnvStatus | undefined; workspaceId?: number | undefined }) {
    return listVisible(this.db, p, { status: q.status, workspaceId: q.workspaceId, limit: q.pageSize, offset: (q.page - 1) * q.pageSize });
  }

  /** One environment the caller may see; not_found otherwise (also for other users' ids). */
  async get(p: Principal, envId: string): Promise<EnvWithHost> {
    const env = await findVisible(this.db, p, envId);
    if (!env) throw notFound(envId);
    return env;
  }

  private async getAny(envId: string): Promise<EnvWithHost> {
    return (await findVisible(this.db, { userId: 0, name: 'system', role: 'admin' }, envId)) ?? Promise.reject(notFound(envId));
  }

  /**
   * Starts a stopped environment on its host: reserves CPU, memory and `gpu` GPUs (default: its
   * GPU count) again there. no_capacity (40902) when that host has no room.
   */
  async start(p: Principal, envId: string, options: { gpu?: number | undefined } = {}): Promise<void> {
    const env = await this.get(p, envId);
    assertAllowed('start', env.status, envId);
    const gpu = options.gpu ?? env.gpu;
    const image = await this.db.selectFrom('images').select('jupyter_port').where('id', '=', env.image_id).executeTakeFirstOrThrow();
    await this.db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('environments').select(['status', 'host_id']).where('id', '=', envId).forUpdate().executeTakeFirstOrThrow();
      assertAllowed('start', current.status, envId);
      if (!current.host_id) {
        // Stopped before it was ever placed (it was queued): queue it again.
        await trx
          .updateTable('environments')
          .set({ desired_state: 'running', status: 'pending', status_reason: 'waiting for capacity', gpu, spec_generation: sql`spec_generation + 1`, updated_at: new Date() })
          .where('id', '=', envId)
          .execute();
        await addEvent(trx, envId, 'start_requested', 'Start requested; queued until a host has room');
        return;
      }
      await releaseCompute(trx, envId);
      const request: PlacementRequest = {
        cpuCores: env.cpu,
        memoryBytes: env.memory_bytes,
        gpuCount: gpu,
        storageBytes: 0,
        ...(env.gpu_model ? { gpuModel: env.gpu_model } : {}),
      };
      const reserved = await reserveOnHost(trx, {
        envId,
        hostId: current.host_id,
        request,
        ports: this.ports,
        wantJupyter: image.jupyter_port !== null,
        existingPorts: { ssh: env.ssh_port, jupyter: env.jupyter_port },
      });
      if (!reserved) {
        const [snap] = await snapshotForScheduling(trx, { hostIds: [current.host_id] });
        const free = snap ? snap.gpus.filter((g) => g.healthy && !g.allocated).length : 0;
        throw new AppError(
          'no_capacity',
          `host ${current.host_id} cannot start ${envId} now: it needs ${gpu} GPU(s), ${env.cpu} CPU cores and ${env.memory_bytes} bytes of memory there, and ${free} GPU(s) are free (status ${snap?.status ?? 'unknown'}); retry later or start with {"gpu": 0} to reach the data`,
        );
      }
      await trx
        .updateTable('environments')
        .set({
          desired_state: 'running',
          status: 'starting',
          status_reason: '',
          gpu,
          spec_generation: sql`spec_generation + 1`,
          updated_at: new Date(),
        })
        .where('id', '=', envId)
        .execute();
      await addEvent(trx, envId, 'start_requested', `Start requested${reserved.gpuUuids.length ? ` with GPUs ${reserved.gpuUuids.join(', ')}` : ' without GPUs'}`);
    });
    this.deps.kick(envId);
  }

  /** Stops a running environment; CPU, memory and GPUs are released once the container stopped. */
  async stop(p: Principal, envId: string): Promise<void> {
    await this.transition(p, envId, 'stop', { desired_state: 'stopped', status: 'stopping' }, 'Stop requested');
  }

  /** Restarts the container with the same GPUs and ports. */
  async restart(p: Principal, envId: string): Promise<void> {
    await this.transition(p, envId, 'restart', { status: 'restarting' }, 'Restart requested');
  }

  /** Deletes: gone from the API at once; the reconciler removes the container and frees reservations. */
  async delete(p: Principal, envId: string): Promise<void> {
    await this.transition(p, envId, 'delete', { desired_state: 'deleted', status: 'deleting', deleted_at: new Date() }, 'Delete requested');
  }

  private async transition(
    p: Principal,
    envId: string,
    action: 'stop' | 'restart' | 'delete',
    set: { desired_state?: 'stopped' | 'deleted'; status: EnvStatus; deleted_at?: Date },
    message: string,
  ): Promise<void> {
    await this.get(p, envId);
    await this.db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('environments').select(['status', 'host_id']).where('id', '=', envId).forUpdate().executeTakeFirstOrThrow();
      assertAllowed(action, current.status, envId);
      // A pending environment holds nothing and no agent knows it: stop and delete finish here.
      const settled = current.host_id === null;
      const status: EnvStatus = settled && action === 'stop' ? 'stopped' : set.status;
      await trx
        .updateTable('environments')
        .set({ ...set, status, status_reason: '', spec_generation: sql`spec_generation + 1`, updated_at: new Date() })
        .where('id', '=', envId)
        .execute();
      await addEvent(trx, envId, `${action}_requested`, message);
    });
    this.deps.kick(envId);
  }

  /**
   * Mounts a dataset the caller may see at `mountPath` (absolute, normalized, not a system path,
   * unique per environment). A running environment gets it through a container recreate that keeps
   * its data.
   */
  async mount(p: Principal, envId: string, input: { datasetId: number; mountPath: string; readonly: boolean }): Promise<void> {
    const env = await this.get(p, envId);
    assertAllowed('mount', env.status, envId);
    const mountPath = validateMountPath(input.mountPath);
    const image = await this.db.selectFrom('images').select('data_path').where('id', '=', env.image_id).executeTakeFirstOrThrow();
    if (isUnder(mountPath, image.data_path) || isUnder(image.data_path, mountPath)) {
      throw invalidMount(`mount_path ${mountPath} overlaps the environment's data path ${image.data_path}`);
    }
    const dataset = await this.db.selectFrom('datasets').select(['id', 'name']).where('id', '=', input.datasetId).where(visibleDatasets(p)).executeTakeFirst();
    if (!dataset) {
      throw new AppError('not_found', `dataset ${input.datasetId} not found`, { fields: [{ field: 'dataset_id', message: 'unknown dataset' }] });
    }
    try {
      await this.db.transaction().execute(async (trx) => {
        const current = await trx.selectFrom('environments').select('status').where('id', '=', envId).forUpdate().executeTakeFirstOrThrow();
        assertAllowed('mount', current.status, envId);
        const mounts = await trx.selectFrom('environment_mounts').select(['dataset_id', 'mount_path']).where('env_id', '=', envId).execute();
        for (const m of mounts) {
          if (m.dataset_id === input.datasetId) throw new AppError('conflict', `dataset ${input.datasetId} is already mounted at ${m.mount_path}`);
          if (isUnder(mountPath, m.mount_path) || isUnder(m.mount_path, mountPath)) {
            throw new AppError('conflict', `mount_path ${mountPath} overlaps the mount at ${m.mount_path}`, { fields: [{ field: 'mount_path', message: 'overlaps another mount' }] });
          }
        }
        await trx.insertInto('environment_mounts').values({ env_id: envId, dataset_id: input.datasetId, mount_path: mountPath, readonly: input.readonly }).execute();
        await trx.updateTable('environments').set({ spec_generation: sql`spec_generation + 1`, updated_at: new Date() }).where('id', '=', envId).execute();
        await addEvent(trx, envId, 'dataset_mounted', `Dataset ${dataset.name} (${dataset.id}) mounted at ${mountPath}${input.readonly ? ' read-only' : ''}`);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new AppError('conflict', `mount_path ${mountPath} or dataset ${input.datasetId} is already mounted in ${envId}`);
      throw err;
    }
    this.deps.kick(envId);
  }

  /** Unmounts a dataset; not_found when it is not mounted. */
  async unmount(p: Principal, envId: string, datasetId: number): Promise<void> {
    const env = await this.get(p, envId);
    assertAllowed('unmount', env.status, envId);
    await this.db.transaction().execute(async (trx) => {
      const removed = await trx.deleteFrom('environment_mounts').where('env_id', '=', envId).where('dataset_id', '=', datasetId).executeTakeFirst();
      if (Number(removed.numDeletedRows) === 0) throw new AppError('not_found', `dataset ${datasetId} is not mounted in ${envId}`);
      await trx.updateTable('environments').set({ spec_generation: sql`spec_generation + 1`, updated_at: new Date() }).where('id', '=', envId).execute();
      await addEvent(trx, envId, 'dataset_unmounted', `Dataset ${datasetId} unmounted`);
    });
    this.deps.kick(envId);
  }

  /** Datasets mounted in an environment the caller may see. */
  async listMounts(p: Principal, envId: string) {
    await this.get(p, envId);
    return this.db
      .selectFrom('environment_mounts as m')
      .innerJoin('datasets as d', 'd.id', 'm.dataset_id')
      .select(['m.dataset_id', 'd.name', 'm.mount_path', 'm.readonly', 'm.created_at'])
      .where('m.env_id', '=', envId)
      .orderBy('m.created_at')
      .execute();
  }

  private async assertWorkspaceMember(p: Principal, workspaceId: number): Promise<void> {
    const ws = await this.db.selectFrom('workspaces').select('id').where('id', '=', workspaceId).executeTakeFirst();
    const member =
      ws &&
      (p.role === 'admin' ||
        (await this.db.selectFrom('workspace_members').select('user_id').where('workspace_id', '=', workspaceId).where('user_id', '=', p.userId).executeTakeFirst()));
    if (!member) {
      throw new AppError('not_found', `workspace ${workspaceId} not found`, { fields: [{ field: 'workspace_id', message: 'unknown workspace or not a member' }] });
    }
  }
}

class HostFull extends Error {}

function notFound(envId: string): AppError {
  return new AppError('not_found', `environment ${envId} not found`);
}

function invalidMount(message: string): AppError {
  return new AppError('invalid_argument', message, { fields: [{ field: 'mount_path', message }] });
}

/** Checks and normalizes a dataset mount path; throws invalid_argument naming mount_path. */
export function validateMountPath(raw: string): string {
  if (!raw.startsWith('/')) throw invalidMount('mount_path must be an absolute path such as /data/imagenet');
  if (raw.split('/').some((seg) => seg === '..' || seg === '.')) throw invalidMount('mount_path must not contain "." or ".." segments');
  if (/[\0\n\r:,]/.test(raw)) throw invalidMount('mount_path contains a character that is not allowed (NUL, newline, ":" or ",")');
  const normalized = path.posix.normalize(raw).replace(/\/+$/, '') || '/';
  if (normalized === '/') throw invalidMount('mount_path must not be /');
  if (normalized.length > 255) throw invalidMount('mount_path is longer than 255 characters');
  for (const root of FORBIDDEN_MOUNT_ROOTS) {
    if (isUnder(normalized, root)) throw invalidMount(`mount_path must not be ${root} or under it`);
  }
  return normalized;
}

function isUnder(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);
}
