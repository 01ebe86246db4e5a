import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from './deps.js';
import { MAX_BODY_BYTES } from './app.js';
import { RETRY_AFTER_S } from './envelope.js';

/** Where the API serves its OpenAPI document. */
export const OPENAPI_PATH = '/api/v1/openapi.json';

/**
 * Serves the OpenAPI 3.1 document (openApiDocument) at OPENAPI_PATH. `npm run gen` writes the same
 * document to gen/openapi/ and the CLI's typed client is generated from it; `npm run lint:openapi`
 * checks it with Redocly's recommended rules.
 */
export function serveOpenApiDocument(app: OpenAPIHono<AppEnv>): void {
  // The routes are all registered by now: the document is made once, at the first request.
  let served: OpenApiDocument | undefined;
  app.get(OPENAPI_PATH, (c) => c.json((served ??= openApiDocument(app))));
}

/** The document's top-level fields (the paths and schemas come from the routes). */
export const OPENAPI_CONFIG = {
  openapi: '3.1.0',
  info: {
    title: 'remotegpu API',
    version: '1.0.0',
    description: 'GPU development environments. Browsable at /api/docs.',
    // The package is UNLICENSED (private): no SPDX license applies, so the identifier is an SPDX
    // LicenseRef, the form SPDX gives for licenses outside its list.
    license: { name: 'Proprietary (UNLICENSED)', identifier: 'LicenseRef-UNLICENSED' },
  },
  // Relative to the document: the controller that serves it (paths carry /api/v1).
  servers: [{ url: '/', description: 'the controller serving this document' }],
  security: [{ bearerAuth: [] }],
};

type OpenApiDocument = ReturnType<OpenAPIHono<AppEnv>['getOpenAPI31Document']>;

const errorContent = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };

/**
 * Answers the app's shared handling (app.ts) gives on every operation, whatever the route: a body
 * over MAX_BODY_BYTES (bodyLimit), an internal fault and an unavailable database (onError).
 */
const COMMON_RESPONSES = {
  PayloadTooLarge: {
    description: `the request body is larger than ${MAX_BODY_BYTES} bytes (41301); the connection is closed after the answer`,
    content: errorContent,
  },
  InternalError: { description: 'internal error (50001); it has been logged, retry or report it', content: errorContent },
  ServiceUnavailable: {
    description: 'the database is unavailable, or the request conflicted with a concurrent change and was not applied (50301); retry after Retry-After seconds',
    headers: { 'Retry-After': { description: `seconds to wait before retrying (${RETRY_AFTER_S})`, schema: { type: 'integer' as const, minimum: 0 } } },
    content: errorContent,
  },
};

const ref = (name: keyof typeof COMMON_RESPONSES) => ({ $ref: `#/components/responses/${name}` });
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

// Every documented operation needs an API token (the probes and /metrics are not in the document).
const BEARER_AUTH = {
  type: 'http' as const,
  scheme: 'bearer',
  description: 'An API token (rgpu_…): "Authorization: Bearer <token>". The console\'s session cookie is accepted too (writes with X-CSRF-Token).',
};

/**
 * The document as the app serves it: the routes' operations, plus what the route definitions do
 * not carry: the bearer security scheme and, on every operation, the common responses.
 */
export function openApiDocument(app: OpenAPIHono<AppEnv>): OpenApiDocument {
  const document = app.getOpenAPI31Document(OPENAPI_CONFIG);
  const paths: NonNullable<OpenApiDocument['paths']> = {};
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    const completed = { ...item };
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tooLarge = op.requestBody ? { 413: ref('PayloadTooLarge') } : {};
      completed[method] = { ...op, responses: { ...op.responses, ...tooLarge, 500: ref('InternalError'), 503: ref('ServiceUnavailable') } };
    }
    paths[path] = completed;
  }
  const components = document.components ?? {};
  return {
    ...document,
    paths,
    components: { ...components, securitySchemes: { ...components.securitySchemes, bearerAuth: BEARER_AUTH }, responses: { ...components.responses, ...COMMON_RESPONSES } },
  };
}
