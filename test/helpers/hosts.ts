import type { Db } from '../../controller/db/database.js';

/**
 * Inserts a registered, online host with `gpus` GPUs straight into the database, for API tests
 * that need capacity but no agent (the reconciler is not running in those tests).
 */
export async function seedHost(
  db: Db,
  id: string,
  options: { gpus?: number; model?: string; cpuCores?: number; memoryBytes?: number; diskBytes?: number; publicAddress?: string } = {},
): Promise<string[]> {
  const gpus = options.gpus ?? 8;
  await db
    .insertInto('hosts')
    .values({
      id,
      hostname: `${id}.test`,
      public_address: options.publicAddress ?? '127.0.0.1',
      agent_address: '127.0.0.1:1',
      cpu_cores: options.cpuCores ?? 128,
      memory_bytes: options.memoryBytes ?? 2 ** 40,
      disk_total_bytes: options.diskBytes ?? 2 ** 44,
      disk_free_bytes: options.diskBytes ?? 2 ** 44,
      last_report_at: new Date(),
    })
    .execute();
  const uuids = Array.from({ length: gpus }, (_, i) => `GPU-${id}-${i}`);
  if (gpus > 0) {
    await db
      .insertInto('host_gpus')
      .values(uuids.map((uuid, index) => ({ host_id: id, uuid, index, model: options.model ?? 'NVIDIA H100 80GB HBM3', memory_bytes: 85520809984 })))
      .execute();
  }
  return uuids;
}

/** Adds an image to the catalog; returns its name. */
export async function seedImage(db: Db, name = 'ubuntu20-pytorch:2.0', dockerRef = 'remotegpu/devbox:1'): Promise<string> {
  await db.insertInto('images').values({ name, docker_ref: dockerRef, jupyter_port: 8888 }).execute();
  return name;
}

/** What an environment copies from its catalog image at create (create-environment.ts does the same). */
export async function imageCopy(db: Db, imageId: number) {
  return db
    .selectFrom('images')
    .select(['docker_ref as image_ref', 'ssh_port as image_ssh_port', 'jupyter_port as image_jupyter_port', 'data_path as image_data_path'])
    .where('id', '=', imageId)
    .executeTakeFirstOrThrow();
}
