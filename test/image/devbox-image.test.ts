import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The devbox test image (scripts/build-test-image.sh) driven end to end: real Docker, the real
// OpenSSH client against the image's sshd, HTTP on the Jupyter port.

const IMAGE = 'remotegpu/devbox:1';
const BUILD_SCRIPT = resolve(import.meta.dirname, '../../scripts/build-test-image.sh');
const DOCKER_SOCKET = '/var/run/docker.sock';
const SSH_READY_WAIT_MS = 10_000;
// Spaces, quotes, backslash, '#', '$' and '%' must all reach SSH sessions unchanged.
const TRICKY_VALUE = `a b "c" \\d #e $f 'g' %h`;

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program without a shell; resolves with its exit code and output, never rejects. */
function run(file: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((done) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      done({ code, stdout: String(stdout), stderr: String(stderr) + (error && code === -1 ? String(error) : '') });
    });
  });
}

/** Runs a program and returns its stdout; throws with its output when it fails. */
async function ok(file: string, args: readonly string[], timeoutMs?: number): Promise<string> {
  const result = await run(file, args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(`${file} ${args.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

function skipReason(): string {
  if (!existsSync(DOCKER_SOCKET)) {
    return `devbox image tests skipped: no Docker engine at ${DOCKER_SOCKET} (start Docker to run them; CI provides it)`;
  }
  return '';
}

const reason = skipReason();
if (reason) console.warn(reason);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(reason !== '')('devbox test image (scripts/build-test-image.sh)', () => {
  const name = `remotegpu-devbox-test-${process.pid}-${randomBytes(3).toString('hex')}`;
  let dir = '';
  let goodKey = '';
  let wrongKey = '';
  let imageId = '';

  /** The host port Docker published for the container's PORT/tcp on 127.0.0.1. */
  async function hostPort(port: number): Promise<number> {
    const out = await ok('docker', ['port', name, `${port}/tcp`]);
    const match = /127\.0\.0\.1:(\d+)/.exec(out);
    if (!match) throw new Error(`no 127.0.0.1 mapping for ${port}/tcp: ${out}`);
    return Number(match[1]);
  }

  function ssh(key: string, port: number, command: string): Promise<RunResult> {
    return run('ssh', [
      '-F', '/dev/null',
      '-i', key,
      '-o', 'IdentitiesOnly=yes',
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'ConnectTimeout=5',
      '-o', 'LogLevel=ERROR',
      '-p', String(port),
      'root@127.0.0.1',
      command,
    ]);
  }

  /** Retries `attempt` until `done` or ~10 s pass: the published port accepts before sshd listens. */
  async function retry(
    attempt: () => Promise<RunResult>,
    done: (result: RunResult) => boolean = (result) => result.code === 0,
  ): Promise<RunResult> {
    const deadline = Date.now() + SSH_READY_WAIT_MS;
    for (;;) {
      const result = await attempt();
      if (done(result) || Date.now() > deadline) return result;
      await sleep(250);
    }
  }

  async function hostKeyFile(): Promise<string> {
    return (await ok('docker', ['exec', name, 'cat', '/etc/ssh/ssh_host_ed25519_key.pub'])).trim();
  }

  beforeAll(async () => {
    const build = await run('bash', [BUILD_SCRIPT], 300_000);
    if (build.code !== 0) throw new Error(`build-test-image.sh failed (${build.code})\n${build.stdout}\n${build.stderr}`);
    imageId = (await ok('docker', ['image', 'inspect', '-f', '{{.Id}}', IMAGE])).trim();

    dir = mkdtempSync(join(tmpdir(), 'remotegpu-devbox-test-'));
    goodKey = join(dir, 'good');
    wrongKey = join(dir, 'wrong');
    await ok('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'good', '-f', goodKey]);
    await ok('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'wrong', '-f', wrongKey]);
    const authorizedKeys = join(dir, 'authorized_keys');
    copyFileSync(`${goodKey}.pub`, authorizedKeys);
    chmodSync(authorizedKeys, 0o644);
    if (process.getuid?.() !== 0) {
      // sshd (StrictModes) accepts the bind-mounted file only when root owns it, as the platform's
      // agent provides it. A non-root test runner lets a throwaway container chown it.
      await ok('docker', ['run', '--rm', '-v', `${dir}:/keys`, IMAGE, 'chown', '0:0', '/keys/authorized_keys']);
    }

    await ok('docker', [
      'run', '-d', '--name', name,
      '-p', '127.0.0.1::22',
      '-p', '127.0.0.1::8888',
      '-v', `${authorizedKeys}:/root/.ssh/authorized_keys:ro`,
      '-e', 'FOO=bar',
      '-e', `TRICKY=${TRICKY_VALUE}`,
      IMAGE,
    ]);
  }, 360_000);

  afterAll(async () => {
    await run('docker', ['rm', '-f', name]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is labelled with a content hash, and a second build imports nothing', async () => {
    const label = await ok('docker', ['image', 'inspect', '-f', '{{index .Config.Labels "remotegpu.devbox.content-hash"}}', IMAGE]);
    expect(label.trim()).toMatch(/^[0-9a-f]{64}$/);
    const again = await ok('bash', [BUILD_SCRIPT], 300_000);
    expect(again).toContain('not importing');
    expect((await ok('docker', ['image', 'inspect', '-f', '{{.Id}}', IMAGE])).trim()).toBe(imageId);
    expect((await ok('docker', ['image', 'inspect', '-f', '{{.Id}}', 'remotegpu/devbox:latest'])).trim()).toBe(imageId);
  }, 300_000);

  it('never retags an image committed from one of its containers (it carries the same hash label)', async () => {
    const committed = `remotegpu-test-commit/${name}:1`;
    await ok('docker', ['commit', name, committed]);
    try {
      await ok('bash', [BUILD_SCRIPT], 300_000);
      expect((await ok('docker', ['image', 'inspect', '-f', '{{.Id}}', IMAGE])).trim()).toBe(imageId);
    } finally {
      await run('docker', ['rmi', committed]);
    }
  }, 300_000);

  it('lets root in with the authorized key and passes the container env to a plain command', async () => {
    const port = await hostPort(22);
    const result = await retry(() =>
      ssh(goodKey, port, 'echo $FOO; id -u; printf "%s\\n" "$TRICKY"; test -d /root/workspace && echo workspace'),
    );
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n')).toEqual(['bar', '0', TRICKY_VALUE, 'workspace', '']);
  });

  it('refuses a key that is not authorized', async () => {
    const port = await hostPort(22);
    // Make sure sshd is up, so the refusal is about the key and not a closed port.
    expect((await retry(() => ssh(goodKey, port, 'true'))).code).toBe(0);
    const result = await ssh(wrongKey, port, 'echo in');
    expect(result.code).toBe(255);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('Permission denied (publickey)');
  });

  it('answers HTTP 200 on the Jupyter port', async () => {
    const port = await hostPort(8888);
    let response: Response | undefined;
    const deadline = Date.now() + SSH_READY_WAIT_MS;
    while (!response) {
      try {
        response = await fetch(`http://127.0.0.1:${port}/`);
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(250);
      }
    }
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('Jupyter stand-in');
  });

  it('keeps its SSH host key across stop and start', async () => {
    const before = await hostKeyFile();
    expect(before).toMatch(/^ssh-ed25519 AAAA/);

    const stopStart = Date.now();
    await ok('docker', ['stop', name]);
    // Observed only (tests assert no timings): sshd is PID 1 and exits on SIGTERM at once.
    console.log(`docker stop took ${Date.now() - stopStart} ms`);
    await ok('docker', ['start', name]);

    expect(await hostKeyFile()).toBe(before);
    // The key sshd actually serves after the restart is the same one.
    const port = await hostPort(22);
    const scan = await retry(
      () => run('ssh-keyscan', ['-t', 'ed25519', '-p', String(port), '127.0.0.1']),
      (result) => result.stdout.includes('ssh-ed25519'),
    );
    const served = scan.stdout.split('\n').find((line) => line.includes('ssh-ed25519'));
    expect(served?.split(' ').slice(1, 3)).toEqual(before.split(' ').slice(0, 2));
    expect((await retry(() => ssh(goodKey, port, 'echo $FOO'))).stdout).toBe('bar\n');
    const logs = await ok('docker', ['logs', name]);
    expect(logs).toContain('reusing the SSH host keys of this container');
  });
});
