import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { platformEnvAt, startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// SSH host keys in the API and port reuse (issue 14 item 1) on the real platform: controller,
// agent, Docker, PGlite, the devbox test image (its entrypoint makes host keys with ssh-keygen -A
// on a container's first start), and the real OpenSSH tools. Ports 19500-19599. The SSH range has
// two ports: a deleted environment's port goes to the next one only when no other is free.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const run = promisify(execFile);
const ADMIN = 'e2e-hostkeys-admin-token-0123456789';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const NAMESPACE = `e2e-hostkeys-${process.pid}`;
const SSH_PORTS = [19500, 19501];

interface HostKey {
  type: string;
  key: string;
  fingerprint: string;
}
interface Env {
  env_id: string;
  status: string;
  ssh_port: number;
  access_info: { ssh_host: string; ssh_host_keys: HostKey[] } | null;
}

const sorted = (keys: { type: string; key: string }[]) => keys.map((k) => `${k.type} ${k.key}`).sort();

describe.skipIf(!hasDocker)('SSH host keys in access_info, and ports reused least recently freed first', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let key = '';
  const created: string[] = [];
  const api = restCaller(() => platform.controller.httpUrl);
  const get = async (id: string) => (await api('GET', `/api/v1/environments/${id}`, ADMIN)).body.data as Env;
  const containers = (id: string) => docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${id}`] } });

  /** Creates an environment and waits until it runs and its host keys are in access_info. */
  const createWithKeys = async (name: string): Promise<Env> => {
    const res = await api('POST', '/api/v1/environments', ADMIN, { name, image: 'devbox:1', cpu: 1, memory: 512 * 2 ** 20, gpu: 0, storage: 2 ** 30 });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const id = res.body.data.env_id as string;
    created.push(id);
    let env = await get(id);
    await waitUntil(`${name} running with host keys`, async () => {
      env = await get(id);
      return env.status === 'running' && (env.access_info?.ssh_host_keys.length ?? 0) > 0;
    }, 120_000, () => JSON.stringify(env));
    return env;
  };
  /** What the environment's sshd itself presents: `ssh-keyscan` (real OpenSSH) over its published port. */
  const keyscan = async (port: number) => {
    let lines: string[] = [];
    await waitUntil('ssh-keyscan answers', async () => {
      const { stdout } = await run('ssh-keyscan', ['-p', String(port), '-T', '5', '127.0.0.1'], { timeout: 30_000 }).catch(() => ({ stdout: '' }));
      lines = stdout.split('\n').filter((l) => l.startsWith(`[127.0.0.1]:${port} `));
      return lines.length > 0;
    }, 60_000);
    return lines.map((l) => {
      const [, type, blob] = l.split(' ');
      return { type: type!, key: blob! };
    });
  };
  /** The fingerprints `ssh-keygen -lf` prints for the keys, in their order. */
  const keygenFingerprints = async (keys: HostKey[]) => {
    const file = path.join(dir, `keys-${Date.now()}`);
    writeFileSync(file, keys.map((k) => `${k.type} ${k.key}\n`).join(''));
    const { stdout } = await run('ssh-keygen', ['-l', '-f', file]);
    return stdout.trim().split('\n').map((l) => l.split(' ')[1]);
  };
  /** `ssh` with strict host key checking against a known_hosts written from the API's keys, under HostKeyAlias=<env_id>. */
  const sshStrict = async (env: Env, command: string) => {
    const knownHosts = path.join(dir, `known_hosts-${env.env_id}`);
    writeFileSync(knownHosts, env.access_info!.ssh_host_keys.map((k) => `${env.env_id} ${k.type} ${k.key}\n`).join(''));
    const args = ['-i', key, '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', `HostKeyAlias=${env.env_id}`, '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5'];
    return run('ssh', [...args, '-p', String(env.ssh_port), 'root@127.0.0.1', command], { timeout: 30_000 }).then(
      (r) => ({ code: 0, out: r.stdout.trim() }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: `${e.stdout}${e.stderr}`.trim() }),
    );
  };
  const deleteAndWait = async (id: string) => {
    expect((await api('DELETE', `/api/v1/environments/${id}`, ADMIN)).status).toBe(204);
    await waitUntil(`${id} removed`, async () => (await containers(id)).length === 0, 60_000);
    // Its ports are given back once the agent confirmed the removal, with its storage (one transaction:
    // placement.ts releaseAll): the host's storage_allocated drops to 0 (no other environment is on it).
    await waitUntil(`${id} released`, async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body.data.items[0].storage_allocated === 0, 60_000);
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-hostkeys-'));
    key = path.join(dir, 'id_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    platform = await startLocalPlatform(
      platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_SSH_PORT_RANGE: `${SSH_PORTS[0]}-${SSH_PORTS[1]}`,
        REMOTEGPU_JUPYTER_PORT_RANGE: '19550-19559',
      }),
      createLogger({ name: 'e2e-hostkeys', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitUntil('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const k = await api('POST', '/api/v1/ssh-keys', ADMIN, { name: 'e2e', public_key: readFileSync(`${key}.pub`, 'utf8').trim() });
    expect(k.status, JSON.stringify(k.body)).toBe(201);
  }, 120_000);

  afterAll(async () => {
    for (const id of created) await api('DELETE', `/api/v1/environments/${id}`, ADMIN).catch(() => {});
    for (const id of created) await waitUntil('removed', async () => (await containers(id)).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('offers the keys sshd presents, with ssh-keygen’s fingerprints; a new environment gets a fresh port while one is free, a freed one only when none is', async () => {
    const first = await createWithKeys('hk-first');
    expect(first.ssh_port).toBe(SSH_PORTS[0]);
    const keys = first.access_info!.ssh_host_keys;
    // Exactly what the container's sshd presents to a real client.
    expect(sorted(keys)).toEqual(sorted(await keyscan(first.ssh_port)));
    expect(keys.map((k) => k.type)).toContain('ssh-ed25519');
    expect(keys.map((k) => k.fingerprint)).toEqual(await keygenFingerprints(keys));
    expect((await sshStrict(first, 'echo strict-ok')).out).toBe('strict-ok');

    await deleteAndWait(first.env_id);
    // Port 19500 is free again, but 19501 never served anyone: the new environment gets that one.
    const second = await createWithKeys('hk-second');
    expect(second.ssh_port).toBe(SSH_PORTS[1]);
    expect(sorted(second.access_info!.ssh_host_keys)).toEqual(sorted(await keyscan(second.ssh_port)));

    // Now the freed port is the only one left: it is reused, with the new container's own keys.
    const third = await createWithKeys('hk-third');
    expect(third.ssh_port).toBe(first.ssh_port);
    const thirdKeys = third.access_info!.ssh_host_keys;
    expect(sorted(thirdKeys)).toEqual(sorted(await keyscan(third.ssh_port)));
    expect(thirdKeys.map((k) => k.fingerprint)).toEqual(await keygenFingerprints(thirdKeys));
    for (const k of thirdKeys) expect(sorted(keys)).not.toContain(`${k.type} ${k.key}`);
    // ssh with strict checking under HostKeyAlias=<env_id> works for the new environment on the old port,
    // and the old environment's known_hosts entry is refused there (what users would otherwise hit).
    expect((await sshStrict(third, 'echo reused-ok')).out).toBe('reused-ok');
    const stale = await sshStrict({ ...third, access_info: { ...third.access_info!, ssh_host_keys: keys } }, 'true');
    expect(stale.code).not.toBe(0);
    expect(stale.out).toMatch(/host key|HOST IDENTIFICATION/i);
  }, 400_000);

  it('reads the keys again for a recreated container (a start with another GPU count)', async () => {
    const env = (await api('GET', '/api/v1/environments?limit=100', ADMIN)).body.data.items.find((e: { name: string }) => e.name === 'hk-third') as Env;
    const [before] = await containers(env.env_id);
    expect((await api('POST', `/api/v1/environments/${env.env_id}/stop`, ADMIN)).status).toBe(200);
    await waitUntil('stopped', async () => (await get(env.env_id)).status === 'stopped', 60_000);
    expect((await api('POST', `/api/v1/environments/${env.env_id}/start`, ADMIN, { gpu: 1 })).status).toBe(200);
    let now = env;
    await waitUntil('running again with host keys', async () => {
      now = await get(env.env_id);
      const [c] = await containers(env.env_id);
      return now.status === 'running' && c !== undefined && c.Id !== before!.Id && (now.access_info?.ssh_host_keys.length ?? 0) > 0;
    }, 120_000, () => JSON.stringify(now));
    expect(sorted(now.access_info!.ssh_host_keys)).toEqual(sorted(await keyscan(now.ssh_port)));
    expect((await sshStrict(now, 'echo recreated-ok')).out).toBe('recreated-ok');
  }, 200_000);
});
