import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import { authenticated } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { Image, imageJson } from './images.schemas.js';
import { PaginationQuery, errors, jsonResponse, pageEnvelope, pageRequest, paginated, reply } from './schemas.js';

const listImages = createRoute({
  method: 'get',
  path: '/images',
  tags: ['images'],
  operationId: 'listImages',
  summary: 'List the image catalog',
  request: { query: PaginationQuery },
  responses: { 200: jsonResponse(pageEnvelope(Image), 'one page of images'), ...errors(400, 401) },
});

/** `GET /images`: the image catalog, for every user (the names `POST /environments` accepts). */
export function imagesRoutes({ services }: ApiDeps) {
  const { images } = services;
  const app = new OpenAPIHono<AppEnv>();
  app.openapi({ ...listImages, middleware: authenticated(services.users) }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await images.list(request), request, imageJson));
  });
  return app;
}
