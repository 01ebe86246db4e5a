import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RuntimeError } from '../../../agent/runtime/errors.js';
import { detectGpuMode, gpuPassthrough, parseCdiKind, type GpuMode } from '../../../agent/runtime/gpu.js';
import { readCdiKinds } from '../../../agent/runtime/gpu-host.js';

const uuid = (i: number) => `GPU-00000000-0000-0000-0000-00000000000${i}`;
/** Eight GPUs, index i ↔ uuid(i), like a recorded 8×H100 host. */
const HOST = new Map(Array.from({ length: 8 }, (_, i) => [uuid(i), i] as const));

describe('gpuPassthrough', () => {
  it('nvidia mode: one DeviceRequest for the nvidia driver with exactly the UUIDs', () => {
    const out = gpuPassthrough({ mode: 'nvidia', gpuUuids: [uuid(5), uuid(2)], gpuIndexes: HOST });
    expect(out.deviceRequests).toEqual([{ Driver: 'nvidia', DeviceIDs: [uuid(2), uuid(5)], Capabilities: [['gpu']] }]);
    expect(out.devices).toEqual([]);
    expect(out.env).toEqual({ NVIDIA_VISIBLE_DEVICES: `${uuid(2)},${uuid(5)}` });
  });

  it('cdi mode: a cdi DeviceRequest naming nvidia.com/gpu=<uuid>', () => {
    const out = gpuPassthrough({ mode: 'cdi', gpuUuids: [uuid(3)], gpuIndexes: HOST });
    expect(out.deviceRequests).toEqual([{ Driver: 'cdi', DeviceIDs: [`nvidia.com/gpu=${uuid(3)}`] }]);
    expect(out.devices).toEqual([]);
    expect(out.env.NVIDIA_VISIBLE_DEVICES).toBe(uuid(3));
  });

  it('devices mode: /dev/nvidiaN by host index plus the control nodes that exist', () => {
    const out = gpuPassthrough({
      mode: 'devices',
      gpuUuids: [uuid(5), uuid(2)],
      gpuIndexes: HOST,
      deviceDir: '/tmp/fake-dev',
      controlNodes: ['nvidia-uvm', 'nvidiactl'],
    });
    expect(out.deviceRequests).toEqual([]);
    expect(out.devices).toEqual([
      { PathOnHost: '/tmp/fake-dev/nvidia2', PathInContainer: '/dev/nvidia2', CgroupPermissions: 'rwm' },
      { PathOnHost: '/tmp/fake-dev/nvidia5', PathInContainer: '/dev/nvidia5', CgroupPermissions: 'rwm' },
      { PathOnHost: '/tmp/fake-dev/nvidiactl', PathInContainer: '/dev/nvidiactl', CgroupPermissions: 'rwm' },
      { PathOnHost: '/tmp/fake-dev/nvidia-uvm', PathInContainer: '/dev/nvidia-uvm', CgroupPermissions: 'rwm' },
    ]);
    expect(out.env.NVIDIA_VISIBLE_DEVICES).toBe(`${uuid(2)},${uuid(5)}`);
  });

  it.each<GpuMode>(['nvidia', 'cdi', 'devices'])('%s mode without GPUs passes nothing and NVIDIA_VISIBLE_DEVICES=void', (mode) => {
    const out = gpuPassthrough({ mode, gpuUuids: [], gpuIndexes: HOST, controlNodes: ['nvidiactl'] });
    expect(out).toEqual({ deviceRequests: [], devices: [], env: { NVIDIA_VISIBLE_DEVICES: 'void' }, gpuUuids: [] });
  });

  it('devices mode rejects a GPU the host does not have', () => {
    expect(() => gpuPassthrough({ mode: 'devices', gpuUuids: ['GPU-nope'], gpuIndexes: HOST })).toThrow(
      expect.objectContaining({ code: 'invalid_spec', message: expect.stringContaining('GPU-nope') }),
    );
  });

  it.each(['', 'GPU-1,GPU-2', 'GPU 1', '../x'])('rejects the malformed UUID %j', (bad) => {
    expect(() => gpuPassthrough({ mode: 'nvidia', gpuUuids: [bad], gpuIndexes: HOST })).toThrow(RuntimeError);
  });

  it('rejects a GPU assigned twice', () => {
    expect(() => gpuPassthrough({ mode: 'cdi', gpuUuids: [uuid(1), uuid(1)], gpuIndexes: HOST })).toThrow(/twice/);
  });
});

describe('detectGpuMode', () => {
  it('prefers the nvidia runtime', () => {
    expect(detectGpuMode({ Runtimes: { runc: {}, nvidia: {} }, CDISpecDirs: ['/etc/cdi'] }, ['nvidia.com/gpu'])).toBe('nvidia');
  });
  it('uses CDI when Docker has spec dirs and an nvidia.com/gpu spec', () => {
    expect(detectGpuMode({ Runtimes: { runc: {} }, CDISpecDirs: ['/etc/cdi'] }, ['nvidia.com/gpu'])).toBe('cdi');
  });
  it('falls back to devices without CDI support or without an NVIDIA spec', () => {
    expect(detectGpuMode({ Runtimes: { runc: {} } }, ['nvidia.com/gpu'])).toBe('devices');
    expect(detectGpuMode({ Runtimes: { runc: {} }, CDISpecDirs: ['/etc/cdi'] }, ['vendor.com/fpga'])).toBe('devices');
    expect(detectGpuMode({}, [])).toBe('devices');
  });
});

describe('CDI spec kinds', () => {
  it('parses YAML and one-line JSON specs', () => {
    expect(parseCdiKind('---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n')).toBe('nvidia.com/gpu');
    expect(parseCdiKind('{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[]}')).toBe('nvidia.com/gpu');
    expect(parseCdiKind('cdiVersion: 0.5.0\n')).toBeUndefined();
  });

  it('reads the kinds of the spec files in the given dirs, skipping missing dirs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdi-'));
    try {
      await writeFile(join(dir, 'nvidia.yaml'), 'cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n');
      await writeFile(join(dir, 'other.json'), '{"kind": "vendor.com/fpga"}');
      await writeFile(join(dir, 'README'), 'kind: not/a-spec');
      expect((await readCdiKinds([dir, join(dir, 'missing')])).sort()).toEqual(['nvidia.com/gpu', 'vendor.com/fpga']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
