import { z } from '@hono/zod-openapi';
import type { Principal } from '../access/principal.js';
import type { EnvironmentAccess } from '../environments/access-info.js';
import { ENV_STATUSES, type EnvStatus } from '../db/schema.js';
import type { EnvWithHost } from '../environments/environments.repo.js';
import { PaginationQuery, dateTime, iso, multiLine, pathId, positiveIntId, singleLine } from './schemas.js';

// Schemas and JSON views of environments, their dataset mounts and logs, for `/environments`.

const GiB = 2 ** 30;
const MAX_BYTES = 2 ** 50; // 1 PiB: anything larger is a typo

const intIn = (min: number, max: number, what: string) =>
  z.number({ error: `must be an integer (${what})` }).int(`must be an integer (${what})`).min(min, `must be at least ${min} (${what})`).max(max, `must be at most ${max} (${what})`);

export const CreateBody = z
  .object({
    name: singleLine(z.string().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters')).openapi({ example: 'PyTorch Training' }),
    description: multiLine(z.string().max(1024, 'must be at most 1024 characters')).nullable().optional(),
    workspace_id: z.number().int('must be an integer').min(1, 'must be a positive integer').max(2_147_483_647).nullable().optional(),
    image: singleLine(z.string().trim().min(1, 'must not be empty').max(128, 'must be at most 128 characters')).openapi({ example: 'ubuntu20-pytorch:2.0' }),
    cpu: intIn(1, 1024, 'CPU cores'),
    memory: intIn(64 * 2 ** 20, MAX_BYTES, 'bytes, at least 64 MiB'),
    gpu: intIn(0, 64, 'GPUs').optional(),
    storage: intIn(GiB, MAX_BYTES, 'bytes, at least 1 GiB; default 50 GiB').optional(),
    gpu_model: singleLine(z.string().trim().min(1).max(64)).optional().openapi({ example: 'H100', description: 'only hosts whose GPU model contains this text' }),
    queue: z.boolean().optional().openapi({ description: 'when nothing fits, accept as pending and place when room frees' }),
  })
  .openapi('CreateEnvironment');

/**
 * The create's optional Idempotency-Key header: a retry with the same key answers the same
 * environment (200). Its length is checked by the handler (400 naming Idempotency-Key).
 */
export const CreateHeaders = z.object({
  'Idempotency-Key': z
    .string()
    .optional()
    .openapi({
      param: { name: 'Idempotency-Key', in: 'header' },
      minLength: 1,
      maxLength: 128,
      example: 'create-train-1',
      description: 'a retry of a create with the same key (same caller) answers the environment it created (200) instead of creating another',
    }),
});

export const StartBody = z
  .object({
    gpu: intIn(0, 64, 'GPUs for this run').optional(),
    storage: intIn(GiB, MAX_BYTES, 'bytes: a larger volume (it only grows; the current size or more)').optional(),
  })
  .openapi('StartEnvironment');

export const MountBody = z
  .object({
    dataset_id: z.number().int('must be an integer').min(1, 'must be a positive integer').max(2_147_483_647),
    mount_path: z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters').openapi({ example: '/data/imagenet' }),
    readonly: z
      .boolean({ error: 'must be true or false' })
      .default(true)
      .openapi({ description: 'false (read-write) only for a dataset an admin marked writable; on a read-only dataset it is a 400 naming readonly' }),
  })
  .openapi('MountDataset');

export const ListQuery = PaginationQuery.extend({
  status: z
    .string()
    .refine((s): s is EnvStatus => (ENV_STATUSES as readonly string[]).includes(s), `must be one of ${ENV_STATUSES.join(', ')}`)
    .optional()
    .openapi({ param: { name: 'status', in: 'query' }, enum: [...ENV_STATUSES] }),
  workspace_id: positiveIntId()
    .optional()
    .openapi({ param: { name: 'workspace_id', in: 'query' }, type: 'integer', format: 'int32', minimum: 1, maximum: 2_147_483_647 }),
});

export const LogsQuery = z.object({
  lines: z
    .string()
    .regex(/^[0-9]{1,6}$/, 'must be an integer from 1 to 10000')
    .transform(Number)
    .pipe(z.number().int().min(1, 'must be an integer from 1 to 10000').max(10_000, 'must be an integer from 1 to 10000'))
    .optional()
    .default(100)
    .openapi({ param: { name: 'lines', in: 'query' }, type: 'integer', minimum: 1, maximum: 10_000, default: 100 }),
  follow: z
    .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .openapi({ param: { name: 'follow', in: 'query' }, type: 'boolean' }),
});

export const EnvParams = z.object({ env_id: singleLine(z.string().max(64)).openapi({ param: { name: 'env_id', in: 'path' }, example: 'env-abc123' }) });
export const MountParams = EnvParams.extend({ dataset_id: pathId('dataset_id') });

export const Environment = z
  .object({
    env_id: z.string(),
    name: z.string(),
    description: z.string(),
    workspace_id: z.number().int().nullable(),
    status: z.enum(ENV_STATUSES),
    status_reason: z.string().openapi({
      description: "why the environment is in its status; an agent's error text shows users its host paths replaced (<host path>, <dataset NAME>), admins in full",
    }),
    image: z.string(),
    cpu: z.number().int(),
    memory: z.number().int(),
    gpu: z.number().int(),
    gpu_model: z.string().nullable(),
    storage: z.number().int(),
    storage_used: z.number().int().nullable().openapi({ description: 'bytes used on the storage volume, as the agent last measured; null when unknown (not mounted yet, or a volume created before volumes had a size)' }),
    rootfs_used: z.number().int().nullable().openapi({
      description:
        "bytes written to the container's writable layer (files outside the storage volume and mounts), measured about once a minute; null until measured. At REMOTEGPU_ROOTFS_LIMIT the agent stops the environment",
    }),
    usage_measured_at: dateTime().nullable().openapi({ description: 'when the host last reported storage_used and rootfs_used (at least once a minute while it reports)' }),
    host_id: z.string().nullable(),
    ssh_port: z.number().int().nullable(),
    jupyter_port: z.number().int().nullable(),
    access_info: z
      .object({
        ssh: z.string().openapi({ description: 'the ssh command line, e.g. `ssh root@203.0.113.7 -p 20001`' }),
        ssh_user: z.string().openapi({ description: 'the user to log in as over SSH' }),
        ssh_host: z.string().openapi({ description: 'the address to connect to (with ssh_port)' }),
        ssh_host_keys: z
          .array(
            z
              .object({
                type: z.string().openapi({ example: 'ssh-ed25519' }),
                key: z.string().openapi({ description: 'base64 public key blob, as in known_hosts' }),
                fingerprint: z.string().openapi({ example: 'SHA256:8mRr3Bc4Uk0c0pE1zCJ3tqQ2q1oBNdAn1u7pNQm0Zq8' }),
              })
              .openapi('SshHostKey'),
          )
          .openapi({ description: "the environment's SSH host public keys, as its agent read them once sshd had them; empty until then (check them with HostKeyAlias=<env_id>: ports are reused)" }),
        jupyter: z.string().openapi({ format: 'uri', description: 'the Jupyter URL with its token; null without a Jupyter port' }).nullable(),
      })
      .nullable(),
    created_at: dateTime(),
    started_at: dateTime().nullable(),
    stopped_at: dateTime().nullable(),
  })
  .openapi('Environment');

export const Mount = z
  .object({
    dataset_id: z.number().int(),
    name: z.string(),
    mount_path: z.string(),
    readonly: z.boolean().openapi({ description: 'true when the mount or its dataset is read-only (what the next apply mounts)' }),
    created_at: dateTime(),
  })
  .openapi('Mount');

/**
 * The API view of an environment (the seed's fields and the contract's additions). Admins read the
 * full agent text behind a status_reason whose host paths were replaced for users.
 */
export function environmentJson(env: EnvWithHost, access: EnvironmentAccess, viewer: Principal) {
  return {
    env_id: env.id,
    name: env.name,
    description: env.description,
    workspace_id: env.workspace_id,
    status: env.status,
    status_reason: viewer.role === 'admin' && env.status_detail !== '' ? env.status_detail : env.status_reason,
    image: env.image,
    cpu: env.cpu,
    memory: env.memory_bytes,
    gpu: env.gpu,
    gpu_model: env.gpu_model,
    storage: env.storage_bytes,
    storage_used: env.storage_used_bytes,
    rootfs_used: env.rootfs_used_bytes,
    usage_measured_at: iso(env.usage_measured_at),
    host_id: env.host_id,
    ssh_port: env.ssh_port,
    jupyter_port: env.jupyter_port,
    access_info: access.of(env),
    created_at: iso(env.created_at),
    started_at: iso(env.started_at),
    stopped_at: iso(env.stopped_at),
  };
}

/** The API view of a dataset mounted in an environment. */
export function mountJson(m: { dataset_id: number; name: string; mount_path: string; readonly: boolean; created_at: Date }) {
  return { dataset_id: m.dataset_id, name: m.name, mount_path: m.mount_path, readonly: m.readonly, created_at: iso(m.created_at) };
}
