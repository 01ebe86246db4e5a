import type { Db } from '../db/database.js';
import type { AgentEnvSpec } from '../hosts/types.js';

/**
 * Builds what the agent must run for an environment from the database: the image reference,
 * container ports and data path copied from the catalog when it was created (an image edited
 * since does not change it), reserved GPUs and ports, the owner's SSH keys (none while the owner
 * is disabled: nobody reaches the environment until they are enabled again), mounted datasets. A mount
 * is read-only unless the dataset is writable *now*: mount rows from before the flag existed, and
 * mounts of a dataset an admin has since made read-only, are mounted read-only at this apply.
 */
export async function buildAgentSpec(db: Db, envId: string): Promise<AgentEnvSpec> {
  const env = await db
    .selectFrom('environments as e')
    .innerJoin('users as u', 'u.id', 'e.owner_id')
    .select([
      'e.id',
      'e.owner_id',
      'e.cpu',
      'e.memory_bytes',
      'e.storage_bytes',
      'e.desired_state',
      'e.ssh_port',
      'e.jupyter_port',
      'e.jupyter_token',
      'e.workspace_id',
      'e.image_ref',
      'e.image_ssh_port',
      'e.image_jupyter_port',
      'e.image_data_path',
      'u.disabled_at as owner_disabled_at',
    ])
    .where('e.id', '=', envId)
    .executeTakeFirstOrThrow();
  const [gpus, keys, mounts] = await Promise.all([
    db.selectFrom('gpu_reservations as r')
      .leftJoin('host_gpus as g', (j) => j.onRef('g.host_id', '=', 'r.host_id').onRef('g.uuid', '=', 'r.gpu_uuid'))
      .select('r.gpu_uuid')
      .where('r.env_id', '=', envId)
      .orderBy('g.index')
      .execute(),
    ownerKeys(db, env.owner_id, env.owner_disabled_at !== null),
    db.selectFrom('environment_mounts as m')
      .innerJoin('datasets as d', 'd.id', 'm.dataset_id')
      .select(['m.dataset_id', 'd.host_path', 'm.mount_path', 'm.readonly', 'd.writable'])
      .where('m.env_id', '=', envId)
      .orderBy('m.mount_path')
      .execute(),
  ]);
  return toSpec(env, gpus, keys, mounts);
}

/**
 * buildAgentSpec for several environments in four queries whatever their number (the reconciler
 * reads the specs of the calls it starts together at once). Environments not found are absent.
 */
export async function buildAgentSpecs(db: Db, envIds: readonly string[]): Promise<Map<string, AgentEnvSpec>> {
  const specs = new Map<string, AgentEnvSpec>();
  if (envIds.length === 0) return specs;
  const ids = [...envIds];
  const envs = await db
    .selectFrom('environments as e')
    .innerJoin('users as u', 'u.id', 'e.owner_id')
    .select(['e.id', 'e.owner_id', 'e.cpu', 'e.memory_bytes', 'e.storage_bytes', 'e.desired_state', 'e.ssh_port', 'e.jupyter_port', 'e.jupyter_token', 'e.workspace_id'])
    .select(['e.image_ref', 'e.image_ssh_port', 'e.image_jupyter_port', 'e.image_data_path', 'u.disabled_at as owner_disabled_at'])
    .where('e.id', 'in', ids)
    .execute();
  if (envs.length === 0) return specs;
  const owners = [...new Set(envs.filter((e) => e.owner_disabled_at === null).map((e) => e.owner_id))];
  const [gpus, keys, mounts] = await Promise.all([
    db.selectFrom('gpu_reservations as r')
      .leftJoin('host_gpus as g', (j) => j.onRef('g.host_id', '=', 'r.host_id').onRef('g.uuid', '=', 'r.gpu_uuid'))
      .select(['r.env_id', 'r.gpu_uuid'])
      .where('r.env_id', 'in', ids)
      .orderBy('g.index')
      .execute(),
    owners.length === 0 ? [] : db.selectFrom('ssh_keys').select(['user_id', 'public_key']).where('user_id', 'in', owners).orderBy('id').execute(),
    db.selectFrom('environment_mounts as m')
      .innerJoin('datasets as d', 'd.id', 'm.dataset_id')
      .select(['m.env_id', 'm.dataset_id', 'd.host_path', 'm.mount_path', 'm.readonly', 'd.writable'])
      .where('m.env_id', 'in', ids)
      .orderBy('m.mount_path')
      .execute(),
  ]);
  for (const env of envs) {
    const ownKeys = env.owner_disabled_at === null ? keys.filter((k) => k.user_id === env.owner_id).map((k) => k.public_key) : [];
    specs.set(env.id, toSpec(env, gpus.filter((g) => g.env_id === env.id), ownKeys, mounts.filter((m) => m.env_id === env.id)));
  }
  return specs;
}

/** What the agent runs, from the rows read for it. */
function toSpec(
  env: { id: string; owner_id: number; cpu: number; memory_bytes: number; storage_bytes: number; desired_state: string; ssh_port: number | null; jupyter_port: number | null; jupyter_token: string; workspace_id: number | null; image_ref: string; image_ssh_port: number; image_jupyter_port: number | null; image_data_path: string },
  gpus: readonly { gpu_uuid: string }[],
  keys: string[],
  mounts: readonly { dataset_id: number; host_path: string; mount_path: string; readonly: boolean; writable: boolean }[],
): AgentEnvSpec {
  return {
    envId: env.id,
    image: env.image_ref,
    cpuCores: env.cpu,
    memoryBytes: env.memory_bytes,
    gpuUuids: gpus.map((g) => g.gpu_uuid),
    storageBytes: env.storage_bytes,
    dataPath: env.image_data_path,
    ports: publishedPorts(env),
    sshAuthorizedKeys: keys,
    mounts: mounts.map((m) => ({ datasetId: String(m.dataset_id), hostPath: m.host_path, containerPath: m.mount_path, readonly: m.readonly || !m.writable })),
    env: { REMOTEGPU_ENV_ID: env.id },
    labels: { 'com.remotegpu.owner-id': String(env.owner_id), ...(env.workspace_id !== null ? { 'com.remotegpu.workspace-id': String(env.workspace_id) } : {}) },
    jupyterToken: env.jupyter_token,
    desiredState: env.desired_state === 'stopped' ? 'stopped' : 'running',
  };
}

/** The owner's public keys, oldest first; none while the owner is disabled. */
async function ownerKeys(db: Db, ownerId: number, disabled: boolean): Promise<string[]> {
  if (disabled) return [];
  const rows = await db.selectFrom('ssh_keys').select('public_key').where('user_id', '=', ownerId).orderBy('id').execute();
  return rows.map((k) => k.public_key);
}

/** The environment's SSH and Jupyter ports: the image's container port, the reserved host port. */
function publishedPorts(env: { ssh_port: number | null; jupyter_port: number | null; image_ssh_port: number; image_jupyter_port: number | null }) {
  const ports: { name: string; containerPort: number; hostPort: number }[] = [];
  if (env.ssh_port !== null) ports.push({ name: 'ssh', containerPort: env.image_ssh_port, hostPort: env.ssh_port });
  if (env.jupyter_port !== null && env.image_jupyter_port !== null) {
    ports.push({ name: 'jupyter', containerPort: env.image_jupyter_port, hostPort: env.jupyter_port });
  }
  return ports;
}
