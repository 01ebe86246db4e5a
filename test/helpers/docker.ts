import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile, copyFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';

/** The tiny local test image: busybox-static, its applets, and `/init.sh` as the command. */
export const BUSYBOX_IMAGE = 'remotegpu/busybox-test:1';

export const DOCKER_SKIP_MESSAGE =
  'Docker tests skipped: no Docker engine answered on /var/run/docker.sock (or DOCKER_HOST). ' +
  'Start one (apt-get install -y docker.io && dockerd &) to run them; CI does.';

const BUSYBOX = '/bin/busybox';

/**
 * The image's command. With `TEST_CMD` in the environment it runs that shell snippet (tests use it
 * for OOM and log scenarios, since environment specs carry no command); otherwise it prints a
 * line and idles, exiting at once on SIGTERM so that stops are quick.
 */
const INIT_SCRIPT = `#!/bin/sh
if [ -n "$TEST_CMD" ]; then eval "$TEST_CMD"; exit $?; fi
trap 'exit 0' TERM INT
echo "busybox-test ready"
while :; do sleep 1 & wait $!; done
`;

/** A Docker client using dockerode's defaults (DOCKER_HOST or /var/run/docker.sock). */
export function testDocker(): Docker {
  return new Docker();
}

/**
 * True when a Docker engine answers a ping. False otherwise, unless REMOTEGPU_REQUIRE_DOCKER=1
 * (CI), where a missing engine is an error rather than a reason to skip.
 */
export async function dockerAvailable(): Promise<boolean> {
  let ok = false;
  if (process.env.DOCKER_HOST || existsSync('/var/run/docker.sock')) {
    ok = await testDocker()
      .ping()
      .then(
        () => true,
        () => false,
      );
  }
  if (!ok && process.env.REMOTEGPU_REQUIRE_DOCKER === '1') {
    throw new Error(`REMOTEGPU_REQUIRE_DOCKER=1 but no Docker engine answered. ${DOCKER_SKIP_MESSAGE}`);
  }
  return ok;
}

async function imageExists(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds `remotegpu/busybox-test:1` with `docker import` from /bin/busybox when it is missing.
 * Idempotent, and safe when several test files (forked workers) call it at once: a lock directory
 * in the temp dir serialises the build, and the image is checked again after taking it.
 */
export async function ensureBusyboxImage(docker: Docker = testDocker()): Promise<string> {
  if (await imageExists(docker, BUSYBOX_IMAGE)) return BUSYBOX_IMAGE;
  const lock = join(tmpdir(), 'remotegpu-busybox-test-image.lock');
  await acquireLock(lock);
  try {
    if (!(await imageExists(docker, BUSYBOX_IMAGE))) await buildImage(docker);
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
  return BUSYBOX_IMAGE;
}

async function acquireLock(lock: string): Promise<void> {
  const staleMs = 120_000;
  for (;;) {
    try {
      await mkdir(lock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A crashed builder leaves its lock behind; an old lock is taken over.
      const info = await stat(lock).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > staleMs) await rm(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function buildImage(docker: Docker): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'remotegpu-busybox-rootfs-'));
  try {
    for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev']) {
      await mkdir(join(root, dir), { recursive: true });
    }
    await chmod(join(root, 'tmp'), 0o1777);
    await chmod(join(root, 'root'), 0o700);
    await copyFile(BUSYBOX, join(root, 'bin/busybox'));
    await chmod(join(root, 'bin/busybox'), 0o755);
    const applets = (await run(BUSYBOX, ['--list'])).split('\n').filter((a) => a && a !== 'busybox');
    for (const applet of applets) await symlink('busybox', join(root, 'bin', applet));
    await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
    await writeFile(join(root, 'init.sh'), INIT_SCRIPT, { mode: 0o755 });

    const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const progress = await docker.importImage(tar.stdout, {
      repo: 'remotegpu/busybox-test',
      tag: '1',
      changes: ['CMD ["/init.sh"]', 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin'],
    } as object);
    const output = await readAll(progress);
    if (/"error"/.test(output)) throw new Error(`docker import failed: ${output}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  if (!(await imageExists(docker, BUSYBOX_IMAGE))) throw new Error(`docker import did not produce ${BUSYBOX_IMAGE}`);
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    stream.on('data', (c: Buffer) => (out += c.toString()));
    stream.on('end', () => resolve(out));
    stream.on('error', reject);
  });
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

/** A unique lowercase id for test objects, e.g. "t-3fa9c1d2". */
/**
 * A Docker label namespace (remotegpu.managed value) of its own for one test file: what the file
 * creates is never taken for `npm start`'s (label `true`) or another test file's, so it passes
 * while the platform runs on the same engine and other files run in parallel.
 */
export function testNamespace(file: string): string {
  return `t-${file}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export function uniqueId(prefix = 't'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Runs `cmd` in a running container (no TTY) and returns its exit code and output. */
export async function dockerExec(
  docker: Docker,
  container: string,
  cmd: string[],
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const exec = await docker.getContainer(container).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  let stdout = '';
  let stderr = '';
  const out = new PassThrough();
  const err = new PassThrough();
  out.on('data', (c: Buffer) => (stdout += c.toString()));
  err.on('data', (c: Buffer) => (stderr += c.toString()));
  docker.modem.demuxStream(stream, out, err);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
    stream.on('error', reject);
  });
  const info = await exec.inspect();
  return { exitCode: info.ExitCode ?? -1, stdout, stderr };
}

/** Removes test containers, volumes and images by name, ignoring those already gone. */
export async function removeQuietly(
  docker: Docker,
  what: { containers?: string[]; volumes?: string[]; images?: string[] },
): Promise<void> {
  for (const c of what.containers ?? []) await docker.getContainer(c).remove({ force: true, v: true }).catch(() => undefined);
  for (const v of what.volumes ?? []) await docker.getVolume(v).remove().catch(() => undefined);
  for (const i of what.images ?? []) await docker.getImage(i).remove({ force: true }).catch(() => undefined);
}

/**
 * Fake NVIDIA device nodes for 'devices' mode: `nvidia0..N-1` (char 195:i), `nvidiactl`
 * (195:255) and, when asked, `nvidia-uvm` (a char device with another major), made with mknod in
 * a fresh temp dir (needs root). Returns the dir; remove it with rm -r.
 */
export async function createFakeNvidiaNodes(count: number, options: { uvm?: boolean } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'remotegpu-fake-dev-'));
  for (let i = 0; i < count; i++) await run('mknod', [join(dir, `nvidia${i}`), 'c', '195', String(i)]);
  await run('mknod', [join(dir, 'nvidiactl'), 'c', '195', '255']);
  if (options.uvm) await run('mknod', [join(dir, 'nvidia-uvm'), 'c', '511', '0']);
  return dir;
}

/** True when this process may create device nodes (root). */
export function canMknod(): boolean {
  return process.getuid?.() === 0;
}

/** UUIDs of the fake GPUs: index i ↔ fakeGpuUuid(i), as the host map the agent discovers. */
export function fakeGpuUuid(i: number): string {
  return `GPU-fa4e0000-0000-4000-8000-${String(i).padStart(12, '0')}`;
}

/** The uuid → index map of `count` fake GPUs. */
export function fakeGpuIndexes(count: number): Map<string, number> {
  return new Map(Array.from({ length: count }, (_, i) => [fakeGpuUuid(i), i] as const));
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A run directory for a test's DockerRuntime (its volume and dataset view mount points) on
 * /dev/shm, a tmpfs, so the runtime mounts no tmpfs of its own; unique per call.
 */
export function testRunDir(): string {
  return join('/dev/shm', `remotegpu-test-${randomBytes(6).toString('hex')}`);
}

/** Unmounts whatever is still mounted under `runDir` (deepest first; lazily) and deletes it. */
export async function releaseRunDir(runDir: string): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const points = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => Boolean(p) && p!.startsWith(`${runDir}/`))
    .sort()
    .reverse();
  for (const point of points) {
    await new Promise<void>((resolve) => spawn('umount', ['-l', point], { stdio: 'ignore' }).on('close', () => resolve()).on('error', () => resolve()));
  }
  await rm(runDir, { recursive: true, force: true });
}

/**
 * Removes what a test agent of namespace `managedBy` may have left on the engine when its
 * environments were not deleted through it: containers, then their networks (by label).
 */
export async function removeNamespace(managedBy: string): Promise<void> {
  const docker = testDocker();
  const label = { label: [`remotegpu.managed=${managedBy}`] };
  for (const c of await docker.listContainers({ all: true, filters: label }).catch(() => [])) {
    await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  }
  for (const n of await docker.listNetworks({ filters: label }).catch(() => [])) {
    await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
}
