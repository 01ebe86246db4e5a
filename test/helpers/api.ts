import { Server } from '@grpc/grpc-js';
import { pino } from 'pino';
import { shutdownServer } from '../../common/grpc.js';
import { loadControllerConfig, type ControllerConfig } from '../../controller/config.js';
import type { Db } from '../../controller/db/database.js';
import type { UserRole } from '../../controller/db/schema.js';
import { buildApp } from '../../controller/app.js';
import { ControllerServices } from '../../controller/services.js';
import { ClusterTrust } from '../../controller/trust/cluster-trust.js';
import { bootstrapAdmin } from '../../controller/users/bootstrap.js';
import { generateToken } from '../../controller/users/tokens.js';
import { insertToken } from '../../controller/users/users.repo.js';
import { createTestDatabase, type DbTarget, type TestDatabase } from './databases.js';
import { imageCopy } from './hosts.js';

/** The bootstrap admin's token in every test API. */
export const TEST_ADMIN_TOKEN = 'rgpu_test-admin-token-0123456789abcdef';
/** The bootstrap join token and the secret key of every test controller. */
export const TEST_JOIN_TOKEN = 'test-join-token-0123456789';
export const TEST_SECRET_KEY = 'test-secret-key-0123456789abcdefghijklmnop';

export interface TestUser {
  readonly id: number;
  /** A valid API token of the user. */
  readonly token: string;
}

export interface TestResponse {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON when the response is JSON, else the text ('' for an empty body). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
  /** The body exactly as received. */
  readonly text: string;
}

export interface RequestOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** Serialized as JSON (with `Content-Type: application/json`) unless it is already a string. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export interface TestApi {
  /** The Hono app of the REST API; requests go through `app.request()`, no socket. */
  readonly app: ReturnType<typeof buildApp>;
  readonly services: ControllerServices;
  readonly db: Db;
  readonly database: TestDatabase;
  readonly config: ControllerConfig;
  /** Token of the bootstrap admin (user "admin"). */
  readonly adminToken: string;
  /** Inserts an enabled user with a fresh token. */
  createUser(name: string, role?: UserRole): Promise<TestUser>;
  /** Inserts a workspace owned by `ownerId`, with the owner as member (role owner); returns its id. */
  createWorkspace(name: string, ownerId: number): Promise<number>;
  /** Makes `userId` a member of `workspaceId` (no-op when already a member). */
  addMember(workspaceId: number, userId: number): Promise<void>;
  /** Sends one request to the API. */
  request(method: string, path: string, options?: RequestOptions): Promise<TestResponse>;
  /** Stops services and drops the database. Idempotent. */
  close(): Promise<void>;
}

/**
 * A REST API over a fresh, migrated database on `target`, with the admin bootstrapped (token
 * TEST_ADMIN_TOKEN). Background loops (reconciler, liveness) are not started: tests drive state
 * through the API and the database. `env` adds controller configuration variables.
 */
export async function createTestApi(
  target: DbTarget,
  options: { poolSize?: number; env?: Record<string, string> } = {},
): Promise<TestApi> {
  const database = await createTestDatabase(target, options.poolSize === undefined ? {} : { poolSize: options.poolSize });
  const db = database.db;
  await bootstrapAdmin(db, TEST_ADMIN_TOKEN);
  const config = loadControllerConfig({ REMOTEGPU_JOIN_TOKEN: TEST_JOIN_TOKEN, REMOTEGPU_SECRET_KEY: TEST_SECRET_KEY, ...options.env });
  const logger = pino({ level: 'silent' });
  const trust = await ClusterTrust.create({ db, config, logger });
  const services = new ControllerServices({ db, config, logger, trust, dbKind: database.kind });
  const app = buildApp({ services, logger });

  let closing: Promise<void> | undefined;
  return {
    app,
    services,
    db,
    database,
    config,
    adminToken: TEST_ADMIN_TOKEN,
    async createUser(name, role = 'user') {
      const user = await db.insertInto('users').values({ name, role }).returning('id').executeTakeFirstOrThrow();
      const token = generateToken();
      await insertToken(db, user.id, 'test', token);
      return { id: user.id, token };
    },
    async createWorkspace(name, ownerId) {
      const ws = await db.insertInto('workspaces').values({ name, owner_id: ownerId }).returning('id').executeTakeFirstOrThrow();
      await db.insertInto('workspace_members').values({ workspace_id: ws.id, user_id: ownerId, role: 'owner' }).execute();
      return ws.id;
    },
    async addMember(workspaceId, userId) {
      await db
        .insertInto('workspace_members')
        .values({ workspace_id: workspaceId, user_id: userId })
        .onConflict((oc) => oc.columns(['workspace_id', 'user_id']).doNothing())
        .execute();
    },
    async request(method, path, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
      let body: string | undefined;
      if (opts.body !== undefined) {
        body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
        if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
      }
      const res = await app.request(path, { method, headers, ...(body === undefined ? {} : { body }) });
      const text = await res.text();
      const isJson = (res.headers.get('content-type') ?? '').includes('json');
      return { status: res.status, headers: res.headers, body: isJson && text !== '' ? JSON.parse(text) : text, text };
    },
    close: () =>
      (closing ??= (async () => {
        await services.stop();
        await database.close();
      })()),
  };
}

let seededEnvironments = 0;

/**
 * Inserts an environment row straight into the database (no placement, no agent), for tests of
 * routes that depend on environments existing: `desiredState: 'deleted'` stands for one the API
 * already deleted. Returns its id.
 */
export async function seedEnvironment(
  db: Db,
  options: { ownerId: number; imageId: number; workspaceId?: number | null; desiredState?: 'running' | 'stopped' | 'deleted'; status?: 'running' | 'stopped' | 'deleting' },
): Promise<string> {
  const id = `env-seed${String(++seededEnvironments).padStart(5, '0')}`;
  const desired = options.desiredState ?? 'running';
  const image = await imageCopy(db, options.imageId);
  await db
    .insertInto('environments')
    .values({
      id,
      ...image,
      owner_id: options.ownerId,
      workspace_id: options.workspaceId ?? null,
      name: id,
      image_id: options.imageId,
      image: 'seeded',
      cpu: 1,
      memory_bytes: 2 ** 30,
      storage_bytes: 2 ** 30,
      gpu_model: null,
      desired_state: desired,
      status: options.status ?? (desired === 'deleted' ? 'deleting' : desired),
      host_id: null,
      ssh_port: null,
      jupyter_port: null,
      jupyter_token: 'seeded',
      idempotency_key: null,
      deleted_at: desired === 'deleted' ? new Date() : null,
    })
    .execute();
  return id;
}

/** A test API's ControlPlane served over gRPC on 127.0.0.1 (its cluster's TLS), for test agents to join. */
export interface ServedControlPlane {
  /** What startTestAgent needs: the address, the bootstrap join token, the cluster CA. */
  readonly agentOptions: { controllerAddress: string; joinToken: string; caPem: string };
  close(): Promise<void>;
}

/** Serves `api`'s ControlPlane on a free port of 127.0.0.1 (close it before `api`). */
export async function serveControlPlane(api: TestApi): Promise<ServedControlPlane> {
  const grpc = new Server();
  api.services.registerGrpc(grpc);
  const port = await new Promise<number>((resolve, reject) =>
    grpc.bindAsync('127.0.0.1:0', api.services.trust.serverCredentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    agentOptions: { controllerAddress: `127.0.0.1:${port}`, joinToken: TEST_JOIN_TOKEN, caPem: api.services.trust.ca.certPem },
    close: () => shutdownServer(grpc, 1000),
  };
}
