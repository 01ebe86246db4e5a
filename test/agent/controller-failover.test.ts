import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { pino } from 'pino';
import { loadControllerConfig } from '../../controller/config.js';
import { startController, type RunningController } from '../../controller/server.js';
import { createTestDatabase, SERVER_URL, type TestDatabase } from '../helpers/databases.js';
import { dockerAvailable, freePort, releaseRunDir, removeNamespace, testRunDir } from '../helpers/docker.js';
import { waitUntil } from '../helpers/rest.js';

// The real agent program (a child process, fake GPUs) against real controllers over real gRPC on
// loopback. A controller outage longer than gRPC's old reconnect backoff, then the controller back on
// the same port: the agent reports again within its bounded backoff (REMOTEGPU_RECONNECT_MAX_MS).
// Two replicas on one PostgreSQL database, the agent given both addresses: closing the one it
// reports to, it reports to the other. Each prints how long the host took to report again.

const hasDocker = await dockerAvailable();
const ADMIN = 'controller-failover-admin-token-0123456789';
const JOIN = 'controller-failover-join-token-0123456789';
const SECRET = 'controller-failover-secret-key-0123456789';
const NAMESPACE = `controller-failover-${process.pid}`;
// Longer outages can be measured with REMOTEGPU_TEST_OUTAGE_MS (the old backoff grew with the outage).
const OUTAGE_MS = Number(process.env.REMOTEGPU_TEST_OUTAGE_MS ?? 10_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Replica {
  readonly controller: RunningController;
  readonly grpcPort: number;
  readonly dataDir: string;
}

describe.skipIf(!hasDocker)('agent reconnects to controllers', () => {
  const runDir = testRunDir();
  let dir: string;
  let agent: ChildProcess | undefined;
  let output = '';
  const replicas: RunningController[] = [];

  const detail = () => `agent output (last lines):\n${output.split('\n').slice(-30).join('\n')}`;

  /** Starts a controller on `grpcPort` with its data directory (PGlite lives there unless `databaseUrl`). */
  const startReplica = async (dataDir: string, grpcPort: number, env: Record<string, string> = {}): Promise<Replica> => {
    const config = loadControllerConfig({
      REMOTEGPU_DATA_DIR: dataDir,
      REMOTEGPU_HTTP_PORT: '0',
      REMOTEGPU_HTTP_HOST: '127.0.0.1',
      REMOTEGPU_GRPC_PORT: String(grpcPort),
      REMOTEGPU_GRPC_HOST: '127.0.0.1',
      REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
      REMOTEGPU_JOIN_TOKEN: JOIN,
      REMOTEGPU_SECRET_KEY: SECRET,
      REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
      // The interval agents are told to report at.
      REMOTEGPU_REPORT_INTERVAL_MS: '500',
      ...env,
    });
    const controller = await startController(config, pino({ level: 'silent' }));
    replicas.push(controller);
    return { controller, grpcPort, dataDir };
  };

  const stopReplica = async (replica: Replica) => {
    await replica.controller.stop();
    replicas.splice(replicas.indexOf(replica.controller), 1);
  };

  const startAgent = async (controllerAddresses: string, joinToken: string) => {
    output = '';
    agent = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts'], {
      env: {
        PATH: process.env.PATH,
        REMOTEGPU_CONTROLLER: controllerAddresses,
        REMOTEGPU_JOIN_TOKEN: joinToken,
        REMOTEGPU_AGENT_LISTEN: `127.0.0.1:${await freePort()}`,
        REMOTEGPU_PUBLIC_ADDRESS: '127.0.0.1',
        REMOTEGPU_DATA_DIR: path.join(dir, `agent-${Date.now()}`),
        REMOTEGPU_RUN_DIR: runDir,
        REMOTEGPU_FAKE_GPUS: path.resolve('test/fixtures/nvidia-smi/h100-80gb-hbm3-sxm_x8_nvidia-smi-q.txt'),
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_LOG_LEVEL: 'info',
        REMOTEGPU_NAMESPACE: NAMESPACE,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  };

  /** The only host's liveness and last report time (database clock), as `controller` sees them. */
  const host = async (controller: RunningController) => {
    const row = await controller.database.db.selectFrom('hosts').select(['id', 'liveness', 'last_report_at']).executeTakeFirst();
    return row ? { id: row.id, liveness: row.liveness, lastReportAt: row.last_report_at ? new Date(row.last_report_at).getTime() : 0 } : undefined;
  };
  const dbNow = async (controller: RunningController) =>
    new Date((await sql<{ now: Date }>`select now() as now`.execute(controller.database.db)).rows[0]!.now).getTime();

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-failover-'));
  });

  afterEach(async () => {
    agent?.kill('SIGKILL');
    agent = undefined;
    for (const controller of replicas.splice(0)) await controller.stop();
  }, 60_000);

  afterAll(async () => {
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 60_000);

  it(`reports again within seconds after a ${OUTAGE_MS / 1000} s controller outage (same port)`, async () => {
    const grpcPort = await freePort();
    let replica = await startReplica(path.join(dir, 'outage-controller'), grpcPort);
    await startAgent(`127.0.0.1:${grpcPort}`, replica.controller.bootstrapJoinToken!);
    await waitUntil('host registered and online', async () => (await host(replica.controller))?.liveness === 'online', 60_000, detail);

    await stopReplica(replica);
    await sleep(OUTAGE_MS);
    replica = await startReplica(replica.dataDir, grpcPort);
    const back = Date.now();
    const since = await dbNow(replica.controller);
    await waitUntil(
      'host reports to the restarted controller',
      async () => {
        const h = await host(replica.controller);
        return h?.liveness === 'online' && h.lastReportAt >= since;
      },
      60_000,
      detail,
    );
    const seconds = (Date.now() - back) / 1000;
    console.log(`[controller-failover] agent reported ${seconds.toFixed(2)} s after the controller came back from a ${OUTAGE_MS / 1000} s outage (target ≤ 10 s)`);
    expect((await host(replica.controller))?.liveness).toBe('online');
  }, 180_000);

  // Two replicas share the database (and the secret key, so the cluster CA); each issues its own
  // certificate. Replica A answers reports but runs (practically) no liveness or reconciler pass:
  // its timeout and interval are long, so B alone marks silent hosts offline (after 3 s).
  if (SERVER_URL) {
    it('fails over to the second replica when the one it reports to closes (PostgreSQL)', async () => {
      const database: TestDatabase = await createTestDatabase({ name: 'postgres', skipReason: '' });
      try {
        const shared = { DATABASE_URL: database.url! };
        const [portA, portB] = [await freePort(), await freePort()];
        const a = await startReplica(path.join(dir, 'replica-a'), portA, { ...shared, REMOTEGPU_HOST_TIMEOUT_MS: '600000', REMOTEGPU_RECONCILE_INTERVAL_MS: '600000' });
        const b = await startReplica(path.join(dir, 'replica-b'), portB, { ...shared, REMOTEGPU_HOST_TIMEOUT_MS: '3000' });
        expect(a.controller.services.trust.ca.certPem).toBe(b.controller.services.trust.ca.certPem);
        await startAgent(`127.0.0.1:${portA},127.0.0.1:${portB}`, a.controller.bootstrapJoinToken!);
        await waitUntil('host registered and online', async () => (await host(b.controller))?.liveness === 'online', 60_000, detail);

        // Reporting to A, which holds neither lock: B sees the host online on every look.
        for (let i = 0; i < 10; i++) {
          expect((await host(b.controller))?.liveness).toBe('online');
          await sleep(500);
        }

        const closed = Date.now();
        const since = await dbNow(b.controller);
        await stopReplica(a);
        await waitUntil(
          'host reports to replica B',
          async () => {
            const h = await host(b.controller);
            return h?.liveness === 'online' && h.lastReportAt >= since;
          },
          60_000,
          detail,
        );
        const seconds = (Date.now() - closed) / 1000;
        console.log(`[controller-failover] agent reported to the other replica ${seconds.toFixed(2)} s after the one it reported to closed`);
        await sleep(4000); // longer than B's host timeout: still reporting to B
        expect((await host(b.controller))?.liveness).toBe('online');
      } finally {
        for (const controller of replicas.splice(0)) await controller.stop();
        await database.close();
      }
    }, 180_000);
  }
});
