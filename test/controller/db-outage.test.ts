import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { isDatabaseUnavailable } from '../../controller/db/errors.js';
import { openDatabase } from '../../controller/db/database.js';
import { loadControllerConfig } from '../../controller/config.js';
import { startController, type RunningController } from '../../controller/server.js';
import { DB_TARGETS, SERVER_URL } from '../helpers/databases.js';
import { freePortIn, startPrivatePostgres, type PrivatePostgres } from '../helpers/postgres-server.js';
import { waitUntil } from '../helpers/rest.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';

// The controller survives losing its database. The PostgreSQL part runs a controller as its own
// process (a crash shows as an exit) on a private PostgreSQL server that the test restarts and
// stops (never the shared test server), while the reconciler holds its lock session waiting on an
// agent that does not answer: that session's connection used to crash the process (an 'error'
// event on a checked-out pg client, 57P01). During the outage every route answers 503
// service_unavailable with Retry-After, /healthz 200 and /readyz 503; requests succeed again as soon
// as the server is back, without a restart.

// Ports of this file (its own range: other test files publish theirs).
const PORTS = { from: 31700, to: 31999 };
const ADMIN = 'db-outage-admin-token-0123456789abcdef';
const JOIN = 'db-outage-join-token-0123456789abcdef';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('database errors that mean an outage', () => {
  it('a refused connection, a pool that cannot connect in time and a closed client are unavailable; SQL errors are not', async () => {
    const closedPort = await freePortIn(PORTS.from, PORTS.to);
    const refused = await new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${closedPort}/postgres` }).connect().catch((e: unknown) => e);
    expect(isDatabaseUnavailable(refused)).toBe(true);

    // A server that accepts connections and never answers: the pool's connect timeout.
    const silent: Server = createServer(() => {});
    const silentPort = await freePortIn(PORTS.from, PORTS.to, [closedPort]);
    await new Promise<void>((resolve) => silent.listen(silentPort, '127.0.0.1', resolve));
    try {
      const handle = await openDatabase({ databaseUrl: `postgres://postgres@127.0.0.1:${silentPort}/postgres`, dataDir: 'unused', connectTimeoutMs: 200 });
      const late = await handle.db.selectFrom('users').selectAll().execute().catch((e: unknown) => e);
      await handle.close();
      expect(isDatabaseUnavailable(late)).toBe(true);
    } finally {
      silent.close();
    }

    expect(isDatabaseUnavailable(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isDatabaseUnavailable(new Error('boom'))).toBe(false);
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: '57P03' }) }))).toBe(true);
  });
});

describe.each(DB_TARGETS.filter((t) => !t.skipReason))('health probes on $name', (target) => {
  let controller: RunningController;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-probes-'));
    let databaseUrl: string | undefined;
    if (target.name === 'postgres') {
      const name = `rgtest_probes_${process.pid}`;
      const admin = new pg.Client({ connectionString: SERVER_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${name}`);
      await admin.end();
      const url = new URL(SERVER_URL);
      url.pathname = `/${name}`;
      databaseUrl = url.toString();
    }
    const config = loadControllerConfig({
      REMOTEGPU_DATA_DIR: dir,
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      REMOTEGPU_HTTP_PORT: '0',
      REMOTEGPU_GRPC_PORT: '0',
      REMOTEGPU_HTTP_HOST: '127.0.0.1',
      REMOTEGPU_GRPC_HOST: '127.0.0.1',
      REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
    });
    controller = await startController(config, pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await controller?.stop();
    rmSync(dir, { recursive: true, force: true });
    if (target.name === 'postgres') {
      const admin = new pg.Client({ connectionString: SERVER_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS rgtest_probes_${process.pid} WITH (FORCE)`);
      await admin.end();
    }
  });

  it('/healthz and /readyz answer 200 with envelopes while the database answers', async () => {
    const health = await fetch(`${controller.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ code: 0, message: 'ok', data: { status: 'ok' } });
    const ready = await fetch(`${controller.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ code: 0, message: 'ok', data: { database: 'ok' } });
  });

  if (target.name === 'postgres') {
    it('a query whose session is terminated by the server (57P01) is answered 503 service_unavailable with Retry-After, then the next succeeds', async () => {
      // Every session of the controller's database is terminated, as a fast shutdown does.
      const url = new URL(SERVER_URL);
      const name = `rgtest_probes_${process.pid}`;
      const killer = new pg.Client({ connectionString: url.toString() });
      await killer.connect();
      try {
        await killer.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [name]);
        // A pooled connection whose end was not noticed yet fails its query: 503, never a 500.
        for (let i = 0; i < 3; i++) {
          const answer = await fetch(`${controller.httpUrl}/api/v1/environments`, { headers: { authorization: `Bearer ${ADMIN}` } });
          expect([200, 503]).toContain(answer.status);
          if (answer.status === 503) {
            expect(answer.headers.get('retry-after')).toBe('2');
            expect(((await answer.json()) as { code: number }).code).toBe(50301);
          }
        }
        // The controller recovers by itself: fresh connections.
        await waitUntil('requests to succeed', async () => (await fetch(`${controller.httpUrl}/api/v1/environments`, { headers: { authorization: `Bearer ${ADMIN}` } })).status === 200, 10_000);
      } finally {
        await killer.end();
      }
    });
  }
});

// The outage itself needs a PostgreSQL server of its own: only defined where the server tests run.
for (const target of DB_TARGETS.filter((t) => t.name === 'postgres' && !t.skipReason)) {
  describe(`database outage on ${target.name}: a controller process on a private PostgreSQL server`, () => {
    let server: PrivatePostgres;
    let child: ChildProcess;
    let output = '';
    let agent: TestAgent;
    let httpPort: number;
    let dir: string;
    const api = (method: string, p: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${httpPort}${p}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    const alive = () => child.exitCode === null && child.signalCode === null;
    const tail = () => `controller output (last lines):\n${output.split('\n').slice(-25).join('\n')}`;
    /** Whether a list request succeeds; a controller process that exited fails the test with its last output. */
    const serving = async () => {
      if (!alive()) throw new Error(`the controller process exited (${child.exitCode ?? child.signalCode}); ${tail()}`);
      return (await api('GET', '/api/v1/environments').catch(() => undefined))?.status === 200;
    };

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'rgpu-db-outage-'));
      const pgPort = await freePortIn(PORTS.from, PORTS.to);
      server = await startPrivatePostgres(pgPort);
      httpPort = await freePortIn(PORTS.from, PORTS.to, [pgPort]);
      const grpcPort = await freePortIn(PORTS.from, PORTS.to, [pgPort, httpPort]);
      child = spawn(process.execPath, ['--import', 'tsx', 'controller/main.ts'], {
        env: {
          PATH: process.env.PATH,
          DATABASE_URL: server.url,
          REMOTEGPU_DATA_DIR: dir,
          REMOTEGPU_HTTP_HOST: '127.0.0.1',
          REMOTEGPU_HTTP_PORT: String(httpPort),
          REMOTEGPU_GRPC_HOST: '127.0.0.1',
          REMOTEGPU_GRPC_PORT: String(grpcPort),
          REMOTEGPU_GRPC_INSECURE: '1',
          REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
          REMOTEGPU_JOIN_TOKEN: JOIN,
          REMOTEGPU_HOST_TIMEOUT_MS: '3000',
          REMOTEGPU_REPORT_INTERVAL_MS: '300',
          REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
          REMOTEGPU_AGENT_TIMEOUT_MS: '4000',
          REMOTEGPU_LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      await waitUntil('the controller to serve', async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined))?.status === 200, 60_000, tail);
      agent = await startTestAgent({ controllerAddress: `127.0.0.1:${grpcPort}`, joinToken: JOIN, insecure: true, gpus: 2 });
      agent.startReporting(300);
      expect((await api('POST', '/api/v1/admin/images', { name: 'devbox:1', docker_ref: 'remotegpu/devbox:1' })).status).toBe(201);
    });
    afterAll(async () => {
      await agent?.close();
      if (child && alive()) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      await server?.destroy();
      rmSync(dir, { recursive: true, force: true });
    });

    const envStatus = async (id: string) => ((await (await api('GET', `/api/v1/environments/${id}`)).json()) as { data: { status: string } }).data.status;

    it('survives a restart and an outage with the reconciler waiting on an agent, answers 503 meanwhile, and recovers by itself', async () => {
      // The reconciler's pass holds its lock session while the agent does not answer the apply.
      agent.setFailure('apply', 'hang');
      const created = await api('POST', '/api/v1/environments', { name: 'held', image: 'devbox:1', cpu: 1, memory: 256 * 2 ** 20, gpu: 1, storage: 2 ** 30 });
      expect(created.status).toBe(201);
      const held = ((await created.json()) as { data: { env_id: string } }).data.env_id;
      await waitUntil('the reconciler to call the agent', () => agent.calls.apply >= 1, 30_000, tail, 50);

      // 1. pg_ctl restart -m fast: every session ends with 57P01, the lock session included.
      await server.restart();
      const restarted = Date.now();
      await waitUntil('requests to succeed after the restart', serving, 30_000, tail, 20);
      console.log(`PostgreSQL restart: requests succeed ${Date.now() - restarted} ms after the server is back`);
      await sleep(500);
      expect(alive(), tail()).toBe(true);

      // 2. pg_ctl stop: the database is away for longer than the host timeout (3 s).
      agent.stopReporting();
      await server.stop();
      expect(alive(), tail()).toBe(true);
      for (const [method, p, body] of [
        ['GET', '/api/v1/environments'],
        ['GET', `/api/v1/environments/${held}`],
        ['POST', '/api/v1/environments', { name: 'during', image: 'devbox:1', cpu: 1, memory: 256 * 2 ** 20, gpu: 0, storage: 2 ** 30 }],
        ['GET', '/api/v1/admin/hosts'],
      ] as const) {
        const res = await api(method, p, body);
        expect(res.status, `${method} ${p}`).toBe(503);
        expect(res.headers.get('retry-after'), `${method} ${p}`).toMatch(/^[1-9][0-9]*$/);
        const envelope = (await res.json()) as { code: number; message: string; data: unknown };
        expect(envelope).toEqual({ code: 50301, message: expect.stringMatching(/database is unavailable/) as string, data: null });
      }
      expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
      const notReady = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
      expect(notReady.status).toBe(503);
      expect(notReady.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
      expect(((await notReady.json()) as { code: number }).code).toBe(50301);
      // GET /metrics still answers: process metrics and counters, without the gauges read from the database.
      const scrape = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
      expect(scrape.status).toBe(200);
      const exposition = await scrape.text();
      expect(exposition).toContain('remotegpu_controller_process_cpu_seconds_total');
      expect(exposition).not.toMatch(/^remotegpu_hosts\{/m);
      // Agents' reports are refused as UNAVAILABLE (they retry), not INTERNAL.
      const refused = await agent.report().catch((err: { code?: number }) => err);
      expect((refused as { code?: number }).code).toBe(14);
      await sleep(3_500);
      expect(alive(), tail()).toBe(true);

      // 3. pg_ctl start: requests succeed again without a restart of the controller.
      await server.start();
      const back = Date.now();
      await waitUntil('requests to succeed after the outage', serving, 30_000, tail, 20);
      const recoveryMs = Date.now() - back;
      console.log(`PostgreSQL stopped and started: requests succeed ${recoveryMs} ms after the server is back (target ≤ 2000 ms)`);
      expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);

      // The host could not report while the database was away: after its return it is not offline
      // at the next liveness pass (silence counts from the return), although its last report is old.
      await sleep(1_500);
      const hosts = (await (await api('GET', '/api/v1/admin/hosts')).json()) as { data: { items: { host_id: string; status: string }[] } };
      expect(hosts.data.items.find((h) => h.host_id === agent.hostId)?.status).toBe('online');
      agent.startReporting(300);

      // 4. The reconciler takes its lock again and converges: the held environment and a new one run.
      agent.setFailure('apply', undefined);
      const second = await api('POST', '/api/v1/environments', { name: 'after', image: 'devbox:1', cpu: 1, memory: 256 * 2 ** 20, gpu: 1, storage: 2 ** 30 });
      expect(second.status).toBe(201);
      const after = ((await second.json()) as { data: { env_id: string } }).data.env_id;
      await waitUntil('both environments to run', async () => (await envStatus(held)) === 'running' && (await envStatus(after)) === 'running', 60_000, tail);
      expect(alive(), tail()).toBe(true);
      expect(output).not.toMatch(/Unhandled 'error' event|uncaught/i);
    }, 180_000);
  });
}
