import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { createTestDatabase, DB_TARGETS, type TestDatabase } from '../helpers/databases.js';
import { platformEnvAt, startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { TerminalClient } from '../helpers/terminal-client.js';

// What a client sends at once when the terminal opens (a script piping commands, the console's
// first resize) reaches the shell, even when the agent's stream opens later than the WebSocket:
// on PostgreSQL the controller looks up the agent with a query after the upgrade. The test holds
// that query back with a lock on host_certificates (which nothing before the upgrade reads), so
// the input deterministically arrives before the agent's stream is attached. Ports 19740-19779.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-early-admin-token-0123456789abcd';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const NAMESPACE = `e2e-early-${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(DB_TARGETS.filter((t) => t.name === 'postgres'))('terminal input sent at once on $name', (target) => {
  describe.skipIf(target.skipReason !== '' || !hasDocker)('real platform', () => {
    const runDir = testRunDir();
    const docker = testDocker();
    let database: TestDatabase;
    let platform: LocalPlatform;
    let dir = '';
    let envId = '';
    const api = restCaller(() => platform.controller.httpUrl);
    const waitFor = (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) => waitUntil(what, check, timeoutMs, undefined, 100);

    beforeAll(async () => {
      database = await createTestDatabase(target, { poolSize: 2 });
      dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-early-'));
      platform = await startLocalPlatform(
        platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
          DATABASE_URL: database.url,
          REMOTEGPU_FAKE_GPUS: FAKE,
          REMOTEGPU_REPORT_INTERVAL_MS: '500',
          REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
          REMOTEGPU_SSH_PORT_RANGE: '19740-19759',
          REMOTEGPU_JUPYTER_PORT_RANGE: '19760-19779',
        }),
        createLogger({ name: 'e2e-early', level: 'warn' }),
      );
      expect(platform.agentProblem).toBe('');
      await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
      const res = await api('POST', '/api/v1/environments', ADMIN, { name: 'early', image: 'devbox:1', cpu: 1, memory: 2 ** 29, gpu: 0, storage: 2 ** 30 });
      expect(res.status).toBe(201);
      envId = res.body.data.env_id;
      await waitFor('running', async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data.status === 'running', 120_000);
    }, 300_000);

    afterAll(async () => {
      if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
      await waitFor('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
      await platform?.stop();
      await removeNamespace(NAMESPACE);
      await database?.close();
      rmSync(dir, { recursive: true, force: true });
      await releaseRunDir(runDir);
    }, 120_000);

    it('runs the command and applies the resize sent right after the WebSocket opened', async () => {
      const locker = new pg.Client({ connectionString: database.url });
      await locker.connect();
      try {
        await locker.query('begin');
        await locker.query('lock table host_certificates in access exclusive mode');
        const url = `${platform.controller.httpUrl.replace(/^http/, 'ws')}/api/v1/environments/${envId}/terminal?cols=80&rows=24`;
        const t = await TerminalClient.open(url, { headers: { authorization: `Bearer ${ADMIN}` } });
        t.resize(100, 30);
        t.type('echo early-$((6*7))\n');
        await sleep(500); // the input has reached the controller; the agent's stream is not open yet
        await locker.query('commit');
        await t.waitFor(/early-42/, 20_000);
        const mark = t.output.length;
        t.type('stty size; echo size-done\n');
        expect((await t.waitFor(/(\d+) (\d+)\r?\nsize-done/, 20_000, mark)).slice(1)).toEqual(['30', '100']);
        t.close();
      } finally {
        await locker.end();
      }
    }, 60_000);

    it('ignores control frames that are not JSON objects, without a fault on stderr, and goes on', async () => {
      const faults = vi.spyOn(console, 'error');
      try {
        const url = `${platform.controller.httpUrl.replace(/^http/, 'ws')}/api/v1/environments/${envId}/terminal?cols=80&rows=24`;
        const t = await TerminalClient.open(url, { headers: { authorization: `Bearer ${ADMIN}` } });
        for (const frame of ['null', '[]', '"resize"', '7', '{', '{"type":"resize","cols":null,"rows":5}', '{"type":"resize","cols":5000,"rows":5}']) t.ws.send(frame);
        t.type('echo still-$((6*7))\n');
        await t.waitFor(/still-42/, 20_000);
        t.close();
        expect(faults).not.toHaveBeenCalled();
      } finally {
        faults.mockRestore();
      }
    }, 60_000);
  });
});
