import type { Db } from '../../../controller/db/database.js';
import type { EnvStatus, HostAdminState, HostLiveness } from '../../../controller/db/schema.js';
import { imageCopy } from '../../helpers/hosts.js';

// Rows for tests of the host listing and the scheduling snapshot, inserted straight into the
// database: hosts with the GPUs they reported, and environments placed on them with reservations.

const GIB = 2 ** 30;

export interface SeedGpu {
  readonly model?: string;
  readonly health?: 'healthy' | 'unhealthy';
  readonly present?: boolean;
  readonly utilizationPercent?: number;
}

/** A host with GPUs `GPU-<id>-<index>`; returns their uuids. */
export async function insertHost(
  db: Db,
  id: string,
  options: {
    hostname?: string;
    cpuCores?: number;
    memoryBytes?: number;
    diskBytes?: number;
    liveness?: HostLiveness;
    adminState?: HostAdminState;
    gpus?: readonly SeedGpu[];
  } = {},
): Promise<string[]> {
  await db
    .insertInto('hosts')
    .values({
      id,
      hostname: options.hostname ?? `${id}.example`,
      public_address: `10.0.0.${Math.floor(Math.random() * 250) + 1}`,
      agent_address: '127.0.0.1:1',

      liveness: options.liveness ?? 'online',
      admin_state: options.adminState ?? 'active',
      cpu_cores: options.cpuCores ?? 64,
      memory_bytes: options.memoryBytes ?? 512 * GIB,
      disk_total_bytes: options.diskBytes ?? 4096 * GIB,
      disk_free_bytes: options.diskBytes ?? 4096 * GIB,
      agent_version: '0.1.0',
      driver_version: '535.104.05',
      cuda_version: '12.2',
      last_report_at: new Date(),
    })
    .execute();
  const gpus = options.gpus ?? [];
  const uuids = gpus.map((_, i) => `GPU-${id}-${i}`);
  if (gpus.length > 0) {
    await db
      .insertInto('host_gpus')
      .values(
        gpus.map((g, index) => ({
          host_id: id,
          uuid: uuids[index]!,
          index,
          model: g.model ?? 'NVIDIA H100 80GB HBM3',
          memory_bytes: 80 * GIB,
          utilization_percent: g.utilizationPercent ?? 0,
          health: g.health ?? 'healthy',
          health_reason: g.health === 'unhealthy' ? 'XID 79: fallen off the bus' : '',
          present: g.present ?? true,
        })),
      )
      .execute();
  }
  return uuids;
}

/** n GPUs of one model. */
export const gpus = (n: number, model = 'NVIDIA H100 80GB HBM3'): SeedGpu[] => Array.from({ length: n }, () => ({ model }));

let owner: { db: Db; userId: number; imageId: number } | undefined;

async function ownerAndImage(db: Db): Promise<{ userId: number; imageId: number }> {
  if (owner?.db === db) return owner;
  const user = await db.insertInto('users').values({ name: `owner-${Math.random().toString(36).slice(2, 10)}` }).returning('id').executeTakeFirstOrThrow();
  const image = await db
    .insertInto('images')
    .values({ name: `img-${Math.random().toString(36).slice(2, 10)}`, docker_ref: 'remotegpu/devbox:1' })
    .returning('id')
    .executeTakeFirstOrThrow();
  owner = { db, userId: user.id, imageId: image.id };
  return owner;
}

/** An environment on `hostId` holding `cpu`, `memoryBytes`, `storageBytes` and the GPUs `gpuUuids`. */
export async function placeEnvironment(
  db: Db,
  id: string,
  hostId: string,
  options: { cpu?: number; memoryBytes?: number; storageBytes?: number; gpuUuids?: readonly string[]; desired?: 'running' | 'stopped' | 'deleted'; status?: EnvStatus } = {},
): Promise<void> {
  const { userId, imageId } = await ownerAndImage(db);
  const desired = options.desired ?? 'running';
  const holds = desired === 'running';
  const image = await imageCopy(db, imageId);
  await db
    .insertInto('environments')
    .values({
      id,
      ...image,
      owner_id: userId,
      workspace_id: null,
      name: id,
      image_id: imageId,
      image: 'img',
      cpu: options.cpu ?? 1,
      memory_bytes: options.memoryBytes ?? GIB,
      gpu: options.gpuUuids?.length ?? 0,
      storage_bytes: options.storageBytes ?? 10 * GIB,
      gpu_model: null,
      desired_state: desired,
      status: options.status ?? (desired === 'deleted' ? 'deleting' : desired),
      host_id: hostId,
      reserved_cpu: holds ? (options.cpu ?? 1) : 0,
      reserved_memory_bytes: holds ? (options.memoryBytes ?? GIB) : 0,
      reserved_storage_bytes: desired === 'deleted' ? 0 : (options.storageBytes ?? 10 * GIB),
      ssh_port: null,
      jupyter_port: null,
      jupyter_token: 't',
      idempotency_key: null,
    })
    .execute();
  for (const uuid of options.gpuUuids ?? []) {
    await db.insertInto('gpu_reservations').values({ host_id: hostId, gpu_uuid: uuid, env_id: id }).execute();
  }
}
