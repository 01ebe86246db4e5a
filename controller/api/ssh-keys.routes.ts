import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { SshKey as SshKeyRow } from '../users/ssh-keys.service.js';
import { SSH_KEY_TYPES } from '../users/ssh-key-format.js';
import { authenticated, principalOf } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import {
  NoContent,
  PaginationQuery,
  dateTime,
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
  singleLine,
  replyCreated,
} from './schemas.js';

const AddKeyBody = z.object({
  name: singleLine(z.string().trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters'))
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
    created_at: dateTime(),
  })
  .openapi('SshKey');

const KeyParams = z.object({ key_id: pathId('key_id') });
const tags = ['ssh keys'];

function keyJson(k: SshKeyRow) {
  return { id: k.id, name: k.name, fingerprint: k.fingerprint, public_key: k.public_key, created_at: iso(k.created_at) };
}

const routes = {
  list: createRoute({
    method: 'get',
    path: '/ssh-keys',
    tags,
    operationId: 'listSshKeys',
    summary: 'List your SSH public keys',
    request: { query: PaginationQuery },
    responses: { 200: jsonResponse(pageEnvelope(SshKey), 'one page of keys, oldest first'), ...errors(400, 401) },
  }),
  add: createRoute({
    method: 'post',
    path: '/ssh-keys',
    tags,
    operationId: 'addSshKey',
    summary: 'Add an SSH public key',
    description: 'Installed as /root/.ssh/authorized_keys in environments you start from now on. A key you already added is 409 (40903).',
    request: { body: jsonBody(AddKeyBody) },
    responses: { 201: jsonResponse(envelope(SshKey), 'the key'), ...errors(400, 401, 409) },
  }),
  delete: createRoute({
    method: 'delete',
    path: '/ssh-keys/{key_id}',
    tags,
    operationId: 'deleteSshKey',
    summary: 'Delete one of your SSH public keys',
    request: { params: KeyParams },
    responses: { 204: NoContent, ...errors(400, 401, 404) },
  }),
};

/** `/ssh-keys`: the caller's SSH public keys, installed in every environment they start. */
export function sshKeysRoutes({ services }: ApiDeps) {
  const { sshKeys } = services;
  const middleware = authenticated(services.users);
  const app = new OpenAPIHono<AppEnv>();

  app.openapi({ ...routes.list, middleware }, async (c) => {
    const request = pageRequest(c.req.valid('query'));
    return reply(c, paginated(await sshKeys.list(principalOf(c).userId, request), request, keyJson));
  });
  app.openapi({ ...routes.add, middleware }, async (c) => {
    const b = c.req.valid('json');
    const key = await sshKeys.add(principalOf(c).userId, { name: b.name, publicKey: b.public_key });
    return replyCreated(c, keyJson(key), 'ssh_key_added');
  });
  app.openapi({ ...routes.delete, middleware }, async (c) => {
    await sshKeys.delete(principalOf(c).userId, c.req.valid('param').key_id);
    return noContent(c);
  });

  return app;
}
