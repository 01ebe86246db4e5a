import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, statfsSync, truncateSync, writeFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetViewPath, volumeDataPath, volumeFilePath, volumeMountPath } from '../../../agent/runtime/docker-names.js';
import { RuntimeError } from '../../../agent/runtime/errors.js';
import { HostMounts } from '../../../agent/runtime/host-mounts.js';
import type { DatasetMountSpec } from '../../../agent/runtime/types.js';

// HostMounts (agent/runtime/host-mounts.ts) against the real kernel: loop-mounted ext4 volumes and
// bind-mounted dataset views, made as root. The state directory is under os.tmpdir() (a real disk,
// as the agent's data directory is), the run directory under /dev/shm (a tmpfs, so prepare() mounts
// nothing). Everything this file mounts is unmounted again and its loop devices are released; the
// last test checks that.

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'HostMounts tests skipped: they mount loop devices and bind mounts, which needs root.';
  try {
    execFileSync('mkfs.ext4', ['-V'], { stdio: 'ignore' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'HostMounts tests skipped: mkfs.ext4 is not installed (apt-get install e2fsprogs).';
  }
  if (!existsSync('/dev/loop-control')) return 'HostMounts tests skipped: no /dev/loop-control (loop devices are not available here).';
  if (!existsSync('/dev/shm') || statfsSync('/dev/shm').type !== 0x01021994) return 'HostMounts tests skipped: /dev/shm is not a tmpfs.';
  return undefined;
}

const SKIP = skipReason();
if (SKIP) console.warn(SKIP);

const RUN = randomBytes(4).toString('hex');
/** Every env id of this file contains RUN, so nothing here touches another file's mounts. */
const envId = (tag: string) => `hm-${RUN}-${tag}`;

interface MountEntry {
  readonly point: string;
  /** The per-mount options (ro, nosuid, nodev...). */
  readonly options: readonly string[];
  readonly fsType: string;
  readonly source: string;
}

/** The mounts of this mount namespace, from /proc/self/mountinfo. */
function mountTable(): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      const dash = f.indexOf('-');
      const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      return { point: unescape(f[4]!), options: f[5]!.split(','), fsType: f[dash + 1]!, source: f[dash + 2]! };
    });
}

function mountsAt(point: string): MountEntry[] {
  return mountTable().filter((m) => m.point === point);
}

function mountsUnder(dir: string): MountEntry[] {
  return mountTable().filter((m) => m.point === dir || m.point.startsWith(`${dir}/`));
}

/** Lazily unmounts everything at or under `dir`, deepest first, until nothing is left. */
function unmountAllUnder(dir: string): void {
  for (let round = 0; round < 20; round++) {
    const points = [...new Set(mountsUnder(dir).map((m) => m.point))].sort((a, b) => b.length - a.length);
    if (points.length === 0) return;
    for (const point of points) {
      try {
        execFileSync('umount', ['-l', point], { stdio: 'ignore' });
      } catch {
        // Gone already (a parent's lazy unmount took it along).
      }
    }
  }
}

function loopDevices(): string {
  return execFileSync('losetup', ['-a'], { encoding: 'utf8' });
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/** Hashes of every file directly in `dir`. */
async function hashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) out[name] = await sha256(join(dir, name));
  return out;
}

/** Writes 1 MiB files of random data into `dir` until the file system is full; returns the hashes of the complete files. */
async function fillUntilFull(dir: string, prefix: string, limit = 4096): Promise<{ files: Record<string, string>; error: NodeJS.ErrnoException | undefined }> {
  const files: Record<string, string> = {};
  for (let i = 0; i < limit; i++) {
    const data = randomBytes(MiB);
    const name = `${prefix}-${String(i).padStart(4, '0')}`;
    try {
      const handle = await open(join(dir, name), 'w');
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      files[name] = createHash('sha256').update(data).digest('hex');
    } catch (err) {
      return { files, error: err as NodeJS.ErrnoException };
    }
  }
  return { files, error: undefined };
}

function errorOf(fn: () => unknown): NodeJS.ErrnoException | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

describe.skipIf(Boolean(SKIP))('HostMounts (real loop devices and bind mounts)', () => {
  let base = '';
  let runBase = '';
  let datasets = '';
  /** Every HostMounts of this file and the env ids it made, for the final cleanup. */
  const made: { mounts: HostMounts; envIds: Set<string> }[] = [];

  /** A HostMounts with its own state and run directories (so restore() sees only this test's environments). */
  function hostMounts(tag: string, diskReserve = 0): { mounts: HostMounts; stateDir: string; runDir: string; track: (id: string) => string } {
    const stateDir = join(base, tag, 'state');
    const runDir = join(runBase, tag);
    const mounts = new HostMounts({ stateDir, runDir, diskReserve, policy: { datasetRoots: [base], dataDir: stateDir, runDir } });
    const entry = { mounts, envIds: new Set<string>() };
    made.push(entry);
    return {
      mounts,
      stateDir,
      runDir,
      track: (id) => {
        entry.envIds.add(id);
        return id;
      },
    };
  }

  function dataset(name: string, files: Record<string, string> = { 'README.txt': `dataset ${name}\n` }): string {
    const dir = join(datasets, name);
    mkdirSync(dir, { recursive: true });
    for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content);
    return dir;
  }

  const mountOf = (datasetId: string, hostPath: string, readonly: boolean, containerPath = `/data/${datasetId}`): DatasetMountSpec => ({
    datasetId,
    hostPath,
    containerPath,
    readonly,
  });

  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), `rgpu-host-mounts-${RUN}-`));
    runBase = `/dev/shm/rgpu-host-mounts-${RUN}`;
    datasets = join(base, 'datasets');
    mkdirSync(datasets, { recursive: true });
  });

  afterAll(() => {
    // The safety net: whatever a failed test left mounted.
    if (runBase) unmountAllUnder(runBase);
    if (base) unmountAllUnder(base);
    if (runBase) rmSync(runBase, { recursive: true, force: true });
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('prepare() keeps a run directory that is on a tmpfs as it is', async () => {
    const { mounts, runDir } = hostMounts('prepare');
    await mounts.prepare();
    await mounts.prepare();
    expect(statSync(runDir).isDirectory()).toBe(true);
    expect(statSync(runDir).mode & 0o777).toBe(0o700);
    expect(mountsAt(runDir)).toEqual([]);
  });

  describe('volumes', () => {
    it('creates a sparse ext4 file of exactly storageBytes, loop-mounted nosuid,nodev, and full means ENOSPC', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('volume');
      const id = track(envId('vol'));
      const size = 32 * MiB;
      const result = await mounts.ensureVolume(id, size);
      expect(result).toEqual({ source: volumeDataPath(runDir, id), created: true });
      expect(await mounts.hasVolume(id)).toBe(true);

      const file = statSync(volumeFilePath(stateDir, id));
      expect(file.size).toBe(size);
      expect(file.mode & 0o777).toBe(0o600);
      // Sparse: mkfs writes only its metadata.
      expect(file.blocks * 512).toBeLessThan(size / 8);

      const [volume, ...more] = mountsAt(volumeMountPath(runDir, id));
      expect(more).toEqual([]);
      expect(volume).toMatchObject({ fsType: 'ext4', source: expect.stringMatching(/^\/dev\/loop\d+$/) });
      expect(volume!.options).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev', 'noatime']));
      expect(loopDevices()).toContain(volumeFilePath(stateDir, id));
      expect(statSync(result.source).isDirectory()).toBe(true);

      // What df shows: never more than asked; at 32 MiB ext4's journal and inode tables take ~21 %.
      const fs = statfsSync(volumeMountPath(runDir, id));
      expect(fs.blocks * fs.bsize).toBeLessThanOrEqual(size);
      expect(fs.blocks * fs.bsize).toBeGreaterThan(0.7 * size);
      expect((await mounts.usage(id))?.sizeBytes).toBe(fs.blocks * fs.bsize);

      // nodev: a device node made on the volume cannot be opened through it.
      execFileSync('mknod', [join(result.source, 'null'), 'c', '1', '3']);
      expect(errorOf(() => readFileSync(join(result.source, 'null')))?.code).toBe('EACCES');
      rmSync(join(result.source, 'null'));

      const { files, error } = await fillUntilFull(result.source, 'fill');
      expect(error?.code).toBe('ENOSPC');
      const written = Object.keys(files).length;
      expect(written).toBeGreaterThan(20);
      expect(written).toBeLessThanOrEqual(32);
      // The file on the data disk never grows past its size, however full the volume is.
      expect(statSync(volumeFilePath(stateDir, id)).size).toBe(size);
      const complete = await hashes(result.source);
      for (const [name, hash] of Object.entries(files)) expect(complete[name], name).toBe(hash);
    });

    it('ensureVolume again: created=false and the same data; a smaller size shrinks nothing', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('again');
      const id = track(envId('again'));
      const point = volumeMountPath(runDir, id);
      const { source } = await mounts.ensureVolume(id, 32 * MiB);
      const before = await fillUntilFull(source, 'first', 8);
      const fs = statfsSync(point);

      expect(await mounts.ensureVolume(id, 32 * MiB)).toEqual({ source, created: false });
      expect(mountsAt(point)).toHaveLength(1);
      expect(await hashes(source)).toEqual(before.files);

      expect(await mounts.ensureVolume(id, 16 * MiB)).toEqual({ source, created: false });
      expect(statSync(volumeFilePath(stateDir, id)).size).toBe(32 * MiB);
      expect(statfsSync(point).blocks).toBe(fs.blocks);
      expect(mountsAt(point)).toHaveLength(1);
      expect(await hashes(source)).toEqual(before.files);
    });

    it('a larger size grows the file and the file system (offline: no container uses it), data intact', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('grow');
      const id = track(envId('grow'));
      const point = volumeMountPath(runDir, id);
      const { source } = await mounts.ensureVolume(id, 32 * MiB);
      const before = await fillUntilFull(source, 'first');
      expect(before.error?.code).toBe('ENOSPC');
      const small = statfsSync(point);

      const grown = await mounts.ensureVolume(id, 256 * MiB);
      expect(grown).toEqual({ source, created: false });
      expect(statSync(volumeFilePath(stateDir, id)).size).toBe(256 * MiB);
      const large = statfsSync(point);
      // 32 MiB made with 1 KiB blocks and grown to 256 MiB: ~234 MiB (checked with an offline resize2fs).
      expect(large.blocks * large.bsize).toBeGreaterThan(small.blocks * small.bsize + 200 * MiB);
      expect(large.blocks * large.bsize).toBeLessThanOrEqual(256 * MiB);
      expect(mountsAt(point)).toHaveLength(1);
      expect(await hashes(source)).toMatchObject(before.files);
      // The room is usable at once.
      const more = await fillUntilFull(source, 'second', 64);
      expect(more.error).toBeUndefined();

      expect(await mounts.ensureVolume(id, 64 * MiB)).toEqual({ source, created: false });
      expect(statSync(volumeFilePath(stateDir, id)).size).toBe(256 * MiB);
      expect(statfsSync(point).blocks).toBe(large.blocks);
      expect(await hashes(source)).toMatchObject({ ...before.files, ...more.files });
    });

    it('a grow cut short (file already larger, file system not) is finished by the next ensureVolume', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('grow-short');
      const id = track(envId('short'));
      const { source } = await mounts.ensureVolume(id, 32 * MiB);
      const small = statfsSync(volumeMountPath(runDir, id));
      // As if the agent died between growing the file (after writing its marker) and resizing its file system.
      writeFileSync(`${volumeFilePath(stateDir, id)}.growing`, String(64 * MiB));
      truncateSync(volumeFilePath(stateDir, id), 64 * MiB);
      expect(await mounts.ensureVolume(id, 64 * MiB)).toEqual({ source, created: false });
      const large = statfsSync(volumeMountPath(runDir, id));
      expect(large.blocks * large.bsize).toBeGreaterThan(small.blocks * small.bsize + 24 * MiB);
      expect(existsSync(`${volumeFilePath(stateDir, id)}.growing`)).toBe(false);
    });

    it('a storage size below the minimum makes a 16 MiB volume', async () => {
      const { mounts, stateDir, track } = hostMounts('minimum');
      const id = track(envId('min'));
      await mounts.ensureVolume(id, 0);
      expect(statSync(volumeFilePath(stateDir, id)).size).toBe(16 * MiB);
    });

    it('usage() reports the bytes used, growing with what is written; undefined without a mounted volume', async () => {
      const { mounts, track } = hostMounts('usage');
      const id = track(envId('use'));
      expect(await mounts.usage(id)).toBeUndefined();
      const { source } = await mounts.ensureVolume(id, 64 * MiB);
      const before = (await mounts.usage(id))!;
      expect(before.sizeBytes).toBeGreaterThan(50 * MiB);
      expect(before.usedBytes).toBeLessThan(8 * MiB);
      const handle = await open(join(source, 'eight'), 'w');
      await handle.writeFile(randomBytes(8 * MiB));
      await handle.sync();
      await handle.close();
      const after = (await mounts.usage(id))!;
      expect(after.sizeBytes).toBe(before.sizeBytes);
      expect(after.usedBytes - before.usedBytes).toBeGreaterThanOrEqual(8 * MiB);
      expect(after.usedBytes - before.usedBytes).toBeLessThan(9 * MiB);
    });

    it('refuses a volume that would take the data disk below its reserve (disk_full), leaving nothing behind', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('reserve', 0.999);
      const id = track(envId('full'));
      const err = await mounts.ensureVolume(id, 32 * MiB).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntimeError);
      expect(err).toMatchObject({ code: 'disk_full', message: expect.stringContaining('REMOTEGPU_DISK_RESERVE') });
      expect((err as Error).message).toContain(`environment ${id}`);
      expect(readdirSync(join(stateDir, 'volumes'))).toEqual([]);
      expect(await mounts.hasVolume(id)).toBe(false);
      expect(existsSync(volumeMountPath(runDir, id))).toBe(false);
      expect(mountsUnder(runDir)).toEqual([]);
    });

    it('refuses to grow a volume past the reserve, leaving it as it was', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('reserve-grow');
      const id = track(envId('nogrow'));
      const { source } = await mounts.ensureVolume(id, 32 * MiB);
      writeFileSync(join(source, 'keep'), 'kept');
      // The same directories, under a reserve that leaves no room.
      const strict = new HostMounts({ stateDir, runDir, diskReserve: 0.999, policy: { datasetRoots: [base], dataDir: stateDir, runDir } });
      await expect(strict.ensureVolume(id, 64 * MiB)).rejects.toMatchObject({ code: 'disk_full' });
      expect(statSync(volumeFilePath(stateDir, id)).size).toBe(32 * MiB);
      expect(readFileSync(join(source, 'keep'), 'utf8')).toBe('kept');
      expect(mountsAt(volumeMountPath(runDir, id))).toHaveLength(1);
    });

    it('remove() unmounts everything and deletes the file: true, then false', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('remove');
      const id = track(envId('rm'));
      const rw = dataset('remove-rw', { 'precious.bin': 'do not delete' });
      const ro = dataset('remove-ro', { 'precious.bin': 'do not delete either' });
      await mounts.ensureVolume(id, 32 * MiB);
      await mounts.ensureViews(id, [mountOf('rw', rw, false), mountOf('ro', ro, true)]);
      expect(mountsUnder(join(runDir, id))).toHaveLength(3);

      expect(await mounts.remove(id)).toBe(true);
      expect(mountsUnder(join(runDir, id))).toEqual([]);
      expect(existsSync(join(runDir, id))).toBe(false);
      expect(existsSync(volumeFilePath(stateDir, id))).toBe(false);
      expect(existsSync(join(stateDir, 'envs', id, 'datasets.json'))).toBe(false);
      expect(await mounts.hasVolume(id)).toBe(false);
      expect(loopDevices()).not.toContain(volumeFilePath(stateDir, id));
      // The datasets themselves are untouched.
      expect(readFileSync(join(rw, 'precious.bin'), 'utf8')).toBe('do not delete');
      expect(readFileSync(join(ro, 'precious.bin'), 'utf8')).toBe('do not delete either');

      expect(await mounts.remove(id)).toBe(false);
      expect(await mounts.remove(envId('never-made'))).toBe(false);
    });

    it('ensureVolume for a new 10 GiB volume (timing: median of 5, logged)', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('timing');
      mkdirSync(stateDir, { recursive: true });
      const free = statfsSync(stateDir).bavail * statfsSync(stateDir).bsize;
      // A CI runner's disk may be small; the volume is sparse, but the reserve check counts its full size.
      const size = free > 12 * GiB ? 10 * GiB : GiB;
      const created: number[] = [];
      const removed: number[] = [];
      for (let i = 0; i < 5; i++) {
        const id = track(envId(`time${i}`));
        let t = performance.now();
        const { source } = await mounts.ensureVolume(id, size);
        created.push(performance.now() - t);
        expect(statSync(volumeFilePath(stateDir, id)).size).toBe(size);
        const fs = statfsSync(volumeMountPath(runDir, id));
        // At 10 GiB ext4's overhead is ~2.5 % (1 GiB: ~5 %).
        expect(fs.blocks * fs.bsize).toBeGreaterThan((size === GiB ? 0.93 : 0.96) * size);
        expect(statSync(source).isDirectory()).toBe(true);
        t = performance.now();
        expect(await mounts.remove(id)).toBe(true);
        removed.push(performance.now() - t);
      }
      console.info(
        `HostMounts: ensureVolume of a new ${size / GiB} GiB volume: median ${median(created).toFixed(0)} ms (${created.map((ms) => ms.toFixed(0)).join(', ')}); remove: median ${median(removed).toFixed(0)} ms`,
      );
      expect(median(created)).toBeLessThan(30_000);
    });
  });

  describe('dataset views', () => {
    it('restore() refuses a view whose dataset path was swapped for a symlink since it was mounted (to /etc or inside the roots)', async () => {
      const { mounts, runDir, track } = hostMounts('view-swap');
      const id = track(envId('swap'));
      const src = dataset('swapped');
      dataset('private', { 'secret.txt': 'another team\n' });
      await mounts.ensureViews(id, [mountOf('swapped', src, true), mountOf('other', dataset('kept'), true)]);
      const view = datasetViewPath(runDir, id, 'swapped-ro');
      // A reboot empties the run directory; meanwhile a tenant with write access to the parent
      // replaces the dataset's directory by a symlink.
      execFileSync('umount', [view]);
      execFileSync('umount', [datasetViewPath(runDir, id, 'other-ro')]);
      rmSync(src, { recursive: true });
      for (const target of ['/etc', join(datasets, 'private')]) {
        rmSync(src, { recursive: true, force: true });
        execFileSync('ln', ['-s', target, src]);
        expect(await mounts.restore()).toEqual([id]);
        expect(mountsAt(view)).toEqual([]);
        // The untouched dataset's view came back.
        expect(mountsAt(datasetViewPath(runDir, id, 'other-ro'))).toHaveLength(1);
        execFileSync('umount', [datasetViewPath(runDir, id, 'other-ro')]);
      }
    });

    it('ensureViews refuses a dataset whose path is no longer its real path, and one outside the dataset roots', async () => {
      const { mounts, runDir, track } = hostMounts('view-policy');
      const id = track(envId('pol'));
      const real = dataset('real');
      const link = join(datasets, 'link');
      execFileSync('ln', ['-s', real, link]);
      await expect(mounts.ensureViews(id, [mountOf('link', link, true)])).rejects.toMatchObject({ code: 'permission_denied', message: expect.stringContaining('symlink') });
      const outside = mkdtempSync(join(tmpdir(), 'rgpu-outside-'));
      try {
        await expect(mounts.ensureViews(id, [mountOf('out', outside, true)])).rejects.toMatchObject({ code: 'permission_denied', message: expect.stringContaining('REMOTEGPU_DATASET_ROOTS') });
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
      expect(mountsUnder(runDir)).toEqual([]);
    });

    it('a read-only dataset: ro,nosuid,nodev, writing fails with EROFS; the dataset stays writable on the host', async () => {
      const { mounts, runDir, track } = hostMounts('view-ro');
      const id = track(envId('ro'));
      const src = dataset('imagenet');
      await mounts.ensureViews(id, [mountOf('imagenet', src, true)]);
      const view = datasetViewPath(runDir, id, 'imagenet-ro');
      const [entry, ...more] = mountsAt(view);
      expect(more).toEqual([]);
      expect(entry!.options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
      expect(readFileSync(join(view, 'README.txt'), 'utf8')).toBe('dataset imagenet\n');
      expect(errorOf(() => writeFileSync(join(view, 'new'), 'x'))?.code).toBe('EROFS');
      expect(errorOf(() => writeFileSync(join(view, 'README.txt'), 'x'))?.code).toBe('EROFS');
      // Only the view is read-only.
      writeFileSync(join(src, 'added-on-host'), 'y');
      expect(readFileSync(join(view, 'added-on-host'), 'utf8')).toBe('y');
      expect(mountsAt(src)).toEqual([]);
      // Idempotent: a second call stacks nothing.
      await mounts.ensureViews(id, [mountOf('imagenet', src, true)]);
      expect(mountsAt(view)).toHaveLength(1);
    });

    it('a writable dataset: rw,nosuid,nodev; writes reach the dataset, device nodes do not open', async () => {
      const { mounts, runDir, track } = hostMounts('view-rw');
      const id = track(envId('rw'));
      const src = dataset('scratch');
      await mounts.ensureViews(id, [mountOf('scratch', src, false)]);
      const view = datasetViewPath(runDir, id, 'scratch-rw');
      const [entry, ...more] = mountsAt(view);
      expect(more).toEqual([]);
      expect(entry!.options).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));
      writeFileSync(join(view, 'result'), 'from the container');
      expect(readFileSync(join(src, 'result'), 'utf8')).toBe('from the container');
      execFileSync('mknod', [join(view, 'null'), 'c', '1', '3']);
      expect(errorOf(() => readFileSync(join(view, 'null')))?.code).toBe('EACCES');
    });

    it('a submount inside the dataset is not carried into the view (non-recursive bind)', async () => {
      const { mounts, runDir, track } = hostMounts('view-submount');
      const id = track(envId('sub'));
      const src = dataset('with-sub');
      mkdirSync(join(src, 'inner'));
      writeFileSync(join(src, 'inner', 'underneath'), 'the directory itself');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', `rgpu-hm-${RUN}`, join(src, 'inner')]);
      try {
        writeFileSync(join(src, 'inner', 'on-the-submount'), 'rw tmpfs');
        await mounts.ensureViews(id, [mountOf('with-sub', src, true)]);
        const view = datasetViewPath(runDir, id, 'with-sub-ro');
        expect(mountsUnder(view)).toHaveLength(1);
        expect(readdirSync(join(view, 'inner'))).toEqual(['underneath']);
        expect(errorOf(() => writeFileSync(join(view, 'inner', 'x'), 'x'))?.code).toBe('EROFS');
        await mounts.remove(id);
        // Removing the view leaves the host's own submount alone.
        expect(mountsAt(join(src, 'inner'))).toHaveLength(1);
      } finally {
        execFileSync('umount', [join(src, 'inner')]);
      }
    });

    it('several mounts of one dataset share a view; read-only and writable are separate views; pruneViews unmounts the unlisted', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('prune');
      const id = track(envId('prune'));
      const a = dataset('prune-a');
      const b = dataset('prune-b');
      const all = [mountOf('a', a, true, '/data/a'), mountOf('a', a, true, '/data/a-again'), mountOf('a', a, false, '/data/a-rw'), mountOf('b', b, true)];
      await mounts.ensureViews(id, all);
      const views = (name: string) => mountsAt(datasetViewPath(runDir, id, name));
      expect(views('a-ro')).toHaveLength(1);
      expect(views('a-rw')).toHaveLength(1);
      expect(views('b-ro')).toHaveLength(1);
      expect(JSON.parse(readFileSync(join(stateDir, 'envs', id, 'datasets.json'), 'utf8'))).toHaveLength(4);

      // The new spec mounts a read-only only: ensureViews keeps the old views (a container being
      // replaced may still use them) until pruneViews.
      const next = [mountOf('a', a, true)];
      await mounts.ensureViews(id, next);
      expect(views('a-rw')).toHaveLength(1);
      await mounts.pruneViews(id, next);
      expect(views('a-ro')).toHaveLength(1);
      expect(views('a-rw')).toEqual([]);
      expect(views('b-ro')).toEqual([]);
      expect(readdirSync(join(runDir, id, 'datasets'))).toEqual(['a-ro']);
      expect(readdirSync(b)).toEqual(['README.txt']);
      await mounts.pruneViews(id, []);
      expect(mountsUnder(join(runDir, id))).toEqual([]);
      await mounts.pruneViews(envId('no-such-env'), []);
    });

    it('refuses a dataset that is not a directory on this host (invalid_spec)', async () => {
      const { mounts, runDir, track } = hostMounts('view-missing');
      const id = track(envId('missing'));
      const file = join(dataset('a-file-dataset'), 'README.txt');
      await expect(mounts.ensureViews(id, [mountOf('gone', join(datasets, 'gone'), true)])).rejects.toMatchObject({ code: 'invalid_spec', message: expect.stringContaining('is not a directory') });
      await expect(mounts.ensureViews(id, [mountOf('file', file, true)])).rejects.toMatchObject({ code: 'invalid_spec' });
      expect(mountsUnder(runDir)).toEqual([]);
    });

    // On a host whose mounts are shared (systemd makes / shared), a plain `mount --bind` would put the
    // view in the dataset mount's peer group: a mount made under the dataset later (NFS, autofs, an
    // admin's tmpfs) would propagate into the view rw and without nosuid/nodev, and unmounting the
    // view's copy would unmount the host's own mount. Views are made private right after the bind.
    describe('on a shared mount (as systemd makes every mount)', () => {
      async function sharedSetup(tag: string) {
        const { mounts, runDir, track } = hostMounts(`shared-${tag}`);
        const id = track(envId(`sh${tag}`));
        const root = join(base, `shared-${tag}`);
        const src = join(root, 'ds');
        mkdirSync(join(src, 'later'), { recursive: true });
        execFileSync('mount', ['--bind', root, root]);
        execFileSync('mount', ['--make-shared', root]);
        await mounts.ensureViews(id, [mountOf('ds', src, true)]);
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', `rgpu-hm-${RUN}`, join(src, 'later')]);
        writeFileSync(join(src, 'later', 'marker'), 'a later host mount');
        const view = datasetViewPath(runDir, id, 'ds-ro');
        return { mounts, id, root, src, view, cleanup: () => unmountAllUnder(root) };
      }

      it('a host mount made under the dataset after its view does not show through the view', async () => {
        const s = await sharedSetup('a');
        try {
          expect(existsSync(join(s.view, 'later', 'marker'))).toBe(false);
          expect(errorOf(() => writeFileSync(join(s.view, 'later', 'x'), 'x'))?.code).toBe('EROFS');
        } finally {
          await s.mounts.remove(s.id);
          s.cleanup();
        }
      });

      it('remove() leaves a host mount made under the dataset after its view mounted', async () => {
        const s = await sharedSetup('b');
        try {
          await s.mounts.remove(s.id);
          expect(mountsAt(join(s.src, 'later'))).toHaveLength(1);
        } finally {
          await s.mounts.remove(s.id);
          s.cleanup();
        }
      });
    });
  });

  describe('restore after a reboot', () => {
    it('mounts the volume (data intact) and the views again, and only what is missing', async () => {
      const { mounts, stateDir, runDir, track } = hostMounts('restore');
      const id = track(envId('boot'));
      const other = track(envId('boot2'));
      const ro = dataset('restore-ro');
      const rw = dataset('restore-rw');
      const { source } = await mounts.ensureVolume(id, 32 * MiB);
      await mounts.ensureVolume(other, 16 * MiB);
      await mounts.ensureViews(id, [mountOf('ro', ro, true), mountOf('rw', rw, false)]);
      const written = await fillUntilFull(source, 'before-reboot', 8);
      expect(Object.keys(written.files)).toHaveLength(8);
      expect(await mounts.restore()).toEqual([]);

      // The reboot: nothing of the run directory survives (a tmpfs); the volume files and records do.
      unmountAllUnder(runDir);
      rmSync(runDir, { recursive: true, force: true });
      expect(loopDevices()).not.toContain(volumeFilePath(stateDir, id));

      await mounts.prepare();
      expect((await mounts.restore()).sort()).toEqual([id, other].sort());
      expect(mountsAt(volumeMountPath(runDir, id))[0]?.options).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));
      expect(await hashes(source)).toEqual(written.files);
      expect(mountsAt(datasetViewPath(runDir, id, 'ro-ro'))[0]?.options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
      expect(mountsAt(datasetViewPath(runDir, id, 'rw-rw'))[0]?.options).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));
      expect(readFileSync(join(datasetViewPath(runDir, id, 'ro-ro'), 'README.txt'), 'utf8')).toBe('dataset restore-ro\n');
      expect(mountsAt(volumeMountPath(runDir, other))).toHaveLength(1);
      expect(mountsUnder(join(runDir, id))).toHaveLength(3);

      // Nothing missing now: a second restore does nothing and stacks nothing.
      expect(await mounts.restore()).toEqual([]);
      expect(mountsUnder(runDir)).toHaveLength(4);

      // Only what is missing: one view.
      execFileSync('umount', [datasetViewPath(runDir, id, 'ro-ro')]);
      expect(await mounts.restore()).toEqual([id]);
      expect(mountsUnder(runDir)).toHaveLength(4);
      expect(await hashes(source)).toEqual(written.files);
    });

  it('restores what it can and skips a view whose dataset is gone', async () => {
      const { mounts, runDir, track } = hostMounts('restore-gone');
      const id = track(envId('gone'));
      const kept = dataset('restore-kept');
      const doomed = dataset('restore-doomed');
      await mounts.ensureVolume(id, 16 * MiB);
      await mounts.ensureViews(id, [mountOf('kept', kept, true), mountOf('doomed', doomed, true)]);
      unmountAllUnder(join(runDir, id));
      rmSync(runDir, { recursive: true, force: true });
      rmSync(doomed, { recursive: true, force: true });

      expect(await mounts.restore()).toEqual([id]);
      expect(mountsAt(volumeMountPath(runDir, id))).toHaveLength(1);
      expect(mountsAt(datasetViewPath(runDir, id, 'kept-ro'))).toHaveLength(1);
      expect(mountsAt(datasetViewPath(runDir, id, 'doomed-ro'))).toEqual([]);
    });
  });

  it('leaves no mount and no loop device behind', async () => {
    for (const { mounts, envIds } of made) {
      for (const id of envIds) await mounts.remove(id);
    }
    expect(mountsUnder(runBase)).toEqual([]);
    expect(mountTable().filter((m) => m.point.startsWith(`${base}/`))).toEqual([]);
    expect(loopDevices()).not.toContain(base);
    // Every volume file is gone; the dataset directories are all still there.
    for (const dir of readdirSync(base).filter((d) => d !== 'datasets')) {
      const volumes = join(base, dir, 'state', 'volumes');
      if (existsSync(volumes)) expect(readdirSync(volumes), volumes).toEqual([]);
    }
    expect(readdirSync(datasets).length).toBeGreaterThan(5);
  });
});
