import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Stand-ins for the GPU side of a host, for development and tests on machines without NVIDIA GPUs:
 * the fake nvidia-smi script and fake /dev/nvidia* character devices (so that a container can be
 * created with the same --device list as on a real GPU server).
 */

/** /dev/nvidiaN is NVIDIA's fixed major 195, minor N; /dev/nvidiactl is 195:255. */
export const NVIDIA_MAJOR = 195;
export const NVIDIACTL_MINOR = 255;
/**
 * nvidia-uvm's major is dynamic (read from /proc/devices on a real host). 510 is what drivers >= 550
 * commonly get (devnodes_proc-devices_majors_from-toolkit-test.txt); uvm is minor 0, uvm-tools minor 1.
 */
export const FAKE_NVIDIA_UVM_MAJOR = 510;

export interface FakeDeviceNode {
  readonly path: string;
  readonly major: number;
  readonly minor: number;
}

/** Absolute path of the fake nvidia-smi (an executable Node script reading REMOTEGPU_FAKE_GPUS). */
export function fakeNvidiaSmiPath(): string {
  return fileURLToPath(new URL('./fake-nvidia-smi.mjs', import.meta.url));
}

/** The nodes createFakeDeviceNodes makes for these GPU indexes, in creation order. Pure. */
export function fakeDeviceNodeSpecs(dir: string, gpuIndexes: readonly number[]): FakeDeviceNode[] {
  return [
    ...gpuIndexes.map((i) => ({ path: join(dir, `nvidia${i}`), major: NVIDIA_MAJOR, minor: i })),
    { path: join(dir, 'nvidiactl'), major: NVIDIA_MAJOR, minor: NVIDIACTL_MINOR },
    { path: join(dir, 'nvidia-uvm'), major: FAKE_NVIDIA_UVM_MAJOR, minor: 0 },
    { path: join(dir, 'nvidia-uvm-tools'), major: FAKE_NVIDIA_UVM_MAJOR, minor: 1 },
  ];
}

/**
 * Creates real character devices (mode 0666) `dir/nvidiaN` (195:N) for each index, `nvidiactl`
 * (195:255), `nvidia-uvm` (510:0) and `nvidia-uvm-tools` (510:1) with mknod(1). Needs root (or
 * CAP_MKNOD). Idempotent: a node that already exists with the right numbers is kept; anything else
 * at that path is replaced. Creates `dir` if needed. Throws when mknod fails (e.g. not root).
 * Returns the nodes. The devices reach no driver: opening them fails with ENXIO.
 */
export function createFakeDeviceNodes(dir: string, gpuIndexes: readonly number[]): FakeDeviceNode[] {
  for (const i of gpuIndexes) {
    if (!Number.isInteger(i) || i < 0 || i >= NVIDIACTL_MINOR - 1) throw new RangeError(`invalid GPU index ${i}`);
  }
  mkdirSync(dir, { recursive: true });
  const nodes = fakeDeviceNodeSpecs(dir, gpuIndexes);
  for (const node of nodes) {
    const existing = deviceNumbers(node.path);
    if (existing && existing.major === node.major && existing.minor === node.minor) continue;
    if (existing !== undefined) rmSync(node.path, { recursive: true, force: true });
    execFileSync('mknod', ['-m', '666', node.path, 'c', String(node.major), String(node.minor)], { stdio: 'pipe' });
  }
  return nodes;
}

/** Major/minor of a character device; null when the path is something else; undefined when absent. */
export function deviceNumbers(path: string): { major: number; minor: number } | null | undefined {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return undefined;
  }
  return stat.isCharacterDevice() ? splitRdev(stat.rdev) : null;
}

/** Linux dev_t encoding (glibc gnu_dev_major/minor). */
export function splitRdev(rdev: number): { major: number; minor: number } {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev >>> 0;
  return {
    major: ((low >>> 8) & 0xfff) | (high & 0xfffff000),
    minor: (low & 0xff) | ((low >>> 12) & 0xffffff00),
  };
}
