import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from './deps.js';

/** Where the API serves its OpenAPI document. */
export const OPENAPI_PATH = '/api/v1/openapi.json';

/**
 * Adds what the route definitions do not carry (the bearer security scheme) to the app's
 * registry and serves the OpenAPI 3.1 document at OPENAPI_PATH. `npm run gen` writes the same
 * document to gen/openapi/ and the CLI's typed client is generated from it.
 */
export function serveOpenApiDocument(app: OpenAPIHono<AppEnv>): void {
  // Every documented operation needs an API token (the probes and /metrics are not in the document).
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API token (rgpu_…): "Authorization: Bearer <token>". The console\'s session cookie is accepted too (writes with X-CSRF-Token).',
  });
  app.doc31(OPENAPI_PATH, OPENAPI_CONFIG);
}

/** The document's top-level fields (the paths and schemas come from the routes). */
export const OPENAPI_CONFIG = {
  openapi: '3.1.0',
  info: { title: 'remotegpu API', version: '1.0.0', description: 'GPU development environments. Browsable at /api/docs.' },
  security: [{ bearerAuth: [] }],
};

/** The document as the app serves it. */
export function openApiDocument(app: OpenAPIHono<AppEnv>) {
  return app.getOpenAPI31Document(OPENAPI_CONFIG);
}
