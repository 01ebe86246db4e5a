import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import * as images from '../catalog/images.service.js';
import { Image, imageJson } from './admin-images.routes.js';
import type { ApiDeps } from './routes.js';
import { PaginationQuery, authenticated, errors, jsonResponse, pageEnvelope, pageRequest, paginated, reply } from './schemas.js';

/** `GET /images`: the image catalog, for every user (the names `POST /environments` accepts). */
export function imagesRoutes(deps: ApiDeps) {
  const { db } = deps.services;
  const app = new OpenAPIHono();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/images',
      tags: ['images'],
      summary: 'List the image catalog',
      middleware: authenticated(db),
      request: { query: PaginationQuery },
      responses: { 200: jsonResponse(pageEnvelope(Image), 'one page of images'), ...errors(400, 401) },
    }),
    async (c) => {
      const request = pageRequest(c.req.valid('query'));
      return reply(c, paginated(await images.listImages(db, request), request, imageJson));
    },
  );
  return app;
}
