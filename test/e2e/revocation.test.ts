import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, dockerExec, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// Revocation reaches what is already running, on the real platform (controller with embedded
// PGlite, agent, Docker, the devbox image's sshd, the real OpenSSH client): one environment, reused
// across the steps. Deleting a key locks it out within seconds and adding one lets it in, both
// without a new container; removing a workspace member recreates the workspace's running
// environments with a new Jupyter token; disabling the owner stops the environment (its data stays).

const run = promisify(execFile);
const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-revoke-admin-token-0123456789ab';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const MIB = 2 ** 20;
const NAMESPACE = `e2e-revoke-${process.pid}`;

describe.skipIf(!hasDocker)('revocation on one machine', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let alice = '';
  let aliceId = 0;
  let envId = '';
  let sshPort = 0;
  const keyA = () => path.join(dir, 'id_a');
  const keyB = () => path.join(dir, 'id_b');
  const api = restCaller(() => platform.controller.httpUrl);
  const env = async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data;
  const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => waitUntil(what, check, timeoutMs, undefined, 250);
  const ssh = (key: string, command = 'true') =>
    run('ssh', ['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5', '-p', String(sshPort), 'root@127.0.0.1', command], {
      timeout: 30_000,
    }).then(
      () => 0,
      (e: { code?: number }) => e.code ?? -1,
    );
  const container = () => docker.getContainer(`remotegpu-${envId}`).inspect();
  const events = async () => (await api('GET', `/api/v1/environments/${envId}/logs?lines=200`, ADMIN)).body.data.logs as string[];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-revoke-'));
    await Promise.all([keyA(), keyB()].map((key) => run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key])));
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
        REMOTEGPU_NAMESPACE: NAMESPACE,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '1000',
        REMOTEGPU_SSH_PORT_RANGE: '29100-29149',
        REMOTEGPU_JUPYTER_PORT_RANGE: '29150-29199',
      },
      createLogger({ name: 'e2e-revoke', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const user = await api('POST', '/api/v1/admin/users', ADMIN, { name: 'alice' });
    aliceId = user.body.data.id;
    alice = (await api('POST', `/api/v1/admin/users/${aliceId}/tokens`, ADMIN, { name: 'e2e' })).body.data.token;
    const k = await api('POST', '/api/v1/ssh-keys', alice, { name: 'key-a', public_key: readFileSync(`${keyA()}.pub`, 'utf8').trim() });
    expect(k.status).toBe(201);
    const res = await api('POST', '/api/v1/environments', alice, { name: 'revoke', image: 'devbox:1', cpu: 1, memory: 512 * MIB, gpu: 0, storage: 2 ** 30 });
    expect(res.status).toBe(201);
    envId = res.body.data.env_id;
    sshPort = res.body.data.ssh_port;
    await waitFor('running', async () => (await env()).status === 'running', 120_000);
    await waitFor('ssh with key A', async () => (await ssh(keyA())) === 0);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitFor('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('deleting key A locks it out within seconds and adding key B lets B in, in the same container', async () => {
    const before = await container();
    const keys = (await api('GET', '/api/v1/ssh-keys', alice)).body.data.items as { id: number; name: string }[];
    const deletedAt = Date.now();
    expect((await api('DELETE', `/api/v1/ssh-keys/${keys.find((k) => k.name === 'key-a')!.id}`, alice)).status).toBe(204);
    await waitFor('key A refused', async () => (await ssh(keyA())) !== 0, 30_000);
    console.log(`key deletion to ssh refusal: ${Date.now() - deletedAt} ms`);

    const addedAt = Date.now();
    const k = await api('POST', '/api/v1/ssh-keys', alice, { name: 'key-b', public_key: readFileSync(`${keyB()}.pub`, 'utf8').trim() });
    expect(k.status).toBe(201);
    await waitFor('key B accepted', async () => (await ssh(keyB())) === 0, 30_000);
    console.log(`key addition to ssh login: ${Date.now() - addedAt} ms`);
    expect(await ssh(keyA())).not.toBe(0);

    // Neither change made a new container or restarted this one.
    const after = await container();
    expect(after.Id).toBe(before.Id);
    expect(after.State.StartedAt).toBe(before.State.StartedAt);
    const logs = (await events()).join('\n');
    expect(logs).toMatch(/SSH keys updated: key "key-a" \(SHA256:[^)]+\) removed/);
    expect(logs).toMatch(/SSH keys updated: key "key-b" \(SHA256:[^)]+\) added/);
    expect(logs).not.toContain(readFileSync(`${keyB()}.pub`, 'utf8').trim().split(' ')[1]);
  }, 120_000);

  it('removing a workspace member recreates the running environments of the workspace with a new Jupyter token (data kept)', async () => {
    const bob = await api('POST', '/api/v1/admin/users', ADMIN, { name: 'bob' });
    const ws = await api('POST', '/api/v1/admin/workspaces', ADMIN, { name: 'team', owner_id: aliceId });
    expect(ws.status).toBe(201);
    const wsId = ws.body.data.id as number;
    expect((await api('POST', `/api/v1/admin/workspaces/${wsId}/members`, ADMIN, { user_id: bob.body.data.id })).status).toBe(201);
    const res = await api('POST', '/api/v1/environments', alice, { name: 'team-env', image: 'devbox:1', cpu: 1, memory: 512 * MIB, gpu: 0, storage: 2 ** 30, workspace_id: wsId });
    expect(res.status).toBe(201);
    const teamEnv = res.body.data.env_id as string;
    const name = `remotegpu-${teamEnv}`;
    const teamGet = async () => (await api('GET', `/api/v1/environments/${teamEnv}`, ADMIN)).body.data;
    const tokenIn = async () => (await docker.getContainer(name).inspect()).Config.Env.find((e) => e.startsWith('JUPYTER_TOKEN='))?.slice('JUPYTER_TOKEN='.length);
    try {
      await waitFor('team env running', async () => (await teamGet()).status === 'running', 120_000);
      const before = await docker.getContainer(name).inspect();
      const oldToken = await tokenIn();
      expect(oldToken).toBeTruthy();
      expect((await teamGet()).access_info.jupyter).toContain(`token=${oldToken}`);
      expect((await dockerExec(docker, name, ['sh', '-c', 'echo kept > /root/workspace/marker'])).exitCode).toBe(0);

      const removedAt = Date.now();
      expect((await api('DELETE', `/api/v1/admin/workspaces/${wsId}/members/${bob.body.data.id}`, ADMIN)).status).toBe(204);
      await waitFor('recreated with a new token', async () => {
        const c = await docker.getContainer(name).inspect().catch(() => undefined);
        return c !== undefined && c.Id !== before.Id && c.State.Running && (await teamGet()).status === 'running';
      }, 120_000);
      console.log(`member removal to the workspace's container recreated with a new Jupyter token: ${Date.now() - removedAt} ms`);
      const newToken = await tokenIn();
      expect(newToken).not.toBe(oldToken);
      expect((await teamGet()).access_info.jupyter).toContain(`token=${newToken}`);
      expect((await dockerExec(docker, name, ['cat', '/root/workspace/marker'])).stdout.trim()).toBe('kept');
      const logs = ((await api('GET', `/api/v1/environments/${teamEnv}/logs?lines=200`, ADMIN)).body.data.logs as string[]).join('\n');
      expect(logs).toContain(`Jupyter token rotated: bob (user ${bob.body.data.id}) was removed from workspace team (${wsId})`);
      expect(logs).not.toContain(oldToken);
    } finally {
      await api('DELETE', `/api/v1/environments/${teamEnv}`, ADMIN).catch(() => {});
      await waitFor('team env removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${teamEnv}`] } })).length === 0, 60_000).catch(() => {});
    }
  }, 300_000);

  it('disabling the owner stops the environment (data kept) and nobody can start it until enabled', async () => {
    const marker = await dockerExec(docker, `remotegpu-${envId}`, ['sh', '-c', 'echo kept > /root/workspace/marker']);
    expect(marker.exitCode).toBe(0);
    expect((await api('DELETE', `/api/v1/admin/users/${aliceId}`, ADMIN)).status).toBe(204);
    await waitFor('stopped', async () => (await env()).status === 'stopped', 60_000);
    expect((await container()).State.Running).toBe(false);
    expect(await ssh(keyB())).not.toBe(0);
    expect((await events()).join('\n')).toContain(`Stop requested: owner alice (user ${aliceId}) was disabled`);

    const refused = await api('POST', `/api/v1/environments/${envId}/start`, ADMIN);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain('is disabled');

    // Enabling starts nothing; an admin's start then brings it back with its data.
    expect((await api('POST', `/api/v1/admin/users/${aliceId}/enable`, ADMIN)).status).toBe(200);
    expect((await env()).status).toBe('stopped');
    expect((await api('POST', `/api/v1/environments/${envId}/start`, ADMIN)).status).toBe(200);
    await waitFor('running again', async () => (await env()).status === 'running', 60_000);
    await waitFor('ssh with key B again', async () => (await ssh(keyB(), 'cat /root/workspace/marker')) === 0, 30_000);
  }, 180_000);
});
