import type { KyselyPlugin } from 'kysely';
import type { Db } from '../../controller/db/database.js';
import { imageCopy } from './hosts.js';

const GiB = 2 ** 30;

/**
 * Inserts queued (`pending`) environments directly, as the queue finds them, bypassing the
 * create checks (a quota or an owner's state changed since they queued): 1 CPU, 1 GiB memory and
 * storage, `gpu` GPUs, created `at` plus their index (oldest first). Returns their ids.
 */
export async function insertQueued(db: Db, owner: { id: number; workspaceId?: number | null }, prefix: string, count: number, gpu: number, at: number): Promise<string[]> {
  const { id: imageId } = await db.selectFrom('images').select('id').executeTakeFirstOrThrow();
  const copy = await imageCopy(db, imageId);
  const ids = Array.from({ length: count }, (_, i) => `env-${prefix}${String(i).padStart(5, '0')}`);
  await db
    .insertInto('environments')
    .values(
      ids.map((id, i) => ({
        id,
        owner_id: owner.id,
        workspace_id: owner.workspaceId ?? null,
        name: id,
        image_id: imageId,
        image: 'ubuntu20-pytorch:2.0',
        ...copy,
        cpu: 1,
        memory_bytes: GiB,
        gpu,
        storage_bytes: GiB,
        gpu_model: null,
        desired_state: 'running' as const,
        status: 'pending' as const,
        status_reason: 'waiting for capacity: none free',
        host_id: null,
        ssh_port: null,
        jupyter_port: null,
        jupyter_token: 't',
        idempotency_key: null,
        created_at: new Date(at + i),
      })),
    )
    .execute();
  return ids;
}

/** A plugin counting the statements a Kysely instance runs (`db.withPlugin(counter)`); `onResult` runs after each. */
export function statementCounter(onResult?: (n: number) => Promise<void>) {
  const counter = { n: 0, plugin: undefined as unknown as KyselyPlugin };
  counter.plugin = {
    transformQuery: (args) => {
      counter.n++;
      return args.node;
    },
    transformResult: async (args) => {
      await onResult?.(counter.n);
      return args.result;
    },
  };
  return counter;
}
