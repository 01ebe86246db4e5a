import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { adminOnly } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { CreateImageBody, Image, ImageParams, UpdateImageBody, imageInput, imageJson } from './images.schemas.js';
import {
  NoContent,
  PaginationQuery,
  envelope,
  errors,
  jsonBody,
  jsonResponse,
  noContent,
  pageEnvelope,
  pageRequest,
  paginated,
  reply,
  replyCreated,
} from './schemas.js';

const tags = ['admin: images'];

const routes = {
  create: createRoute({
    method: 'post',
    path: '/admin/images',
    tags,
    operationId: 'adminCreateImage',
    summary: 'Add an image to the catalog',
    request: { body: jsonBody(CreateImageBody) },
    responses: { 201: jsonResponse(envelope(Image), 'the image'), ...errors(400, 401, 403, 409) },
  }),
  list: createRoute({
    method: 'get',
    path: '/admin/images',
    tags,
    operationId: 'adminListImages',
    summary: 'List the image catalog',
    request: { query: PaginationQuery },
    responses: { 200: jsonResponse(pageEnvelope(Image), 'one page of images, by name'), ...errors(400, 401, 403) },
  }),
  get: createRoute({
    method: 'get',
    path: '/admin/images/{image_id}',
    tags,
    operationId: 'adminGetImage',
    summary: 'Get an image',
    request: { params: ImageParams },
    responses: { 200: jsonResponse(envelope(Image), 'the image'), ...errors(400, 401, 403, 404) },
  }),
  update: createRoute({
    method: 'patch',
    path: '/admin/images/{image_id}',
    tags,
    operationId: 'adminUpdateImage',
    summary: 'Change an image',
    description: 'Only the fields sent change. Environments created earlier keep what they were created with.',
    request: { params: ImageParams, body: jsonBody(UpdateImageBody) },
    responses: { 200: jsonResponse(envelope(Image), 'the image after the change'), ...errors(400, 401, 403, 404, 409) },
  }),
  delete: createRoute({
    method: 'delete',
    path: '/admin/images/{image_id}',
    tags,
    operationId: 'adminDeleteImage',
    summary: 'Remove an image from the catalog',
    description: 'Refused (409, 40901) while an environment uses it.',
    request: { params: ImageParams },
    responses: { 204: NoContent, ...errors(400, 401, 403, 404, 409) },
  }),
};

/** `/admin/images`: the image catalog environments are created from (admin only). */
export function adminImagesRoutes({ services }: ApiDeps) {
  const { images } = services;
  const middleware = adminOnly(services.users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.create, middleware }, async (c) => {
    const image = await images.create(imageInput(c.req.valid('json')));
    return replyCreated(c, imageJson(image), 'image_created');
  });
  app.openapi({ ...routes.list, middleware }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await images.list(request), request, imageJson));
  });
  app.openapi({ ...routes.get, middleware }, async (c) => reply(c, imageJson(await images.get(c.req.valid('param').image_id))));
  app.openapi({ ...routes.update, middleware }, async (c) => {
    const image = await images.update(c.req.valid('param').image_id, imageInput(c.req.valid('json')));
    return reply(c, imageJson(image), 'image_updated');
  });
  app.openapi({ ...routes.delete, middleware }, async (c) => {
    await images.delete(c.req.valid('param').image_id);
    return noContent(c);
  });

  return app;
}
