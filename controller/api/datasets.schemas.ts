import { z } from '@hono/zod-openapi';
import { datasetHostPathProblem } from '../catalog/paths.js';
import type { DatasetRow } from '../db/schema.js';
import { dateTime, iso, multiLine, pathId, singleLine } from './schemas.js';

// Schemas and JSON views of datasets: what admins register and see (`/admin/datasets`) and what
// users see (`/datasets`).

const RowId = z.number().int().positive('must be a positive integer').max(2_147_483_647, 'must be a positive integer below 2^31');

const DatasetName = singleLine(z.string().trim().min(1, 'must not be empty').max(128, 'must be at most 128 characters')).openapi({ example: 'imagenet' });
const Description = multiLine(z.string().max(1024, 'must be at most 1024 characters'));
const Writable = z.boolean({ error: 'must be true or false' }).openapi({
  description:
    'whether users may mount it read-write ("readonly": false); false: every mount of it is read-only and asking for read-write is a 400. ' +
    'Turning it off remounts existing read-write mounts read-only now (their environments are recreated, data kept); a writable dataset must not nest with another dataset',
});

export const CreateDatasetBody = z.object({
  name: DatasetName,
  host_path: z
    .string()
    .max(1024, 'must be at most 1024 characters')
    .superRefine((path, ctx) => {
      const problem = datasetHostPathProblem(path);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .openapi({ example: '/mnt/datasets/imagenet', description: 'directory holding the data, the same path on every GPU host' }),
  description: Description.default(''),
  owner_id: RowId.nullable().default(null).openapi({ description: 'only this user (and admins) may see and mount it' }),
  workspace_id: RowId.nullable().default(null).openapi({ description: "only this workspace's members (and admins) may see and mount it" }),
  writable: Writable.default(false),
});

/** What an admin may change of a dataset (only the fields sent change). */
export const UpdateDatasetBody = z.object({
  name: DatasetName.optional(),
  description: Description.optional(),
  writable: Writable.optional(),
});

/** What admins see of a dataset. */
export const AdminDataset = z
  .object({
    id: z.number().int(),
    name: z.string(),
    description: z.string(),
    host_path: z.string(),
    owner_id: z.number().int().nullable(),
    workspace_id: z.number().int().nullable(),
    writable: z.boolean().openapi({ description: 'false: every mount of it is read-only' }),
    created_at: dateTime(),
  })
  .openapi('AdminDataset');

/** What users see of a dataset: everything but where it lives on the hosts. */
export const Dataset = z
  .object({
    id: z.number().int(),
    name: z.string(),
    description: z.string(),
    scope: z.enum(['public', 'user', 'workspace']).openapi({ description: 'public: every user; user: only its owner; workspace: the members' }),
    owner_id: z.number().int().nullable(),
    workspace_id: z.number().int().nullable(),
    writable: z.boolean().openapi({ description: 'false: it can only be mounted read-only ("readonly": false is a 400)' }),
    created_at: dateTime(),
  })
  .openapi('Dataset');

export const DatasetParams = z.object({ dataset_id: pathId('dataset_id') });

/** The admin view of a dataset row. */
export function adminDatasetJson(d: DatasetRow) {
  return {
    id: d.id,
    name: d.name,
    description: d.description,
    host_path: d.host_path,
    owner_id: d.owner_id,
    workspace_id: d.workspace_id,
    writable: d.writable,
    created_at: iso(d.created_at),
  };
}

/** The user view of a dataset row. */
export function datasetJson(d: DatasetRow) {
  return {
    id: d.id,
    name: d.name,
    description: d.description,
    scope: d.workspace_id !== null ? ('workspace' as const) : d.owner_id !== null ? ('user' as const) : ('public' as const),
    owner_id: d.owner_id,
    workspace_id: d.workspace_id,
    writable: d.writable,
    created_at: iso(d.created_at),
  };
}
