import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import * as sshKeys from '../users/ssh-keys.service.js';
import { SSH_KEY_TYPES } from '../users/ssh-key-format.js';
import { principalOf } from './auth.js';
import type { ApiDeps } from './routes.js';
import {
  NoContent,
  PaginationQuery,
  authenticated,
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

const AddKeyBody = z.object({
  name: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(64, 'must be at most 64 characters')
    .optional()
    .openapi({ example: 'laptop', description: "defaults to the key's comment" }),
  public_key: z
    .string()
    .max(16_384, 'must be at most 16384 characters')
    .openapi({
      example: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCo alice@laptop',
      description: `one OpenSSH public key line; types: ${SSH_KEY_TYPES.join(', ')}`,
    }),
});

const SshKey = z
  .object({
    id: z.number().int(),
    name: z.string(),
    fingerprint: z.string().openapi({ example: 'SHA256:yVjo7ct6Bbje63ba9ZaPs/x6sFN+3kfndjxtNIU9tpU' }),
    public_key: z.string(),
    created_at: z.string(),
  })
  .openapi('SshKey');

const KeyParams = z.object({ key_id: pathId('key_id') });
const tags = ['ssh keys'];

function keyJson(k: sshKeys.SshKey) {
  return { id: k.id, name: k.name, fingerprint: k.fingerprint, public_key: k.public_key, created_at: iso(k.created_at) };
}

/** `/ssh-keys`: the caller's SSH public keys, installed in every environment they start. */
export function sshKeysRoutes(deps: ApiDeps) {
  const { db } = deps.services;
  const middleware = authenticated(db);
  const app = new OpenAPIHono();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/ssh-keys',
      tags,
      summary: 'List your SSH public keys',
      middleware,
      request: { query: PaginationQuery },
      responses: { 200: jsonResponse(pageEnvelope(SshKey), 'one page of keys, oldest first'), ...errors(400, 401) },
    }),
    async (c) => {
      const request = pageRequest(c.req.valid('query'));
      return reply(c, paginated(await sshKeys.listSshKeys(db, principalOf(c).userId, request), request, keyJson));
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/ssh-keys',
      tags,
      summary: 'Add an SSH public key',
      description: 'Installed as /root/.ssh/authorized_keys in environments you start from now on. A key you already added is 409 (40903).',
      middleware,
      request: { body: jsonBody(AddKeyBody) },
      responses: { 201: jsonResponse(envelope(SshKey), 'the key'), ...errors(400, 401, 409) },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const key = await sshKeys.addSshKey(db, principalOf(c).userId, { name: b.name, publicKey: b.public_key });
      return replyCreated(c, keyJson(key), 'ssh_key_added');
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/ssh-keys/{key_id}',
      tags,
      summary: 'Delete one of your SSH public keys',
      middleware,
      request: { params: KeyParams },
      responses: { 204: NoContent, ...errors(400, 401, 404) },
    }),
    async (c) => {
      await sshKeys.deleteSshKey(db, principalOf(c).userId, c.req.valid('param').key_id);
      return noContent(c);
    },
  );

  return app;
}
