import { lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFakeDeviceNodes, deviceNumbers, splitRdev } from '../../../agent/discovery/fake-gpus.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('fake device node tests skipped: mknod needs root (run the tests as root, as CI does)');

describe('splitRdev', () => {
  it('decodes Linux dev_t numbers', () => {
    expect(splitRdev(195 * 256 + 3)).toEqual({ major: 195, minor: 3 });
    expect(splitRdev(510 * 256 + 1)).toEqual({ major: 510, minor: 1 });
    // Large minors spill into bits 20+ (glibc makedev): major 10, minor 0x12345.
    expect(splitRdev((0x123 << 20) | (10 << 8) | 0x45)).toEqual({ major: 10, minor: 0x12345 });
  });
});

describe.skipIf(!isRoot)('createFakeDeviceNodes', () => {
  const dirs: string[] = [];
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'fake-dev-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('creates character devices with NVIDIA major/minor numbers', () => {
    const dir = tempDir();
    const nodes = createFakeDeviceNodes(dir, [0, 1, 7]);
    const expected: Record<string, [number, number]> = {
      nvidia0: [195, 0],
      nvidia1: [195, 1],
      nvidia7: [195, 7],
      nvidiactl: [195, 255],
      'nvidia-uvm': [510, 0],
      'nvidia-uvm-tools': [510, 1],
    };
    expect(nodes.map((n) => n.path).sort()).toEqual(Object.keys(expected).map((name) => join(dir, name)).sort());
    for (const [name, [major, minor]] of Object.entries(expected)) {
      const stat = lstatSync(join(dir, name));
      expect(stat.isCharacterDevice(), name).toBe(true);
      expect(splitRdev(stat.rdev), name).toEqual({ major, minor });
      expect(stat.mode & 0o777, name).toBe(0o666);
    }
  });

  it('is idempotent and repairs wrong nodes', () => {
    const dir = tempDir();
    createFakeDeviceNodes(dir, [0]);
    const before = lstatSync(join(dir, 'nvidia0')).ino;
    rmSync(join(dir, 'nvidiactl'));
    writeFileSync(join(dir, 'nvidiactl'), 'a regular file');
    createFakeDeviceNodes(dir, [0, 1]);
    expect(lstatSync(join(dir, 'nvidia0')).ino).toBe(before);
    expect(deviceNumbers(join(dir, 'nvidiactl'))).toEqual({ major: 195, minor: 255 });
    expect(deviceNumbers(join(dir, 'nvidia1'))).toEqual({ major: 195, minor: 1 });
  });

  it('creates the directory and rejects impossible indexes', () => {
    const dir = join(tempDir(), 'nested', 'dev');
    createFakeDeviceNodes(dir, []);
    expect(deviceNumbers(join(dir, 'nvidiactl'))).toEqual({ major: 195, minor: 255 });
    expect(() => createFakeDeviceNodes(dir, [254])).toThrow(RangeError);
    expect(() => createFakeDeviceNodes(dir, [-1])).toThrow(RangeError);
  });
});

describe('deviceNumbers', () => {
  it('tells absent paths from non-devices', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fake-dev-'));
    writeFileSync(join(dir, 'file'), '');
    expect(deviceNumbers(join(dir, 'missing'))).toBeUndefined();
    expect(deviceNumbers(join(dir, 'file'))).toBeNull();
    expect(deviceNumbers('/dev/null')).toEqual({ major: 1, minor: 3 });
    rmSync(dir, { recursive: true });
  });
});
