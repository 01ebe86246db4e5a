import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../common/logger.js';
import { identityOf } from '../../common/pki.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testRunDir } from '../helpers/docker.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';

// Certificate rotation with a short validity (6 s), on the real platform over mutual TLS: the
// agent renews its host certificate and the controller its own several times while an environment
// runs. The container is never restarted, reports keep flowing, no second host is registered, and
// the controller still drives the agent (stop and start) with the renewed certificates.

const run = promisify(execFile);
const hasDocker = await dockerAvailable();
const ADMIN = 'rotation-admin-token-0123456789abcdef';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');

describe.skipIf(!hasDocker)('certificate rotation on one machine', () => {
  const runDir = testRunDir();
  let platform: LocalPlatform;
  let dir = '';
  let envId = '';
  const api = restCaller(() => platform.controller.httpUrl);
  const env = async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data;
  const identityFile = () => JSON.parse(readFileSync(path.join(dir, 'data', 'agent', 'agent-identity.json'), 'utf8')) as { hostId: string; certPem: string };
  const containerStartedAt = async () =>
    (await run('sh', ['-c', `docker inspect -f '{{.Id}} {{.State.StartedAt}} {{.RestartCount}}' $(docker ps -q --filter label=remotegpu.env-id=${envId})`])).stdout.trim();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-rotation-'));
    platform = await startLocalPlatform(
      {
        PATH: process.env.PATH,
        REMOTEGPU_DATA_DIR: path.join(dir, 'data'),
        REMOTEGPU_RUN_DIR: runDir,
        REMOTEGPU_HTTP_PORT: '0',
        REMOTEGPU_GRPC_PORT: '0',
        REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
        REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_NAMESPACE: `rotation-${process.pid}`,
        REMOTEGPU_REPORT_INTERVAL_MS: '300',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_CERT_VALIDITY_S: '6',
        // Below the ephemeral range (32768-60999): an outgoing connection never holds these ports.
        REMOTEGPU_SSH_PORT_RANGE: '32200-32249',
        REMOTEGPU_JUPYTER_PORT_RANGE: '32250-32299',
      },
      createLogger({ name: 'rotation', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitUntil('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await platform?.stop();
    await removeNamespace(`rotation-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('renews host and controller certificates while an environment keeps running', async () => {
    const created = await api('POST', '/api/v1/environments', ADMIN, { name: 'rot', image: 'devbox:1', cpu: 1, memory: 256 * 2 ** 20, gpu: 1, storage: 2 ** 30 });
    expect(created.status).toBe(201);
    envId = created.body.data.env_id;
    await waitUntil('running', async () => (await env()).status === 'running', 90_000);
    const before = identityFile();
    const startedAt = await containerStartedAt();
    const db = platform.controller.database.db;
    const generation = platform.controller.services.trust.generation;

    // Two lifetimes of the certificate: at least two renewals on each side.
    const lastReports: number[] = [];
    const until = Date.now() + 12_500;
    while (Date.now() < until) {
      const host = await db.selectFrom('hosts').select(['last_report_at', 'liveness']).where('id', '=', before.hostId).executeTakeFirstOrThrow();
      expect(host.liveness).toBe('online');
      lastReports.push(host.last_report_at!.getTime());
      await new Promise((r) => setTimeout(r, 500));
    }

    const after = identityFile();
    expect(after.hostId).toBe(before.hostId);
    expect(after.certPem).not.toBe(before.certPem);
    expect(identityOf(after.certPem)).toEqual({ kind: 'host', hostId: before.hostId });
    const issued = await db.selectFrom('host_certificates').select('serial').where('host_id', '=', before.hostId).execute();
    expect(issued.length).toBeGreaterThanOrEqual(3); // the registration and at least two renewals
    expect(platform.controller.services.trust.generation - generation).toBeGreaterThanOrEqual(2);
    expect((await db.selectFrom('hosts').select('id').execute()).length).toBe(1);
    // Reports never paused for long: the newest report time moved on at every sample after the first few.
    const gaps = lastReports.slice(1).map((t, i) => t - lastReports[i]!);
    expect(Math.max(...lastReports) - Math.min(...lastReports)).toBeGreaterThan(10_000);
    expect(gaps.filter((g) => g === 0).length).toBeLessThanOrEqual(3);
    // The container was never restarted or recreated.
    expect(await containerStartedAt()).toBe(startedAt);
    expect((await env()).status).toBe('running');

    // The controller still drives the agent with the renewed certificates.
    expect((await api('POST', `/api/v1/environments/${envId}/stop`, ADMIN)).status).toBe(200);
    await waitUntil('stopped', async () => (await env()).status === 'stopped', 60_000);
    expect((await api('POST', `/api/v1/environments/${envId}/start`, ADMIN)).status).toBe(200);
    await waitUntil('running again', async () => (await env()).status === 'running', 60_000);
  }, 180_000);
});
