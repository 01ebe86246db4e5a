import { z } from '@hono/zod-openapi';
import { containerDirProblem } from '../catalog/paths.js';
import type { ImageRow } from '../db/schema.js';
import { dateTime, iso, multiLine, pathId, singleLine } from './schemas.js';

// Schemas and the JSON view of catalog images, for `/images` and `/admin/images`.

const ImageName = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(/^([A-Za-z0-9][A-Za-z0-9._:/@+-]*)?$/, 'must start with a letter or digit and hold only letters, digits and . _ : / @ + -')
  .openapi({ example: 'ubuntu20-pytorch:2.0' });

const DockerRef = singleLine(
  z
    .string()
    .min(1, 'must not be empty')
    .max(512, 'must be at most 512 characters')
    .regex(/^\S*$/, 'must not contain whitespace'),
).openapi({ example: 'registry.example.com/ml/pytorch:2.0-cuda12' });

const Port = z.number().int().min(1, 'must be a port from 1 to 65535').max(65535, 'must be a port from 1 to 65535');

const DataPath = z
  .string()
  .max(1024, 'must be at most 1024 characters')
  .superRefine((path, ctx) => {
    const problem = containerDirProblem(path);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .openapi({ example: '/root/workspace', description: 'directory inside the container where the environment storage is mounted' });

const Description = multiLine(z.string().max(1024, 'must be at most 1024 characters'));

export const CreateImageBody = z.object({
  name: ImageName,
  docker_ref: DockerRef,
  description: Description.default(''),
  ssh_port: Port.default(22),
  jupyter_port: Port.nullable().default(8888).openapi({ description: 'null: the image runs no Jupyter' }),
  data_path: DataPath.default('/root/workspace'),
});

export const UpdateImageBody = z.object({
  name: ImageName.optional(),
  docker_ref: DockerRef.optional(),
  description: Description.optional(),
  ssh_port: Port.optional(),
  jupyter_port: Port.nullable().optional(),
  data_path: DataPath.optional(),
});

type ImageInput<B extends z.infer<typeof UpdateImageBody>> = {
  name: B['name'];
  dockerRef: B['docker_ref'];
  description: B['description'];
  sshPort: B['ssh_port'];
  jupyterPort: B['jupyter_port'];
  dataPath: B['data_path'];
};

/** The fields of either image body, as the images service names them (optional stays optional). */
export function imageInput<B extends z.infer<typeof UpdateImageBody>>(b: B): ImageInput<B> {
  return {
    name: b.name,
    dockerRef: b.docker_ref,
    description: b.description,
    sshPort: b.ssh_port,
    jupyterPort: b.jupyter_port,
    dataPath: b.data_path,
  };
}

export const Image = z
  .object({
    id: z.number().int(),
    name: z.string(),
    docker_ref: z.string(),
    description: z.string(),
    ssh_port: z.number().int(),
    jupyter_port: z.number().int().nullable(),
    data_path: z.string(),
    created_at: dateTime(),
  })
  .openapi('Image');

export const ImageParams = z.object({ image_id: pathId('image_id') });

/** The API view of an image. */
export function imageJson(i: ImageRow) {
  return {
    id: i.id,
    name: i.name,
    docker_ref: i.docker_ref,
    description: i.description,
    ssh_port: i.ssh_port,
    jupyter_port: i.jupyter_port,
    data_path: i.data_path,
    created_at: iso(i.created_at),
  };
}
