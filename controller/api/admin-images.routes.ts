import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { ImageRow } from '../db/schema.js';
import * as images from '../catalog/images.service.js';
import { containerDirProblem } from '../catalog/paths.js';
import type { ApiDeps } from './routes.js';
import {
  NoContent,
  PaginationQuery,
  adminOnly,
  envelope,
  errors,
  iso,
  jsonBody,
  jsonResponse,
  noContent,
  pageEnvelope,
  pageRequest,
  paginated,
  pathId,
  reply,
  replyCreated,
} from './schemas.js';

const ImageName = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(/^([A-Za-z0-9][A-Za-z0-9._:/@+-]*)?$/, 'must start with a letter or digit and hold only letters, digits and . _ : / @ + -')
  .openapi({ example: 'ubuntu20-pytorch:2.0' });

const DockerRef = z
  .string()
  .min(1, 'must not be empty')
  .max(512, 'must be at most 512 characters')
  .regex(/^\S*$/, 'must not contain whitespace')
  .openapi({ example: 'registry.example.com/ml/pytorch:2.0-cuda12' });

const Port = z.number().int().min(1, 'must be a port from 1 to 65535').max(65535, 'must be a port from 1 to 65535');

const DataPath = z
  .string()
  .max(1024, 'must be at most 1024 characters')
  .superRefine((path, ctx) => {
    const problem = containerDirProblem(path);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .openapi({ example: '/root/workspace', description: 'directory inside the container where the environment storage is mounted' });

const Description = z.string().max(1024, 'must be at most 1024 characters');

const CreateImageBody = z.object({
  name: ImageName,
  docker_ref: DockerRef,
  description: Description.default(''),
  ssh_port: Port.default(22),
  jupyter_port: Port.nullable().default(8888).openapi({ description: 'null: the image runs no Jupyter' }),
  data_path: DataPath.default('/root/workspace'),
});

const UpdateImageBody = z.object({
  name: ImageName.optional(),
  docker_ref: DockerRef.optional(),
  description: Description.optional(),
  ssh_port: Port.optional(),
  jupyter_port: Port.nullable().optional(),
  data_path: DataPath.optional(),
});

export const Image = z
  .object({
    id: z.number().int(),
    name: z.string(),
    docker_ref: z.string(),
    description: z.string(),
    ssh_port: z.number().int(),
    jupyter_port: z.number().int().nullable(),
    data_path: z.string(),
    created_at: z.string(),
  })
  .openapi('Image');

const ImageParams = z.object({ image_id: pathId('image_id') });
const tags = ['admin: images'];

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

/** `/admin/images`: the image catalog environments are created from (admin only). */
export function adminImagesRoutes(deps: ApiDeps) {
  const { db } = deps.services;
  const middleware = adminOnly(db);
  const app = new OpenAPIHono();

  app.openapi(
    createRoute({
      method: 'post',
      path: '/admin/images',
      tags,
      summary: 'Add an image to the catalog',
      middleware,
      request: { body: jsonBody(CreateImageBody) },
      responses: { 201: jsonResponse(envelope(Image), 'the image'), ...errors(400, 401, 403, 409) },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const image = await images.createImage(db, {
        name: b.name,
        dockerRef: b.docker_ref,
        description: b.description,
        sshPort: b.ssh_port,
        jupyterPort: b.jupyter_port,
        dataPath: b.data_path,
      });
      return replyCreated(c, imageJson(image), 'image_created');
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/images',
      tags,
      summary: 'List the image catalog',
      middleware,
      request: { query: PaginationQuery },
      responses: { 200: jsonResponse(pageEnvelope(Image), 'one page of images, by name'), ...errors(400, 401, 403) },
    }),
    async (c) => {
      const request = pageRequest(c.req.valid('query'));
      return reply(c, paginated(await images.listImages(db, request), request, imageJson));
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/images/{image_id}',
      tags,
      summary: 'Get an image',
      middleware,
      request: { params: ImageParams },
      responses: { 200: jsonResponse(envelope(Image), 'the image'), ...errors(400, 401, 403, 404) },
    }),
    async (c) => reply(c, imageJson(await images.getImage(db, c.req.valid('param').image_id))),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/admin/images/{image_id}',
      tags,
      summary: 'Change an image',
      description: 'Only the fields sent change. Environments created earlier keep what they were created with.',
      middleware,
      request: { params: ImageParams, body: jsonBody(UpdateImageBody) },
      responses: { 200: jsonResponse(envelope(Image), 'the image after the change'), ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const image = await images.updateImage(db, c.req.valid('param').image_id, {
        name: b.name,
        dockerRef: b.docker_ref,
        description: b.description,
        sshPort: b.ssh_port,
        jupyterPort: b.jupyter_port,
        dataPath: b.data_path,
      });
      return reply(c, imageJson(image), 'image_updated');
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/admin/images/{image_id}',
      tags,
      summary: 'Remove an image from the catalog',
      description: 'Refused (409, 40901) while an environment uses it.',
      middleware,
      request: { params: ImageParams },
      responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      await images.deleteImage(db, c.req.valid('param').image_id);
      return noContent(c);
    },
  );

  return app;
}
