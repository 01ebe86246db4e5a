import { execFileSync } from 'node:child_process';
import type Dockerode from 'dockerode';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostFactsToProto, statusToProto } from '../../agent/convert.js';
import { HostScan } from '../../agent/host-scan.js';
import { volumeMountPath } from '../../agent/runtime/docker-names.js';
import type { ObservedStatus } from '../../agent/runtime/types.js';
import {
  COMMIT_COMMENT_PREFIX,
  committedBytes,
  diskReserveBytes,
  environmentUsage,
  formatSize,
  measureRootfs,
  mountedUsedBytes,
  storageUsedBytes,
  underDiskPressure,
} from '../../agent/usage.js';

// What the agent reports of disk use: the storage volume's used bytes (statfs of its mount point,
// nothing when it is not mounted), the writable layer (cached by the rootfs watch) with the layers
// recreates committed, the data disk's reserve and pressure, and their proto form.

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const running: ObservedStatus = {
  envId: 'env-u1',
  state: 'running',
  containerId: 'c1',
  specHash: 'h',
  gpuUuids: [],
  exitCode: 0,
  oomKilled: false,
  startedAtMs: 1,
  finishedAtMs: 0,
  message: '',
};

describe('formatSize', () => {
  it('prints binary units with at most one decimal', () => {
    expect(formatSize(100)).toBe('100 bytes');
    expect(formatSize(10 * GiB)).toBe('10 GiB');
    expect(formatSize(9.1 * GiB)).toBe('9.1 GiB');
    expect(formatSize(10.24 * GiB)).toBe('10.2 GiB');
    expect(formatSize(512 * MiB)).toBe('512 MiB');
    expect(formatSize(50 * 1024 * GiB)).toBe('50 TiB');
  });
});

describe('disk reserve and pressure', () => {
  it('keeps the configured fraction of the disk, rounded up, and is under pressure below it', () => {
    expect(diskReserveBytes(1000 * GiB, 0.1)).toBe(100 * GiB);
    expect(diskReserveBytes(1001, 0.1)).toBe(101);
    expect(diskReserveBytes(1000, 0)).toBe(0);
    expect(underDiskPressure(99 * GiB, 100 * GiB)).toBe(true);
    expect(underDiskPressure(100 * GiB, 100 * GiB)).toBe(false);
    expect(underDiskPressure(0, 0)).toBe(false); // no reserve: never under pressure
  });

  it('is in the host facts, measured on the data directory at every report', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'rgpu-usage-facts-'));
    try {
      const scan = await HostScan.discover({ dataDir, nvidiaSmiPath: '/nonexistent/nvidia-smi', nvidiaSmiEnv: {}, gpuScanMs: 60_000, hostScanMs: 60_000 });
      const agent = { publicAddress: '127.0.0.1', agentAddress: '127.0.0.1:1', agentVersion: 't', gpuMode: 'devices' as const, cpuCores: 0 };
      const none = await scan.facts(agent);
      expect(none.diskReserveBytes).toBe(0);
      expect(none.diskPressure).toBe(false);
      const tenth = await scan.facts({ ...agent, diskReserve: 0.1 });
      expect(tenth.diskTotalBytes).toBeGreaterThan(0);
      expect(tenth.diskReserveBytes).toBe(Math.ceil(tenth.diskTotalBytes * 0.1));
      expect(tenth.diskPressure).toBe(tenth.diskFreeBytes < tenth.diskReserveBytes!);
      // Reserving 99.99% of a disk that has anything on it is pressure.
      expect((await scan.facts({ ...agent, diskReserve: 0.9999 })).diskPressure).toBe(true);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('conversion', () => {
  it('puts known usage and the stop reason in the status, and leaves unknown parts out', () => {
    const full = statusToProto({ ...running, state: 'exited' }, false, { storageUsedBytes: 5 * GiB, rootfsUsedBytes: 200 * MiB, stopReason: 'writable layer 11 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT)' });
    expect(full.storageUsedBytes).toBe(5 * GiB);
    expect(full.rootfsUsedBytes).toBe(200 * MiB);
    expect(full.stopReason).toBe('writable layer 11 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT)');
    const bare = statusToProto(running, true);
    expect('storageUsedBytes' in bare || 'rootfsUsedBytes' in bare || 'stopReason' in bare).toBe(false);
    expect(statusToProto(running, true, { storageUsedBytes: 0 }).storageUsedBytes).toBe(0); // zero is known, not unknown
  });

  it('puts the disk reserve and pressure in the host facts', () => {
    const host = { hostname: 'h', addresses: [], os: '', kernel: '', cpuModel: '', cpuCores: 1, memoryBytes: 1, diskTotalBytes: 100, diskFreeBytes: 5 };
    const gpus = { gpus: [], condition: '', kind: 'cpu-only' as const };
    const facts = hostFactsToProto({ host, gpus, publicAddress: '', agentAddress: 'a:1', agentVersion: '', gpuMode: 'devices', disk: { reserveBytes: 10, pressure: true } });
    expect(facts.diskReserveBytes).toBe(10);
    expect(facts.diskPressure).toBe(true);
  });
});

describe('storage volume usage', () => {
  it('is unknown for a directory that is not a mount point, or that does not exist', async () => {
    const runDir = mkdtempSync(path.join(tmpdir(), 'rgpu-usage-run-'));
    try {
      mkdirSync(volumeMountPath(runDir, 'env-u1'), { recursive: true });
      writeFileSync(path.join(volumeMountPath(runDir, 'env-u1'), 'f'), 'x'.repeat(4096));
      expect(await storageUsedBytes(runDir, 'env-u1')).toBeUndefined();
      expect(await storageUsedBytes(runDir, 'env-absent')).toBeUndefined();
      const usage = await environmentUsage([running], runDir, undefined);
      expect(usage.get('env-u1')).toEqual({ storageUsedBytes: undefined, rootfsUsedBytes: undefined, stopReason: undefined });
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  });

  it.skipIf(process.getuid?.() !== 0)('is the used bytes of the filesystem mounted there (a tmpfs here, needs root)', async () => {
    const runDir = mkdtempSync(path.join(tmpdir(), 'rgpu-usage-mnt-'));
    const mountPoint = volumeMountPath(runDir, 'env-u1');
    mkdirSync(mountPoint, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mountPoint]);
    try {
      expect(await mountedUsedBytes(mountPoint)).toBe(0);
      writeFileSync(path.join(mountPoint, 'blob'), Buffer.alloc(3 * MiB, 1));
      expect(await storageUsedBytes(runDir, 'env-u1')).toBe(3 * MiB);
      expect((await environmentUsage([running], runDir, { rootfsUsedBytes: () => 7, stopReason: () => 'ignored while running' })).get('env-u1')).toEqual({
        storageUsedBytes: 3 * MiB,
        rootfsUsedBytes: 7,
        stopReason: undefined,
      });
    } finally {
      execFileSync('umount', [mountPoint]);
      rmSync(runDir, { recursive: true, force: true });
    }
  });
});

/** A Docker engine of one container and images known by their history (newest entry first). */
function fakeDocker(histories: Record<string, { Comment: string; Size: number }[]>, container: { Image: string; SizeRw: number }) {
  const historyCalls: string[] = [];
  const docker = {
    getImage: (id: string) => ({
      history: async () => {
        historyCalls.push(id);
        const h = histories[id];
        if (!h) throw new Error(`no such image ${id}`);
        return h;
      },
    }),
    getContainer: () => ({ inspect: async () => ({ ...container, Mounts: [] }) }),
  } as unknown as Dockerode;
  return { docker, historyCalls };
}

describe('committed layers', () => {
  const commit = (size: number) => ({ Comment: `${COMMIT_COMMENT_PREFIX}env-u1 before a recreate`, Size: size });

  it('counts the layers the agent committed on top of the catalog image, once per image id', async () => {
    const { docker, historyCalls } = fakeDocker(
      {
        'sha256:gen2': [commit(3 * MiB), commit(20 * MiB), { Comment: 'Imported from -', Size: 2 * MiB }, commit(99 * MiB)],
        'sha256:catalog': [{ Comment: '', Size: 500 * MiB }, { Comment: 'Imported from -', Size: 2 * MiB }],
      },
      { Image: 'sha256:gen2', SizeRw: 1 * MiB },
    );
    // Only the top run of commits: an entry further down belongs to the catalog image.
    expect(await committedBytes(docker, 'sha256:gen2')).toBe(23 * MiB);
    expect(await committedBytes(docker, 'sha256:catalog')).toBe(0);
    expect(await committedBytes(docker, 'sha256:gen2')).toBe(23 * MiB);
    expect(historyCalls).toEqual(['sha256:gen2', 'sha256:catalog']);
    expect(await measureRootfs(docker, 'c1', 'env-u1', '/nonexistent-run-dir')).toEqual({ usedBytes: 24 * MiB, layerBytes: 1 * MiB, committedBytes: 23 * MiB, dataPath: '' });
  });

  it('rejects when the image is gone (the measurement is retried at the next pass)', async () => {
    const { docker } = fakeDocker({}, { Image: 'sha256:gone', SizeRw: 0 });
    await expect(measureRootfs(docker, 'c1', 'env-u1', '/nonexistent-run-dir')).rejects.toThrow('no such image');
  });
});
