import { AppError, fieldError } from '../../common/errors.js';
import type { Db, Trx } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import type { NewEnvironment } from '../db/schema.js';
import { assertWorkspaceMember } from '../access/visibility.js';
import type { Principal } from '../access/principal.js';
import { newId } from '../ids.js';
import type { PlacementRequest } from '../scheduler/index.js';
import { findById, findByIdempotencyKey, type EnvWithHost } from './environments.repo.js';
import { addEvent, insertEnvironment, newJupyterToken } from './environment-writes.js';
import { placeOnAnyHost, type PlacementContext } from './placement.js';
import { capacityOfHosts } from '../hosts/capacity-snapshot.js';
import { neverFits } from '../scheduler/index.js';
import { assertWithinQuota } from '../quotas/quota-check.js';

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

/**
 * How a create ended: placed on a host, queued, or the earlier environment of the same key. A new
 * environment comes with its row as its transaction wrote it (`env`): the answer needs no read after
 * the commit, which could fail (a busy pool, the database away) once the environment exists.
 */
export type CreateOutcome = { readonly envId: string; readonly kind: 'placed' | 'queued' | 'replayed'; readonly env?: EnvWithHost | undefined };

export const DEFAULT_STORAGE_BYTES = 50 * 2 ** 30;
const PLACEMENT_ROUNDS = 3;

/**
 * Creates and places an environment. Throws not_found/invalid_argument for a bad image or
 * workspace, no_capacity (40902) when nothing fits and `queue` is not set or when no approved
 * host could ever hold it (queue or not), quota_exceeded (40904) over a limit. An Idempotency-Key
 * already used by this user returns that environment.
 */
export async function createEnvironment(ctx: PlacementContext, p: Principal, input: CreateEnvironmentInput, key?: string): Promise<CreateOutcome> {
  const { db } = ctx;
  const previous = key ? await replayed(db, p, key) : undefined;
  if (previous) return { envId: previous, kind: 'replayed' };
  const image = await db.selectFrom('images').select(['id', 'name', 'docker_ref', 'ssh_port', 'jupyter_port', 'data_path']).where('name', '=', input.image).executeTakeFirst();
  if (!image) {
    throw fieldError('image', 'unknown image', `image "${input.image}" is not in the catalog; GET /api/v1/images lists the catalog`);
  }
  if (input.workspaceId !== undefined) await assertWorkspaceMember(db, p, input.workspaceId);

  const row = newRow(p, input, image, key);
  let created: EnvWithHost | undefined;
  const placed = await placeOnAnyHost(ctx, {
    envId: row.id,
    request: placementRequest(row),
    wantJupyter: image.jupyter_port !== null,
    rounds: PLACEMENT_ROUNDS,
    // Once the host is locked and has room: the row is inserted only where it is placed.
    admit: async (trx) => {
      await assertCreatorStillAllowed(trx, p, input.workspaceId);
      await assertWithinQuota(trx, quotaOwner(row), placedDelta(row));
      await insertEnvironment(trx, row);
    },
    after: async (trx, r) => {
      const gpus = r.gpuUuids.length > 0 ? ` with GPUs ${r.gpuUuids.join(', ')}` : '';
      await addEvent(trx, row.id, { kind: 'scheduled', message: `Scheduled on ${r.hostId}${gpus}; SSH port ${r.sshPort}` });
      created = await findById(trx, row.id);
    },
    onUniqueViolation: async () => {
      if (key && (await findByIdempotencyKey(db, p.userId, key))) throw new AppError('conflict', 'a request with this Idempotency-Key is being processed; retry it');
    },
  });
  if (placed.ok) return { envId: row.id, kind: 'placed', env: created };
  // Nothing fits now. A request no approved host could ever hold is refused, queue or not.
  const never = neverFits(placementRequest(row), await capacityOfHosts(db));
  if (never) throw new AppError('no_capacity', never);
  if (!input.queue) throw new AppError('no_capacity', placed.message);
  try {
    await db.transaction().execute(async (trx) => {
      // Queued: it holds no compute yet (checked when the queue places it), but one that could never
      // be placed within the limits is refused now.
      await assertCreatorStillAllowed(trx, p, input.workspaceId);
      await assertWithinQuota(trx, quotaOwner(row), { environments: 1, pending_environments: 1, storage: row.storage_bytes }, { neverAllows: placedDelta(row) });
      await insertEnvironment(trx, { ...row, status: 'pending', status_reason: `waiting for capacity: ${placed.message}` }, { kind: 'queued', message: `Queued: ${placed.message}` });
      created = await findById(trx, row.id);
    });
  } catch (err) {
    if (key && isUniqueViolation(err)) return createEnvironment(ctx, p, input, key);
    throw err;
  }
  return { envId: row.id, kind: 'queued', env: created };
}

/**
 * What the request checked before its transaction, again under locks: the creator's row FOR SHARE
 * (disable locks it FOR UPDATE, then their environments): a user disabled meanwhile is refused
 * (wrong_state); the workspace's row FOR SHARE (removing a member holds it FOR UPDATE): a creator
 * removed from it meanwhile gets not_found. Either way nothing is inserted.
 */
async function assertCreatorStillAllowed(trx: Trx, p: Principal, workspaceId: number | undefined): Promise<void> {
  const user = await trx.selectFrom('users').select(['name', 'disabled_at']).where('id', '=', p.userId).forShare().executeTakeFirst();
  if (!user || user.disabled_at) {
    throw new AppError('wrong_state', `cannot create an environment: user ${user?.name ?? p.name} (user ${p.userId}) is disabled; an admin must enable the user first`);
  }
  if (workspaceId === undefined) return;
  await trx.selectFrom('workspaces').select('id').where('id', '=', workspaceId).forShare().execute();
  await assertWorkspaceMember(trx, p, workspaceId);
}

/** The environment an earlier request with this key created; conflict when it was deleted. */
async function replayed(db: Db, p: Principal, key: string): Promise<string | undefined> {
  const previous = await findByIdempotencyKey(db, p.userId, key);
  if (previous?.desired_state === 'deleted') {
    throw new AppError('conflict', `Idempotency-Key "${key}" was used by environment ${previous.id}, which has been deleted; use a new key`);
  }
  return previous?.id;
}

/** What an environment copies from its catalog image at create: later edits of the image do not reach it. */
type ImageCopy = { id: number; name: string; docker_ref: string; ssh_port: number; jupyter_port: number | null; data_path: string };

function newRow(p: Principal, input: CreateEnvironmentInput, image: ImageCopy, key: string | undefined) {
  return {
    id: newId('env'),
    owner_id: p.userId,
    workspace_id: input.workspaceId ?? null,
    name: input.name,
    description: input.description ?? '',
    image_id: image.id,
    image: image.name,
    image_ref: image.docker_ref,
    image_ssh_port: image.ssh_port,
    image_jupyter_port: image.jupyter_port,
    image_data_path: image.data_path,
    cpu: input.cpu,
    memory_bytes: input.memory,
    gpu: input.gpu ?? 0,
    storage_bytes: input.storage ?? DEFAULT_STORAGE_BYTES,
    gpu_model: input.gpuModel ?? null,
    desired_state: 'running',
    status: 'creating',
    host_id: null,
    ssh_port: null,
    jupyter_port: null,
    jupyter_token: newJupyterToken(),
    idempotency_key: key ?? null,
  } satisfies NewEnvironment;
}

/** Whose quotas an environment counts against. */
export function quotaOwner(env: { owner_id: number; workspace_id: number | null }) {
  return { ownerId: env.owner_id, workspaceId: env.workspace_id };
}

/** What a new environment placed at once adds to its quotas. */
function placedDelta(env: { cpu: number; memory_bytes: number; gpu: number; storage_bytes: number }) {
  return { environments: 1, gpus: env.gpu, cpu: env.cpu, memory: env.memory_bytes, storage: env.storage_bytes };
}

/** What placing an environment row needs from a host. */
export function placementRequest(env: { cpu: number; memory_bytes: number; gpu: number; storage_bytes: number; gpu_model: string | null }): PlacementRequest {
  return {
    cpuCores: env.cpu,
    memoryBytes: env.memory_bytes,
    gpuCount: env.gpu,
    storageBytes: env.storage_bytes,
    ...(env.gpu_model ? { gpuModel: env.gpu_model } : {}),
  };
}
