import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, releaseRunDir, removeNamespace, testRunDir } from '../helpers/docker.js';
import { platformEnvAt, startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { cliHome, cliLogin, runCli, type CliOptions } from '../helpers/cli.js';

// Issue 14's "what must be shown", as a user does it: the real `remotegpu` process (its own HOME)
// against the real platform (controller, agent, Docker, PGlite; GPUs faked from a 10×A40 capture)
// and the real OpenSSH client with strict host key checking. The SSH port range is ONE port, so
// the second environment must get the first one's port. Ports 19600-19739.

const run = promisify(execFile);
const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-cli-admin-token-0123456789abcdef';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const NAMESPACE = `e2e-cli-${process.pid}`;
const SSH_PORT = 19600;

/** A run of the plain ssh client: its exit code and output. */
async function plainSsh(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  return run('ssh', [...args], { timeout: 30_000 }).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );
}

describe.skipIf(!hasDocker)('the remotegpu CLI end to end (real platform, real ssh)', () => {
  const runDir = testRunDir();
  let platform: LocalPlatform;
  let dir = '';
  let home = '';
  let key = '';
  let token = '';
  let devId = '';
  let devKeys: { type: string; key: string }[] = [];
  const api = restCaller(() => platform.controller.httpUrl);
  const cli = (args: readonly string[], options?: CliOptions) => runCli(home, args, { timeoutMs: 180_000, ...options });
  /** ssh's own options for the test: our key only, never a prompt. */
  const SSH_OPTS = () => ['-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'];
  const knownHosts = () => path.join(home, '.config/remotegpu/known_hosts');
  const sshConfig = () => path.join(home, '.ssh/config');
  const envOf = async (ref: string) => {
    const got = await cli(['env', 'get', ref, '--json']);
    expect(got.code, got.stderr).toBe(0);
    return JSON.parse(got.stdout);
  };
  /** `remotegpu ssh ENV -- command`, once sshd answers (a host key failure ends the wait at once). */
  const sshWhenUp = async (ref: string, command: readonly string[]) => {
    let last = await cli(['ssh', ref, ...SSH_OPTS(), '--', ...command]);
    await waitUntil(`ssh ${ref}`, async () => {
      if (last.code !== 255 || /host key|HOST IDENTIFICATION/i.test(last.stderr)) return true;
      last = await cli(['ssh', ref, ...SSH_OPTS(), '--', ...command]);
      return last.code !== 255;
    }, 60_000, undefined, 500);
    return last;
  };
  const createEnv = async (name: string) => {
    const made = await cli(['env', 'create', name, '--image', 'devbox:1', '--gpu', '2', '--cpu', '1', '--memory', '512Mi', '--storage', '1Gi', '--wait']);
    expect(made.code, made.stderr).toBe(0);
    return envOf(name);
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-cli-'));
    platform = await startLocalPlatform(
      platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_SSH_PORT_RANGE: `${SSH_PORT}-${SSH_PORT}`,
        REMOTEGPU_JUPYTER_PORT_RANGE: '19601-19639',
      }),
      createLogger({ name: 'e2e-cli', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitUntil('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const user = await api('POST', '/api/v1/admin/users', ADMIN, { name: 'cli-carol' });
    expect(user.status).toBe(201);
    token = (await api('POST', `/api/v1/admin/users/${user.body.data.id}/tokens`, ADMIN, { name: 'laptop' })).body.data.token;
    home = cliHome('rgpu-e2e-cli-home-');
    mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
    key = path.join(home, '.ssh/id_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'carol@laptop', '-f', key]);
  }, 300_000);

  afterAll(async () => {
    const left = token ? (await api('GET', '/api/v1/environments', token)).body?.data?.items ?? [] : [];
    for (const e of left) await api('DELETE', `/api/v1/environments/${e.env_id}`, token).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    for (const d of [dir, home]) if (d) rmSync(d, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('1. logs in (token on stdin) and adds ~/.ssh/id_ed25519.pub with `ssh-key add`', async () => {
    await cliLogin(home, platform.controller.httpUrl, token);
    const added = await cli(['ssh-key', 'add']);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/^name:\s+carol@laptop$/m);
    const fingerprint = (await run('ssh-keygen', ['-l', '-f', `${key}.pub`])).stdout.split(' ')[1];
    const listed = await cli(['ssh-key', 'ls', '--json']);
    expect(JSON.parse(listed.stdout)).toEqual((await api('GET', '/api/v1/ssh-keys', token)).body.data.items);
    expect(JSON.parse(listed.stdout).map((k: { fingerprint: string }) => k.fingerprint)).toEqual([fingerprint]);
    const again = await cli(['ssh-key', 'add', `${key}.pub`]);
    expect(again.code).toBe(5);
    const secret = await cli(['ssh-key', 'add', key]);
    expect(secret.code).toBe(2);
    expect(secret.stderr).toMatch(/is a private key/);
  }, 60_000);

  it('2. creates an environment with --wait; `remotegpu ssh dev -- ls /dev/nvidia*` sees its 2 GPUs, host key checked', async () => {
    const env = await createEnv('dev');
    expect(env.status).toBe('running');
    expect(env.ssh_port).toBe(SSH_PORT);
    devId = env.env_id;
    const ls = await sshWhenUp('dev', ['ls', '/dev/nvidia*']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split('\n').filter((l) => /^\/dev\/nvidia\d+$/.test(l))).toHaveLength(2);
    // The CLI's known_hosts holds exactly the API's keys under the env id, readable by its owner only.
    devKeys = (await envOf(devId)).access_info.ssh_host_keys;
    expect(devKeys.length).toBeGreaterThan(0);
    const lines = readFileSync(knownHosts(), 'utf8').trim().split('\n');
    expect(lines.sort()).toEqual(devKeys.map((k) => `${devId} ${k.type} ${k.key}`).sort());
    expect(statSync(knownHosts()).mode & 0o777).toBe(0o600);
    const exit = await cli(['ssh', 'dev', ...SSH_OPTS(), '--', 'exit', '7']);
    expect(exit.code).toBe(7);
  }, 240_000);

  it('3. `env logs -f` receives a line the environment prints', async () => {
    const marker = `cli-e2e-${process.pid}-${Date.now()}`;
    let started = false;
    const follow = cli(['env', 'logs', 'dev', '-n', '5', '-f'], {
      timeoutMs: 90_000,
      onStdout: (soFar) => {
        started = true;
        return soFar.includes(marker);
      },
    });
    await waitUntil('logs -f printing', async () => started, 30_000);
    const printed = await cli(['ssh', 'dev', ...SSH_OPTS(), '--', `echo ${marker} > /proc/1/fd/1`]);
    expect(printed.code, printed.stderr).toBe(0);
    expect((await follow).stdout).toContain(marker);
  }, 120_000);

  it('4. stop: `remotegpu ssh` refuses with the status (exit 5); start: it logs in again', async () => {
    expect((await cli(['env', 'stop', 'dev', '--wait'])).code).toBe(0);
    const refused = await cli(['ssh', 'dev', '--', 'true']);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toBe('remotegpu: env dev is stopped: run `remotegpu env start dev`\n');
    expect((await cli(['env', 'start', 'dev', '--wait'])).code).toBe(0);
    const back = await sshWhenUp('dev', ['true']);
    expect(back.code, back.stderr).toBe(0);
    devKeys = (await envOf(devId)).access_info.ssh_host_keys;
  }, 240_000);

  it('5. config-ssh: a plain `ssh -F ~/.ssh/config dev.remotegpu` works strictly; a wrong key in known_hosts fails it (255)', async () => {
    const mine = '# my own\nHost work\n  HostName work.example.com\n  User me\n';
    writeFileSync(sshConfig(), mine, { mode: 0o644 });
    const wrote = await cli(['config-ssh']);
    expect(wrote.code, wrote.stderr).toBe(0);
    expect(wrote.stdout).toBe(`+ Host dev.remotegpu ${devId}.remotegpu\n`);
    const text = readFileSync(sshConfig(), 'utf8');
    expect(text.startsWith(`${mine}\n# ----- BEGIN remotegpu (context test) -----\n`)).toBe(true);
    const plain = (host: string) => plainSsh(['-F', sshConfig(), ...SSH_OPTS(), host, 'echo', 'plain-ok']);
    for (const host of ['dev.remotegpu', `${devId}.remotegpu`]) {
      const ok = await plain(host);
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out).toBe('plain-ok\n');
    }
    // Checking is really on: another key of the same type for the env id is refused.
    const other = path.join(dir, 'other');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const otherBlob = readFileSync(`${other}.pub`, 'utf8').split(' ')[1];
    writeFileSync(knownHosts(), readFileSync(knownHosts(), 'utf8').replace(/^(\S+ ssh-ed25519) \S+$/m, `$1 ${otherBlob}`));
    const tampered = await plain('dev.remotegpu');
    expect(tampered.code).toBe(255);
    expect(tampered.err).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    // `remotegpu ssh` writes the API's keys back before it runs ssh.
    expect((await cli(['ssh', 'dev', ...SSH_OPTS(), '--', 'true'])).code).toBe(0);
    expect((await plain('dev.remotegpu')).code).toBe(0);
    const again = await cli(['config-ssh']);
    expect([again.code, again.stdout]).toEqual([0, '']);
    expect(readFileSync(sshConfig(), 'utf8')).toBe(text);
  }, 180_000);

  it('6. rm; a new environment gets the same port; `remotegpu ssh` and config-ssh still check strictly', async () => {
    expect((await cli(['env', 'rm', 'dev', '--yes', '--wait'])).code).toBe(0);
    const train = await createEnv('train');
    expect(train.env_id).not.toBe(devId);
    expect(train.ssh_port).toBe(SSH_PORT);
    const ok = await sshWhenUp('train', ['echo', 'train-ok']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('train-ok\n');
    const trainKeys = (await envOf('train')).access_info.ssh_host_keys as { type: string; key: string }[];
    expect(trainKeys.map((k) => k.key)).not.toEqual(devKeys.map((k) => k.key));
    // What users had before: an entry by address, from the first environment, breaks on the second.
    const byAddress = path.join(dir, 'known_hosts_by_address');
    writeFileSync(byAddress, devKeys.map((k) => `[127.0.0.1]:${SSH_PORT} ${k.type} ${k.key}\n`).join(''));
    const old = await plainSsh([...SSH_OPTS(), '-o', `UserKnownHostsFile=${byAddress}`, '-o', 'StrictHostKeyChecking=yes', '-p', String(SSH_PORT), 'root@127.0.0.1', 'true']);
    expect(old.code).toBe(255);
    expect(old.err).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED/);
    // config-ssh drops the deleted environment and adds the new one, which plain ssh reaches;
    // --dry-run says so and writes nothing.
    const before = readFileSync(sshConfig(), 'utf8');
    const dry = await cli(['config-ssh', '--dry-run']);
    expect(dry.stdout).toContain(`+ Host train.remotegpu ${train.env_id}.remotegpu\n- Host dev.remotegpu ${devId}.remotegpu\n`);
    expect(dry.stdout).toContain(`  HostKeyAlias ${train.env_id}\n`);
    expect(readFileSync(sshConfig(), 'utf8')).toBe(before);
    const wrote = await cli(['config-ssh']);
    expect(wrote.stdout).toBe(`+ Host train.remotegpu ${train.env_id}.remotegpu\n- Host dev.remotegpu ${devId}.remotegpu\n`);
    expect(readFileSync(sshConfig(), 'utf8')).not.toContain(devId);
    const plain = await plainSsh(['-F', sshConfig(), ...SSH_OPTS(), 'train.remotegpu', 'true']);
    expect(plain.code, plain.err).toBe(0);
  }, 300_000);

  it('7. ssh refuses clearly: an unknown environment (4), no ssh client on PATH (1); ssh-key rm', async () => {
    const unknown = await cli(['ssh', 'nope', '--', 'true']);
    expect([unknown.code, unknown.stderr.trim().split('\n').length]).toEqual([4, 1]);
    const noSsh = await cli(['ssh', 'train', '--', 'true'], { env: { PATH: path.join(dir, 'empty') } });
    expect(noSsh.code).toBe(1);
    expect(noSsh.stderr).toMatch(/^remotegpu: the OpenSSH client `ssh` is not installed/);
    const keys = JSON.parse((await cli(['ssh-key', 'ls', '--json'])).stdout);
    expect((await cli(['ssh-key', 'rm', String(keys[0].id)])).code).toBe(0);
    expect(JSON.parse((await cli(['ssh-key', 'ls', '--json'])).stdout)).toEqual([]);
    expect((await cli(['ssh-key', 'rm', String(keys[0].id)])).code).toBe(4);
  }, 60_000);
});
