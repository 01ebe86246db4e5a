import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../common/logger.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testRunDir } from '../helpers/docker.js';
import { startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// The slice a newcomer tries first, through the REST API only, as a user would: the whole platform
// on one machine (real controller, real agent, real Docker, real OpenSSH client), only the GPUs
// simulated from a recorded 10×A40 capture.

const run = promisify(execFile);
const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-admin-token-0123456789abcdef';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(DB_TARGETS.map((t, i) => ({ ...t, i })))('one machine on $name', (target) => {
  describe.skipIf(target.skipReason !== '' || !hasDocker)('REST + SSH end to end', () => {
    const runDir = testRunDir();
    let platform: LocalPlatform;
    let database: TestDatabase | undefined;
    let base = '';
    let dir = '';
    let key = '';
    let alice = '';
    let bob = '';
    let envId = '';
    let sshPort = 0;
    const datasetDir = () => path.join(dir, 'imagenet');

    const api = restCaller(() => base);
    const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 90_000) => waitUntil(what, check, timeoutMs);
    const statusOf = async () => (await api('GET', `/api/v1/environments/${envId}`, alice)).body.data.status as string;
    const waitStatus = (s: string) => waitFor(`status ${s}`, async () => (await statusOf()) === s);
    const ssh = async (command: string) => {
      const args = ['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5', '-p', String(sshPort), 'root@127.0.0.1', command];
      return run('ssh', args, { timeout: 30_000 }).then(
        (r) => ({ code: 0, out: r.stdout.trim() }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: `${e.stdout}${e.stderr}`.trim() }),
      );
    };
    const sshReady = () => waitFor('ssh login', async () => (await ssh('true')).code === 0, 60_000);

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-'));
      mkdirSync(datasetDir());
      writeFileSync(path.join(datasetDir(), 'labels.txt'), 'cat\ndog\n');
      key = path.join(dir, 'id_ed25519');
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
      let databaseUrl: string | undefined;
      if (target.name === 'postgres') {
        database = await createTestDatabase(target);
        databaseUrl = database.url;
      }
      const off = 31000 + target.i * 500;
      platform = await startLocalPlatform(
        {
          PATH: process.env.PATH,
          REMOTEGPU_DATA_DIR: path.join(dir, 'data'),
          REMOTEGPU_RUN_DIR: runDir,
          // The agent mounts datasets from these directories only (step 4 mounts <dir>/imagenet).
          REMOTEGPU_DATASET_ROOTS: dir,
          DATABASE_URL: databaseUrl,
          REMOTEGPU_HTTP_PORT: '0',
          REMOTEGPU_GRPC_PORT: '0',
          REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
          REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
          REMOTEGPU_FAKE_GPUS: FAKE,
          // Other test files run agents on the same Docker engine at the same time.
          REMOTEGPU_NAMESPACE: `e2e-${target.name}-${process.pid}`,
          REMOTEGPU_REPORT_INTERVAL_MS: '500',
          REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
          REMOTEGPU_SSH_PORT_RANGE: `${off}-${off + 99}`,
          REMOTEGPU_JUPYTER_PORT_RANGE: `${off + 100}-${off + 199}`,
        },
        createLogger({ name: 'e2e', level: 'warn' }),
      );
      expect(platform.agentProblem).toBe('');
      base = platform.controller.httpUrl;
      await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
      const mk = async (name: string) => {
        const u = await api('POST', '/api/v1/admin/users', ADMIN, { name });
        const t = await api('POST', `/api/v1/admin/users/${u.body.data.id}/tokens`, ADMIN, { name: 'e2e' });
        return t.body.data.token as string;
      };
      alice = await mk('alice');
      bob = await mk('bob');
      const k = await api('POST', '/api/v1/ssh-keys', alice, { name: 'laptop', public_key: readFileSync(`${key}.pub`, 'utf8').trim() });
      expect(k.status).toBe(201);
    }, 300_000);

    afterAll(async () => {
      if (envId) await api('DELETE', `/api/v1/environments/${envId}`, alice).catch(() => {});
      await platform?.stop();
      await removeNamespace(`e2e-${target.name}-${process.pid}`);
      await database?.close();
      rmSync(dir, { recursive: true, force: true });
      await releaseRunDir(runDir);
    }, 120_000);

    it('1. creates an environment with 2 GPUs that becomes running', async () => {
      const res = await api('POST', '/api/v1/environments', alice, { name: 'e2e', image: 'devbox:1', cpu: 2, memory: 512 * 2 ** 20, gpu: 2, storage: 2 ** 30 });
      expect(res.status).toBe(201);
      expect(res.body.data.status).toBe('creating');
      envId = res.body.data.env_id;
      await waitStatus('running');
      const d = (await api('GET', `/api/v1/environments/${envId}`, alice)).body.data;
      expect(d.host_id).toMatch(/^host-/);
      expect(d.jupyter_port).toBeGreaterThan(0);
      expect(d.access_info.ssh).toBe(`ssh root@127.0.0.1 -p ${d.ssh_port}`);
      sshPort = d.ssh_port;
    }, 120_000);

    it('2. logs in with the real ssh client and sees exactly its 2 GPUs and its limits', async () => {
      await sshReady();
      const nodes = (await ssh('ls /dev | grep -E "^nvidia[0-9]+$" | sort')).out.split('\n');
      expect(nodes).toHaveLength(2);
      const visible = (await ssh('echo $NVIDIA_VISIBLE_DEVICES')).out.split(',');
      const host = (await api('GET', `/api/v1/admin/hosts/${(await api('GET', `/api/v1/environments/${envId}`, alice)).body.data.host_id}`, ADMIN)).body.data;
      const mine = host.gpus.filter((g: { env_id: string | null }) => g.env_id === envId);
      expect(mine.map((g: { uuid: string }) => g.uuid).sort()).toEqual([...visible].sort());
      expect(mine.map((g: { index: number }) => `nvidia${g.index}`).sort()).toEqual([...nodes].sort());
      const cpu = (await ssh('cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us')).out;
      expect(cpu).toMatch(/^200000\b/);
      const mem = (await ssh('cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes')).out;
      expect(Number(mem)).toBe(512 * 2 ** 20);
    }, 120_000);

    it('3. keeps files in the data path and in /root across stop, start and restart; stopped GPUs are free', async () => {
      expect((await ssh('echo data > /root/workspace/a.txt && echo home > /root/b.txt')).code).toBe(0);
      expect((await api('POST', `/api/v1/environments/${envId}/stop`, alice)).body.message).toBe('环境停止中');
      await waitStatus('stopped');
      const hosts = (await api('GET', '/api/v1/admin/hosts', ADMIN)).body.data.items;
      expect(hosts[0].gpus_allocated).toBe(0);
      expect((await api('POST', `/api/v1/environments/${envId}/start`, alice)).body.message).toBe('环境启动中');
      await waitStatus('running');
      await sshReady();
      expect((await ssh('cat /root/workspace/a.txt /root/b.txt')).out).toBe('data\nhome');
      expect((await api('POST', `/api/v1/environments/${envId}/restart`, alice)).body.message).toBe('环境重启中');
      await waitStatus('running');
      await sshReady();
      expect((await ssh('cat /root/workspace/a.txt /root/b.txt')).out).toBe('data\nhome');
    }, 180_000);

    it('4. mounts a dataset read-only into the running environment without losing data', async () => {
      const ds = await api('POST', '/api/v1/admin/datasets', ADMIN, { name: 'imagenet', host_path: datasetDir() });
      expect(ds.status).toBe(201);
      const res = await api('POST', `/api/v1/environments/${envId}/datasets`, alice, { dataset_id: ds.body.data.id, mount_path: '/data/imagenet', readonly: true });
      expect(res.body).toEqual({ code: 0, message: '数据集挂载成功' });
      await waitFor('dataset visible over ssh', async () => (await ssh('cat /data/imagenet/labels.txt')).out === 'cat\ndog', 90_000);
      const write = await ssh('touch /data/imagenet/new 2>&1; echo rc=$?');
      expect(write.out).toMatch(/Read-only file system[\s\S]*rc=1/);
      expect((await ssh('cat /root/workspace/a.txt /root/b.txt')).out).toBe('data\nhome');
    }, 180_000);

    it('5. serves logs with platform events and container output, and follows a line printed over ssh', async () => {
      const logs = (await api('GET', `/api/v1/environments/${envId}/logs?lines=50`, alice)).body.data.logs as string[];
      expect(logs.length).toBeGreaterThan(3);
      expect(logs.every((l) => /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] /.test(l))).toBe(true);
      expect(logs.some((l) => l.includes('Scheduled on'))).toBe(true);
      expect(logs.some((l) => /sshd|Server listening/i.test(l))).toBe(true);

      const controller = new AbortController();
      const res = await fetch(`${base}/api/v1/environments/${envId}/logs?follow=true&lines=1`, { headers: { authorization: `Bearer ${alice}` }, signal: controller.signal });
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const reader = res.body!.getReader();
      const marker = `marker-${Date.now()}`;
      let printedAt = 0;
      let seenAt = 0;
      let buffer = '';
      const reading = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buffer += Buffer.from(value).toString();
          if (buffer.includes(marker)) {
            seenAt = Date.now();
            return;
          }
        }
      })();
      await sleep(500);
      printedAt = Date.now();
      await ssh(`echo ${marker} > /proc/1/fd/1`);
      await Promise.race([reading, sleep(15_000)]);
      controller.abort();
      expect(seenAt).toBeGreaterThan(0);
      console.log(`log follow latency: ${seenAt - printedAt} ms (includes the ssh round trip)`);
      expect(buffer).toMatch(new RegExp(`data: \\[\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\] ${marker}`));
    }, 60_000);

    it('6. hides the environment from another user (404 on every route)', async () => {
      for (const [method, p] of [
        ['GET', `/api/v1/environments/${envId}`],
        ['POST', `/api/v1/environments/${envId}/stop`],
        ['POST', `/api/v1/environments/${envId}/start`],
        ['POST', `/api/v1/environments/${envId}/restart`],
        ['GET', `/api/v1/environments/${envId}/logs`],
        ['GET', `/api/v1/environments/${envId}/datasets`],
        ['DELETE', `/api/v1/environments/${envId}`],
      ] as const) {
        expect((await api(method, p, bob)).status, `${method} ${p}`).toBe(404);
      }
      expect((await api('GET', '/api/v1/environments', bob)).body.data.pagination.total).toBe(0);
    });

    it('7. deletes: 204, container and volume gone, GPUs free again', async () => {
      const res = await fetch(`${base}/api/v1/environments/${envId}`, { method: 'DELETE', headers: { authorization: `Bearer ${alice}` } });
      expect(res.status).toBe(204);
      expect(await res.text()).toBe('');
      await waitFor('container removed', async () => (await run('docker', ['ps', '-aq', '--filter', `label=remotegpu.env-id=${envId}`])).stdout.trim() === '', 60_000);
      await waitFor('volume removed', async () => !(await run('docker', ['volume', 'ls', '-q'])).stdout.includes(envId), 30_000);
      await waitFor('GPUs free', async () => {
        const h = (await api('GET', '/api/v1/admin/hosts', ADMIN)).body.data.items[0];
        return h.gpus_allocated === 0 && h.environment_count === 0;
      });
      envId = '';
    }, 120_000);
  });
});
